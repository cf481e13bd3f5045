"""Bad input gets a clear error naming the image, file or argument; nothing is silently wrong;
no run overwrites another (issue 12). Export cases are in test_export.py."""

import datetime
import os
import re

import numpy as np
import pytest
import skimage.io

from mrcnn.engine import checkpoints
from mrcnn.data import pipeline as data
from mrcnn.evaluation import evaluate, metrics
from mrcnn import utils
from mrcnn import model as modellib
from mrcnn.data.dataset import Dataset
from mrcnn.data.images import check_image
from samples.shapes.shapes import ShapesDataset
from test_evaluate import BoxesDataset, FakeModel, result
from tiny import TinyConfig, shift_class_logits


class DetectConfig(TinyConfig):
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0


def _listing(directory):
    """Every path under ``directory``, relative, sorted."""
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, dirs, files in os.walk(directory) for name in dirs + files)


############################################################
#  Image dtypes and values (one shared check)
############################################################

def test_check_image_contract():
    u8 = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    assert check_image(u8, "x", 3) is u8
    small_ints = check_image(u8.astype(np.int64), "x", 3)
    assert small_ints.dtype == np.uint8
    np.testing.assert_array_equal(small_ints, u8)
    floats = u8.astype(np.float32) + 0.5
    assert check_image(floats, "x", 3) is floats
    # All zero reads the same on either scale: not ambiguous.
    check_image(np.zeros((2, 3, 3), np.float32), "x", 3)

    with pytest.warns(UserWarning, match=r"image 7: 16-bit image .* scaled to 0\.\.255 by "
                                         r"255/65535"):
        scaled = check_image(u8.astype(np.uint16) * 257, "image 7", 3)
    np.testing.assert_array_equal(scaled, u8)
    assert scaled.dtype == np.uint8
    # A signed type with values beyond 255 is scaled by the 16-bit range that holds them.
    with pytest.warns(UserWarning, match="16-bit"):
        np.testing.assert_array_equal(check_image(np.full((2, 2, 1), 1000, np.int32), "x"),
                                      np.full((2, 2, 1), round(1000 * 255 / 65535)))
    with pytest.warns(UserWarning, match=r"32-bit .* by 255/4294967295"):
        np.testing.assert_array_equal(
            check_image(np.full((1, 1, 1), 2 ** 32 - 1, np.uint32), "x"), [[[255]]])


@pytest.mark.parametrize("image, message", [
    (np.full((4, 4, 3), 0.5, np.float32), r"where: float image with values in \[0\.5, 0\.5\]: "
                                          r"images are 0\.\.255; .*multiply it by 255"),
    (np.ones((4, 4, 3)), "multiply it by 255"),
    (np.full((4, 4, 3), np.nan, np.float32), "where: the image holds NaN or infinite values"),
    (np.array([[[1.0, np.inf, 3.0]]]), "NaN or infinite"),
    (np.full((4, 4, 3), -20.0), r"outside 0\.\.255 \(pass the image itself, not a molded"),
    (np.full((4, 4, 3), 300.0), r"outside 0\.\.255"),
    (np.full((4, 4, 3), -1, np.int16), r"negative values \(min -1\)"),
    (np.zeros((4, 4, 3), bool), "integers or floats, got dtype bool"),
    (np.zeros((4, 4), np.uint8), r"shape \[height, width, 3\], got shape \(4, 4\)"),
    (np.zeros((4, 4, 4), np.uint8), r"shape \[height, width, 3\], got shape \(4, 4, 4\)"),
    (np.zeros((0, 4, 3), np.uint8), r"where: the image is empty \(shape \(0, 4, 3\)\)"),
])
def test_check_image_errors_name_the_image(image, message):
    with pytest.raises(ValueError, match=message):
        check_image(image, "where", 3)


def test_resize_image_refuses_an_empty_image():
    with pytest.raises(ValueError, match=r"resize_image: the image is empty \(shape \(0, 0, 3\)"):
        utils.resize_image(np.zeros((0, 0, 3), np.uint8), min_dim=64, max_dim=64)


