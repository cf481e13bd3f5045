"""``PyramidROIAlign``: RoIAlign over the FPN levels, on ``tf.image.crop_and_resize``.

Three samplings, chosen by ``sampling_ratio``:

- 0, Matterport's (the default, which its weights were trained with): one bilinear sample per
  output cell, the samples spread from box edge to box edge (``crop_and_resize`` on boxes
  normalized by (H - 1, W - 1)).
- > 0, the paper's RoIAlign (torchvision ``roi_align``, detectron2 ``ROIAlign``): each output bin
  averages ``sampling_ratio x sampling_ratio`` bilinear samples taken at regular points inside
  the bin; with ``aligned`` the box is shifted by half a pixel so that a box edge lies between
  pixels and pixel i's centre is at i + 0.5 (detectron2 ``ROIAlignV2``, torchvision
  ``aligned=True``). :func:`roi_align` computes it with one ``crop_and_resize`` call and an
  average pool.
- ``ADAPTIVE`` (-1), the paper's RoIAlign with the grid chosen per box: ceil(box side / output
  side) samples per bin side, as torchvision's ``roi_align`` does for ``sampling_ratio <= 0``
  and detectron2's ``POOLER_SAMPLING_RATIO: 0`` (its default). One ``crop_and_resize`` per
  distinct grid in a ``tf.while_loop``; TensorFlow's kernels only (the portable ops of the
  exports need a crop size known when the graph is built).
"""

import keras
import tensorflow as tf
from keras import layers

from mrcnn.modeling import box_ops, portable_ops
from mrcnn.modeling.box_ops import pixel_boxes
from mrcnn.config import ROI_LEVEL_MAPPINGS as LEVEL_MAPPINGS


def roi_level(boxes, image_shape, mapping="matterport"):
    """FPN level (2..5) of each box, from its size relative to a 224x224 ImageNet crop.

    boxes: [batch, num_boxes, (y1, x1, y2, x2)] normalized; image_shape: [height, width] of the
    molded image. mapping "matterport": level = round(4 + log2(sqrt(area) / (224 /
    sqrt(image_area)))) on the normalized area; "torchvision" (its ``LevelMapper``, also
    detectron2's): floor(4 + log2(sqrt(area) / 224) + 1e-6) on the box's area in pixels.
    Both are clamped to 2..5. Returns [batch, num_boxes] int32.
    """
    if mapping not in LEVEL_MAPPINGS:
        raise ValueError("ROI_LEVEL_MAPPING must be one of {}, got {!r}".format(
            LEVEL_MAPPINGS, mapping))
    if mapping == "torchvision":
        y1, x1, y2, x2 = tf.unstack(pixel_boxes(boxes, image_shape), axis=-1)
        # log2 of a zero-size (padding) box is -inf; it lands on level 2 and is never used.
        level = tf.math.log(tf.sqrt((y2 - y1) * (x2 - x1)) / 224.0) / tf.math.log(2.0)
        level = tf.cast(tf.floor(4.0 + level + 1e-6), tf.int32)
        return tf.minimum(5, tf.maximum(2, level))
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    h = y2 - y1
    w = x2 - x1
    image_area = tf.cast(image_shape[0] * image_shape[1], tf.float32)
    level = tf.math.log(tf.sqrt(h * w) / (224.0 / tf.sqrt(image_area))) / tf.math.log(2.0)
    level = 4 + tf.cast(tf.round(level), tf.int32)
    return tf.minimum(5, tf.maximum(2, level))


# ROI_ALIGN_SAMPLING_RATIO of the per-box (adaptive) sampling grid.
ADAPTIVE = -1


def check_sampling_ratio(sampling_ratio, ops="tf"):
    """``sampling_ratio`` as an int: 0 (Matterport's), n > 0, or ADAPTIVE (-1, TF ops only).

    Raises ValueError naming ROI_ALIGN_SAMPLING_RATIO for anything else, and for the adaptive
    grid with the portable ops (the TFLite and ONNX exports), whose crop sizes must be
    known when the graph is built.
    """
    if isinstance(sampling_ratio, bool) or int(sampling_ratio) != sampling_ratio or \
            int(sampling_ratio) < ADAPTIVE:
        raise ValueError("ROI_ALIGN_SAMPLING_RATIO must be 0 (Matterport's sampling), a "
                         "positive integer or -1 (adaptive), got {!r}".format(sampling_ratio))
    if int(sampling_ratio) == ADAPTIVE and ops != "tf":
        raise ValueError("ROI_ALIGN_SAMPLING_RATIO -1 (adaptive) takes a number of samples per "
                         "box known only when the graph runs, which the TFLite and ONNX "
                         "exports cannot hold (the SavedModel can); export a model with a "
                         "fixed ratio (e.g. 2) to those formats")
    return int(sampling_ratio)


