"""The graph ops a layer can be built with: TensorFlow's, or TFLite-builtin stand-ins for export.

The inference graph uses ``tf.image.crop_and_resize`` (RoIAlign) and
``tf.image.combined_non_max_suppression`` (per-class NMS in ``DetectionLayer``). TFLite has no
builtin kernel for either, so a converted model would need the Flex delegate (SELECT_TF_OPS),
which neither the standalone LiteRT interpreter nor ``tf.lite.Interpreter`` of the pip wheels
links. The functions here compute the same values from builtin ops (gather, floor, NMS V5,
top-k) and so also convert cleanly to ONNX.

The choice is made when a graph is built, not by replacing ``tf.image``'s functions: the layers
that call these ops (``PyramidROIAlign``, ``DetectionLayer``) take ``ops="tf"`` (the default:
TensorFlow's kernels, for training, ``detect()`` and the SavedModel) or ``ops="portable"``, keep
it in their config, and call ``namespace(ops).crop_and_resize`` and so on, as ``box_coder``
takes its array namespace. :func:`with_ops` rebuilds a model's graph with another choice, sharing
every weight: ``mrcnn.export.formats`` traces the TFLite and ONNX core on
``with_ops(model, "portable")``. The RPN's ``tf.image.non_max_suppression_padded`` is not
among them: it lowers to NMS V4/V5, a builtin in both formats.
"""

import math
import types

import keras
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


def _combined_nms_any_batch(boxes, scores, max_output_size_per_class, max_total_size,
                            iou_threshold=0.5, score_threshold=float("-inf"),
                            pad_per_class=False, clip_boxes=True, name=None):
    """The portable namespace's per-class NMS: :func:`combined_non_max_suppression`, or
    TensorFlow's op where the batch size is not static.

    An exported core calls the model with a fixed batch. A batch of any size is traced only
    by Keras' own signature of a model that a written SavedModel holds (the TFLite path saves
    the core before converting it); no export reads that function, so TensorFlow's op is fine
    there, and the builtin version could not be built for it.
    """
    nms = combined_non_max_suppression if boxes.shape[0] is not None else \
        tf.image.combined_non_max_suppression
    return nms(boxes, scores, max_output_size_per_class, max_total_size, iou_threshold,
               score_threshold, pad_per_class, clip_boxes, name)


# The namespaces a layer's ``ops`` names: the same functions, with tf.image's signatures.
TF = types.SimpleNamespace(crop_and_resize=tf.image.crop_and_resize,
                           combined_non_max_suppression=tf.image.combined_non_max_suppression)
PORTABLE = types.SimpleNamespace(crop_and_resize=crop_and_resize,
                                 combined_non_max_suppression=_combined_nms_any_batch)
NAMESPACES = {"tf": TF, "portable": PORTABLE}


def check_ops(ops):
    """``ops`` if it names a namespace of :data:`NAMESPACES`, else ValueError."""
    if not isinstance(ops, str) or ops not in NAMESPACES:
        raise ValueError("ops must be one of {}, got {!r}".format(sorted(NAMESPACES), ops))
    return ops


def namespace(ops):
    """The namespace named ``ops`` ("tf" or "portable")."""
    return NAMESPACES[check_ops(ops)]


def with_ops(keras_model, ops):
    """A functional ``keras_model`` whose layers with an ``ops`` choice use ``ops``.

    The graph is rebuilt with ``keras.models.clone_model``, nested functional models too: a
    layer with an ``ops`` attribute is re-created from its config with the new choice (and
    its weights, if any, copied), every other layer is the original object, so the new model
    shares all of ``keras_model``'s weights and computes the same graph around the chosen
    ops. ``keras_model`` itself is left as it was.
    """
    check_ops(ops)
    replaced = []

    def clone(layer):
        choice = getattr(layer, "ops", None)
        if not isinstance(choice, str) or choice not in NAMESPACES or choice == ops:
            return layer
        copy = type(layer).from_config(dict(layer.get_config(), ops=ops))
        replaced.append((layer, copy))
        return copy

    model = keras.models.clone_model(keras_model, clone_function=clone, recursive=True)
    for layer, copy in replaced:
        if layer.weights:
            copy.set_weights(layer.get_weights())
    return model
