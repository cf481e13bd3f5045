"""TFLite and ONNX exports, run without mrcnn, match model.detect (mrcnn.export.formats)."""

import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.export import command as export, formats as export_formats
from mrcnn.modeling import portable_ops
from mrcnn import model as modellib
from tiny import (NO_MRCNN_PREAMBLE, ExportConfig, TorchvisionSmallConfig, shift_class_logits,
                  spread_mask_logits)

RUNNER_FILE = os.path.join(os.path.dirname(export_formats.__file__), "runner.py")
# (format, runtime): LiteRT's standalone interpreter and TensorFlow's both run the .tflite.
TARGETS = [("tflite", "litert"), ("tflite", "tensorflow"), ("onnx", "onnxruntime")]
# Molded as-is (48x64, 64x40) and scaled (30x50 -> 38x64, 100x80 -> 64x51).
SHAPES = [(48, 64, 3), (64, 40, 3), (30, 50, 3), (100, 80, 3)]


# Runs one exported model on a batch of images in a process where importing mrcnn fails: the
# runner file is loaded by path, as a deployment that copied it would.
SERVE = NO_MRCNN_PREAMBLE + textwrap.dedent('''
    import importlib.util

    import numpy as np
    runner_file, model_path, runtime, images_file, out_file = sys.argv[1:6]
    spec = importlib.util.spec_from_file_location("export_runner", runner_file)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    model = runner.ExportedModel(model_path, runtime=runtime)
    images = np.load(images_file)
    out = {}
    for i in range(len(images.files)):
        for key, value in model.detect(images["image{}".format(i)]).items():
            out["{}_{}".format(key, i)] = value
    np.savez(out_file, **out)
    assert not any(m == "mrcnn" or m.startswith("mrcnn.") for m in sys.modules)
''')


def biased_model(bias, kernel_scale, config=None):
    """A tiny random model whose class logits get ``bias`` and a kernel scaled by
    ``kernel_scale``: random heads mostly say background, so favour a class to have detections
    (or background to have none); a small kernel keeps the scores apart (saturated scores tie,
    and ties may come out in any order)."""
    # Seeded weights: each run then compares the same detections, and a near-tie between
    # two graphs' rounding (one CI run: 57 detections from LiteRT against detect()'s 56) shows
    # on every run of a machine instead of now and then.
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("inference", config or ExportConfig(), "/tmp/unused")
    shift_class_logits(model, bias, kernel_scale)
    # Small box deltas: random ones throw boxes far past the window, where clipping makes
    # slivers whose zero or 1e-7 width (float noise between two graphs) decides NMS.
    for layer in (model.keras_model.get_layer("rpn_model").get_layer("rpn_bbox_pred"),
                  model.keras_model.get_layer("mrcnn_bbox_fc")):
        layer.set_weights([w * 0.1 for w in layer.get_weights()])
    # Saturated mask cells: one CI CPU flipped pasted pixels of a random head's near-0.5
    # probabilities between ONNX Runtime and detect() (IoU 0.95 on a 5-pixel-high mask).
    spread_mask_logits(model, 100.0)
    return model


def images_for(shapes):
    return [np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
            for shape in shapes]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{(name, format): path} for a model with detections ("full") and one without
    ("empty"), each exported once per format, plus the models."""
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ai_edge_litert")
    root = tmp_path_factory.mktemp("formats")
    # "empty": every RoI background, whatever the image.
    models = {"full": biased_model([0, 3, 0, 0], 0.05), "empty": biased_model([10, 0, 0, 0], 0)}
    paths = {}
    for name, model in models.items():
        for fmt in ("tflite", "onnx"):
            paths[name, fmt] = model.export(str(root / "{}.{}".format(name, fmt)), format=fmt)
    return models, paths


def run_without_mrcnn(path, runtime, images, tmp_path):
    """The runner's detect() on each image, in a subprocess that cannot import mrcnn.

    runtime "tensorflow" runs in this process instead: TensorFlow is slow to import, and the
    other runtimes already show that the runner needs no mrcnn.
    """
    if runtime == "tensorflow":
        from mrcnn.export.runner import ExportedModel
        with warnings.catch_warnings():     # "tf.lite.Interpreter is deprecated"
            warnings.simplefilter("ignore", UserWarning)
            model = ExportedModel(path, runtime=runtime)
        return [model.detect(image) for image in images]
    images_file, out_file = tmp_path / "images.npz", tmp_path / "out.npz"
    np.savez(images_file, **{"image{}".format(i): image for i, image in enumerate(images)})
    script = tmp_path / "serve.py"
    script.write_text(SERVE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, str(script), RUNNER_FILE, path, runtime, str(images_file),
                    str(out_file)], check=True, cwd=tmp_path, env=env, capture_output=True,
                   timeout=300)
    out = np.load(out_file)
    return [{key: out["{}_{}".format(key, i)] for key in ("boxes", "class_ids", "scores",
                                                          "masks")}
            for i in range(len(images))]


def canonical_order(boxes, class_ids):
    """Detection indices sorted by class, then box corners.

    Both lists come sorted by score, and two detections whose scores differ in the sixth digit
    swap places between graphs that round differently (LiteRT's did, on an AVX2-only EPYC).
    NMS leaves no two detections of one class with the same box, so this order is unique.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    return np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], class_ids))


