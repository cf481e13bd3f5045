"""TensorFlow box helpers used inside the graph (the NumPy versions live in ``utils``).

Boxes are ``[..., (y1, x1, y2, x2)]`` in normalized coordinates unless stated otherwise.
"""

import math

import tensorflow as tf

# Largest log-scale delta applied: a box can grow at most 1000/16 times in one refinement (as
# in detectron2). Untrained or diverging heads otherwise overflow exp() into inf/NaN boxes,
# which crash crop_and_resize.
MAX_LOG_SCALE = math.log(1000.0 / 16)


def apply_box_deltas_graph(boxes, deltas):
    """Apply ``[..., (dy, dx, log(dh), log(dw))]`` deltas to ``[..., 4]`` boxes.

    The log-scale deltas are clamped at MAX_LOG_SCALE so that the result stays finite.
    """
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height + deltas[..., 0] * height
    center_x = boxes[..., 1] + 0.5 * width + deltas[..., 1] * width
    height = height * tf.exp(tf.minimum(deltas[..., 2], MAX_LOG_SCALE))
    width = width * tf.exp(tf.minimum(deltas[..., 3], MAX_LOG_SCALE))
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=-1)


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


def box_refinement_graph(box, gt_box):
    """Deltas [N, (dy, dx, log(dh), log(dw))] that turn ``box`` into ``gt_box``."""
    box = tf.cast(box, tf.float32)
    gt_box = tf.cast(gt_box, tf.float32)
    height = box[:, 2] - box[:, 0]
    width = box[:, 3] - box[:, 1]
    center_y = box[:, 0] + 0.5 * height
    center_x = box[:, 1] + 0.5 * width
    gt_height = gt_box[:, 2] - gt_box[:, 0]
    gt_width = gt_box[:, 3] - gt_box[:, 1]
    gt_center_y = gt_box[:, 0] + 0.5 * gt_height
    gt_center_x = gt_box[:, 1] + 0.5 * gt_width
    dy = (gt_center_y - center_y) / height
    dx = (gt_center_x - center_x) / width
    dh = tf.math.log(gt_height / height)
    dw = tf.math.log(gt_width / width)
    return tf.stack([dy, dx, dh, dw], axis=1)


def norm_boxes_graph(boxes, shape):
    """Pixel boxes -> normalized coordinates; ``shape`` is (height, width)."""
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - tf.constant(1.0)
    shift = tf.constant([0., 0., 1., 1.])
    return tf.math.divide(tf.cast(boxes, tf.float32) - shift, scale)


def trim_zeros_graph(boxes, name="trim_zeros"):
    """Drop all-zero rows of [N, 4] boxes; returns (boxes, non_zero mask [N])."""
    non_zeros = tf.cast(tf.reduce_sum(tf.abs(boxes), axis=1), tf.bool)
    return tf.boolean_mask(boxes, non_zeros, name=name), non_zeros


def parse_image_meta_graph(meta):
    """Split [batch, meta_size] image meta into named tensors (see data.compose_image_meta)."""
    return {
        "image_id": meta[:, 0],
        "original_image_shape": meta[:, 1:4],
        "image_shape": meta[:, 4:7],
        "window": meta[:, 7:11],
        "scale": meta[:, 11],
        "active_class_ids": meta[:, 12:],
    }
