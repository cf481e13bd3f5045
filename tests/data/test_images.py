"""The resize rule of mrcnn.data.images: one definition, the same numbers on Python numbers
(utils.resize_image, the NumPy runner) and on tensors (the SavedModel signature)."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import utils
from mrcnn.data import images
from mrcnn.export.serving import RESIZE_OPS
# (height, width, min_dim, max_dim, min_scale): scaled up, capped, untouched, min_scale, the
# exact-half sizes whose rounding decides a pixel.
CASES = [(30, 50, 64, 64, 0), (100, 80, 64, 64, 0), (48, 64, 0, 64, 0), (20, 20, 0, 64, 2.0),
         (800, 1066, 800, 1024, 0), (333, 500, 320, 512, 0), (5, 1000, 64, 128, 0),
         (64, 64, 64, 64, 0), (1, 3, 7, 9, 1.5)]


@pytest.mark.parametrize("h, w, min_dim, max_dim, min_scale", CASES)
def test_resize_scale_same_on_numbers_and_tensors(h, w, min_dim, max_dim, min_scale):
    scale = images.resize_scale(h, w, min_dim, max_dim, min_scale)
    tensor = images.resize_scale(tf.constant(float(h)), tf.constant(float(w)), float(min_dim),
                                 max_dim, float(min_scale), ops=RESIZE_OPS)
    assert float(tensor) == pytest.approx(scale, rel=1e-6)
    # The size both compute (float32 in the graph, float64 here) and the padding.
    size = (round(h * scale), round(w * scale))
    assert size == (int(tf.round(float(h) * tensor)), int(tf.round(float(w) * tensor)))
    assert max(size) <= max_dim
    top, bottom, left, right = images.square_padding(*size, max_dim)
    assert top + size[0] + bottom == max_dim and left + size[1] + right == max_dim
    assert tuple(int(v) for v in images.square_padding(
        tf.constant(size[0]), tf.constant(size[1]), max_dim)) == (top, bottom, left, right)


def test_resize_image_follows_the_rule():
    image = np.zeros((30, 50, 3), np.uint8)
    resized, window, scale, padding, _ = utils.resize_image(image, 64, 64, mode="square")
    # 64 / 30 would make the long side 107 > 64: capped at 64 / 50.
    assert scale == 64 / 50
    assert resized.shape == (64, 64, 3) and window == (13, 0, 51, 64)
    assert padding == [(13, 13), (0, 0), (0, 0)]
    # pad64 and crop scale without the max_dim cap.
    assert images.resize_scale(100, 2000, 64, 128, 0, cap=False) == 1.0
    assert images.resize_scale(100, 2000, 64, 128, 0) == pytest.approx(128 / 2000)