@pytest.fixture(scope="module")
def detector():
    model = modellib.MaskRCNN("inference", DetectConfig(), "/tmp/unused")
    # Random heads mostly say background; favour class 1 so there is something to compare.
    shift_class_logits(model, [0, 3, 0, 0])
    return model


def test_detect_scales_a_16_bit_image_to_the_same_detections(detector):
    image = np.random.default_rng(3).integers(0, 256, (48, 56, 3), dtype=np.uint8)
    expected = detector.detect([image])[0]
    assert len(expected["class_ids"]) > 0
    with pytest.warns(UserWarning, match=r"detect\(\) image 1: 16-bit image"):
        got = detector.detect([image, image.astype(np.uint16) * 257])
    for r in got:
        np.testing.assert_array_equal(r["rois"], expected["rois"])
        np.testing.assert_array_equal(r["class_ids"], expected["class_ids"])
        np.testing.assert_allclose(r["scores"], expected["scores"], rtol=1e-6)
        np.testing.assert_array_equal(r["masks"], expected["masks"])


@pytest.mark.parametrize("bad, message", [
    (np.full((48, 56, 3), 0.5, np.float32), r"detect\(\) image 2: .*multiply it by 255"),
    (np.full((48, 56, 3), np.nan, np.float32), r"detect\(\) image 2: .*NaN"),
    (np.zeros((0, 56, 3), np.uint8), r"detect\(\) image 2: the image is empty"),
    (np.zeros((48, 56), np.uint8), r"detect\(\) image 2: expected .*\[height, width, 3\]"),
])
def test_detect_names_the_bad_image(detector, bad, message):
    good = np.zeros((48, 56, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        detector.detect([good, good, bad])


class ArrayDataset(ShapesDataset):
    """Shapes whose load_image returns a given array (a user's own load_image)."""

    image = None

    def load_image(self, image_id):
        return self.image


@pytest.fixture
def array_shapes():
    ds = ArrayDataset()
    ds.load_shapes(2, 64, 64, seed=1)
    ds.prepare()
    return ds


def test_training_data_is_checked_and_16_bit_scaled(tiny_config, array_shapes):
    original = ShapesDataset.load_image(array_shapes, 1)
    array_shapes.image = original
    expected = data.load_image_gt(array_shapes, tiny_config, 1, rng=np.random.default_rng(0))
    array_shapes.image = original.astype(np.uint16) * 257
    with pytest.warns(UserWarning, match=r"image id 1 .*16-bit"):
        got = data.load_image_gt(array_shapes, tiny_config, 1, rng=np.random.default_rng(0))
    assert got[0].dtype == np.uint8
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
    array_shapes.image = original / 255.0
    with pytest.raises(ValueError, match=r"image id 1 .*multiply it by 255"):
        data.load_image_gt(array_shapes, tiny_config, 1)
    array_shapes.image = np.full(original.shape, np.nan)
    with pytest.raises(ValueError, match=r"image id 1 .*NaN"):
        data.load_image_gt(array_shapes, tiny_config, 1)


def test_dataset_scales_a_16_bit_png(tmp_path):
    gray = np.arange(0, 65536, 257, dtype=np.uint16)[:240].reshape(12, 20)
    gray[0, 0] = 1000                              # not a multiple of 257: rounds
    path = tmp_path / "deep.png"
    skimage.io.imsave(path, gray, check_contrast=False)
    ds = Dataset()
    ds.add_class("files", 1, "thing")
    ds.add_image("files", image_id=0, path=str(path))
    ds.prepare()
    with pytest.warns(UserWarning, match=r"image id 0 \('.*deep\.png'\): 16-bit image"):
        image = ds.load_image(0)
    assert image.dtype == np.uint8 and image.shape == (12, 20, 3)
    expected = np.round(gray * (255 / 65535)).astype(np.uint8)
    assert expected[0, 0] == 4 and expected[0, 1] == 1
    np.testing.assert_array_equal(image[..., 0], expected)


def test_uint16_of_8_bit_values_is_taken_as_it_is():
    # Issue 27 case 11: scaled by 255/65535, such an image was near-black (no detections).
    u8 = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dtype in (np.uint16, np.uint32, np.int32):
            got = check_image(u8.astype(dtype), "x", 3)
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, u8)
    # Beyond 255 the 16-bit scaling stays, and the warning says how to scale otherwise.
    with pytest.warns(UserWarning, match=r"x: 16-bit image \(values up to 256\) scaled .*"
                                         r"convert it to uint8"):
        check_image(np.full((2, 2, 3), 256, np.uint16), "x", 3)


def test_16_bit_warning_once_per_dataset(tmp_path, tiny_config):
    # Issue 27: the warning repeated at every load of every image (every epoch).
    ds = Dataset()
    ds.add_class("files", 1, "thing")
    for i in range(3):
        path = tmp_path / "deep{}.png".format(i)
        skimage.io.imsave(path, np.full((12, 20), 300 * (i + 1), np.uint16),
                          check_contrast=False)
        ds.add_image("files", image_id=i, path=str(path))
    ds.prepare()
    with pytest.warns(UserWarning) as record:
        images = [ds.load_image(i) for i in (0, 1, 2, 0, 1)]
    messages = [str(w.message) for w in record if "16-bit" in str(w.message)]
    assert len(messages) == 1 and "image id 0" in messages[0]
    assert "further 16-bit images of this dataset are scaled the same way" in messages[0]
    assert [int(image[0, 0, 0]) for image in images] == [1, 2, 4, 1, 2]
    other = Dataset()                           # another dataset warns for itself
    other.add_class("files", 1, "thing")
    other.add_image("files", image_id=0, path=str(tmp_path / "deep2.png"))
    other.prepare()
    with pytest.warns(UserWarning, match="image id 0 .*deep2.png.*16-bit"):
        other.load_image(0)

    # A user's load_image returning 16-bit arrays: once per dataset in training too.
    class Deep(ArrayDataset):
        pass
    shapes = Deep()
    shapes.load_shapes(3, 64, 64, seed=1)
    shapes.prepare()
    shapes.image = ShapesDataset.load_image(shapes, 0).astype(np.uint16) * 257
    with pytest.warns(UserWarning) as record:
        for image_id in (0, 1, 2, 0):
            data.load_image_gt(shapes, tiny_config, image_id, rng=np.random.default_rng(0))
    assert sum("16-bit" in str(w.message) for w in record) == 1


class MixedSources(Dataset):
    """Images of two sources; load_mask returns ``ids`` as they are (no class map applied)."""

    ids = [1]

    def load_image(self, image_id):
        return np.zeros((64, 64, 3), np.uint8)

    def load_mask(self, image_id):
        mask = np.zeros((64, 64, len(self.ids)), bool)
        mask[10:30, 10:30] = True
        return mask, np.array(self.ids, np.int32)


def mixed_sources(class_map=None):
    ds = MixedSources()
    ds.add_class("coco", 1, "person")
    ds.add_class("coco", 3, "car")
    ds.add_class("balloon", 1, "balloon")
    ds.add_image("coco", image_id="c", path=None)
    ds.add_image("balloon", image_id="b", path=None)
    ds.prepare(class_map)
    return ds


def test_instances_of_another_sources_class_are_refused(tiny_config):
    # Issue 27 case 10: balloon is class 3 here; a load_mask that returns 1 (Matterport's
    # np.ones, or a class the class map does not map) trained the balloons as "person".
    ds = mixed_sources()
    assert ds.num_classes == tiny_config.NUM_CLASSES
    data.load_image_gt(ds, tiny_config, 0)          # coco image, class 1: its own source's
    with pytest.raises(ValueError, match=r"image id 1 .*: load_mask returned class ids \[1\] "
                                         r"that are not classes of the image's source "
                                         r"'balloon' \(its classes: \[3\]\); they would be "
                                         r"trained as 'person'.*map_source_class_id\('balloon"):
        data.load_image_gt(ds, tiny_config, 1)
    ds.ids = [-2, 3]                                # a crowd region of "car" counts too
    with pytest.raises(ValueError, match=r"class ids \[2\] .*trained as 'car'"):
        data.load_image_gt(ds, tiny_config, 1)
    # Mapped onto "person" by the class map, 1 is a class of the balloon source.
    merged = mixed_sources({"balloon.1": "coco.1"})
    assert merged.source_class_ids["balloon"] == [0, 1]
    config = type("Merged", (type(tiny_config),), {"NUM_CLASSES": merged.num_classes})()
    _, _, class_ids, _, _ = data.load_image_gt(merged, config, 1)
    np.testing.assert_array_equal(class_ids, [1])


############################################################
#  Training arguments and datasets
############################################################

@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("logs"))
    return modellib.MaskRCNN("training", TinyConfig(), model_dir)