def assert_same_detections(served, expected):
    """The same detections (boxes, classes, scores, masks), in either score order."""
    assert len(served["class_ids"]) == len(expected["class_ids"])
    s = canonical_order(served["boxes"], served["class_ids"])
    e = canonical_order(expected["rois"], expected["class_ids"])
    np.testing.assert_array_equal(served["boxes"][s], expected["rois"][e])
    np.testing.assert_array_equal(served["class_ids"][s], expected["class_ids"][e])
    np.testing.assert_allclose(served["scores"][s], expected["scores"][e], rtol=1e-4,
                               atol=1e-5)
    # Still sorted by score, ties aside.
    assert np.all(np.diff(served["scores"]) <= 1e-5)
    assert served["masks"].shape == expected["masks"].shape
    assert served["masks"].dtype == bool
    for i, j in zip(s, e):
        a, b = served["masks"][..., i], expected["masks"][..., j]
        union = np.logical_or(a, b).sum()
        iou = np.logical_and(a, b).sum() / union if union else 1.0
        assert iou > 0.99, "mask {}: IoU {:.4f}".format(i, iou)


@pytest.mark.parametrize("fmt, runtime", TARGETS)
def test_export_matches_detect_without_mrcnn(exports, tmp_path, fmt, runtime):
    models, paths = exports
    images = images_for(SHAPES)
    expected = models["full"].detect(images)
    assert sum(len(e["class_ids"]) > 0 for e in expected) >= 2
    served = run_without_mrcnn(paths["full", fmt], runtime, images, tmp_path)
    for shape, got, want in zip(SHAPES, served, expected):
        try:
            assert_same_detections(got, want)
        except AssertionError as e:
            raise AssertionError("image {}: {}\nscores {} vs detect() {}".format(
                shape, e, got["scores"], want["scores"])) from e


@pytest.mark.parametrize("fmt, runtime", [TARGETS[0], TARGETS[2]])
def test_export_without_detections_returns_empty_results(exports, tmp_path, fmt, runtime):
    models, paths = exports
    images = images_for([(48, 64, 3)])
    expected = models["empty"].detect(images)[0]
    assert expected["rois"].shape == (0, 4) and expected["masks"].shape == (48, 64, 0)
    served = run_without_mrcnn(paths["empty", fmt], runtime, images, tmp_path)[0]
    for name, key in (("boxes", "rois"), ("class_ids", "class_ids"), ("scores", "scores"),
                      ("masks", "masks")):
        assert served[name].shape == expected[key].shape, name
        assert served[name].dtype == expected[key].dtype, name


def test_tflite_uses_builtin_ops_only(exports):
    """No Flex (SELECT_TF_OPS) op: LiteRT's standalone interpreter runs it (the test above)
    and the flatbuffer names no Flex op."""
    _, paths = exports
    with open(paths["full", "tflite"], "rb") as f:
        assert b"Flex" not in f.read()
    with open(paths["full", "tflite"] + ".json") as f:
        metadata = json.load(f)
    assert metadata["image_size"] == ExportConfig.IMAGE_MAX_DIM
    assert metadata["format"] == "tflite"


