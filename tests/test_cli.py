"""``python -m mrcnn``: the data file, each command end to end on generated data, and the errors
of bad data files.

Every format's fixture is the tiny dataset of ``examples/make_examples.py`` written in its real
layout: 64x64 images with known rectangles (class "box") and, except in the one-class
mask-folder formats, ellipses ("disc"). Training runs one step of the tiny config
(``tiny:TinyConfig`` named in the data file).
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import skimage.io

from mrcnn import cli
from mrcnn.data import datafile
from mrcnn.engine import recipes
from mrcnn import model as modellib
from mrcnn.data.images import read_rgb
from examples import make_examples
from examples.make_examples import ONE_CLASS_FORMATS, SIZE, objects_of, write_json

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "examples")


def write_data(root, fmt, extension=".yaml", **extra):
    """``make_examples.write_data`` with the tiny config unless ``extra`` names one."""
    return make_examples.write_data(root, fmt, extension, **{"config": "tiny:TinyConfig",
                                                             **extra})


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the network."""
    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


############################################################
#  Data files and inspect, in every format
############################################################

@pytest.mark.parametrize("fmt", datafile.FORMATS)
def test_inspect_reads_every_format(fmt, tmp_path, capsys):
    path = write_data(tmp_path / "data", fmt, extension=".json" if fmt == "via" else ".yaml")
    report = cli.run(["inspect", path, "--out", str(tmp_path / "report")])
    # The command shows what it loads; loading a split shows a progress bar over its images.
    out = capsys.readouterr().out
    assert "Loading train ({}): ".format(fmt) in out and "Loading val ({}): ".format(fmt) in out
    datafile.read(path).load("train", verbose=1)
    assert "3/3" in capsys.readouterr().out
    datafile.read(path).load("train")
    assert capsys.readouterr().out == ""
    # The one-class mask-folder formats name their class "object".
    expected_names = ["object"] if fmt in ONE_CLASS_FORMATS else ["box", "disc"]
    for split in ("train", "val"):
        objects = objects_of(fmt, split)
        facts = report["splits"][split]
        assert facts["images"] == len(objects)
        assert facts["class_names"] == expected_names
        counts = [sum(o[0] == name or fmt in ONE_CLASS_FORMATS for image in objects
                      for o in image) for name in expected_names]
        assert facts["class_counts"] == counts
    # 64x64 images in TinyConfig's 64x64 square: scale 1, so each side is the drawn box's
    # (the ellipses' boxes within 2 px of theirs).
    drawn = sorted(np.sqrt((b[2] - b[0]) * (b[3] - b[1]))
                   for image in objects_of(fmt, "train") for _, b in image)
    np.testing.assert_allclose(sorted(report["splits"]["train"]["object_sides"]), drawn,
                               atol=2.0)
    assert os.path.getsize(tmp_path / "report" / "report.png") > 10_000
    text = (tmp_path / "report" / "report.txt").read_text()
    assert "Anchor coverage" in text and "MEAN_PIXEL" in text


def test_data_file_classes_and_overrides(tmp_path):
    path = write_data(tmp_path, "via", classes=["disc", "box"],
                      overrides={"IMAGE_MAX_DIM": 128, "RPN_ANCHOR_SCALES": [4, 8, 16, 32, 64]})
    data = datafile.read(path)
    train = data.load("train")
    assert train.class_names == ["BG", "disc", "box"]
    config = data.config_class(train.num_classes, {"DETECTION_MIN_CONFIDENCE": 0.2})()
    assert (config.NUM_CLASSES, config.IMAGE_MAX_DIM, config.NAME) == (3, 128, "tiny")
    assert list(config.RPN_ANCHOR_SCALES) == [4, 8, 16, 32, 64]
    assert config.DETECTION_MIN_CONFIDENCE == 0.2
    # COCO: the named categories, in the file's order of names.
    coco_path = write_data(tmp_path / "coco", "coco", classes=["disc"])
    coco_train = datafile.read(coco_path).load("train")
    assert coco_train.class_names == ["BG", "disc"] and coco_train.num_images == 2


############################################################
#  Bad data files
############################################################

