"""Tiled inference (mrcnn.inference.tiling): objects on tile borders come back once with their full
mask."""

import numpy as np
import pytest
import skimage.draw

from mrcnn.inference import tiling
from mrcnn import utils


class ColourDetector:
    """A perfect detector of what a tile shows: each object is drawn in its own colour, and
    every colour seen in a tile is one detection, its mask the pixels of that colour there (a
    cut object gives the part inside the tile), its class and score from the colour."""

    def __init__(self, objects):
        self.objects = objects            # {colour: class id}
        self.config = type("C", (), {"IMAGE_MAX_DIM": 64, "DETECTION_NMS_THRESHOLD": 0.3})()
        self.tiles = []

    def detect(self, images, verbose=0):
        results = []
        for image in images:
            self.tiles.append(image.shape)
            masks, class_ids = [], []
            for colour, class_id in self.objects.items():
                mask = np.all(image == colour, axis=-1)
                if mask.any():
                    masks.append(mask)
                    class_ids.append(class_id)
            masks = np.stack(masks, axis=-1) if masks else np.zeros(image.shape[:2] + (0,),
                                                                    bool)
            results.append({"rois": utils.extract_bboxes(masks),
                            "class_ids": np.array(class_ids, np.int32),
                            "scores": np.linspace(0.95, 0.9, len(class_ids)),
                            "masks": masks})
        return results


def assert_each_found_once_whole(r, truth):
    """Each (mask, class id) of ``truth`` is exactly one detection of ``r``, with that class and
    the mask's box."""
    for mask, class_id in truth:
        matches = [n for n in range(r["masks"].shape[-1])
                   if np.array_equal(r["masks"][:, :, n], mask)]
        assert len(matches) == 1, "object found {} times whole".format(len(matches))
        n = matches[0]
        assert r["class_ids"][n] == class_id
        np.testing.assert_array_equal(r["rois"][n], utils.extract_bboxes(mask[..., None])[0])


def test_tile_origins():
    assert tiling.tile_origins(200, 64, 24) == [0, 34, 68, 102, 136]   # neighbours share 30
    assert tiling.tile_origins(64, 64, 16) == [0]
    assert tiling.tile_origins(40, 64, 16) == [0]
    assert tiling.tile_origins(100, 64, 16) == [0, 36]
    with pytest.raises(ValueError, match="overlap"):
        tiling.tile_origins(100, 64, 64)


def test_objects_on_tile_borders_are_found_once_whole():
    height, width = 200, 170
    image = np.full((height, width, 3), 20, np.uint8)
    # Tiles of 64 with overlap 24: rows start at 0, 34, 68, 102, 136 and columns at
    # 0, 35, 70, 106: objects across those borders, at a corner of four tiles, at the image's
    # edge, and one inside a single tile. Objects are at most 18 px, below the overlap.
    shapes = [("disc", (64, 60, 9)), ("square", (30, 96, 8)), ("disc", (100, 35, 9)),
              ("square", (136, 106, 8)), ("disc", (190, 150, 8)), ("square", (10, 10, 6)),
              ("disc", (150, 20, 7))]
    objects, truth = {}, []
    for n, (kind, (cy, cx, r)) in enumerate(shapes):
        colour = (40 + 25 * n, 250 - 20 * n, 100 + 10 * n)
        mask = np.zeros((height, width), bool)
        if kind == "disc":
            rr, cc = skimage.draw.disk((cy, cx), r, shape=(height, width))
        else:
            rr, cc = skimage.draw.rectangle((cy - r, cx - r), (cy + r, cx + r),
                                            shape=(height, width))
        mask[rr, cc] = True
        image[mask] = colour
        objects[colour] = 1 if kind == "disc" else 2
        truth.append((mask, objects[colour]))
    detector = ColourDetector(objects)
    r = tiling.detect_tiled(detector, image, overlap=24)
    assert set(detector.tiles) == {(64, 64, 3)} and len(detector.tiles) == 5 * 4
    assert r["masks"].shape == (height, width, len(truth))
    assert len(r["class_ids"]) == len(r["scores"]) == len(r["rois"]) == len(truth)
    assert np.all(np.diff(r["scores"]) <= 0)
    assert_each_found_once_whole(r, truth)