# Boxes reach RoIAlign through normalized float32 coordinates: a side that is an exact
# multiple of the output side (a 56-pixel RoI for 28x28 mask targets) comes back a few 1e-6
# bins over it, and ceil() would add a row of samples that torchvision, given the pixels, does
# not take. Sides within this many bins of a multiple count as that multiple.
GRID_TOLERANCE = 1e-4


def adaptive_grid(h, w, output_size):
    """Samples per bin side of each box under the adaptive ratio: ceil(side / output side).

    h, w: [K] box sides in the sampled map's pixels (after ``aligned=False``'s clamp to one
    pixel). Returns ([K], [K]) int32, within GRID_TOLERANCE but at least 1 for any side
    above 0 (torchvision's ceil of a tiny aligned side is 1); 0 or less for a side of 0 or
    less (an empty or inverted box: torchvision then returns 0s, and so does roi_align).
    """
    def grid(side, out):
        n = tf.cast(tf.math.ceil(side / out - GRID_TOLERANCE), tf.int32)
        return tf.where(side > 0, tf.maximum(n, 1), n)

    out_h, out_w = (int(v) for v in output_size)
    return grid(h, out_h), grid(w, out_w)


def _pad_border(images, border):
    """[B, H, W, C] -> [B, H + 2, W + 2, C] with one more row and column on each side.

    border "clamp" repeats the border pixels: the paper's bilinear sampling (torchvision's)
    reads a point within one pixel outside the map at the border pixel and treats points
    farther out as 0, and crop_and_resize on the padded map does both. "zero" pads with 0:
    a mask is 0 outside its box, so its value fades to 0 across the last half pixel.
    Concatenation (not a mirror pad) converts to every export format.
    """
    if border == "zero":
        return tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    images = tf.concat([images[:, :1], images, images[:, -1:]], axis=1)
    return tf.concat([images[:, :, :1], images, images[:, :, -1:]], axis=2)


