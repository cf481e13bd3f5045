"""Unmolding detections in TensorFlow: the one post-processing path of ``MaskRCNN.detect()`` and
of the SavedModel signature (:mod:`mrcnn.export.serving`).

The graph gives, per image, detections in normalized coordinates of the molded image and one
small soft mask (MASK_SHAPE, 28x28) per detection. :func:`unmold_detections` turns them into
what ``detect()`` returns: boxes in original-image pixels, class ids, scores and full-size binary
masks. It gives the results of Matterport's NumPy API (``transform.unmold_detections`` with
``utils.unmold_mask``, kept for users and notebooks) bit for bit: boxes by the same float32 then
float64 operations, masks by the float64 bilinear resize of ``skimage.transform.resize(mode=
"edge")`` (``scipy.ndimage.zoom``: half-pixel centres, edge cells repeated), the same operations
in the same order, rounded to float32 before the threshold as there. ``tf.image.resize``
interpolates in float32, which flips pixels whose value lies within float32 rounding of the
threshold, so it is not used.

:data:`UNMOLD_FNS` holds the ``tf.function`` that ``detect()`` calls for each paste mode
(:data:`unmold_detections_fn` is Matterport's): their input signature has dynamic shapes, so
image sizes, detection counts and class counts never retrace them.
"""

import numpy as np
import tensorflow as tf

from mrcnn.config import PASTE_MODES


def paste_mode(config):
    """How detect() pastes a config's masks: Config.MASK_PASTE when set, else "resize"
    (Matterport: the mask resized into its integer box) with ROI_ALIGN_SAMPLING_RATIO 0, else
    the inverse of the RoIAlign sampling that cut the mask targets, "aligned" or "unaligned"
    by ROI_ALIGN_ALIGNED. "torchvision" is torchvision's ``paste_masks_in_image``
    (:func:`torchvision_paste_boxes`)."""
    if config.MASK_PASTE is not None:
        return config.MASK_PASTE
    if not config.ROI_ALIGN_SAMPLING_RATIO:
        return "resize"
    return "aligned" if config.ROI_ALIGN_ALIGNED else "unaligned"


