"""detect()'s pre- and post-processing (mrcnn.inference.molding)."""

import numpy as np

from mrcnn.inference import molding as transform
from mrcnn import utils
from mrcnn.config import Config


class Pad64Config(Config):
    IMAGE_RESIZE_MODE = "pad64"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 1024
    BACKBONE = "resnet50"


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
