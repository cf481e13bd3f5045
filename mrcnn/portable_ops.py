"""TFLite-builtin stand-ins for the two graph ops that TFLite lacks, for exported graphs.

The inference graph uses ``tf.image.crop_and_resize`` (RoIAlign) and
``tf.image.combined_non_max_suppression`` (per-class NMS in ``DetectionLayer``). TFLite has no
builtin kernel for either, so a converted model would need the Flex delegate (SELECT_TF_OPS),
which neither the standalone LiteRT interpreter nor ``tf.lite.Interpreter`` of the pip wheels
links. The functions here compute the same values from builtin ops (gather, floor, NMS V5,
top-k) and so also convert cleanly to ONNX. :func:`builtin_ops_only` swaps them in while an
export function is traced; the training and ``detect()`` graphs keep TensorFlow's kernels.
"""

import contextlib
import math

import tensorflow as tf


def crop_and_resize(image, boxes, box_indices, crop_size, method="bilinear",
                    extrapolation_value=0.0, name=None):
    """``tf.image.crop_and_resize`` (bilinear) from gathers, with the same sampling rule.

    image [batch, height, width, channels]; boxes [K, (y1, x1, y2, x2)] normalized;
    box_indices [K]; crop_size (crop_height, crop_width), Python ints. Returns
    [K, crop_height, crop_width, channels] float32. Samples outside the image take
    ``extrapolation_value``, as TensorFlow's kernel does.
    """
    if method != "bilinear":
        raise ValueError("only bilinear crop_and_resize is supported, got {!r}".format(method))
    crop_h, crop_w = (int(v) for v in crop_size)
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    height, width, channels = shape[1], shape[2], shape[3]
    boxes = tf.cast(boxes, tf.float32)
    # Slices, not tf.unstack: TFLite's UNPACK rejects the empty box list of an unused level.
    y1, x1, y2, x2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]

    # Zero, but only known when the graph runs. Graph optimizers (grappler, the TFLite
    # converter) turn a division by a constant into a product with its reciprocal, which rounds
    # differently from the kernel's division: a box ending at the image border then has its
    # last samples inside in one and extrapolated in the other. Dividing by (count - 1 + zero)
    # keeps the division, and so the kernel's rounding, in every format.
    runtime_zero = tf.cast(tf.minimum(tf.shape(boxes)[0], 0), tf.float32)

    def sample_points(lo, hi, size, count):
        """Source coordinates [K, count] and whether each lies inside [0, size - 1], computed
        as the kernel does: lo * (size - 1) + i * ((hi - lo) * (size - 1) / (count - 1))."""
        extent = tf.cast(size - 1, tf.float32)
        if count > 1:
            step = (hi - lo) * extent / (float(count - 1) + runtime_zero)
            points = (lo * extent)[:, None] + tf.range(count, dtype=tf.float32)[None] * \
                step[:, None]
        else:
            points = (0.5 * (lo + hi) * extent)[:, None]
        inside = (points >= 0.0) & (points <= extent)
        return points, inside

    ys, y_inside = sample_points(y1, y2, height, crop_h)
    xs, x_inside = sample_points(x1, x2, width, crop_w)
    # floor/ceil of out-of-range points are clamped only so the gathers stay in bounds; those
    # samples take extrapolation_value below.
    top, bottom = tf.floor(ys), tf.math.ceil(ys)
    left, right = tf.floor(xs), tf.math.ceil(xs)
    y_lerp, x_lerp = ys - top, xs - left

    def clamp(index, size):
        return tf.clip_by_value(tf.cast(index, tf.int32), 0, size - 1)
    top, bottom = clamp(top, height), clamp(bottom, height)
    left, right = clamp(left, width), clamp(right, width)
    # One flat gather per corner: row (b * H + y) * W + x of the image as [B * H * W, C].
    flat = tf.reshape(image, tf.stack([-1, channels]))
    base = tf.cast(box_indices, tf.int32)[:, None, None] * height

    def corner(rows, cols):
        index = ((base + rows[:, :, None]) * width + cols[:, None, :])
        return tf.gather(flat, index)                        # [K, crop_h, crop_w, C]
    top_left, top_right = corner(top, left), corner(top, right)
    bottom_left, bottom_right = corner(bottom, left), corner(bottom, right)
    x_lerp = x_lerp[:, None, :, None]
    # The kernel's arithmetic order, so the results agree to rounding.
    upper = top_left + (top_right - top_left) * x_lerp
    lower = bottom_left + (bottom_right - bottom_left) * x_lerp
    crops = upper + (lower - upper) * y_lerp[:, :, None, None]
    inside = (y_inside[:, :, None] & x_inside[:, None, :])[..., None]
    return tf.where(inside, crops, tf.cast(extrapolation_value, tf.float32))