def to_pixel_boxes(boxes, window, image_shape, original_shape):
    """Normalized boxes of the molded image -> int32 pixel boxes of the original image.

    boxes: [N, (y1, x1, y2, x2)] float32, normalized in the molded image; window: (y1, x1, y2,
    x2) pixels of the original image inside the molded one; image_shape / original_shape: at
    least (height, width) of the molded / original image. Returns [N, 4] int32, y2/x2 exclusive.
    """
    shape = tf.cast(image_shape[:2], tf.float32)
    # Divisions are divide_no_nan: in a traced graph where the divisor is a constant (the
    # SavedModel's molded shape), TensorFlow turns x / c into x * (1 / c), which changes last
    # bits and so rounded pixels; it leaves DivNoNan, an exact division, as it is.
    # utils.norm_boxes of the window, in float32 as there.
    size = tf.stack([shape[0] - 1, shape[1] - 1, shape[0] - 1, shape[1] - 1])
    window = tf.math.divide_no_nan(
        tf.cast(window, tf.float32) - tf.constant([0.0, 0.0, 1.0, 1.0]), size)
    wy1, wx1, wy2, wx2 = window[0], window[1], window[2], window[3]
    shift = tf.stack([wy1, wx1, wy1, wx1])
    scale = tf.stack([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    boxes = tf.math.divide_no_nan(tf.cast(boxes, tf.float32) - shift, scale)   # [N, 4]
    # utils.denorm_boxes, in float64 as there (float32 rounds 397.49998677 up to 398).
    original = tf.cast(original_shape[:2], tf.float64)
    size = tf.stack([original[0] - 1, original[1] - 1, original[0] - 1, original[1] - 1])
    pixels = tf.cast(boxes, tf.float64) * size + tf.constant([0.0, 0.0, 1.0, 1.0], tf.float64)
    # tf.round rounds half to even, as np.around does.
    return tf.cast(tf.round(pixels), tf.int32)


def resized_pixel_boxes(boxes, window, image_shape, original_shape):
    """Normalized boxes of the molded image -> continuous boxes of the original image, through
    the resize molding applied: (boxes [N, 4] float64, scale [2] float64 molded pixels per
    original pixel).

    Molding resized the original's extent [0, H) onto the window's [y1, y2) (skimage's and
    tf.image.resize's half-pixel rule), so molded y is window_y1 + y * scale. Matterport's
    corner-aligned ``to_pixel_boxes`` is not that map (up to a pixel off after a resize): fine
    for its rounded boxes, not for pasting masks where RoIAlign took them.
    """
    molded = tf.cast(image_shape[:2], tf.float64)
    boxes = tf.cast(boxes, tf.float64) * tf.stack([molded[0] - 1, molded[1] - 1,
                                                   molded[0] - 1, molded[1] - 1]) + \
        tf.constant([0.0, 0.0, 1.0, 1.0], tf.float64)                 # molded pixels
    window = tf.cast(window, tf.float64)
    original = tf.cast(original_shape[:2], tf.float64)
    scale = tf.math.divide_no_nan(tf.stack([window[2] - window[0], window[3] - window[1]]),
                                  original)
    origin = tf.stack([window[0], window[1], window[0], window[1]])
    return tf.math.divide_no_nan(boxes - origin, tf.concat([scale, scale], axis=0)), scale


def _resize_taps(start, end, first, length, source):
    """Bilinear taps that resize a mask side of ``source`` cells onto boxes' pixels, as
    ``scipy.ndimage.zoom(order=1, mode="nearest", grid_mode=True)`` computes them (what
    ``skimage.transform.resize(mode="edge")`` and so ``utils.unmold_mask`` call).

    start, end: [N] int32 box sides in pixels (end exclusive); first: [N] first pixel wanted
    (the box start clipped to the image); length: how many pixels from ``first``.
    Returns (lower, upper) [N, length] int32 cell indices and (lower_weight, upper_weight)
    [N, length] float64: pixel first[n] + i of box n reads those two cells.
    """
    size = tf.cast(tf.maximum(end - start, 1), tf.float64)        # [N]
    zoom = tf.math.divide_no_nan(tf.cast(source, tf.float64), size)   # [N] (see to_pixel_boxes)
    pixel = tf.cast((first - start)[:, tf.newaxis] + tf.range(length)[tf.newaxis], tf.float64)
    # Pixel k of a side of n lies at (k + 0.5) * source / n - 0.5 in cell units. scipy does not
    # clamp this coordinate: it clamps the two cells it reads, and takes the second weight as
    # 1 - first weight. The same float64 operations give the same bits.
    coord = (pixel + 0.5) * zoom[:, tf.newaxis] - 0.5             # [N, length]
    floor = tf.floor(coord)
    # A tensor of ones, not the constant 1.0: in a traced graph, Grappler's constant folding
    # regroups constant arithmetic (1 - (c - f) and 1 - (1 - x)), which changes last bits.
    one = tf.ones_like(coord)
    lower_weight = one - (coord - floor)
    upper_weight = one - lower_weight
    lower = tf.cast(floor, tf.int32)
    return (tf.clip_by_value(lower, 0, source - 1), tf.clip_by_value(lower + 1, 0, source - 1),
            lower_weight, upper_weight)


def _roi_taps(start, end, first, length, source, aligned, scale):
    """Bilinear taps that paste a mask side of ``source`` cells back where RoIAlign took them
    (the inverse of :func:`mrcnn.modeling.roi_align.roi_align`'s sampling of the mask targets).

    start, end: [N] float64 box sides in continuous pixels of the original image; first: [N]
    int32 first pixel wanted; length: how many pixels from ``first``; scale: molded pixels per
    original pixel on this side (the targets were cut in the molded image). Cell c of a box
    holds the value at continuous position start + (c + 0.5) * bin, bin = (end - start) /
    source, so the centre p + 0.5 of pixel p reads the mask at (p + 0.5 - start) / bin - 0.5.
    Without ``aligned`` RoIAlign read pixel-index coordinates of the molded image, half a
    molded pixel (0.5 / scale here) before the centres, and sides of at least one molded pixel.
    Cells outside the mask read 0 (a mask is 0 outside its box; torchvision pastes into the
    box grown by one zero cell for the same).
    Returns (lower, upper) [N, length] int32 cell indices and their [N, length] float64 weights.
    """
    size = end - start
    offset = 0.5
    if not aligned:
        size = tf.maximum(size, 1.0 / scale)
        offset = 0.5 - 0.5 / scale
    cells = tf.cast(source, tf.float64)
    pixel = tf.cast(first[:, tf.newaxis] + tf.range(length)[tf.newaxis], tf.float64)
    coord = (pixel + offset - start[:, tf.newaxis]) * tf.math.divide_no_nan(
        cells, size)[:, tf.newaxis] - 0.5
    floor = tf.floor(coord)
    lower = tf.cast(floor, tf.int32)
    upper_weight = coord - floor
    lower_weight = 1.0 - upper_weight

    def inside(index, weight):
        return tf.where((index >= 0) & (index < source), weight, tf.zeros_like(weight))
    lower_weight, upper_weight = inside(lower, lower_weight), inside(lower + 1, upper_weight)
    return (tf.clip_by_value(lower, 0, source - 1), tf.clip_by_value(lower + 1, 0, source - 1),
            lower_weight, upper_weight)


def _paste_region(start, end, limit):
    """First pixel and pixel count of each box side, clipped to [0, limit): [N] int32 each
    (count 0 for an empty box)."""
    first = tf.clip_by_value(start, 0, limit)
    return first, tf.where(end > start, tf.maximum(tf.minimum(end, limit) - first, 0), 0)


def _paste_extent(boxes, mode, mask_h, mask_w, scale):
    """The boxes of :func:`paste_masks` as ((y1, x1, y2, x2) [N] each, the pixels pasted over
    (py1, px1, py2, px2) [N] int32 each, nonempty [N] bool).

    "resize" pastes over the int32 box itself; the RoIAlign modes over the float64 box grown
    by one cell on each side (an unaligned one a molded pixel more: a cell's value reaches
    that far), scale: (y, x) float64 molded pixels per pixel.
    """
    if mode == "resize":
        y1, x1, y2, x2 = tf.unstack(tf.cast(boxes, tf.int32), 4, axis=1)     # [N] each
        return (y1, x1, y2, x2), (y1, x1, y2, x2), (y2 > y1) & (x2 > x1)
    y1, x1, y2, x2 = tf.unstack(tf.cast(boxes, tf.float64), 4, axis=1)
    grow_y = tf.math.divide_no_nan(y2 - y1, tf.cast(mask_h, tf.float64)) + 1.0 + \
        1.0 / scale[0]
    grow_x = tf.math.divide_no_nan(x2 - x1, tf.cast(mask_w, tf.float64)) + 1.0 + \
        1.0 / scale[1]
    nonempty = (y2 > y1) & (x2 > x1)

    def grown(lo, hi, grow):
        lo = tf.cast(tf.floor(lo - grow), tf.int32)
        hi = tf.cast(tf.math.ceil(hi + grow), tf.int32)
        return lo, tf.where(nonempty, hi, lo)
    py1, py2 = grown(y1, y2, grow_y)
    px1, px2 = grown(x1, x2, grow_x)
    return (y1, x1, y2, x2), (py1, px1, py2, px2), nonempty


def paste_masks(masks, boxes, height, width, threshold=0.5, mode="resize", scale=(1.0, 1.0)):
    """Paste soft masks into full-image binary masks.

    masks: [N, mask_h, mask_w] float probabilities; height, width: the image's size;
    threshold: a pixel is on when its (float32) value is >= threshold. The pastes are clipped
    to the image. mode (see :func:`paste_mode`):
      "resize": Matterport's, as ``utils.unmold_mask`` does one by one: boxes [N, (y1, x1, y2,
        x2)] int32 pixels (they may overhang the image; an empty or inverted box pastes
        nothing), each mask resized to its box (bilinear, edge cells repeated, see
        :func:`_resize_taps`);
      "torchvision": boxes [N, 4] continuous pixels; torchvision's ``paste_masks_in_image``:
        the mask with a border of zero cells resized ("resize") into its grown box
        (:func:`torchvision_paste_boxes`);
      "aligned" / "unaligned": boxes [N, 4] continuous (float) pixels; each pixel reads the
        mask where the paper's RoIAlign (aligned or not) sampled it (:func:`_roi_taps`), over
        the box grown by one cell on each side; scale: (y, x) molded pixels per pixel of this
        image (see :func:`resized_pixel_boxes`).
    Returns [height, width, N] bool.
    """
    if mode not in PASTE_MODES:
        raise ValueError("mode must be one of {}, got {!r}".format(PASTE_MODES, mode))
    if mode == "torchvision":
        boxes = torchvision_paste_boxes(tf.cast(boxes, tf.float64), tf.shape(masks)[1],
                                        tf.shape(masks)[2])
        masks, mode = tf.pad(masks, [[0, 0], [1, 1], [1, 1]]), "resize"
    height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    threshold = tf.cast(threshold, tf.float32)
    mask_h, mask_w = tf.shape(masks)[1], tf.shape(masks)[2]
    scale = tf.cast(scale, tf.float64)
    (y1, x1, y2, x2), (py1, px1, py2, px2), nonempty = _paste_extent(boxes, mode, mask_h,
                                                                     mask_w, scale)
    # The part of each (grown) box inside the image: rows top..top+rows, columns
    # left..left+cols (clamped so that a box beyond the image pads to an empty mask).
    top, rows = _paste_region(py1, py2, height)
    left, cols = _paste_region(px1, px2, width)
    rows, cols = tf.where(nonempty, rows, 0), tf.where(nonempty, cols, 0)
    # Taps for the largest clipped box; box n uses its first rows[n] / cols[n].
    # (The zero keeps reduce_max defined when there are no boxes.)
    max_rows = tf.reduce_max(tf.concat([rows, [0]], axis=0))
    max_cols = tf.reduce_max(tf.concat([cols, [0]], axis=0))
    if mode == "resize":
        row_lo, row_hi, row_lo_w, row_hi_w = _resize_taps(y1, y2, top, max_rows, mask_h)
        col_lo, col_hi, col_lo_w, col_hi_w = _resize_taps(x1, x2, left, max_cols, mask_w)
    else:
        aligned = mode == "aligned"
        row_lo, row_hi, row_lo_w, row_hi_w = _roi_taps(y1, y2, top, max_rows, mask_h, aligned,
                                                       scale[0])
        col_lo, col_hi, col_lo_w, col_hi_w = _roi_taps(x1, x2, left, max_cols, mask_w, aligned,
                                                       scale[1])
    count = tf.shape(boxes)[0]
    # scipy sums, per pixel, value * row weight * column weight over the cells (lower row,
    # lower column), (lower, upper), (upper, lower), (upper, upper), in that order, in
    # float64. The row products come first, for all boxes: [N, max_rows, mask_w] each.
    soft = tf.cast(masks, tf.float64)
    upper_rows = tf.gather(soft, row_hi, axis=1, batch_dims=1) * row_hi_w[..., tf.newaxis]
    lower_rows = tf.gather(soft, row_lo, axis=1, batch_dims=1) * row_lo_w[..., tf.newaxis]

    def paste(i):
        """Mask i resized to its clipped box [rows, cols], thresholded, padded to the image."""
        lo, hi = lower_rows[i, :rows[i]], upper_rows[i, :rows[i]]
        c_lo, c_hi = col_lo[i, :cols[i]], col_hi[i, :cols[i]]
        w_lo, w_hi = col_lo_w[i, :cols[i]], col_hi_w[i, :cols[i]]
        value = tf.gather(lo, c_lo, axis=1) * w_lo + tf.gather(lo, c_hi, axis=1) * w_hi
        value = value + tf.gather(hi, c_lo, axis=1) * w_lo
        value = value + tf.gather(hi, c_hi, axis=1) * w_hi
        # skimage's resize returns float32: compare the float32 value, as unmold_mask does.
        on = tf.cast(value, tf.float32) >= threshold
        return tf.pad(on, [[top[i], height - top[i] - rows[i]],
                           [left[i], width - left[i] - cols[i]]])

    # A loop over the masks keeps memory at one box's size per step (a batch of all boxes
    # at the largest box's size costs N times that); map_fn cannot stack zero masks of
    # unknown size, so no detections take the other branch.
    full = tf.cond(
        count > 0,
        lambda: tf.map_fn(paste, tf.range(count),
                          fn_output_signature=tf.TensorSpec([None, None], tf.bool)),
        lambda: tf.zeros(tf.stack([0, height, width]), tf.bool))
    full = tf.reshape(full, tf.stack([count, height, width]))     # [N, H, W]
    return tf.transpose(full, [1, 2, 0])


def unmold_detections(detections, mrcnn_mask, original_shape, image_shape, window,
                      threshold=0.5, mode="resize"):
    """One image's raw detections -> boxes, class ids, scores and full-size masks.

    detections: [D, (y1, x1, y2, x2, class_id, score)] normalized in the molded image,
    zero-padded at the end; mrcnn_mask: [D, mask_h, mask_w, NUM_CLASSES] probabilities (or
    [D, mask_h, mask_w, 1]: class-agnostic, every class reads channel 0); original_shape /
    image_shape: (height, width[, channels]) of the original / molded image; window: (y1, x1,
    y2, x2) pixels of the original image in the molded one; threshold: mask probability
    threshold (DETECTION_MASK_THRESHOLD); mode: how masks are pasted (:func:`paste_mode`).
    Returns boxes [n, 4] int32 original-image pixels, class_ids [n] int32, scores [n] float32,
    masks [H, W, n] bool: the rows before the first padding row, less boxes of zero area.
    """
    detections = tf.cast(detections, tf.float32)                  # [D, 6]
    mrcnn_mask = tf.cast(mrcnn_mask, tf.float32)                  # [D, mask_h, mask_w, C]
    original_shape = tf.cast(original_shape, tf.int32)
    # The detections end at the first padding row (class id 0).
    slots = tf.shape(detections)[0]
    n = tf.reduce_min(tf.where(tf.equal(detections[:, 4], 0.0), tf.range(slots), slots))
    boxes = to_pixel_boxes(detections[:n, :4], window, image_shape, original_shape)
    class_ids = tf.cast(detections[:n, 4], tf.int32)
    scores = detections[:n, 5]
    # One channel holds class-agnostic masks (MASK_CLASS_AGNOSTIC): every class reads it.
    channels = tf.where(tf.shape(mrcnn_mask)[-1] > 1, class_ids, tf.zeros_like(class_ids))
    masks = tf.gather(mrcnn_mask[:n], channels, axis=3, batch_dims=1)   # [n, mask_h, mask_w]
    # Matterport drops boxes of zero area (int32 products, as utils.denorm_boxes gives).
    keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
    boxes, class_ids = tf.boolean_mask(boxes, keep), tf.boolean_mask(class_ids, keep)
    scores, masks = tf.boolean_mask(scores, keep), tf.boolean_mask(masks, keep)
    if mode == "resize":
        full_masks = paste_masks(masks, boxes, original_shape[0], original_shape[1], threshold)
    else:
        exact, scale = resized_pixel_boxes(detections[:n, :4], window, image_shape,
                                           original_shape)
        full_masks = paste_masks(masks, tf.boolean_mask(exact, keep), original_shape[0],
                                 original_shape[1], threshold, mode, scale)
    return boxes, class_ids, scores, full_masks


def torchvision_paste_boxes(boxes, mask_h, mask_w):
    """torchvision's ``paste_masks_in_image`` geometry: the mask gets a border of one zero
    cell, so its box grows by (M + 2) / M about its centre; the grown box is truncated to
    whole pixels (toward zero) and its end included. boxes: [N, 4] float64 pixels of the
    image. Returns [N, (y1, x1, y2, x2)] int32 with y2/x2 exclusive, for the "resize" paste of
    the bordered [M + 2, M + 2] masks."""
    grow = tf.cast(mask_w + 2, tf.float64) / tf.cast(mask_w, tf.float64)
    del mask_h   # torchvision grows both sides by the width's factor (its masks are square)
    center_y = (boxes[:, 0] + boxes[:, 2]) * 0.5
    center_x = (boxes[:, 1] + boxes[:, 3]) * 0.5
    half_h = (boxes[:, 2] - boxes[:, 0]) * 0.5 * grow
    half_w = (boxes[:, 3] - boxes[:, 1]) * 0.5 * grow
    grown = tf.cast(tf.stack([center_y - half_h, center_x - half_w, center_y + half_h,
                              center_x + half_w], axis=1), tf.int32)   # truncates toward 0
    # Its side is y2 - y1 + 1 pixels, at least one.
    y2 = tf.maximum(grown[:, 2] + 1, grown[:, 0] + 1)
    x2 = tf.maximum(grown[:, 3] + 1, grown[:, 1] + 1)
    return tf.stack([grown[:, 0], grown[:, 1], y2, x2], axis=1)


def _unmold_fn(mode):
    """detect()'s entry point for a paste mode. Every dimension that varies between calls is
    None, so new image sizes, molded sizes, detection counts and class counts reuse the one
    traced graph."""
    return tf.function(lambda *args: unmold_detections(*args, mode=mode), input_signature=[
        tf.TensorSpec([None, 6], tf.float32, name="detections"),
        tf.TensorSpec([None, None, None, None], tf.float32, name="mrcnn_mask"),
        tf.TensorSpec([None], tf.int32, name="original_shape"),
        tf.TensorSpec([None], tf.int32, name="image_shape"),
        tf.TensorSpec([4], tf.int32, name="window"),
        tf.TensorSpec([], tf.float32, name="threshold")])


UNMOLD_FNS = {mode: _unmold_fn(mode) for mode in PASTE_MODES}
# Matterport's (the default config's) entry point.
unmold_detections_fn = UNMOLD_FNS["resize"]


def unmold_batch(outputs, original_shapes, molded_shape, windows, config):
    """``detect()``'s results of one graph call: a dict per image (rois, class_ids, scores,
    masks, NumPy) of each of ``original_shapes`` with its ``windows`` entry, from the
    inference model's ``outputs`` (read by name: detections, mrcnn_mask); rows of the batch
    after the last image (padding) are ignored. One traced function unmolds every image
    (:data:`UNMOLD_FNS`; the SavedModel signature runs the same ops)."""
    detections, mrcnn_mask = outputs["detections"], outputs["mrcnn_mask"]
    molded_shape = np.asarray(molded_shape[:2], np.int32)
    threshold = np.float32(config.DETECTION_MASK_THRESHOLD)
    unmold = UNMOLD_FNS[paste_mode(config)]
    results = []
    for i, (original_shape, window) in enumerate(zip(original_shapes, windows)):
        rois, class_ids, scores, masks = unmold(
            np.asarray(detections[i], np.float32), np.asarray(mrcnn_mask[i], np.float32),
            np.asarray(original_shape[:2], np.int32), molded_shape,
            np.asarray(window, np.int32), threshold)
        results.append({"rois": rois.numpy(), "class_ids": class_ids.numpy(),
                        "scores": scores.numpy(), "masks": masks.numpy()})
    return results