def edit_data(path, **changes):
    import yaml
    with open(path) as f:
        content = yaml.safe_load(f)
    for key, value in changes.items():
        if value is None:
            content.pop(key, None)
        else:
            content[key] = value
    with open(path, "w") as f:
        yaml.safe_dump(content, f)
    return path


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_cli")
    write_data(root, "coco")
    return root


@pytest.mark.parametrize("changes,key,message", [
    ({"format": "pascal"}, "format", "unknown format 'pascal'"),
    ({"trian": {"images": "x"}}, "trian", "unknown key"),
    ({"train": None}, "train", "missing"),
    ({"train": {"annotations": "train/missing.json", "images": "train/images"}},
     "train.annotations", "no such file"),
    ({"train": {"annotations": "train/instances.json", "images": "train/nowhere"}},
     "train.images", "no such folder"),
    ({"train": {"annotations": "train/instances.json"}}, "train.images", "missing"),
    ({"train": {"annotations": "train/instances.json", "images": "train/images",
                "labels": "x"}}, "train.labels", "unknown key for format coco"),
    ({"overrides": {"IMAGE_MAX_SIZE": 512}}, "overrides.IMAGE_MAX_SIZE",
     "not a Config attribute"),
    ({"classes": "box"}, "classes", "list of distinct class names"),
    ({"config": "nomodule"}, "config", "package.module:ConfigClass"),
    # The run name names checkpoints that checkpoints.CHECKPOINT_RE must parse back.
    ({"name": "my cells"}, "name", "the run name 'my cells': a run name has letters, "
                                   "digits, '_' and '-' only"),
    ({"name": "cellules_é"}, "name", "letters, digits"),
    ({"classes": ["box", "truck"]}, "train", "classes \\['truck'\\] are not categories"),
])
def test_bad_data_file_names_the_file_and_key(coco_root, tmp_path, changes, key, message,
                                              capsys):
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(coco_root, root)
    path = edit_data(str(root / "data.yaml"), **changes)
    with pytest.raises(datafile.DataFileError) as error:
        data = datafile.read(path)
        data.config_class(3)          # the config class is imported here
        data.load("train")
    text = str(error.value)
    assert text.startswith(path + ": " + key + ": "), text
    assert __import__("re").search(message, text), text
    # The command line prints it as one line, exit status 2.
    assert cli.main(["inspect", path, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == "error: " + text


def test_malformed_annotation_file_names_the_split(coco_root, tmp_path):
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(coco_root, root)
    (root / "train" / "instances.json").write_text("[]")
    with pytest.raises(datafile.DataFileError, match="data.yaml: train: .*instances.json"):
        datafile.read(str(root / "data.yaml")).load("train")
    (root / "train" / "instances.json").write_text("{not json")
    with pytest.raises(datafile.DataFileError, match="data.yaml: train: .*instances.json"):
        datafile.read(str(root / "data.yaml")).load("train")


def test_unreadable_data_files(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("format: coco\ntrain: [unclosed\n")
    with pytest.raises(datafile.DataFileError, match="bad.yaml: not valid YAML"):
        datafile.read(str(bad_yaml))
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(datafile.DataFileError, match="list.json: the file should hold a "
                                                      "mapping"):
        datafile.read(str(listing))
    with pytest.raises(datafile.DataFileError, match="data.txt: a data file is .yaml"):
        (tmp_path / "data.txt").write_text("format: coco")
        datafile.read(str(tmp_path / "data.txt"))
    assert cli.main(["inspect", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: no such data file" in capsys.readouterr().err


def test_via_with_several_classes_needs_the_class_attribute(tmp_path):
    path = write_data(tmp_path, "via", classes=["box", "disc"])
    edit_data(path, train={"annotations": "train/via.json", "images": "train/images"})
    with pytest.raises(datafile.DataFileError, match="data.yaml: train.class_attribute: "
                                                      "missing: with several classes"):
        datafile.read(path)


def test_val_classes_must_match_train(tmp_path):
    path = write_data(tmp_path, "labelme")
    # A val split whose only label is another class than train's.
    val_json = os.path.join(str(tmp_path), "val", "labelme", "val_0.json")
    with open(val_json) as f:
        content = json.load(f)
    content["shapes"][0]["label"] = "truck"
    write_json(val_json, content)
    data = datafile.read(path)
    train = data.load("train")
    with pytest.raises(datafile.DataFileError, match="data.yaml: val: .*unknown label 'truck'"):
        data.load("val", train.class_names[1:])


def test_bad_command_lines(coco_root, tmp_path, capsys, monkeypatch):
    path = str(coco_root / "data.yaml")
    # The COCO weights are looked for (and downloaded) under tmp_path only.
    monkeypatch.setenv("MRCNN_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setattr("mrcnn.utils.CHECKOUT_DIR", str(tmp_path / "checkout"))
    monkeypatch.chdir(tmp_path)
    logs = ["--logs", str(tmp_path / "logs")]
    assert cli.main(["evaluate", path, "--weights", "torchvision"] + logs) == 2
    assert "no mask_rcnn_torchvision_coco.h5" in capsys.readouterr().err
    assert cli.main(["evaluate", path, "--weights", "last"] + logs) == 2
    assert "--weights last: no checkpoint of 'tiny'" in capsys.readouterr().err
    assert cli.main(["evaluate", path, "--weights", "nowhere.h5"] + logs) == 2
    assert "--weights nowhere.h5: no such file" in capsys.readouterr().err
    assert cli.main(["inspect", path, "--set", "IMAGE_MAX_DIM"] + logs) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err
    assert cli.main(["inspect", path, "--set", "BATCH_SIZE=4"] + logs) == 2
    assert "--set BATCH_SIZE: not a Config attribute" in capsys.readouterr().err
    assert cli.main(["detect", path, "--weights", "none", str(tmp_path / "none")] + logs) == 2
    assert "no such file or folder" in capsys.readouterr().err
    # Offline, the COCO weights cannot be downloaded: one line, nothing left behind.
    assert cli.main(["train", path, "--weights", "coco", "--no-data-defaults"] + logs) == 2
    assert "could not download https://github.com/matterport/" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "logs" / "mask_rcnn_coco.h5")
    assert os.listdir(tmp_path / "weights") == []         # the download went there, and failed
    with pytest.raises(SystemExit) as exit_info:      # argparse's usage error
        cli.main(["train", path, "--weights", "none", "--steps", "0"] + logs)
    assert exit_info.value.code == 2
    assert "--steps: must be at least 1, got 0" in capsys.readouterr().err
    # Options that would be ignored or misread are refused by the parser.
    for argv, problem in [
            (["detect", path, "--weights", "none", path, "--overlap", "16"],
             "--overlap applies to --tiles only"),
            (["evaluate", path, "--weights", "none", "--limit", "-1"],
             "argument --limit: must be at least 0, got -1"),
            (["inspect", path, "--limit", "-2"], "argument --limit: must be at least 0"),
            (["train", path, "--weights", "none", "--validation-steps", "-1"],
             "argument --validation-steps: must be at least 0, got -1")]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv + logs)
        assert exit_info.value.code == 2
        assert problem in capsys.readouterr().err


############################################################
#  train, evaluate, detect, export end to end
############################################################

@pytest.fixture(scope="module")
def trained(coco_root, tmp_path_factory):
    """One training step from random weights, a run of two epochs killed after its first
    checkpoint (as an interrupted run): (data file, logs, checkpoint). The run sets
    DETECTION_MIN_CONFIDENCE=0.9, which the inference commands' own --set overrides."""
    from mrcnn.engine import checkpoints

    logs = str(tmp_path_factory.mktemp("cli_logs"))
    path = str(coco_root / "data.yaml")
    save = checkpoints.CheckpointCallback.on_epoch_end

    def save_then_stop(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KeyboardInterrupt("killed after the first checkpoint")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints.CheckpointCallback, "on_epoch_end", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            cli.run(["train", path, "--weights", "none", "--epochs", "2", "--steps", "1",
                     "--set", "VALIDATION_STEPS=1", "--set", "DETECTION_MIN_CONFIDENCE=0.9",
                     "--logs", logs])
    return path, logs, checkpoints.find_last(logs, "tiny")


def test_train_from_scratch_writes_a_run(trained):
    path, logs, checkpoint = trained
    assert os.path.basename(checkpoint) == "mask_rcnn_tiny_0001.h5"
    with open(os.path.join(os.path.dirname(checkpoint), recipes.RUN_SETTINGS)) as f:
        run = json.load(f)
    assert run["data"] == os.path.abspath(path)
    assert run["recipe"] == recipes.SCRATCH
    attributes = run["attributes"]
    assert (attributes["NORM"], attributes["OPTIMIZER"], attributes["LR_SCHEDULE"]) == (
        "group", "adam", "cosine")
    assert (attributes["STEPS_PER_EPOCH"], attributes["WARMUP_STEPS"]) == (1, 1)
    assert (attributes["ROI_ALIGN_SAMPLING_RATIO"], attributes["ROI_ALIGN_ALIGNED"]) == (2, True)
    assert attributes["DETECTION_MIN_CONFIDENCE"] == 0.9
    # Defaults from the data: the training images' mean (TinyConfig keeps Config's); the
    # anchor scales TinyConfig sets itself are kept.
    train = datafile.read(path).load("train")
    mean = np.mean([train.load_image(i).reshape(-1, 3) for i in train.image_ids], axis=(0, 1))
    np.testing.assert_allclose(attributes["MEAN_PIXEL"], mean, atol=0.05)
    assert "RPN_ANCHOR_SCALES" not in attributes


def test_inference_uses_this_commands_set_over_the_runs(trained):
    # The run trained with --set DETECTION_MIN_CONFIDENCE=0.9 (recorded in run_config.json):
    # evaluate/detect/export take it back, but their own --set and one image per batch win.
    path, logs, checkpoint = trained
    data = datafile.read(path)
    for extra, confidence in (["--set", "DETECTION_MIN_CONFIDENCE=0"], 0), ([], 0.9):
        args = cli.build_parser().parse_args(["detect", path, path, "--weights", "last",
                                              "--logs", logs] + extra)
        model = cli.inference_model(args, data)[0]
        config = model.config
        assert config.DETECTION_MIN_CONFIDENCE == confidence
        assert (config.NORM, config.GPU_COUNT, config.IMAGES_PER_GPU) == ("group", 1, 1)
        # The recipe's RoIAlign has no weights, so only the recorded settings bring it back.
        for name in ("roi_align_classifier", "roi_align_mask"):
            layer = model.keras_model.get_layer(name).get_config()
            assert (layer["sampling_ratio"], layer["aligned"]) == (2, True)


def evaluate_val(path, common, out):
    """``evaluate`` on the fixture's 2 val images with one picture: checks the summary's AP
    and the picture, returns the summary."""
    summary = cli.run(["evaluate", path, "--out", str(out), "--pictures", "1"] + common)
    assert summary["num_images"] == 2
    for iou_type in ("segm", "bbox"):
        assert 0.0 <= summary[iou_type]["AP"] <= 1.0
    assert os.path.isfile(os.path.join(str(out), "detections_0.png"))
    return summary


def test_evaluate_detect_export(trained, tmp_path):
    path, logs, checkpoint = trained
    common = ["--weights", "last", "--logs", logs, "--set", "DETECTION_MIN_CONFIDENCE=0"]
    # The run's GroupNorm comes back from run_config.json, or the checkpoint would not load:
    # written when training began, it is there although the run was interrupted.
    summary = evaluate_val(path, common, tmp_path / "eval")
    with open(tmp_path / "eval" / "metrics.json") as f:
        written = json.load(f)
    assert written["summary"]["num_images"] == 2
    assert len(written["detections"]) == summary["num_detections"]
    assert "AP50" in (tmp_path / "eval" / "metrics.txt").read_text()

    images = os.path.join(os.path.dirname(path), "val", "images")
    one = os.path.join(os.path.dirname(path), "train", "images", "train_0.png")
    cv2 = pytest.importorskip("cv2")
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 5, (SIZE, SIZE))
    for name in ("train_0.png", "train_1.png"):
        writer.write(read_rgb(os.path.join(os.path.dirname(one), name))[..., ::-1].copy())
    writer.release()
    # A 100 x 150 image in 64-px tiles (2 x 3); the 64 x 64 images are one tile each.
    large = str(tmp_path / "large.png")
    skimage.io.imsave(large, np.random.default_rng(0).integers(0, 255, (100, 150, 3),
                                                                dtype=np.uint8),
                      check_contrast=False)
    detections = cli.run(["detect", path, images, one, large, video, "--tiles", "--overlap",
                          "16", "--out", str(tmp_path / "det")] + common)
    from pycocotools.coco import COCO
    coco = COCO(detections)
    entries = [coco.imgs[i] for i in sorted(coco.imgs)]
    assert [e["file_name"] for e in entries] == [
        os.path.abspath(os.path.join(images, "val_0.png")),
        os.path.abspath(os.path.join(images, "val_1.png")), os.path.abspath(one), large,
        video + "#0", video + "#1"]
    assert [(e.get("video"), e.get("frame")) for e in entries[4:]] == [(video, 0), (video, 1)]
    assert (entries[3]["height"], entries[3]["width"]) == (100, 150)
    assert [c["name"] for c in coco.dataset["categories"]] == ["box", "disc"]
    assert sorted(os.listdir(tmp_path / "det")) == [
        "0001_val_0.png", "0002_val_1.png", "0003_train_0.png", "0004_large.png",
        "clip_detections.avi", "detections.json"]
    capture = cv2.VideoCapture(str(tmp_path / "det" / "clip_detections.avi"))
    written = 0
    while capture.read()[0]:
        written += 1
    capture.release()
    assert written == 2
    # The json holds what tiled detection gives on each image and detect() on each frame
    # (the model rebuilt as the command builds it), masks as COCO RLEs of the image size.
    from mrcnn.inference import tiling
    model = cli.inference_model(cli.build_parser().parse_args(
        ["detect", path, one] + common), datafile.read(path))[0]
    results = [tiling.detect_tiled(model, read_rgb(e["file_name"]), overlap=16)
               for e in entries[:4]]
    results += [model.detect([frame])[0] for frame in cli.video_frames(video)[2]]
    for entry, result in zip(entries, results):
        annotations = coco.imgToAnns[entry["id"]]
        assert [a["category_id"] for a in annotations] == result["class_ids"].tolist()
        np.testing.assert_allclose([a["score"] for a in annotations], result["scores"],
                                   rtol=1e-5)
        for annotation in annotations:
            assert annotation["segmentation"]["size"] == [entry["height"], entry["width"]]
    # Random-ish heads with DETECTION_MIN_CONFIDENCE 0 still detect: the comparison is not
    # of empty lists only.
    assert len(coco.dataset["annotations"]) > 0

    exported = cli.run(["export", path, "--out", str(tmp_path / "saved")] + common)
    import tensorflow as tf
    serving = tf.saved_model.load(exported).signatures["serving_default"]
    outputs = serving(image=tf.constant(read_rgb(one)))
    assert outputs["class_ids"].numpy().tolist() == model.detect(
        [read_rgb(one)])[0]["class_ids"].tolist()


def test_detect_streams_images_and_skips_an_unreadable_one(trained, tmp_path, capsys):
    # Without --tiles the images go through detect_iter: the same results as detect() on
    # each, and a corrupt file is named and skipped while the others are detected.
    path, logs, _ = trained
    common = ["--weights", "last", "--logs", logs, "--set", "DETECTION_MIN_CONFIDENCE=0"]
    folder = os.path.join(os.path.dirname(path), "train", "images")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    one, two = (os.path.join(folder, "train_{}.png".format(i)) for i in (0, 1))
    detections = cli.run(["detect", path, one, str(corrupt), two, "--out",
                          str(tmp_path / "det")] + common)
    assert "skipped: {}: cannot read".format(corrupt) in capsys.readouterr().err
    from pycocotools.coco import COCO
    coco = COCO(detections)
    entries = [coco.imgs[i] for i in sorted(coco.imgs)]
    assert [e["file_name"] for e in entries] == [one, two]
    assert sorted(os.listdir(tmp_path / "det")) == [
        "0001_train_0.png", "0002_train_1.png", "detections.json"]
    model = cli.inference_model(cli.build_parser().parse_args(
        ["detect", path, one] + common), datafile.read(path))[0]
    for entry in entries:
        expected = model.detect([read_rgb(entry["file_name"])])[0]
        annotations = coco.imgToAnns[entry["id"]]
        assert [a["category_id"] for a in annotations] == expected["class_ids"].tolist()
        np.testing.assert_allclose([a["score"] for a in annotations], expected["scores"],
                                   rtol=1e-5)


def test_resume_and_pretrained_schedules(trained, tmp_path, monkeypatch, capsys):
    """--weights last resumes a from-scratch run (interrupted after its first checkpoint)
    with its settings and every layer; a weights file without a run config trains the heads
    first, then everything, and takes no defaults from the data (they are printed)."""
    path, logs, checkpoint = trained
    calls = []

    def record(self, train_dataset, val_dataset, learning_rate, epochs, layers, **kwargs):
        calls.append((layers, epochs, self.config, self.epoch))
        self.epoch = epochs
    monkeypatch.setattr(modellib.MaskRCNN, "train", record)
    # The checkpoint (GroupNorm) loads for real: the run's settings rebuild its model.
    cli.run(["train", path, "--weights", "last", "--epochs", "3", "--logs", logs])
    assert [c[:2] for c in calls] == [("all", 3)]
    assert calls[0][3] == 1                                  # after the first checkpoint
    assert calls[0][2].NORM == "group" and calls[0][2].STEPS_PER_EPOCH == 1
    assert calls[0][2].DETECTION_MIN_CONFIDENCE == 0.9
    assert "Choosing defaults from the data" not in capsys.readouterr().out

    calls.clear()
    monkeypatch.setattr(modellib.MaskRCNN, "load_weights", lambda self, *a, **k: None)
    monkeypatch.setattr(modellib.MaskRCNN, "find_last", lambda self: checkpoint)
    pretrained = tmp_path / "pretrained.h5"
    pretrained.write_bytes(b"")
    cli.run(["train", path, "--weights", str(pretrained), "--epochs", "4", "--logs",
             str(tmp_path / "logs")])
    assert [c[:2] for c in calls] == [("heads", 2), ("all", 4)]
    assert calls[0][2].NORM == "batch"
    # Pretrained weights expect their own mean: the data's is advice only.
    assert list(calls[0][2].MEAN_PIXEL) == list(recipes.Config.MEAN_PIXEL)
    assert "Not applied with pretrained weights (to use them: --set MEAN_PIXEL=[" in \
        capsys.readouterr().out


def image_files(root):
    """Relative paths of the files under ``root``, sorted."""
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names)


def test_committed_examples_are_what_make_examples_writes(tmp_path):
    # examples/<format>/ are the data users try first: they must be what the script writes
    # (the images compared as pixels, PNG encoders differ) and read as a data file should.
    make_examples.write_examples(str(tmp_path))
    for fmt in datafile.FORMATS:
        written, committed = str(tmp_path / fmt), os.path.join(EXAMPLES_DIR, fmt)
        names = image_files(written)
        assert image_files(committed) == names, fmt
        for name in names:
            ours, theirs = os.path.join(written, name), os.path.join(committed, name)
            if name.endswith(".png"):
                np.testing.assert_array_equal(skimage.io.imread(ours),
                                              skimage.io.imread(theirs), err_msg=name)
            else:
                with open(ours) as a, open(theirs) as b:
                    assert a.read() == b.read(), name
        report = cli.run(["inspect", os.path.join(committed, "data.yaml"), "--out",
                          str(tmp_path / "report" / fmt)])
        assert [report["splits"][s]["images"] for s in ("train", "val")] == [3, 2]
        config = datafile.read(os.path.join(committed, "data.yaml")).config_class(3)()
        assert (config.IMAGE_MAX_DIM, config.BACKBONE) == (64, "resnet50")


def test_python_dash_m_mrcnn_help():
    result = subprocess.run([sys.executable, "-m", "mrcnn", "--help"], capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0
    for command in cli.COMMANDS:
        assert command in result.stdout
