"""The dataset report (mrcnn.data.inspect_data): anchor coverage against a hand-computed case, the
advice when objects are small, imbalance and problem annotations."""

import numpy as np
import pytest

from mrcnn.data import inspect_data
from mrcnn.config import Config
from mrcnn.data.dataset import Dataset

SIZE = 64


class RectDataset(Dataset):
    """64x64 gray images, each with the given rectangles (y1, x1, y2, x2, class id)."""

    def load(self, images, class_names=("thing",)):
        for class_id, name in enumerate(class_names, start=1):
            self.add_class("rects", class_id, name)
        for i, rects in enumerate(images):
            self.add_image("rects", image_id="img{}".format(i), path=None, rects=rects)
        self.prepare()
        return self

    def load_image(self, image_id):
        return np.full((SIZE, SIZE, 3), 100, np.uint8)

    def load_mask(self, image_id):
        rects = self.image_info[image_id]["rects"]
        masks = np.zeros((SIZE, SIZE, len(rects)), bool)
        for k, (y1, x1, y2, x2, _) in enumerate(rects):
            masks[y1:y2, x1:x2, k] = True
        return masks, np.array([r[4] for r in rects], np.int32)


class SquareAnchors(Config):
    """64x64 images at scale 1; square anchors of sides 16..256 at strides 4..64."""
    NAME = "hand"
    NUM_CLASSES = 2
    IMAGE_MIN_DIM = SIZE
    IMAGE_MAX_DIM = SIZE
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
    RPN_ANCHOR_RATIOS = [1]
    USE_MINI_MASK = False


def test_anchor_coverage_hand_computed():
    # Anchors of side 16 sit at centres on the stride-4 grid, of side 32 on the stride-8 grid
    # (Matterport places a level's anchors at multiples of its stride).
    #  A (8, 8, 24, 24): centre (16, 16), exactly the side-16 anchor there: IoU 1.
    #  B (4, 10, 28, 22): 24 tall, 12 wide, centre (16, 16). Best: the side-16 anchor
    #    (8, 8, 24, 24): intersection 16 x 12 = 192, union 256 + 288 - 192 = 352 -> 6/11;
    #    the side-32 anchor (0, 0, 32, 32) gives 288 / 1024, shifted side-16 anchors less.
    #  C (30, 30, 34, 34): 4 x 4 at centre (32, 32). Best: the side-16 anchor around it,
    #    16 / 256 = 1/16.
    dataset = RectDataset().load([[(8, 8, 24, 24, 1)], [(4, 10, 28, 22, 1)],
                                  [(30, 30, 34, 34, 1)]])
    config = SquareAnchors()
    report = inspect_data.inspect_dataset({"train": dataset}, config, verbose=False)
    np.testing.assert_allclose(report["best_anchor_ious"], [1.0, 6 / 11, 1 / 16])
    assert report["coverage"] == {0.7: pytest.approx(1 / 3), 0.5: pytest.approx(2 / 3)}
    # The same through the function on one image's boxes.
    np.testing.assert_allclose(inspect_data.best_anchor_ious(
        config, (SIZE, SIZE, 3), [[8, 8, 24, 24], [4, 10, 28, 22]]), [1.0, 6 / 11])
    # Halved scales (8..128): C's best is the side-8 anchor at (32, 32), 16 / 64 = 1/4; A keeps
    # 1 (side 16 is still a scale), B's best stays 6/11.
    halved = report["coverage_with_scales"][(8, 16, 32, 64, 128)]
    assert halved == {0.7: pytest.approx(1 / 3), 0.5: pytest.approx(2 / 3)}
    # Sides after resizing (scale 1): sqrt of the box areas.
    np.testing.assert_allclose(report["splits"]["train"]["object_sides"],
                               [16, np.sqrt(24 * 12), 4])


def test_advice_changes_when_objects_are_small():
    config = type("Default", (Config,), {"NUM_CLASSES": 2, "IMAGE_MIN_DIM": SIZE,
                                         "IMAGE_MAX_DIM": SIZE, "MEAN_PIXEL": [100, 100, 100]})()
    # 8x8 objects against Matterport's anchors (32..512): none reaches IoU 0.5 (an 8x8 box
    # inside a 32x32 anchor: 64 / 1024); scales a quarter as large (8..128) cover them all.
    small = RectDataset().load([[(8, 8, 16, 16, 1), (40, 40, 48, 48, 1)], [(20, 28, 28, 36, 1)]])
    report = inspect_data.inspect_dataset({"train": small}, config, verbose=False)
    assert report["coverage"] == {0.7: 0.0, 0.5: 0.0}
    advice = "\n".join(report["advice"])
    assert "Objects are small for the anchors: median side 8.0 px" in advice
    assert "RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128) would raise the anchor coverage at IoU " \
           "0.7 from 0% to 100%" in advice
    # What `mrcnn train` takes as defaults from it (the mean already fits).
    assert inspect_data.data_defaults(report) == {"RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128)}
    assert inspect_data.data_defaults(report, keep=lambda name: True) == {}
    # 32x32 objects: each is an anchor of the first level; no anchor advice.
    large = RectDataset().load([[(0, 0, 32, 32, 1)], [(16, 16, 48, 48, 1)]])
    report = inspect_data.inspect_dataset({"train": large}, config, verbose=False)
    assert report["coverage"] == {0.7: 1.0, 0.5: 1.0}
    assert not any("small" in line or "RPN_ANCHOR_SCALES" in line for line in report["advice"])
    assert report["advice"] == []     # MEAN_PIXEL matches the gray images too


def test_imbalance_problems_and_mean_pixel():
    images = [[(0, 0, 20, 20, 1), (0, 0, 20, 20, 1), (30, 30, 50, 50, 2)]]   # a duplicate
    images += [[(5, 5, 25, 25, 1), (40, 40, 42, 60, -1)] for _ in range(11)]  # crowd, 2 px
    images += [[(10, 10, 10, 20, 1)]]                                          # empty mask
    dataset = RectDataset().load(images, class_names=("common", "rare"))
    config = type("Two", (SquareAnchors,), {"NUM_CLASSES": 3})()
    report = inspect_data.inspect_dataset({"train": dataset}, config, verbose=False)
    train = report["splits"]["train"]
    assert train["class_counts"] == [13, 1]
    assert train["problems"]["duplicated"] == [("img0", 0, 1)]
    assert train["problems"]["crowd"] == [("img{}".format(i), 1) for i in range(1, 12)]
    assert train["problems"]["empty"] == [("img12", 0)]
    assert train["problems"]["tiny"] == []      # the 2-px strips are the crowd regions
    np.testing.assert_allclose(train["mean_pixel"], [100, 100, 100])
    advice = "\n".join(report["advice"])
    assert "Classes are imbalanced (13 times" in advice and "REPEAT_FACTOR_THRESHOLD" in advice
    assert "MEAN_PIXEL = [100.0, 100.0, 100.0]" in advice
    assert inspect_data.data_defaults(report)["MEAN_PIXEL"] == [100.0, 100.0, 100.0]
    text = inspect_data.format_report(report)
    assert "1 duplicated: img0#0/1" in text and "1 empty: img12#0" in text
    assert "imbalance ratio (most / fewest): 13.0" in text