def test_a_real_model_small_image_is_one_tile(tiny_config):
    from mrcnn import model as modellib
    from tiny import TinyConfig

    config = type("Inference", (TinyConfig,), {"IMAGES_PER_GPU": 1,
                                               "DETECTION_MIN_CONFIDENCE": 0.0})()
    model = modellib.MaskRCNN("inference", config, "logs")
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    tiled = tiling.detect_tiled(model, image)
    direct = model.detect([image])[0]
    np.testing.assert_array_equal(tiled["class_ids"], direct["class_ids"])
    np.testing.assert_array_equal(tiled["masks"], direct["masks"])
    # A larger image: 2 x 2 tiles, detect()'s result format over the whole image.
    large = np.random.default_rng(1).integers(0, 255, (100, 90, 3), dtype=np.uint8)
    r = tiling.detect_tiled(model, large, overlap=16)
    assert r["masks"].shape[:2] == (100, 90) and r["masks"].dtype == bool
    assert r["rois"].shape == (len(r["class_ids"]), 4)
    # detect(tile=) gives the same, per image; tile=True is IMAGE_MAX_DIM (64) tiles.
    both = model.detect([large, image], tile=True, overlap=16)
    for got, expected in zip(both, [r, tiling.detect_tiled(model, image, overlap=16)]):
        np.testing.assert_array_equal(got["class_ids"], expected["class_ids"])
        np.testing.assert_array_equal(got["rois"], expected["rois"])
        np.testing.assert_array_equal(got["masks"], expected["masks"])
    # A tile side of 48 instead: 3 x 3 tiles, each resized to 64 by detect(); not what the
    # 64-px tiles give.
    side = model.detect([large], tile=48, overlap=16)[0]
    expected = tiling.detect_tiled(model, large, tile=48, overlap=16)
    assert len(side["class_ids"]) > 0
    np.testing.assert_array_equal(side["rois"], expected["rois"])
    np.testing.assert_array_equal(side["masks"], expected["masks"])
    assert side["rois"].shape != r["rois"].shape or (side["rois"] != r["rois"]).any()
    with pytest.raises(ValueError, match="overlap applies to tiled detection only"):
        model.detect([image], overlap=16)
    for bad in (1.5, 0, "64"):
        with pytest.raises(ValueError, match="tile must be True or a whole number"):
            model.detect([image], tile=bad)


def test_objects_larger_than_the_overlap_come_back_once_whole():
    height, width = 100, 150
    image = np.full((height, width, 3), 20, np.uint8)
    # Tiles of 64 with overlap 16: rows at 0, 36 and columns at 0, 43, 86. A disc of 60 px
    # across all six tiles and a bar of 140 px across the three tiles of the first row are
    # cut in every tile that shows them; a small disc lies inside one tile.
    disc = np.zeros((height, width), bool)
    disc[skimage.draw.disk((50, 75), 30, shape=(height, width))] = True
    bar = np.zeros((height, width), bool)
    bar[5:12, 5:145] = True
    small = np.zeros((height, width), bool)
    small[skimage.draw.disk((85, 12), 6, shape=(height, width))] = True
    truth = [(disc, 1, (200, 40, 40)), (bar, 2, (40, 200, 40)), (small, 1, (40, 40, 200))]
    for mask, _, colour in truth:
        image[mask] = colour
    detector = ColourDetector({colour: class_id for _, class_id, colour in truth})
    r = tiling.detect_tiled(detector, image, overlap=16)
    assert len(detector.tiles) == 2 * 3
    assert len(r["class_ids"]) == len(truth), r["rois"]
    assert_each_found_once_whole(r, [(mask, class_id) for mask, class_id, _ in truth])
    # The merged fragments keep the best score of their parts (ColourDetector's 0.95).
    assert np.all(np.diff(r["scores"]) <= 0) and r["scores"][0] == np.float32(0.95)


def test_touching_fragments_that_disagree_stay_apart():
    # Two bars of one class meet in the shared strip of two tiles, each cut by the other
    # tile's edge: their masks differ there, so they are not merged into one object.
    height, width = 64, 100
    image = np.full((height, width, 3), 20, np.uint8)
    left = np.zeros((height, width), bool)
    left[10:30, 2:50] = True
    right = np.zeros((height, width), bool)
    right[30:50, 40:98] = True
    image[left], image[right] = (200, 40, 40), (40, 200, 40)
    detector = ColourDetector({(200, 40, 40): 1, (40, 200, 40): 1})
    r = tiling.detect_tiled(detector, image, overlap=16)
    found = sorted(tuple(b) for b in r["rois"])
    assert found == sorted(tuple(utils.extract_bboxes(m[..., None])[0]) for m in (left, right))