@pytest.mark.parametrize("kwargs, message", [
    (dict(learning_rate=0.0), r"learning_rate must be a positive number, got 0\.0"),
    (dict(learning_rate=-0.01), "learning_rate must be a positive number, got -0.01"),
    (dict(learning_rate=float("nan")), "learning_rate must be a positive number, got nan"),
    (dict(layers="nothing_by_this_name.*"),
     r"layers='nothing_by_this_name\.\*' matches no layer with weights to train; use 'heads'"),
])
def test_bad_training_arguments_fail_before_writing(trainer, tiny_shapes, kwargs, message):
    arguments = dict(learning_rate=0.01, epochs=1, layers="heads")
    arguments.update(kwargs)
    before = _listing(trainer.model_dir)
    with pytest.raises(ValueError, match=message):
        trainer.train(tiny_shapes, tiny_shapes, **arguments)
    assert _listing(trainer.model_dir) == before


def test_epochs_not_beyond_the_resumed_epoch_fail_before_writing(trainer, tiny_shapes):
    run_dir = os.path.join(trainer.model_dir, "tiny20240102T0304")
    checkpoint = os.path.join(run_dir, "mask_rcnn_tiny_0003.h5")
    trainer.save_weights(checkpoint)
    trainer.load_weights(checkpoint)
    assert trainer.epoch == 3 and trainer.log_dir == run_dir
    before = _listing(trainer.model_dir)
    for epochs in (3, 2):
        with pytest.raises(ValueError, match=r"epochs={} is the epoch to train up to .* already "
                                             r"at epoch 3 \(.*tiny20240102T0304\); pass "
                                             r"epochs > 3".format(epochs)):
            trainer.train(tiny_shapes, tiny_shapes, 0.01, epochs, "heads")
    assert _listing(trainer.model_dir) == before


