"""TensorFlow box helpers used inside the graph (the NumPy versions live in
``mrcnn.modeling.boxes``).

Boxes are ``[..., (y1, x1, y2, x2)]`` in normalized coordinates unless stated otherwise. Box
deltas go through the one coder of :mod:`mrcnn.modeling.box_coder`, with :data:`TF` as its
namespace.
"""

import types

import tensorflow as tf

from mrcnn.modeling import box_coder
from mrcnn.data import image_meta
from mrcnn.config import BOX_DECODINGS

# The array functions box_coder needs, from TensorFlow.
TF = types.SimpleNamespace(log=tf.math.log, exp=tf.exp, minimum=tf.minimum, stack=tf.stack)


def apply_box_deltas_graph(boxes, deltas):
    """Apply ``[..., (dy, dx, log(dh), log(dw))]`` deltas to ``[..., 4]`` boxes (clamped)."""
    return box_coder.decode(boxes, deltas, TF)


def box_refinement_graph(box, gt_box):
    """Deltas [..., (dy, dx, log(dh), log(dw))] that turn ``box`` into ``gt_box``."""
    return box_coder.encode(tf.cast(box, tf.float32), tf.cast(gt_box, tf.float32), TF)


def clip_boxes_graph(boxes, window):
    """Clip ``[..., 4]`` boxes to ``window`` (y1, x1, y2, x2), broadcastable to the boxes."""
    wy1, wx1, wy2, wx2 = tf.unstack(tf.cast(window, boxes.dtype), axis=-1)
    # Give the window the boxes' rank so that a per-image window [B, 4] clips [B, N, 4].
    while len(wy1.shape) < len(boxes.shape) - 1:
        wy1, wx1, wy2, wx2 = [w[..., tf.newaxis] for w in (wy1, wx1, wy2, wx2)]
    y1 = tf.maximum(tf.minimum(boxes[..., 0], wy2), wy1)
    x1 = tf.maximum(tf.minimum(boxes[..., 1], wx2), wx1)
    y2 = tf.maximum(tf.minimum(boxes[..., 2], wy2), wy1)
    x2 = tf.maximum(tf.minimum(boxes[..., 3], wx2), wx1)
    return tf.stack([y1, x1, y2, x2], axis=-1)


def overlaps_graph(boxes1, boxes2):
    """IoU matrix [N1, N2] between [N1, 4] and [N2, 4] boxes."""
    b1 = boxes1[:, tf.newaxis, :]
    b2 = boxes2[tf.newaxis, :, :]
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    intersection = tf.maximum(y2 - y1, 0) * tf.maximum(x2 - x1, 0)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = area1 + area2 - intersection
    return tf.math.divide_no_nan(intersection, union)


def norm_boxes_graph(boxes, shape):
    """Pixel boxes -> normalized coordinates; ``shape`` is (height, width)."""
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - tf.constant(1.0)
    shift = tf.constant([0., 0., 1., 1.])
    return tf.math.divide(tf.cast(boxes, tf.float32) - shift, scale)


def pixel_boxes(boxes, image_shape):
    """Normalized boxes [..., 4] -> continuous pixel boxes of an image of ``image_shape``.

    The inverse of ``norm_boxes`` (y2/x2 exclusive): y1 * (H - 1), y2 * (H - 1) + 1. A pixel
    row r covers [r, r + 1), so a box from a mask (rows r1..r2 - 1) is (r1, r2).
    """
    h = tf.cast(image_shape[0], tf.float32)
    w = tf.cast(image_shape[1], tf.float32)
    return boxes * tf.stack([h - 1, w - 1, h - 1, w - 1]) + tf.constant([0., 0., 1., 1.])


def check_box_decoding(value):
    """``value`` when it is a Config.BOX_DECODING choice, else ValueError."""
    if value not in BOX_DECODINGS:
        raise ValueError("box_decoding must be one of {}, got {!r}".format(BOX_DECODINGS,
                                                                         value))
    return value


def decode_pixel_boxes(boxes, deltas, image_shape, window):
    """Config.BOX_DECODING "torchvision": deltas applied to boxes in pixels, then clipped.

    boxes: [B, ..., 4] normalized; deltas: [B, ..., (dy, dx, log(dh), log(dw))], already
    multiplied by their standard deviations; image_shape: (height, width) of the molded image;
    window: [B, (y1, x1, y2, x2)] pixels. Matterport decodes normalized boxes, whose height
    is (h - 1) / (H - 1): the same deltas then give a box one pixel off in size. Returns the
    decoded pixel boxes (torchvision's ``BoxCoder.decode`` and ``clip_boxes_to_image``).
    """
    decoded = apply_box_deltas_graph(pixel_boxes(boxes, image_shape), deltas)
    return clip_boxes_graph(decoded, window)


def small_boxes(boxes, min_size):
    """[...] True where a box is narrower or lower than ``min_size`` (torchvision's
    ``remove_small_boxes``)."""
    return ((boxes[..., 2] - boxes[..., 0]) < min_size) | \
        ((boxes[..., 3] - boxes[..., 1]) < min_size)


def trim_zeros_graph(boxes, name="trim_zeros"):
    """Drop all-zero rows of [N, 4] boxes; returns (boxes, non_zero mask [N])."""
    non_zeros = tf.cast(tf.reduce_sum(tf.abs(boxes), axis=1), tf.bool)
    return tf.boolean_mask(boxes, non_zeros, name=name), non_zeros


def parse_image_meta_graph(meta):
    """Split [batch, meta_size] image meta into named tensors (layout: mrcnn.data.image_meta)."""
    return image_meta.split_image_meta(meta)
