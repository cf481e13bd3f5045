"""The anchor generator (mrcnn.modeling.anchors): hand values, Matterport's default pyramid,
the caches, and the graph's AnchorsLayer built from the same generator."""

import numpy as np

from mrcnn.config import Config
from mrcnn.modeling import anchors as anchor_gen
from mrcnn.modeling.boxes import norm_boxes
from mrcnn.modeling.rpn import AnchorsLayer


class Pad64Config(Config):
    IMAGE_RESIZE_MODE = "pad64"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 1024
    BACKBONE = "resnet50"


def test_generate_anchors_single_level_hand_values():
    anchors = anchor_gen.generate_anchors([16], [1], (2, 3), feature_stride=8, anchor_stride=1)
    # One square anchor of side 16 centred at each of the 2x3 cell corners, row-major.
    expected = [[y * 8 - 8, x * 8 - 8, y * 8 + 8, x * 8 + 8] for y in range(2) for x in range(3)]
    np.testing.assert_allclose(anchors, expected)
    strided = anchor_gen.generate_anchors([16], [0.5, 1, 2], (4, 4), 8, anchor_stride=2)
    assert strided.shape == (2 * 2 * 3, 4)


def test_default_pyramid_anchors_count_first_and_last():
    config = Config()
    anchors = anchor_gen.get_anchors(config, config.IMAGE_SHAPE)
    assert anchors.shape == (261888, 4)
    # First anchor: P2 (stride 4, scale 32), cell (0, 0), ratio 0.5 -> h = 32/sqrt(.5), w =
    # 32*sqrt(.5).
    h, w = 32 / np.sqrt(0.5), 32 * np.sqrt(0.5)
    np.testing.assert_allclose(anchors[0], [-h / 2, -w / 2, h / 2, w / 2])
    # Last anchor: P6 (stride 64, 16x16 cells, scale 512), cell (15, 15), ratio 2.
    h, w = 512 / np.sqrt(2), 512 * np.sqrt(2)
    np.testing.assert_allclose(anchors[-1], [960 - h / 2, 960 - w / 2, 960 + h / 2, 960 + w / 2])
    shapes = anchor_gen.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    np.testing.assert_array_equal(shapes, [[256, 256], [128, 128], [64, 64], [32, 32], [16, 16]])


def test_anchor_cache_is_bounded_and_least_recently_used():
    cache = anchor_gen.AnchorCache(Pad64Config(), max_entries=3)
    for side in (64, 128, 192):
        cache.get((side, 64, 3))
    first = cache.get((64, 64, 3))                  # refreshed: 128 is now the oldest
    cache.get((256, 64, 3))
    assert len(cache) == 3
    assert cache.get((64, 64, 3)) is first
    np.testing.assert_allclose(first, norm_boxes(
        anchor_gen.get_anchors(Pad64Config(), (64, 64)), (64, 64)), rtol=1e-6)
    # get_anchors' own cache is bounded too and hands out read-only arrays.
    anchors = anchor_gen.get_anchors(Pad64Config(), (128, 64))
    assert not anchors.flags.writeable


def test_pyramid_anchors_cache_keys_on_values_not_types():
    # Lists, tuples and arrays of the same numbers are one cache entry (the graph passes
    # lists from its config, the pipeline numpy arrays).
    first = anchor_gen.pyramid_anchors([32, 64], [0.5, 1, 2], [[4, 4], [2, 2]], [4, 8], 1)
    again = anchor_gen.pyramid_anchors(np.array([32, 64]), (0.5, 1.0, 2.0),
                                    np.array([[4, 4], [2, 2]]), (4, 8), 1)
    assert again is first and not first.flags.writeable
    np.testing.assert_array_equal(first, anchor_gen.generate_pyramid_anchors(
        [32, 64], [0.5, 1, 2], [[4, 4], [2, 2]], [4, 8], 1))


def test_anchors_layer_holds_the_normalized_training_anchors(tiny_config):
    import tensorflow as tf
    layer = AnchorsLayer.from_config_object(tiny_config)
    out = layer(tf.zeros((2,) + tuple(tiny_config.IMAGE_SHAPE)))
    expected = norm_boxes(anchor_gen.get_anchors(tiny_config, tiny_config.IMAGE_SHAPE),
                          tiny_config.IMAGE_SHAPE[:2])
    assert out.shape == (2,) + expected.shape
    np.testing.assert_array_equal(out[1].numpy(), expected.astype(np.float32))
    # Rebuilt from its config (a saved model) it holds the same anchors.
    rebuilt = AnchorsLayer.from_config(layer.get_config())
    np.testing.assert_array_equal(rebuilt.anchors, layer.anchors)