def combined_non_max_suppression(boxes, scores, max_output_size_per_class, max_total_size,
                                 iou_threshold=0.5, score_threshold=float("-inf"),
                                 pad_per_class=False, clip_boxes=True, name=None):
    """``tf.image.combined_non_max_suppression`` as one NMS V5 per class and a top-k.

    Supports what ``DetectionLayer`` uses: boxes [batch, N, 1, 4] shared by every class or
    [batch, N, classes, 4] one per class (multi-label detection), scores [batch, N, classes],
    static batch and class counts, ``pad_per_class=False``.
    Returns (boxes [batch, max_total_size, 4], scores, classes (float), valid [batch] int32),
    best first and zero-padded, like the original.
    """
    if boxes.shape[0] is None and _ORIGINALS:
        # Keras' own signature (batch of any size), traced when a SavedModel holding the
        # model is written: no export reads it, so TensorFlow's op is fine there.
        return _ORIGINALS["combined_non_max_suppression"](
            boxes, scores, max_output_size_per_class, max_total_size, iou_threshold,
            score_threshold, pad_per_class, clip_boxes, name)
    if pad_per_class:
        raise ValueError("pad_per_class=True is not supported")
    if boxes.shape[2] not in (1, scores.shape[2]) or boxes.shape[0] is None or \
            scores.shape[2] is None:
        raise ValueError("need boxes [batch, N, 1 or classes, 4] and scores [batch, N, "
                         "classes] with a static batch and class count; got {} and {}".format(
                             boxes.shape, scores.shape))
    if not math.isfinite(score_threshold):
        raise ValueError("need a finite score_threshold, got {}".format(score_threshold))
    total = int(max_total_size)
    per_class = int(max_output_size_per_class)
    out_boxes, out_scores, out_classes, out_valid = [], [], [], []
    per_class_boxes = boxes.shape[2] > 1
    below = score_threshold - 1.0
    for b in range(boxes.shape[0]):
        picked_scores, picked_boxes = [], []
        candidates = tf.clip_by_value(boxes[b], 0.0, 1.0) if clip_boxes else boxes[b]
        for c in range(scores.shape[2]):
            image_boxes = candidates[:, c if per_class_boxes else 0]
            # TensorFlow's NMS gives a zero-area box an IoU of 0 with everything: it is never
            # suppressed and suppresses nothing. TFLite's NMS V5 kernel instead returns such
            # a box over and over, so zero-area boxes skip NMS and join each class's picks
            # directly.
            area = tf.abs((image_boxes[:, 2] - image_boxes[:, 0]) *
                          (image_boxes[:, 3] - image_boxes[:, 1]))
            flat = area <= 0.0
            all_index = tf.range(tf.shape(image_boxes)[0])
            class_scores = scores[b, :, c]
            # NMS V5 is a TFLite builtin (and an ONNX NonMaxSuppression). Padded to a fixed
            # size, because TFLite's kernel always pads; it drops boxes at or below
            # score_threshold, as the combined op does.
            index, score, valid = tf.raw_ops.NonMaxSuppressionV5(
                boxes=image_boxes, scores=tf.where(flat, below, class_scores),
                max_output_size=per_class, iou_threshold=iou_threshold,
                score_threshold=score_threshold, soft_nms_sigma=0.0,
                pad_to_max_output_size=True)
            # Padding and unselected slots score -1: below every kept box (scores >= 0).
            score = tf.where(tf.range(per_class) < valid, score, -1.0)
            flat_scores = tf.where(flat & (class_scores > score_threshold), class_scores, -1.0)
            # The class keeps its per_class best of the NMS picks and the zero-area boxes.
            best, order = tf.math.top_k(tf.concat([score, flat_scores], axis=0), per_class)
            pick = tf.gather(tf.concat([index, all_index], axis=0), order)
            picked_scores.append(best)
            picked_boxes.append(tf.gather(image_boxes, pick))
        picked_scores = tf.concat(picked_scores, axis=0)       # [classes * per_class]
        picked_boxes = tf.concat(picked_boxes, axis=0)        # [classes * per_class, 4]
        best_scores, order = tf.math.top_k(picked_scores, total, sorted=True)
        kept = best_scores >= 0.0
        out_valid.append(tf.reduce_sum(tf.cast(kept, tf.int32)))
        # Slot i of the concatenation belongs to class i // per_class.
        classes = tf.cast(order // per_class, tf.float32)
        zero = tf.zeros_like(best_scores)
        out_scores.append(tf.where(kept, best_scores, zero))
        out_classes.append(tf.where(kept, classes, zero))
        out_boxes.append(tf.where(kept[:, None], tf.gather(picked_boxes, order), 0.0))
    return (tf.stack(out_boxes), tf.stack(out_scores), tf.stack(out_classes),
            tf.stack(out_valid))


@contextlib.contextmanager
def builtin_ops_only():
    """While active, ``tf.image.crop_and_resize`` and ``tf.image.combined_non_max_suppression``
    are the builtin-op versions above: trace (and save) an export function inside it.

    The mrcnn layers look these functions up on ``tf.image`` at call time, so replacing the
    attributes reaches them without a second implementation of the layers.
    """
    if _ORIGINALS:
        raise RuntimeError("builtin_ops_only() is already active")
    for name, replacement in _REPLACEMENTS.items():
        _ORIGINALS[name] = getattr(tf.image, name)
        setattr(tf.image, name, replacement)
    try:
        yield
    finally:
        for name, original in _ORIGINALS.items():
            setattr(tf.image, name, original)
        _ORIGINALS.clear()


_REPLACEMENTS = {"crop_and_resize": crop_and_resize,
                 "combined_non_max_suppression": combined_non_max_suppression}
# TensorFlow's functions while builtin_ops_only() is active.
_ORIGINALS = {}
