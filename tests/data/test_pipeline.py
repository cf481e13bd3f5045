import numpy as np
import pytest

from mrcnn.data import pipeline as data
from mrcnn import utils
from mrcnn.config import Config
from mrcnn.data.dataset import Dataset
from samples.shapes.shapes import ShapesConfig, ShapesDataset


class TinyConfig(ShapesConfig):
    IMAGES_PER_GPU = 2
    MAX_GT_INSTANCES = 5
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64


@pytest.fixture(scope="module")
def config():
    return TinyConfig()


@pytest.fixture(scope="module")
def shapes(config):
    ds = ShapesDataset()
    ds.load_shapes(12, 128, 128, seed=5)
    ds.prepare()
    return ds


def test_image_meta_round_trip():
    meta = data.compose_image_meta(7, (300, 400, 3), (128, 128, 3), (16, 0, 112, 128), 0.32,
                                   [1, 1, 0, 1])
    assert meta.shape == (1 + 3 + 3 + 4 + 1 + 4,)
    parsed = data.parse_image_meta(meta[np.newaxis])
    assert parsed["image_id"].tolist() == [7]
    np.testing.assert_array_equal(parsed["original_image_shape"], [[300, 400, 3]])
    np.testing.assert_array_equal(parsed["window"], [[16, 0, 112, 128]])
    np.testing.assert_allclose(parsed["scale"], [0.32])
    np.testing.assert_array_equal(parsed["active_class_ids"], [[1, 1, 0, 1]])


def test_mold_unmold_image():
    config = Config()
    image = np.array([[[123, 117, 104], [0, 255, 10]]], dtype=np.uint8)
    molded = data.mold_image(image, config)
    assert molded.dtype == np.float32
    np.testing.assert_allclose(molded[0, 0], [-0.7, 0.2, 0.1], atol=1e-4)
    np.testing.assert_array_equal(data.unmold_image(molded, config), image)


def _rpn_config(**attrs):
    return type("RPNConfig", (Config,), dict(dict(
        IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128),
        RPN_TRAIN_ANCHORS_PER_IMAGE=64), **attrs))()


def test_rpn_targets_rules():
    config = _rpn_config()
    anchors = utils.get_anchors(config, (128, 128))
    gt_boxes = np.array([[10, 10, 40, 40], [60, 30, 100, 110], [5, 100, 13, 108]])
    gt_class_ids = np.array([1, 2, 1])
    rpn_match, rpn_bbox = data.build_rpn_targets(
        (128, 128, 3), anchors, gt_class_ids, gt_boxes, config, rng=np.random.default_rng(0))
    assert rpn_match.shape == (anchors.shape[0],) and rpn_bbox.shape == (64, 4)
    positives = np.where(rpn_match == 1)[0]
    negatives = np.where(rpn_match == -1)[0]
    assert 0 < len(positives) <= 32
    assert len(positives) + len(negatives) == 64      # the sample is filled with negatives
    assert set(np.unique(rpn_match)) <= {-1, 0, 1}
    overlaps = utils.compute_overlaps(anchors, gt_boxes)
    # Every GT box has a positive anchor, and it is one of its best anchors.
    for g in range(len(gt_boxes)):
        best = np.where(overlaps[:, g] == overlaps[:, g].max())[0]
        assert np.intersect1d(best, positives).size > 0
    # Negatives are below 0.3 IoU with every box; neutral anchors are marked 0.
    assert np.all(overlaps[negatives].max(axis=1) < 0.3)
    assert np.sum(rpn_match == 0) == anchors.shape[0] - 64
    # Box targets: applying them (times the std dev) to the positive anchors gives the GT box.
    deltas = rpn_bbox[:len(positives)] * config.RPN_BBOX_STD_DEV
    refined = utils.apply_box_deltas(anchors[positives], deltas)
    np.testing.assert_allclose(refined, gt_boxes[np.argmax(overlaps[positives], axis=1)],
                               atol=1e-3)
    assert np.all(rpn_bbox[len(positives):] == 0)


def test_rpn_targets_cap_positives_at_half():
    config = _rpn_config(RPN_TRAIN_ANCHORS_PER_IMAGE=16)
    anchors = utils.get_anchors(config, (128, 128))
    # Many boxes of anchor-like size: far more than 8 anchors above 0.7 IoU.
    gt_boxes = np.array([[y, x, y + 16, x + 16] for y in range(0, 112, 16)
                         for x in range(0, 112, 16)])
    rpn_match, _ = data.build_rpn_targets((128, 128, 3), anchors, np.ones(len(gt_boxes)),
                                          gt_boxes, config, rng=np.random.default_rng(1))
    assert np.sum(rpn_match == 1) == 8 and np.sum(rpn_match == -1) == 8


