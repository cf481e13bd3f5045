"""Repeat-factor sampling: factors against hand-computed ones, epochs deterministic by seed."""

import numpy as np

from mrcnn.data import repeat_factor


class Labels:
    """A stand-in dataset: the class ids of each image."""
    num_classes = 4

    def __init__(self, per_image):
        self.per_image = per_image
        self.image_ids = np.arange(len(per_image))

    def load_mask(self, image_id):
        return None, np.array(self.per_image[image_id], np.int32)


def test_repeat_factors_follow_the_lvis_rule():
    # 10 images: class 1 in all of them, class 2 in 2, class 3 (crowd only) in 1, one empty.
    images = [[1, 1]] * 6 + [[1, 2], [1, 2, 2], [1, -3], []]
    factors = repeat_factor.repeat_factors(Labels(images), threshold=0.5)
    # f(1) = 0.9, f(2) = 0.2, f(3) = 0.1: r = max(1, sqrt(0.5 / f)) = 1, 1.5811, 2.2361.
    expected = [1.0] * 6 + [np.sqrt(0.5 / 0.2)] * 2 + [np.sqrt(0.5 / 0.1), 1.0]
    np.testing.assert_allclose(factors, expected, rtol=1e-6)


def test_epochs_repeat_images_by_their_factor_and_depend_only_on_the_seed():
    factors = np.array([1.0, 2.0, 3.5, 1.25])
    orders = [repeat_factor.epoch_order(factors, np.random.default_rng([7, e]))
              for e in range(400)]
    counts = np.mean([np.bincount(o, minlength=4) for o in orders], axis=0)
    np.testing.assert_allclose(counts, factors, atol=0.08)
    for order in orders[:5]:
        assert np.sum(order == 1) == 2 and np.sum(order == 2) in (3, 4)
    again = repeat_factor.epoch_order(factors, np.random.default_rng([7, 0]))
    np.testing.assert_array_equal(again, orders[0])
