"""The one matcher and sampler (mrcnn.modeling.matching), on hand-made IoU matrices."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.modeling import matching


def test_match_thresholds_low_quality_and_vetoes():
    iou = tf.constant([[0.9, 0.1],     # positive for GT 0
                       [0.5, 0.2],     # between thresholds: ignored
                       [0.1, 0.25],    # negative, but the best anchor of GT 1: positive
                       [0.0, 0.05],    # negative
                       [0.2, 0.0]])    # negative, vetoed (e.g. touches a crowd region)
    allowed = tf.constant([True, True, True, True, False])
    labels, matches = matching.match(iou, 0.7, 0.3, negative_allowed=allowed)
    np.testing.assert_array_equal(labels, [1, 0, -1, -1, 0])
    np.testing.assert_array_equal(matches, [0, 0, 1, 1, 0])
    labels, _ = matching.match(iou, 0.7, 0.3, allow_low_quality=True, negative_allowed=allowed)
    np.testing.assert_array_equal(labels, [1, 0, 1, -1, 0])


def test_match_without_gt_makes_everything_negative():
    labels, matches = matching.match(tf.zeros([4, 0]), 0.7, 0.3, allow_low_quality=True)
    np.testing.assert_array_equal(labels, [-1] * 4)
    np.testing.assert_array_equal(matches, [0] * 4)


@pytest.mark.parametrize("positives, negatives, mode, expected", [
    (3, 50, "fill", (3, 13)),       # negatives fill the sample
    (30, 50, "fill", (8, 8)),       # positives capped at half
    (3, 50, "ratio", (3, 9)),       # int(3 / 0.25) - 3 negatives keep the ratio
    (0, 50, "ratio", (0, 12)),      # no positive: num - int(num * fraction) negatives
    (3, 5, "ratio", (3, 5)),        # fewer negatives than wanted: all of them
])
def test_sample_counts(positives, negatives, mode, expected):
    labels = tf.constant([1] * positives + [-1] * negatives + [0] * 7)
    fraction = 0.5 if mode == "fill" else 0.25
    pos, neg = matching.sample(labels, 16, fraction, mode)
    assert (len(pos), len(neg)) == expected
    assert np.all(labels.numpy()[pos.numpy()] == 1) and np.all(labels.numpy()[neg.numpy()] == -1)
    assert len(set(pos.numpy())) == len(pos) and len(set(neg.numpy())) == len(neg)


def test_seeded_sampling_is_a_function_of_the_seed():
    labels = tf.constant([1] * 40 + [-1] * 100)
    a = matching.sample(labels, 32, 0.5, "fill", seed=tf.constant([7, 3], tf.int64))
    b = matching.sample(labels, 32, 0.5, "fill", seed=tf.constant([7, 3], tf.int64))
    c = matching.sample(labels, 32, 0.5, "fill", seed=tf.constant([7, 4], tf.int64))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