def test_quantized_tflite(exports, tmp_path):
    """quantize="dynamic": int8 weights (a smaller file), the same outputs' structure."""
    from mrcnn.export.runner import ExportedModel
    models, paths = exports
    out = models["full"].export(str(tmp_path / "quantized.tflite"), format="tflite",
                                quantize="dynamic")
    assert os.path.getsize(out) < 0.5 * os.path.getsize(paths["full", "tflite"])
    result = ExportedModel(out).detect(images_for([(48, 64, 3)])[0])
    n = len(result["class_ids"])
    assert result["boxes"].shape == (n, 4) and result["masks"].shape == (48, 64, n)
    assert 0 < n <= ExportConfig.DETECTION_MAX_INSTANCES


def test_export_command_line_passes_format_and_quantize(exports, tmp_path, monkeypatch):
    models, _ = exports
    weights = str(tmp_path / "w.h5")
    models["full"].save_weights(weights)
    calls = []
    monkeypatch.setattr(export_formats, "export", lambda model, path, **kwargs: calls.append(
        (model.config.IMAGE_MAX_DIM, path, kwargs)))
    out = str(tmp_path / "m.tflite")
    export.main(["--config", "tiny:TinyConfig", "--weights", weights, "--out", out,
                 "--format", "tflite", "--quantize", "dynamic"])
    assert calls == [(64, out, {"format": "tflite", "quantize": "dynamic"})]


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx", "--quantize", "dynamic"], r"--quantize applies to --format tflite"),
    (["--format", "coreml"], r"invalid choice: 'coreml'"),
])
def test_export_command_line_rejects_bad_format_options(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        export.main(["--config", "tiny:TinyConfig", "--weights", str(tmp_path / "w.h5"),
                     "--out", str(tmp_path / "out")] + args)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_missing_export_extra_names_the_install_command(monkeypatch, tmp_path, capsys):
    real_import = __import__

    def no_tf2onnx(name, *args, **kwargs):
        if name == "tf2onnx":
            raise ImportError("No module named 'tf2onnx'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr("builtins.__import__", no_tf2onnx)
    with pytest.raises(SystemExit):
        export.main(["--config", "tiny:TinyConfig", "--weights", str(tmp_path / "w.h5"),
                     "--out", str(tmp_path / "out.onnx"), "--format", "onnx"])
    assert "pip install 'mrcnn-keras[export]'" in capsys.readouterr().err


def test_export_rejects_unknown_format_and_misplaced_quantize():
    with pytest.raises(ValueError, match="format must be one of"):
        export_formats.export(None, "x", format="coreml")
    with pytest.raises(ValueError, match="applies to format='tflite' only"):
        export_formats.export(None, "x", format="onnx", quantize="dynamic")


@pytest.mark.parametrize("user_value", [None, "TRUE"])
def test_onnx_export_skips_tf2onnx_graph_copies_and_falls_back(tmp_path, monkeypatch,
                                                               user_value):
    # Without TF2ONNX_CATCH_ERRORS, tf2onnx deep-copies the graph before each optimizer pass.
    # The export sets it for one attempt; if a pass fails, a second attempt runs without it.
    # A value the user set is left alone, and the environment is as it was afterwards.
    tf2onnx_convert = pytest.importorskip("tf2onnx.convert")
    if user_value is None:
        monkeypatch.delenv("TF2ONNX_CATCH_ERRORS", raising=False)
    else:
        monkeypatch.setenv("TF2ONNX_CATCH_ERRORS", user_value)
    seen = []

    def fake_from_function(function, input_signature=None, opset=None, output_path=None):
        seen.append(os.environ.get("TF2ONNX_CATCH_ERRORS"))
        if len(seen) == 1 and user_value is None:
            raise RuntimeError("an optimizer pass failed")
        open(output_path, "wb").close()

    monkeypatch.setattr(tf2onnx_convert, "from_function", fake_from_function)
    model = modellib.MaskRCNN("inference", ExportConfig(), str(tmp_path))
    path = model.export(str(tmp_path / "m.onnx"), format="onnx")
    assert os.path.exists(path) and os.path.exists(path + ".json")
    assert seen == (["FALSE", None] if user_value is None else [user_value])
    assert os.environ.get("TF2ONNX_CATCH_ERRORS") == user_value


def test_runner_needs_the_metadata_file(tmp_path):
    from mrcnn.export.runner import ExportedModel
    (tmp_path / "m.tflite").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"m\.tflite\.json"):
        ExportedModel(str(tmp_path / "m.tflite"))


def test_runner_torchvision_paste_box_matches_detect():
    # The runner's NumPy copy of torchvision's paste geometry against detect()'s TensorFlow
    # one: boxes across the image edge, below a pixel, empty, and large.
    from mrcnn.export.runner import torchvision_paste_box
    from mrcnn.inference.postprocess import torchvision_paste_boxes
    rng = np.random.default_rng(3)
    corners = rng.uniform(-40, 600, (200, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)[:, [0, 1, 2, 3]]
    boxes = np.concatenate([boxes, [[5.2, 7.9, 5.6, 8.1], [3.0, 3.0, 3.0, 3.0],
                                    [-10.5, -3.25, 0.75, 2.5], [0.0, 0.0, 1023.9, 767.4]]])
    expected = torchvision_paste_boxes(tf.constant(boxes, tf.float64), 28, 28).numpy()
    got = np.array([torchvision_paste_box(b, 28) for b in boxes])
    np.testing.assert_array_equal(got, expected)


def test_runner_resize_matches_detect_resize():
    """The runner's NumPy resize is utils.resize_image's (skimage, bilinear, no
    anti-aliasing) to within one grey level."""
    from mrcnn import utils
    from mrcnn.export.runner import resize_image
    image = np.random.default_rng(3).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    for size in [(38, 64), (19, 32), (61, 101)]:
        expected = utils.resize(image, size, preserve_range=True).astype(np.uint8)
        got = resize_image(image, *size)
        assert np.abs(got.astype(int) - expected).max() <= 1
        assert np.mean(got == expected) > 0.99


def test_builtin_crop_and_resize_matches_tensorflow():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 9, 13, 5)).astype(np.float32)
    # Boxes reaching outside the image (extrapolated samples), a degenerate one, and many
    # ending exactly at the border, where a reciprocal instead of the kernel's division would
    # move the last samples outside.
    boxes = rng.uniform(-0.3, 1.3, size=(200, 4)).astype(np.float32)
    boxes[0] = [0.5, 0.5, 0.5, 0.5]
    boxes[100:, :2] = rng.uniform(0, 1, size=(100, 2))
    boxes[100:150, 2:] = 1.0
    indices = rng.integers(0, 2, 200).astype(np.int32)
    for size in [(7, 7), (14, 14), (1, 3)]:
        expected = tf.image.crop_and_resize(image, boxes, indices, size).numpy()
        # In a graph, as exported: grappler's rewrites apply there, not in eager mode.
        crop = tf.function(lambda b, i: portable_ops.crop_and_resize(image, b, i, size),
                           input_signature=[tf.TensorSpec([None, 4]),
                                            tf.TensorSpec([None], tf.int32)])
        got = crop(boxes, indices).numpy()
        if size[0] > 1:
            np.testing.assert_array_equal(got, expected)
        else:   # the kernel's single-row centre is computed in double precision
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    empty = portable_ops.crop_and_resize(image, np.zeros((0, 4), np.float32),
                                         np.zeros(0, np.int32), (7, 7))
    assert empty.shape == (0, 7, 7, 5)