def test_empty_datasets_are_named(trainer, tiny_shapes):
    trainer.set_log_dir()
    empty = ShapesDataset()
    empty.load_shapes(0, 64, 64)
    empty.prepare()
    before = _listing(trainer.model_dir)
    with pytest.raises(ValueError, match="the train dataset has no images"):
        trainer.train(empty, tiny_shapes, 0.01, 1, "heads")
    with pytest.raises(ValueError, match="the validation dataset has no images"):
        trainer.train(tiny_shapes, empty, 0.01, 1, "heads")
    assert _listing(trainer.model_dir) == before


def test_prepare_rejects_an_image_of_a_source_without_classes():
    ds = Dataset()
    ds.add_class("shapes", 1, "square")
    ds.add_image("shapes", image_id="a", path=None)
    ds.add_image("other", image_id="b", path="b.png")
    with pytest.raises(ValueError, match=r"image 1 \(id 'b', source 'other'\): no class is "
                                         r"registered for its source; call "
                                         r"add_class\('other', \.\.\.\) \(sources with classes: "
                                         r"\['shapes'\]\)"):
        ds.prepare()


############################################################
#  Run directories
############################################################

def test_runs_of_the_same_minute_get_their_own_directories(tmp_path):
    now = datetime.datetime(2024, 5, 6, 7, 8, 30)
    model_dir = str(tmp_path)
    dirs = [checkpoints.new_run_dir(model_dir, "tiny", now) for _ in range(10)]
    names = [os.path.basename(d) for d in dirs]
    assert names == ["tiny20240506T0708"] + ["tiny20240506T0708_{}".format(n)
                                             for n in range(2, 11)]
    for d in dirs[:2]:
        for epoch in (1, 2):
            open(os.path.join(d, "mask_rcnn_tiny_{:04d}.h5".format(epoch)), "w").close()
    # The second run's newest checkpoint is the newest (empty later runs are skipped).
    assert checkpoints.find_last(model_dir, "tiny") == os.path.join(dirs[1],
                                                                    "mask_rcnn_tiny_0002.h5")
    # _10 sorts after _9 (not as text), and the next minute after every run of this one.
    open(os.path.join(dirs[9], "mask_rcnn_tiny_0001.h5"), "w").close()
    open(os.path.join(dirs[8], "mask_rcnn_tiny_0005.h5"), "w").close()
    assert checkpoints.find_last(model_dir, "tiny") == os.path.join(dirs[9],
                                                                    "mask_rcnn_tiny_0001.h5")
    later = checkpoints.new_run_dir(model_dir, "tiny", now + datetime.timedelta(minutes=1))
    open(os.path.join(later, "mask_rcnn_tiny_0001.h5"), "w").close()
    assert checkpoints.find_last(model_dir, "tiny") == os.path.join(later,
                                                                    "mask_rcnn_tiny_0001.h5")
    # A checkpoint of a suffixed run resumes in that run's directory.
    log_dir, pattern, epoch = checkpoints.run_paths(
        model_dir, "tiny", os.path.join(dirs[1], "mask_rcnn_tiny_0002.h5"))
    assert (log_dir, epoch) == (dirs[1], 2)
    assert pattern.format(epoch=3) == os.path.join(dirs[1], "mask_rcnn_tiny_0003.h5")


