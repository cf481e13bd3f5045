"""The exported SavedModel runs without mrcnn and matches model.detect."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mrcnn import export
from mrcnn import model as modellib
from tiny import TinyConfig


class ExportConfig(TinyConfig):
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0


LOADER = textwrap.dedent('''
    import sys, importlib.abc

    class NoMrcnn(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "mrcnn" or name.startswith("mrcnn."):
                raise ImportError("mrcnn must not be needed to serve the model")
    sys.meta_path.insert(0, NoMrcnn())

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
    logits = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel, bias + np.array([0, 3, 0, 0], np.float32)])
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
    with pytest.raises(ValueError, match="package.module:ConfigClass"):
        export.main(["--config", "TinyConfig", "--weights", weights, "--out", out])