def test_builtin_combined_nms_matches_tensorflow():
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 1, size=(2, 60, 2, 2)).astype(np.float32)
    boxes = np.concatenate([corners.min(axis=2), corners.max(axis=2)], axis=-1)[:, :, None]
    # Zero-area boxes (clipped to the window's edge), repeated: NMS keeps them all.
    boxes[0, :4, 0] = [0.2, 0.8, 0.6, 0.8]
    # One class per box (as DetectionLayer scores them), some boxes below the threshold.
    classes = rng.integers(0, 3, size=(2, 60))
    scores = (np.eye(3)[classes] * rng.uniform(0, 1, (2, 60, 1))).astype(np.float32)
    scores[scores < 0.2] = 0
    scores[0, :4] = [0.9, 0, 0]
    args = dict(max_output_size_per_class=8, max_total_size=8, iou_threshold=0.3,
                score_threshold=1e-9, pad_per_class=False, clip_boxes=False)
    expected = tf.image.combined_non_max_suppression(boxes, scores, **args)
    got = portable_ops.combined_non_max_suppression(tf.constant(boxes), tf.constant(scores),
                                                    **args)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-6)
    assert portable_ops.combined_non_max_suppression is not tf.image.combined_non_max_suppression


def test_builtin_combined_nms_with_a_box_per_class_matches_tensorflow():
    # Multi-label detection (DETECTION_MULTI_LABEL) gives each class its own refined box.
    rng = np.random.default_rng(2)
    corners = rng.uniform(0, 1, size=(2, 40, 3, 2, 2)).astype(np.float32)
    boxes = np.concatenate([corners.min(axis=3), corners.max(axis=3)], axis=-1)
    scores = rng.uniform(0, 1, (2, 40, 3)).astype(np.float32)
    scores[scores < 0.3] = 0
    args = dict(max_output_size_per_class=10, max_total_size=12, iou_threshold=0.4,
                score_threshold=1e-9, pad_per_class=False, clip_boxes=True)
    expected = tf.image.combined_non_max_suppression(boxes, scores, **args)
    got = portable_ops.combined_non_max_suppression(tf.constant(boxes), tf.constant(scores),
                                                    **args)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-6)


