"""The exported SavedModel runs without mrcnn and matches model.detect."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import export
from mrcnn import model as modellib
from tiny import NO_MRCNN_PREAMBLE, ExportConfig, shift_class_logits


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


def test_export_command_line(tmp_path, exported):
    model, _ = exported
    weights = str(tmp_path / "w.h5")
    model.save_weights(weights)
    out = str(tmp_path / "cli_export")
    export.main(["--config", "tiny:TinyConfig", "--weights", weights, "--out", out])
    assert os.path.exists(os.path.join(out, "saved_model.pb"))


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