def test_training_paths_claim_a_run_directory_once(tmp_path):
    model_dir = str(tmp_path / "logs")
    provisional = os.path.join(model_dir, "tiny20240506T0708")
    log_dir, pattern = checkpoints.training_paths(model_dir, "tiny", provisional, False)
    assert os.path.isdir(log_dir) and os.path.dirname(log_dir) == model_dir
    assert pattern == checkpoints.checkpoint_pattern(log_dir, "tiny")
    # A claimed run (resumed, or trained before) keeps its directory and makes no other.
    assert checkpoints.training_paths(model_dir, "tiny", log_dir, True) == (log_dir, pattern)
    assert os.listdir(model_dir) == [os.path.basename(log_dir)]
    # A worker other than the chief writes in its own directory only.
    worker = str(tmp_path / "worker")
    assert checkpoints.training_paths(model_dir, "tiny", log_dir, True, worker) == (
        worker, checkpoints.checkpoint_pattern(worker, "tiny"))
    assert os.listdir(model_dir) == [os.path.basename(log_dir)]


class OneStepConfig(TinyConfig):
    STEPS_PER_EPOCH = 1


def test_a_run_of_the_same_minute_does_not_overwrite_and_resume_cleans_up(tmp_path,
                                                                          tiny_shapes):
    model_dir = str(tmp_path)
    model = modellib.MaskRCNN("training", OneStepConfig(), model_dir)
    assert os.listdir(model_dir) == []                      # claimed when training starts
    # Another run of this minute already holds the directory (and a checkpoint) model would
    # have taken in Matterport.
    other = model.log_dir
    os.makedirs(other)
    other_checkpoint = os.path.join(other, "mask_rcnn_tiny_0001.h5")
    open(other_checkpoint, "w").close()
    model.train(tiny_shapes, None, 0.01, 1, "heads", verbose=0)
    run = model.log_dir
    assert run != other
    if os.path.basename(run).startswith(os.path.basename(other)):   # still the same minute
        assert run == other + "_2"
    assert os.path.getsize(other_checkpoint) == 0
    newest = os.path.join(run, "mask_rcnn_tiny_0001.h5")
    assert os.path.getsize(newest) > 0
    assert model.find_last() == newest

    # Resuming continues in that run's directory and removes a stale temporary file.
    open(os.path.join(run, "tmpkilled.h5.tmp"), "w").close()
    resumed = modellib.MaskRCNN("training", OneStepConfig(), model_dir)
    resumed.load_weights(resumed.find_last())
    resumed.train(tiny_shapes, None, 0.01, 2, "heads", verbose=0)
    assert resumed.log_dir == run
    assert sorted(f for f in os.listdir(run) if "h5" in f) == [
        "mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_0002.h5"]
    assert sorted(os.listdir(model_dir)) == sorted(os.path.basename(d) for d in (other, run))


