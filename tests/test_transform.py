"""detect()'s pre- and post-processing (mrcnn.transform)."""

import numpy as np

from mrcnn import transform, utils
from mrcnn.config import Config


class Pad64Config(Config):
    IMAGE_RESIZE_MODE = "pad64"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 1024
    BACKBONE = "resnet50"


def test_anchor_cache_is_bounded_and_least_recently_used():
    cache = transform.AnchorCache(Pad64Config(), max_entries=3)
    for side in (64, 128, 192):
        cache.get((side, 64, 3))
    first = cache.get((64, 64, 3))                  # refreshed: 128 is now the oldest
    cache.get((256, 64, 3))
    assert len(cache) == 3
    assert cache.get((64, 64, 3)) is first
    np.testing.assert_allclose(first, utils.norm_boxes(
        utils.get_anchors(Pad64Config(), (64, 64)), (64, 64)), rtol=1e-6)
    # utils' own cache is bounded too and hands out read-only arrays.
    anchors = utils.get_anchors(Pad64Config(), (128, 64))
    assert not anchors.flags.writeable


def test_mold_inputs_and_unmold_detections_round_trip():
    class Unscaled(Pad64Config):
        IMAGE_MIN_DIM = 0
    config = Unscaled()
    image = np.zeros((50, 70, 3), np.uint8)
    molded, metas, windows = transform.mold_inputs([image], config)
    assert molded.shape == (1, 64, 128, 3) and tuple(windows[0]) == (7, 29, 57, 99)
    box = utils.norm_boxes(np.array([[7 + 10, 29 + 20, 7 + 30, 29 + 60]]), (64, 128))[0]
    detections = np.zeros((3, 6), np.float32)
    detections[0] = list(box) + [1, 0.9]
    masks = np.ones((3, 4, 4, 2), np.float32)
    boxes, class_ids, scores, full = transform.unmold_detections(
        detections, masks, image.shape, molded.shape[1:], windows[0])
    np.testing.assert_array_equal(boxes, [[10, 20, 30, 60]])
    assert class_ids.tolist() == [1] and scores.tolist() == [np.float32(0.9)]
    assert full.shape == (50, 70, 1) and full[10:30, 20:60].all() and full.sum() == 20 * 40