def roi_align(features, boxes, box_indices, output_size, sampling_ratio=2, aligned=True,
              border="clamp", ops=portable_ops.TF, grid=None):
    """The paper's RoIAlign of ``boxes`` on ``features``, on ``ops.crop_and_resize``.

    features: [batch, height, width, channels]; boxes: [K, (y1, x1, y2, x2)] in the map's
    continuous coordinates (image pixels times the map's scale: pixel i covers [i, i + 1));
    box_indices: [K] int32 image of each box; output_size: (out_h, out_w); sampling_ratio:
    samples per bin side (> 0), or ADAPTIVE (-1) for ceil(box side / output side) per box
    (:func:`adaptive_grid`, TensorFlow's ops only); aligned: shift by half a pixel
    (torchvision ``aligned=True``); without it the box is read in pixel-index coordinates and
    sides are at least one pixel, as torchvision's ``aligned=False``; border: "clamp"
    (torchvision's) or "zero" (for masks, see :func:`_pad_border`); ops: the namespace of
    ``crop_and_resize`` (``mrcnn.modeling.portable_ops``); grid: with ADAPTIVE, ([K], [K]) int32
    samples per bin side to use instead of the boxes' own (the mask targets take them from the
    box in image pixels when they sample a mini mask).

    Bin (i, j) averages the bilinear values at y1 + (i + (a + 0.5) / s) * bin_h, x1 + (j + (b +
    0.5) / s) * bin_w for a, b < s. Those points are evenly spaced, out_h * s of them from
    y1 + bin_h / (2 s) to y2 - bin_h / (2 s): one crop_and_resize of that many points, then an
    s x s average pool. With ADAPTIVE, s is (s_y, s_x) per box and the boxes are pooled in
    groups of one grid each (:func:`_adaptive_pool`). Returns [K, out_h, out_w, channels]
    float32.
    """
    out_h, out_w = (int(v) for v in output_size)
    adaptive = int(sampling_ratio) == ADAPTIVE
    if not adaptive and int(sampling_ratio) < 1:
        raise ValueError("roi_align needs sampling_ratio >= 1 or -1 (adaptive), got {}".format(
            sampling_ratio))
    if adaptive and ops is not portable_ops.TF:
        check_sampling_ratio(sampling_ratio, "portable")
    features = tf.cast(features, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    shape = tf.shape(features)
    offset = 0.5 if aligned else 0.0
    y1, x1 = boxes[:, 0] - offset, boxes[:, 1] - offset
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    if not aligned:
        h, w = tf.maximum(h, 1.0), tf.maximum(w, 1.0)
    if adaptive:
        grid_y, grid_x = adaptive_grid(h, w, output_size) if grid is None else grid
        s_y = tf.cast(tf.maximum(grid_y, 1), tf.float32)
        s_x = tf.cast(tf.maximum(grid_x, 1), tf.float32)
    else:
        s_y = s_x = float(int(sampling_ratio))
    step_y, step_x = h / (out_h * s_y), w / (out_w * s_x)
    # First and last sample in the padded map (one pixel more on each side), normalized by
    # its (size - 1) as crop_and_resize reads boxes.
    size_y = tf.cast(shape[1] + 1, tf.float32)
    size_x = tf.cast(shape[2] + 1, tf.float32)
    crop_boxes = tf.stack([(y1 + 0.5 * step_y + 1.0) / size_y,
                           (x1 + 0.5 * step_x + 1.0) / size_x,
                           (y1 + h - 0.5 * step_y + 1.0) / size_y,
                           (x1 + w - 0.5 * step_x + 1.0) / size_x], axis=1)
    padded = _pad_border(features, border)
    box_indices = tf.cast(box_indices, tf.int32)
    if adaptive:
        pooled = _adaptive_pool(padded, crop_boxes, box_indices, grid_y, grid_x, output_size)
        # A side of length 0 (or an inverted box) has no samples: torchvision returns 0.
        empty = tf.logical_or(tf.less_equal(grid_y, 0), tf.less_equal(grid_x, 0))
        return tf.where(empty[:, None, None, None], tf.zeros_like(pooled), pooled)
    s = int(sampling_ratio)
    samples = ops.crop_and_resize(padded, crop_boxes, box_indices, [out_h * s, out_w * s],
                                  method="bilinear", extrapolation_value=0.0)
    if s == 1:
        return samples
    return tf.nn.avg_pool2d(samples, ksize=s, strides=s, padding="VALID")


def _adaptive_pool(padded, crop_boxes, box_indices, grid_y, grid_x, output_size):
    """[K, out_h, out_w, C]: each box's bins averaged over its own grid_y x grid_x samples.

    Boxes with the same grid share one crop_and_resize of [out_h * g_y, out_w * g_x] points
    (then a mean over each bin's g_y x g_x block); a tf.while_loop runs one such crop per
    distinct grid, and the results return to the boxes' order. A grid of 0 is sampled as 1
    (the caller zeroes those boxes).
    """
    out_h, out_w = (int(v) for v in output_size)
    grid_y, grid_x = tf.maximum(grid_y, 1), tf.maximum(grid_x, 1)
    # One key per (g_y, g_x); sides of 2**20 samples per bin are far beyond any image.
    keys, group = tf.unique(tf.cast(grid_y, tf.int64) * (1 << 20) + tf.cast(grid_x, tf.int64))
    group = tf.cast(group, tf.int32)
    groups = tf.size(keys)
    channels = tf.shape(padded)[3]

    def body(i, pooled, members):
        index = tf.cast(tf.where(tf.equal(group, i))[:, 0], tf.int32)      # [k] boxes
        g_y = tf.cast(keys[i] // (1 << 20), tf.int32)
        g_x = tf.cast(keys[i] % (1 << 20), tf.int32)
        samples = tf.image.crop_and_resize(
            padded, tf.gather(crop_boxes, index), tf.gather(box_indices, index),
            tf.stack([out_h * g_y, out_w * g_x]), method="bilinear", extrapolation_value=0.0)
        # [k, out_h * g_y, out_w * g_x, C] -> [k, out_h, g_y, out_w, g_x, C] -> bin means.
        samples = tf.reshape(samples, tf.stack([-1, out_h, g_y, out_w, g_x, channels]))
        return (i + 1, pooled.write(i, tf.reduce_mean(samples, axis=[2, 4])),
                members.write(i, index))

    pooled = tf.TensorArray(tf.float32, size=groups, infer_shape=False,
                            element_shape=tf.TensorShape([None, out_h, out_w, None]))
    members = tf.TensorArray(tf.int32, size=groups, infer_shape=False,
                             element_shape=tf.TensorShape([None]))
    _, pooled, members = tf.while_loop(lambda i, *_: i < groups, body,
                                       [tf.constant(0), pooled, members])
    # An empty TensorArray cannot concatenate without the channel count: no boxes, no loop.
    result = tf.cond(
        groups > 0,
        lambda: tf.gather(pooled.concat(), tf.argsort(members.concat())),
        lambda: tf.zeros(tf.stack([0, out_h, out_w, channels]), tf.float32))
    # The loop loses the static channel count; the heads' layers after it may need it.
    result.set_shape([None, out_h, out_w, padded.shape[3]])
    return result


def roi_align_options(config):
    """The RoIAlign settings of a Config as ``PyramidROIAlign`` keyword arguments."""
    return {"sampling_ratio": int(config.ROI_ALIGN_SAMPLING_RATIO),
            "aligned": bool(config.ROI_ALIGN_ALIGNED),
            "level_mapping": config.ROI_LEVEL_MAPPING}


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(layers.Layer):
    """Crop and resize each box from the pyramid level that matches its size.

    pool_shape: (height, width) of the output; sampling_ratio: 0 for Matterport's single
    corner-aligned sample per cell, n > 0 for the paper's RoIAlign with n x n samples per bin,
    ADAPTIVE (-1) for a grid per box (:func:`roi_align`); aligned: its half-pixel shift;
    level_mapping: see :func:`roi_level`; ops: "tf" (TensorFlow's crop_and_resize) or "portable" (TFLite builtins, for export; see
    ``mrcnn.modeling.portable_ops``).

    Inputs:
        boxes: [batch, num_boxes, (y1, x1, y2, x2)] normalized
        image_meta: [batch, meta_size] (the image shape is read from it)
        feature_maps: P2, P3, P4, P5, each [batch, height, width, channels]
    Returns: [batch, num_boxes, pool_height, pool_width, channels].
    """

    def __init__(self, pool_shape, sampling_ratio=0, aligned=True, level_mapping="matterport",
                 ops="tf", **kwargs):
        super().__init__(**kwargs)
        # tf.image.crop_and_resize has no XLA kernel: Keras' jit_compile="auto" (XLA on GPUs)
        # must not compile a model holding this layer.
        self.supports_jit = False
        self.pool_shape = tuple(int(v) for v in pool_shape)
        self.ops = portable_ops.check_ops(ops)
        self.sampling_ratio = check_sampling_ratio(sampling_ratio, self.ops)
        self.aligned = bool(aligned)
        if level_mapping not in LEVEL_MAPPINGS:
            raise ValueError("level_mapping must be one of {}, got {!r}".format(
                LEVEL_MAPPINGS, level_mapping))
        self.level_mapping = level_mapping

    def _pool(self, feature_map, level_boxes, box_indices, image_shape):
        """[K, pool_h, pool_w, C] samples of one level for its boxes [K, 4] normalized."""
        if self.sampling_ratio == 0:
            return portable_ops.namespace(self.ops).crop_and_resize(
                feature_map, level_boxes, box_indices, self.pool_shape, method="bilinear")
        # The map's scale (1 / stride) from the shapes: image sides divide by the stride.
        map_shape = tf.cast(tf.shape(feature_map)[1:3], tf.float32)
        scale = map_shape / tf.cast(image_shape, tf.float32)
        boxes = pixel_boxes(level_boxes, image_shape) * tf.concat([scale, scale], axis=0)
        return roi_align(feature_map, boxes, box_indices, self.pool_shape, self.sampling_ratio,
                         self.aligned, ops=portable_ops.namespace(self.ops))

    def call(self, inputs):
        boxes, image_meta = inputs[0], inputs[1]
        feature_maps = inputs[2:]
        image_shape = tf.cast(box_ops.parse_image_meta_graph(image_meta)["image_shape"][0],
                              tf.int32)[:2]
        levels = roi_level(boxes, image_shape, self.level_mapping)     # [B, N]
        pooled, positions = [], []
        num_boxes = tf.shape(boxes)[1]
        for i, level in enumerate(range(2, 6)):
            ix = tf.where(tf.equal(levels, level))                     # [K, (batch, box)]
            level_boxes = tf.stop_gradient(tf.gather_nd(boxes, ix))
            box_indices = tf.stop_gradient(tf.cast(ix[:, 0], tf.int32))
            pooled.append(self._pool(feature_maps[i], level_boxes, box_indices, image_shape))
            positions.append(tf.cast(ix[:, 0], tf.int32) * num_boxes + tf.cast(ix[:, 1],
                                                                               tf.int32))
        pooled = tf.concat(pooled, axis=0)
        # Every box went to exactly one level: sorting by flat position restores the order.
        order = tf.argsort(tf.concat(positions, axis=0))
        pooled = tf.gather(pooled, order)
        shape = tf.concat([tf.shape(boxes)[:2], tf.shape(pooled)[1:]], axis=0)
        return tf.reshape(pooled, shape)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0][:2] + self.pool_shape + (input_shapes[2][-1],)

    def get_config(self):
        config = super().get_config()
        config.update(pool_shape=list(self.pool_shape), sampling_ratio=self.sampling_ratio,
                      aligned=self.aligned, level_mapping=self.level_mapping, ops=self.ops)
        return config