############################################################
#  Evaluation
############################################################

class NoDetect(FakeModel):
    def detect(self, images):
        raise AssertionError("detect() ran before results_path was checked")


@pytest.mark.parametrize("where", ["file_as_folder", "folder"])
def test_unwritable_results_path_fails_before_detection(tmp_path, where):
    dataset = BoxesDataset([[(1, 5, 5, 20, 20)]])
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_folder").mkdir()
    path = str(tmp_path / "a_file" / "eval.json") if where == "file_as_folder" else \
        str(tmp_path / "a_folder")
    with pytest.raises(OSError, match=re.escape("results_path '{}'".format(path))):
        evaluate.evaluate_coco(NoDetect([]), dataset, results_path=path, verbose=False)


def test_evaluate_coco_quiet_prints_nothing(tmp_path, capsys):
    dataset = BoxesDataset([[(1, 5, 5, 20, 20)], [(2, 10, 10, 30, 40)]])
    model = FakeModel([result(dataset, [(1, 0.9, 5, 5, 20, 20)]),
                       result(dataset, [(1, 0.8, 10, 10, 30, 40)])])
    summary = evaluate.evaluate_coco(model, dataset, verbose=False,
                                     results_path=str(tmp_path / "out" / "eval.json"))
    assert summary["num_detections"] == 2 and summary["bbox"]["AP"] > 0
    assert capsys.readouterr().out == ""
    assert os.path.exists(tmp_path / "out" / "eval.json")


############################################################
#  Matterport's compute_recall
############################################################

def matterport_compute_recall(pred_boxes, gt_boxes, iou):
    """Matterport's utils.compute_recall, verbatim."""
    overlaps = utils.compute_overlaps(pred_boxes, gt_boxes)
    iou_max = np.max(overlaps, axis=1)
    iou_argmax = np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    matched_gt_boxes = iou_argmax[positive_ids]
    recall = len(set(matched_gt_boxes)) / gt_boxes.shape[0]
    return recall, positive_ids


def test_compute_recall_is_matterports():
    # GT 1 lies inside GT 0; the one prediction is GT 0 exactly. Matterport counts GT 0 only
    # (it is the prediction's best match); the GT-side recall counts both (IoU 0.9 >= 0.5).
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [50, 50, 60, 60]])
    pred = np.array([[30, 30, 40, 40], [0, 0, 10, 10]])
    recall, ids = metrics.compute_recall(pred, gt, 0.5)
    assert recall == pytest.approx(1 / 3) and ids.tolist() == [1]     # prediction indices
    recall, ids = metrics.compute_gt_recall(pred, gt, 0.5)
    assert recall == pytest.approx(2 / 3) and ids.tolist() == [0, 1]  # GT indices
    assert utils.compute_recall is metrics.compute_recall
    assert utils.compute_gt_recall is metrics.compute_gt_recall

    rng = np.random.default_rng(0)
    for _ in range(20):
        corners = rng.integers(0, 40, (2, 9, 2))
        boxes = np.concatenate([corners.min(0), corners.max(0) + 1], axis=1)
        pred, gt = boxes[:rng.integers(1, 6)], boxes[4:]
        for iou in (0.3, 0.5):
            got, got_ids = metrics.compute_recall(pred, gt, iou)
            want, want_ids = matterport_compute_recall(pred, gt, iou)
            assert got == want
            np.testing.assert_array_equal(got_ids, want_ids)


def test_compute_recall_empty_inputs():
    boxes = np.array([[0, 0, 10, 10]])
    none = np.zeros((0, 4))
    for fn in (metrics.compute_recall, metrics.compute_gt_recall):
        recall, ids = fn(none, boxes, 0.5)
        assert recall == 0.0 and ids.shape == (0,)
        recall, ids = fn(boxes, none, 0.5)
        assert recall == 1.0 and ids.shape == (0,)
