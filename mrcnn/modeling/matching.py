"""IoU matching and balanced sampling: one matcher and one sampler for the RPN targets (anchors
against GT boxes) and the RoI targets (proposals against GT boxes), as torchvision's ``Matcher``
and ``BalancedPositiveNegativeSampler`` or detectron2's ``Matcher`` and ``subsample_labels``."""

import tensorflow as tf

POSITIVE, NEGATIVE, IGNORED = 1, -1, 0

# Candidates within this IoU of a GT box's best count as tied with it (allow_low_quality).
# The graph computes IoUs in float32: with exact equality the tied set depended on rounding (a
# 1-px box inside 185 anchors of equal area, 1024x1024 pyramid: 64 "tied" in float32, 48 in
# Matterport's float64 code). Measured on those anchors, float32 IoUs differ from float64 by
# at most 1.4e-9 for that box and 7.7e-8 for an 800-px one: 1e-6 is above that noise and far
# below any IoU difference that means something.
TIE_TOLERANCE = 1e-6


def match(iou, positive_iou, negative_iou, allow_low_quality=False, negative_allowed=None,
          tie_tolerance=TIE_TOLERANCE):
    """Label every candidate (row of ``iou``) against the GT boxes (columns).

    iou: [N, G] (G may be 0). A candidate is positive when its best IoU is >= positive_iou,
    negative when it is < negative_iou (and ``negative_allowed`` [N] bool, e.g. "touches no crowd
    region", holds), ignored otherwise. allow_low_quality: every GT box's best candidates (ties
    included, IoU > 0) are positive whatever their IoU, so that no object goes without one
    (Matterport's and Faster R-CNN's RPN rule); a candidate ties when its IoU is within
    ``tie_tolerance`` of the best (see TIE_TOLERANCE).

    Returns labels [N] int32 (POSITIVE, NEGATIVE or IGNORED) and matches [N] int32: the index of
    each candidate's best GT box (0 when there is none).
    """
    # A zero column keeps argmax and max defined when there are no GT boxes.
    padded = tf.concat([iou, tf.zeros([tf.shape(iou)[0], 1], iou.dtype)], axis=1)
    matches = tf.argmax(padded, axis=1, output_type=tf.int32)
    best_iou = tf.reduce_max(padded, axis=1)
    positive = best_iou >= positive_iou
    negative = best_iou < negative_iou
    if negative_allowed is not None:
        negative &= negative_allowed
    if allow_low_quality:
        gt_best = tf.reduce_max(iou, axis=0)                               # [G]
        # iou > 0: a GT box whose best IoU is under the tolerance must not tie with every
        # candidate that misses it.
        tied = (iou >= gt_best[tf.newaxis] - tie_tolerance) & (iou > 0)
        positive |= tf.reduce_any(tied, axis=1)
    labels = tf.where(positive, POSITIVE, tf.where(negative, NEGATIVE, IGNORED))
    return labels, matches


def _shuffle(indices, seed, stream):
    if seed is None:
        return tf.random.shuffle(indices)
    return tf.random.experimental.stateless_shuffle(
        indices, seed=tf.random.experimental.stateless_fold_in(seed, stream))


def sample(labels, num_samples, positive_fraction, negatives="fill", seed=None):
    """A balanced random subset of labelled candidates.

    At most ``int(num_samples * positive_fraction)`` positives are drawn. negatives: "fill"
    takes ``num_samples - P`` negatives (Matterport's RPN, torchvision); "ratio" takes
    ``int(P / positive_fraction) - P`` so that positives keep their fraction (Matterport's RoI
    rule), or ``num_samples - int(num_samples * positive_fraction)`` when there is no positive.
    seed: None draws with TensorFlow's stateful generator; a [2] integer seed makes the draw a
    pure function of it (the input pipeline's reproducible samples).

    Returns (positive indices [P], negative indices [Q]) int32, each in random order.
    """
    max_positives = int(num_samples * positive_fraction)
    positive = _shuffle(tf.where(labels == POSITIVE)[:, 0], seed, 0)[:max_positives]
    count = tf.shape(positive)[0]
    if negatives == "fill":
        negative_count = num_samples - count
    elif negatives == "ratio":
        negative_count = tf.where(
            count > 0,
            tf.cast(tf.cast(count, tf.float32) / positive_fraction, tf.int32) - count,
            num_samples - max_positives)
    else:
        raise ValueError("negatives must be 'fill' or 'ratio', got {!r}".format(negatives))
    negative = _shuffle(tf.where(labels == NEGATIVE)[:, 0], seed, 1)[:negative_count]
    return tf.cast(positive, tf.int32), tf.cast(negative, tf.int32)