def test_rpn_targets_without_gt_and_with_crowd():
    config = _rpn_config()
    anchors = utils.get_anchors(config, (128, 128))
    rpn_match, rpn_bbox = data.build_rpn_targets((128, 128, 3), anchors, np.zeros(0),
                                                 np.zeros((0, 4)), config)
    assert np.sum(rpn_match == -1) == 64 and np.sum(rpn_match == 1) == 0
    assert np.all(rpn_bbox == 0)

    crowd_box = np.array([[0, 0, 64, 64]])
    rpn_match, _ = data.build_rpn_targets((128, 128, 3), anchors, np.array([-1]), crowd_box,
                                          config, rng=np.random.default_rng(2))
    touching = utils.compute_overlaps(anchors, crowd_box)[:, 0] > 0
    assert not np.any(rpn_match[touching] == -1) and np.sum(rpn_match == 1) == 0
    assert np.sum(rpn_match == -1) == 64


def test_load_image_gt_shapes(config, shapes):
    image, meta, class_ids, boxes, masks = data.load_image_gt(shapes, config, 3)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert masks.shape == (56, 56, len(class_ids)) and masks.dtype == bool
    full_masks = shapes.load_mask(3)[0]
    np.testing.assert_array_equal(boxes, utils.extract_bboxes(full_masks))
    assert np.all((class_ids >= 1) & (class_ids <= 3))
    parsed = data.parse_image_meta(meta)
    assert parsed["image_id"] == 3 and parsed["active_class_ids"].tolist() == [1, 1, 1, 1]
    _, _, _, _, full = data.load_image_gt(shapes, config, 3, use_mini_mask=False)
    np.testing.assert_array_equal(full, full_masks)


class FlakyDataset(ShapesDataset):
    """Shapes with hooks to return broken or empty ground truth."""
    mode = "ok"

    def load_mask(self, image_id):
        mask, class_ids = super().load_mask(image_id)
        if self.mode == "empty":
            return np.zeros((128, 128, 0), bool), np.zeros(0, np.int32)
        if self.mode == "default":
            return Dataset.load_mask(self, image_id)
        if self.mode == "small_mask":
            return mask[:100], class_ids
        if self.mode == "ids":
            return mask, class_ids[:-1]
        return mask, class_ids


@pytest.fixture
def flaky():
    ds = FlakyDataset()
    ds.load_shapes(4, 128, 128, seed=1)
    ds.prepare()
    return ds


@pytest.mark.parametrize("mode", ["empty", "default"])
def test_images_without_instances_are_valid(config, flaky, mode):
    flaky.mode = mode
    image, meta, class_ids, boxes, masks = data.load_image_gt(flaky, config, 0)
    assert image.shape == (128, 128, 3)
    assert class_ids.shape == (0,) and boxes.shape == (0, 4) and masks.shape == (56, 56, 0)
    batch = next(iter(data.build_input_pipeline(flaky, config, seed=0)))
    assert np.all(batch["input_gt_class_ids"].numpy() == 0)
    assert np.all(np.sum(batch["input_rpn_match"].numpy() == -1, axis=(1, 2)) == 64)


@pytest.mark.parametrize("mode, message", [
    ("small_mask", r"image id 2 .*mask shape \(100, 128, \d\) does not match image"),
    ("ids", r"image id 2 .*returned \d masks but \d class ids"),
])
def test_malformed_ground_truth_names_the_image(config, flaky, mode, message):
    flaky.mode = mode
    with pytest.raises(ValueError, match=message):
        data.load_image_gt(flaky, config, 2)


def test_class_count_mismatch_is_reported(shapes):
    wrong = type("Wrong", (TinyConfig,), {"NUM_CLASSES": 3})()
    with pytest.raises(ValueError,
                       match=r"dataset has 4 classes \(background included\) but config\."
                             r"NUM_CLASSES is 3"):
        data.load_image_gt(shapes, wrong, 0)


def test_albumentations_masks_follow_geometry_only(config, shapes):
    import albumentations as A
    image, _, class_ids, boxes, masks = data.load_image_gt(shapes, config, 1,
                                                           use_mini_mask=False)
    flip = A.Compose([A.HorizontalFlip(p=1.0)])
    flipped, _, ids_f, boxes_f, masks_f = data.load_image_gt(
        shapes, config, 1, augmentation=flip, use_mini_mask=False)
    np.testing.assert_array_equal(flipped, image[:, ::-1])
    np.testing.assert_array_equal(masks_f, masks[:, ::-1])
    np.testing.assert_array_equal(boxes_f[:, [1, 3]], 128 - boxes[:, [3, 1]])
    color = A.Compose([A.RandomBrightnessContrast(brightness_limit=(0.3, 0.3), p=1.0)])
    bright, _, _, _, masks_c = data.load_image_gt(shapes, config, 1, augmentation=color,
                                                  use_mini_mask=False)
    assert not np.array_equal(bright, image)
    np.testing.assert_array_equal(masks_c, masks)


