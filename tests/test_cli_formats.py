"""``python -m mrcnn`` train, evaluate and detect end to end on every format but COCO
(whose run, with the commands' finer checks, is in test_cli.py): a file of its own, so that
the two test processes of ``make test`` run them side by side."""

import os

import numpy as np
import pytest

from mrcnn import cli
from mrcnn.data import datafile
from mrcnn.data.images import read_rgb
from examples.make_examples import ONE_CLASS_FORMATS
from test_cli import evaluate_val, offline, write_data  # noqa: F401 (offline: autouse)


@pytest.mark.parametrize("fmt", [f for f in datafile.FORMATS if f != "coco"])
def test_every_format_end_to_end(fmt, tmp_path):
    """train (one step from random weights), evaluate and detect on each of the other
    formats' fixtures, and export on VIA's (COCO's run is in test_cli.py)."""
    path = write_data(tmp_path / "data", fmt)
    logs = str(tmp_path / "logs")
    # No validation pass: evaluate reads the val split below.
    cli.run(["train", path, "--weights", "none", "--epochs", "1", "--steps", "1",
             "--validation-steps", "0", "--logs", logs])
    common = ["--weights", "last", "--logs", logs, "--set", "DETECTION_MIN_CONFIDENCE=0"]
    evaluate_val(path, common, tmp_path / "eval")

    root = os.path.dirname(path)
    one = (os.path.join(root, "val", "images", "val_0", "images", "val_0.png") if fmt == "dsb"
           else os.path.join(root, "val", "images", "val_0.png"))
    detections = cli.run(["detect", path, one, "--out", str(tmp_path / "det")] + common)
    from pycocotools.coco import COCO
    coco = COCO(detections)
    names = ["object"] if fmt in ONE_CLASS_FORMATS else ["box", "disc"]
    assert [c["name"] for c in coco.dataset["categories"]] == names
    # One step from random weights may leave every RoI background (label-images' run did
    # once): the file's structure is checked, not how many objects the model finds.
    annotations = coco.dataset["annotations"]
    assert {a["image_id"] for a in annotations} <= {1}
    assert {a["category_id"] for a in annotations} <= set(coco.getCatIds())
    assert all(len(a["bbox"]) == 4 and "segmentation" in a for a in annotations)

    # The exported model, from the same checkpoint, finds what detect found. Export reads only
    # the data file's class list, whatever its format: one format is enough here (COCO's run
    # in test_cli.py exports too).
    if fmt != "via":
        return
    exported = cli.run(["export", path, "--out", str(tmp_path / "saved")] + common)
    import tensorflow as tf
    serving = tf.saved_model.load(exported).signatures["serving_default"]
    outputs = serving(image=tf.constant(read_rgb(one)))
    assert outputs["class_ids"].numpy().tolist() == [a["category_id"] for a in annotations]
    np.testing.assert_allclose(outputs["scores"].numpy(), [a["score"] for a in annotations],
                               rtol=1e-5)