class FidelityExportConfig(ExportConfig):
    """Every torchvision/detectron2 switch on (issue 25). A slot for every class of every RoI
    (3 x 50): a full list would be cut between near-tied scores, and LiteRT's rounding then
    chose differently from run to run."""
    DETECTION_MIN_CONFIDENCE = 0.05
    DETECTION_MAX_INSTANCES = 150
    ROI_ALIGN_SAMPLING_RATIO = 2
    ROI_LEVEL_MAPPING = "torchvision"
    RPN_PROPOSALS_PER_LEVEL = True
    DETECTION_MULTI_LABEL = True
    PIXEL_STD = [58.4, 57.1, 57.4]


class TorchvisionExportConfig(TorchvisionSmallConfig):
    """torchvision's whole configuration (its ResNet style, unaligned RoIAlign, box coding,
    anchors, paste) at a small size, in a fixed square as export needs."""
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128
    SEED = 0
    # Few RoIs and a slot for every class of every RoI (4 x 50): a cut of a full list falls
    # between near-tied scores, and which one stays is then the graphs' rounding.
    PRE_NMS_LIMIT = 200
    POST_NMS_ROIS_INFERENCE = 50
    DETECTION_MAX_INSTANCES = 200


# torchvision's configuration holds every switch of FidelityExportConfig but `aligned` (a
# half-cell shift of the same ops' box coordinates), so it runs on both runtimes and the
# aligned one on LiteRT alone: each export takes half a minute or more.
@pytest.mark.parametrize("fmt, runtime, config_class, bias, paste", [
    ("tflite", "litert", FidelityExportConfig, [0, 3, 3, 0], "aligned"),
    ("tflite", "litert", TorchvisionExportConfig, [0, 3, 3, 0, 0], "torchvision"),
    ("onnx", "onnxruntime", TorchvisionExportConfig, [0, 3, 3, 0, 0], "torchvision")])
def test_export_carries_the_fidelity_switches(tmp_path, fmt, runtime, config_class, bias,
                                              paste):
    # The paper's RoIAlign, aligned or not (through the builtin crop_and_resize), per-level
    # proposals, multi-label detection (per-class boxes in the builtin NMS), PIXEL_STD,
    # torchvision's ResNet and the matching mask paste (the runner reads it from the
    # metadata) give detect()'s results.
    pytest.importorskip("tf2onnx" if fmt == "onnx" else "ai_edge_litert")
    model = biased_model(bias, 0.05, config_class())
    path = model.export(str(tmp_path / "fidelity.{}".format(fmt)), format=fmt)
    with open(path + ".json") as f:
        assert json.load(f)["mask_paste"] == paste
    from mrcnn.export.runner import ExportedModel
    runner = ExportedModel(path, runtime=runtime)
    images = images_for(SHAPES[:2])
    expected = model.detect(images)
    assert sum(len(r["class_ids"]) for r in expected) > 0
    # The premise of the configs: no list is cut (a slot for every class of every RoI).
    config = model.config
    assert config.DETECTION_MAX_INSTANCES >= config.POST_NMS_ROIS_INFERENCE * (
        config.NUM_CLASSES - 1)
    for image, want in zip(images, expected):
        assert_same_detections(runner.detect(image), want)