class FakeImgaugFlip:
    """Minimal object with imgaug's interface: flips left-right, then adds a color shift.

    Like imgaug with HooksImages, it applies only the geometric step to masks (it is told it is
    augmenting a mask by the hooks argument, which mrcnn always passes for masks).
    """
    seeds = []

    def seed_(self, seed):
        self.seeds.append(seed)

    def to_deterministic(self):
        return self

    def augment_image(self, image, hooks="image"):
        out = image[:, ::-1]
        if hooks == "image":
            out = np.clip(out.astype(int) + 10, 0, 255).astype(image.dtype)
        return out


def test_imgaug_style_augmenter(config, shapes):
    image, _, _, _, masks = data.load_image_gt(shapes, config, 2, use_mini_mask=False)
    aug = FakeImgaugFlip()
    out, _, _, _, masks_a = data.load_image_gt(shapes, config, 2, augmentation=aug,
                                               use_mini_mask=False,
                                               rng=np.random.default_rng(4))
    np.testing.assert_array_equal(masks_a, masks[:, ::-1])
    np.testing.assert_array_equal(out, np.clip(image[:, ::-1].astype(int) + 10, 0, 255))
    assert len(aug.seeds) == 1


def _batches(ds, n=2):
    it = iter(ds)
    return [{k: v.numpy() for k, v in next(it).items()} for _ in range(n)]


def test_pipeline_batches_and_determinism(config, shapes):
    import albumentations as A
    aug = A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.5)])
    a = _batches(data.build_input_pipeline(shapes, config, augmentation=aug, seed=3,
                                           num_parallel_calls=1), n=3)
    b = _batches(data.build_input_pipeline(shapes, config, augmentation=aug, seed=3,
                                           num_parallel_calls=4), n=3)
    c = _batches(data.build_input_pipeline(shapes, config, augmentation=aug, seed=4), n=3)
    batch = a[0]
    assert list(batch) == list(data.INPUT_NAMES)
    num_anchors = utils.get_anchors(config, (128, 128)).shape[0]
    assert batch["input_image"].shape == (2, 128, 128, 3)
    assert batch["input_image_meta"].shape == (2, config.IMAGE_META_SIZE)
    assert batch["input_rpn_match"].shape == (2, num_anchors, 1)
    assert batch["input_rpn_bbox"].shape == (2, 64, 4)
    assert batch["input_gt_class_ids"].shape == (2, 5)
    assert batch["input_gt_boxes"].shape == (2, 5, 4)
    assert batch["input_gt_masks"].shape == (2, 56, 56, 5)
    assert batch["input_gt_masks"].dtype == bool
    for x, y in zip(a, b):
        for name in data.INPUT_NAMES:
            np.testing.assert_array_equal(x[name], y[name])
    assert any(not np.array_equal(x["input_image"], y["input_image"]) for x, y in zip(a, c))
    # Shuffled epochs: 3 batches of 2 from 12 images visit 6 distinct images.
    ids = np.concatenate([x["input_image_meta"][:, 0] for x in a])
    assert len(set(ids.tolist())) == 6


def test_pipeline_runs_without_tf_data_autotuning(config, shapes, monkeypatch):
    """Keras deletes the validation iterator at every evaluation; with tf.data's autotuning on,
    a deletion could stall for seconds (docs/BENCHMARKS.md), so it is off and the number of
    parallel calls is fixed: the cores this process may use, at least one."""
    import os
    ds = data.build_input_pipeline(shapes, config, seed=5)
    assert ds.options().autotune.enabled is False
    # The pipeline before issue 11, kept for the benchmarks that compare with it.
    before = data.build_input_pipeline(shapes, config, seed=5, tf_data_autotune=True)
    assert before.options().autotune.enabled is True
    assert data.default_parallel_calls() == len(os.sched_getaffinity(0))
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert data.default_parallel_calls() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert data.default_parallel_calls() == 6


def test_pipeline_single_pass_visits_every_image_once(config, shapes):
    ds = data.build_input_pipeline(shapes, config, shuffle=False, repeat=False, seed=0)
    metas = np.concatenate([b["input_image_meta"].numpy() for b in ds])
    assert metas[:, 0].tolist() == list(range(12))
    image, *_ = data.load_image_gt(shapes, config, 0)
    first = next(iter(ds))["input_image"].numpy()[0]
    np.testing.assert_allclose(first, data.mold_image(image, config))


def test_pipeline_rejects_unbatchable_mode(shapes):
    pad = type("Pad", (TinyConfig,), {"IMAGE_RESIZE_MODE": "pad64"})()
    with pytest.raises(ValueError, match="cannot be batched"):
        data.build_input_pipeline(shapes, pad)
    one = type("Pad1", (TinyConfig,), {"IMAGE_RESIZE_MODE": "pad64", "IMAGES_PER_GPU": 1})()
    batch = next(iter(data.build_input_pipeline(shapes, one, seed=0)))
    assert batch["input_image"].shape == (1, 128, 128, 3)


def test_data_generator_yields_matterport_lists(config, shapes):
    inputs, outputs = next(data.data_generator(shapes, config, seed=1))
    assert len(inputs) == 7 and outputs == [] and inputs[0].shape == (2, 128, 128, 3)
