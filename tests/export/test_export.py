"""The exported SavedModel runs without mrcnn and matches model.detect."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.export import command as export
from mrcnn import model as modellib
from tiny import NO_MRCNN_PREAMBLE, ExportConfig, shift_class_logits, spread_mask_logits


LOADER = NO_MRCNN_PREAMBLE + textwrap.dedent('''

    import numpy as np
    import tensorflow as tf
    saved, image_file, out_file = sys.argv[1:4]
    serve = tf.saved_model.load(saved).signatures["serving_default"]
    result = serve(image=tf.constant(np.load(image_file)))
    np.savez(out_file, **{k: v.numpy() for k, v in result.items()})
    assert not any(m == "mrcnn" or m.startswith("mrcnn.") for m in sys.modules)
''')


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = modellib.MaskRCNN("inference", ExportConfig(), "/tmp/unused")
    # Random heads mostly say background; favour class 1 so there is something to compare.
    shift_class_logits(model, [0, 3, 0, 0])
    # Masks compared pixel for pixel: keep their values away from the threshold.
    spread_mask_logits(model)
    path = str(tmp_path_factory.mktemp("export") / "saved")
    model.export(path)
    return model, path


def serve_in_subprocess(path, image, tmp_path):
    np.save(tmp_path / "image.npy", image)
    script = tmp_path / "serve.py"
    script.write_text(LOADER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, str(script), path, str(tmp_path / "image.npy"),
                    str(tmp_path / "out.npz")], check=True, cwd=tmp_path, env=env,
                   capture_output=True, timeout=300)
    return dict(np.load(tmp_path / "out.npz"))


@pytest.mark.parametrize("shape", [(48, 64, 3), (64, 40, 3)])
def test_saved_model_matches_detect_without_mrcnn(exported, tmp_path, shape):
    model, path = exported
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    expected = model.detect([image])[0]
    served = serve_in_subprocess(path, image, tmp_path)
    assert len(expected["class_ids"]) > 0
    np.testing.assert_array_equal(served["boxes"], expected["rois"])
    np.testing.assert_array_equal(served["class_ids"], expected["class_ids"])
    np.testing.assert_allclose(served["scores"], expected["scores"], rtol=1e-5)
    assert served["masks"].shape == expected["masks"].shape
    np.testing.assert_array_equal(served["masks"], expected["masks"])


def test_export_command_line(tmp_path, exported, monkeypatch):
    model, _ = exported
    weights = str(tmp_path / "w.h5")
    model.save_weights(weights)
    # The run's recorded settings (a run from random weights: the paper's RoIAlign, which has
    # no weights to fail loading) are what gets exported, not the class's Matterport sampling.
    from mrcnn.engine import recipes
    recipes.write_run_settings(str(tmp_path), {"recipe": recipes.SCRATCH, "attributes": {
        "ROI_ALIGN_SAMPLING_RATIO": 2, "ROI_ALIGN_ALIGNED": True}})
    exported_configs = []
    real_export = export.export_formats.export

    def spy(model, *args, **kwargs):
        exported_configs.append(model.config)
        return real_export(model, *args, **kwargs)
    monkeypatch.setattr(export.export_formats, "export", spy)
    out = str(tmp_path / "cli_export")
    export.main(["--config", "tiny:TinyConfig", "--weights", weights, "--out", out])
    assert os.path.exists(os.path.join(out, "saved_model.pb"))
    config, = exported_configs
    assert (config.ROI_ALIGN_SAMPLING_RATIO, config.ROI_ALIGN_ALIGNED) == (2, True)
    assert config.IMAGES_PER_GPU == 1


@pytest.mark.parametrize("config, weights, message", [
    ("TinyConfig", "w.h5", r"--config TinyConfig: .*'package\.module:ConfigClass'"),
    ("tiny:NoSuchConfig", "w.h5", r"--config tiny:NoSuchConfig: 'NoSuchConfig' is not a Config"),
    ("no_such_module:Config", "w.h5", r"--config no_such_module:Config: No module named"),
    ("tiny:TinyConfig", "missing.h5", r"--weights .*missing\.h5: no such file"),
])
def test_export_command_line_errors_name_the_argument(tmp_path, capsys, config, weights,
                                                       message):
    (tmp_path / "w.h5").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        export.main(["--config", config, "--weights", str(tmp_path / weights),
                     "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_export_command_line_names_an_unreadable_run_record(tmp_path, capsys):
    (tmp_path / "w.h5").write_bytes(b"")
    (tmp_path / "run_config.json").write_text("{not json")
    with pytest.raises(SystemExit) as exit_info:
        export.main(["--config", "tiny:TinyConfig", "--weights", str(tmp_path / "w.h5"),
                     "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert re.search(r"--weights .*w\.h5: the run's run_config\.json: ", capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shape, message", [
    ((48, 64), r"\[height, width, 3\]; got shape.*\[48 64\]"),
    ((48, 64, 4), r"\[height, width, 3\]; got shape.*\[48 64 4\]"),
    ((48, 64, 1), r"\[height, width, 3\]; got shape.*\[48 64 1\]"),
    ((0, 64, 3), r"the image is empty"),
])
def test_saved_model_rejects_wrong_image_shapes(exported, shape, message):
    serve = tf.saved_model.load(exported[1]).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(image=tf.zeros(shape, tf.uint8))


def test_saved_model_without_detections_returns_empty_results(tmp_path):
    model = modellib.MaskRCNN("inference", ExportConfig(), "/tmp/unused")
    # Every RoI classified as background: nothing to return.
    logits = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, _ = logits.get_weights()
    logits.set_weights([np.zeros_like(kernel), np.array([10, 0, 0, 0], np.float32)])
    path = model.export(str(tmp_path / "saved"))
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    expected = model.detect([image])[0]
    served = serve_in_subprocess(path, image, tmp_path)
    assert expected["rois"].shape == (0, 4) and expected["masks"].shape == (48, 64, 0)
    for name, key in (("boxes", "rois"), ("class_ids", "class_ids"), ("scores", "scores"),
                      ("masks", "masks")):
        assert served[name].shape == expected[key].shape, name
        assert served[name].dtype == expected[key].dtype, name


def test_class_agnostic_saved_model_matches_detect(tmp_path):
    """One mask channel (MASK_CLASS_AGNOSTIC): the signature reads channel 0 for every class,
    as detect() does."""
    config = type("AgnosticExport", (ExportConfig,), {"MASK_CLASS_AGNOSTIC": True})()
    model = modellib.MaskRCNN("inference", config, "/tmp/unused")
    assert model.keras_model.get_layer("mrcnn_mask").output.shape[-1] == 1
    # Class 2 wins every RoI (random features would otherwise decide the class): detections
    # of a class other than 0 and 1 must read channel 0 too.
    shift_class_logits(model, [0, 0, 3, 0], kernel_scale=0.01)
    path = model.export(str(tmp_path / "saved"))
    image = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    expected = model.detect([image])[0]
    served = tf.saved_model.load(path).signatures["serving_default"](image=tf.constant(image))
    assert len(expected["class_ids"]) > 0 and set(expected["class_ids"]) - {1}
    np.testing.assert_array_equal(served["class_ids"].numpy(), expected["class_ids"])
    np.testing.assert_array_equal(served["boxes"].numpy(), expected["rois"])
    np.testing.assert_array_equal(served["masks"].numpy(), expected["masks"])


############################################################
#  The NumPy runner of .tflite / .onnx files (issue 27)
############################################################

RUNNER_METADATA = {"image_size": 64, "channels": 3, "min_dim": 64, "min_scale": 0.0,
                   "mask_threshold": 0.5, "max_instances": 4, "num_classes": 4}


def fake_exported_model(tmp_path):
    """An ``ExportedModel`` over a placeholder file whose runtime records the squares it is
    given and detects nothing (the molding and the checks are the runner's own)."""
    from mrcnn.export import runner as export_runner
    path = str(tmp_path / "m.onnx")
    open(path, "wb").close()
    with open(path + ".json", "w") as f:
        json.dump(RUNNER_METADATA, f)
    model = export_runner.ExportedModel.__new__(export_runner.ExportedModel)
    model.path, model.metadata = path, export_runner._load_metadata(path)
    model.size = model.metadata["image_size"]
    model.squares = []

    def run(image, window):
        model.squares.append(image)
        return {"detections": np.zeros((4, 6), np.float32),
                "masks": np.zeros((4, 28, 28), np.float32)}
    model._run = run
    return model


def test_runner_checks_images_as_detect_does(tmp_path):
    # Case 8: 0..1 floats were molded to black, NaN passed with a cast warning, uint16 wrapped
    # modulo 256; MaskRCNN.detect refuses or scales the same arrays (one check_image).
    from mrcnn.data.images import check_image
    model = fake_exported_model(tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    assert model.detect(image)["masks"].shape == (30, 50, 0)
    for bad in (image / 255.0, np.full((30, 50, 3), np.nan, np.float32),
                np.zeros((30, 50), np.uint8), np.zeros((30, 50, 4), np.uint8), np.zeros(5)):
        with pytest.raises(ValueError) as error:
            model.detect(bad)
        with pytest.raises(ValueError) as expected:
            check_image(bad, "detect() image", 3)
        assert str(error.value) == "{}: {}".format(model.path, expected.value)
    with pytest.warns(UserWarning, match=r"m\.onnx: detect\(\) image: 16-bit image"):
        model.detect(image.astype(np.uint16) * 257)
    model.detect(image.astype(np.uint16))      # case 11: 8-bit values in uint16, as they are
    model.detect(image.astype(np.float32))
    for square in model.squares[1:]:
        assert square.dtype == np.uint8
        np.testing.assert_array_equal(square, model.squares[0])


def test_runner_file_alone_uses_images_py_without_mrcnn(tmp_path):
    # Deployed: runner.py and images.py copied next to the model, mrcnn not importable.
    import shutil
    from mrcnn.export import runner as export_runner
    from mrcnn.data import images
    for module in (export_runner, images):
        shutil.copy(module.__file__, tmp_path)
    script = tmp_path / "check.py"
    script.write_text(NO_MRCNN_PREAMBLE + textwrap.dedent('''
        import importlib.util
        import numpy as np
        spec = importlib.util.spec_from_file_location("runner", "runner.py")
        runner = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(runner)
        try:
            runner.check_image(np.full((4, 4, 3), 0.5), "x", 3)
        except ValueError as e:
            print(e)
        assert not any(m == "mrcnn" or m.startswith("mrcnn.") or m == "tensorflow"
                       for m in sys.modules)
    '''))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "x: float image with values in [0.5, 0.5]" in out.stdout
    os.remove(tmp_path / "images.py")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert "images.py: not found; runner.py needs mrcnn's images.py" in out.stderr


def test_runner_metadata_errors_name_the_file(tmp_path):
    # Case 14: a missing model was reported as a missing .json; a truncated .json or {} gave
    # a bare JSONDecodeError or KeyError 'image_size'.
    from mrcnn.export.runner import ExportedModel
    path = str(tmp_path / "m.tflite")
    with open(path + ".json", "w") as f:
        json.dump(RUNNER_METADATA, f)
    with pytest.raises(FileNotFoundError, match=r"m\.tflite: the exported model file is "
                                                r"missing"):
        ExportedModel(path)
    open(path, "wb").close()
    with open(path + ".json", "w") as f:
        f.write('{"image_size": 64, "chan')
    with pytest.raises(ValueError, match=r"m\.tflite\.json: cannot read the model's metadata: "
                                         r"Unterminated string"):
        ExportedModel(path)
    for content, missing in (({}, "'image_size', 'channels', 'min_dim', 'min_scale', "
                                  "'mask_threshold'"),
                             ({"image_size": 64, "channels": 3}, "'min_dim', 'min_scale', "
                                                                 "'mask_threshold'"),
                             ([1, 2], "'image_size'")):
        with open(path + ".json", "w") as f:
            json.dump(content, f)
        with pytest.raises(ValueError, match=r"m\.tflite\.json: the model's metadata lacks " +
                           re.escape(missing)):
            ExportedModel(path)
    os.remove(path + ".json")
    with pytest.raises(FileNotFoundError, match=r"m\.tflite\.json: the model's metadata"):
        ExportedModel(path)


@pytest.mark.parametrize("ratio", [2, -1])
def test_saved_model_with_the_fidelity_switches_matches_detect(tmp_path, ratio):
    """PIXEL_STD molding and the paper's RoIAlign with its mask paste (issue 25) in the
    signature, as detect() runs them. ratio -1 (the adaptive grid, detectron2's default) runs
    in the SavedModel; the fixed-size formats need crop sizes known at build time."""
    config = type("FidelitySaved", (ExportConfig,), {
        "ROI_ALIGN_SAMPLING_RATIO": ratio, "ROI_ALIGN_ALIGNED": True,
        "ROI_LEVEL_MAPPING": "torchvision", "RPN_PROPOSALS_PER_LEVEL": True,
        "DETECTION_MULTI_LABEL": True, "PIXEL_STD": [58.4, 57.1, 57.4]})()
    model = modellib.MaskRCNN("inference", config, "/tmp/unused")
    shift_class_logits(model, [0, 3, 3, 0], kernel_scale=0.01)
    path = model.export(str(tmp_path / "saved"))
    image = np.random.default_rng(6).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    expected = model.detect([image])[0]
    served = tf.saved_model.load(path).signatures["serving_default"](image=tf.constant(image))
    assert len(expected["class_ids"]) > 0
    np.testing.assert_array_equal(served["class_ids"].numpy(), expected["class_ids"])
    np.testing.assert_array_equal(served["boxes"].numpy(), expected["rois"])
    np.testing.assert_array_equal(served["masks"].numpy(), expected["masks"])
    if ratio == -1:
        with pytest.raises(ValueError, match="ROI_ALIGN_SAMPLING_RATIO -1"):
            model.export(str(tmp_path / "m.tflite"), format="tflite")
        assert not os.path.exists(str(tmp_path / "m.tflite"))

