"""MaskRCNN end to end on a tiny config: training lowers the loss, save/reload, detect."""

import os
import re

import numpy as np
import pytest

from mrcnn import data
from mrcnn import model as modellib
from mrcnn.dataset import Dataset
from samples.shapes.shapes import ShapesDataset
from tiny import TinyConfig


@pytest.fixture(scope="module")
def config():
    return TinyConfig()


@pytest.fixture(scope="module")
def shapes(config):
    ds = ShapesDataset()
    ds.load_shapes(16, 64, 64, seed=0)
    ds.prepare()
    return ds


@pytest.fixture(scope="module")
def trained(tmp_path_factory, config, shapes):
    """A tiny model trained for two one-step epochs (checkpoints, history)."""
    model_dir = str(tmp_path_factory.mktemp("logs"))
    model = modellib.MaskRCNN("training", config, model_dir)
    history = model.train(shapes, shapes, learning_rate=0.01, epochs=2, layers="all",
                          verbose=0)
    return model, history, model_dir


def test_training_history_checkpoints_and_log_layout(trained):
    model, history, model_dir = trained
    for name in ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
                 "mrcnn_bbox_loss", "mrcnn_mask_loss"):
        assert len(history.history[name]) == 2 and np.all(np.isfinite(history.history[name]))
        assert "val_" + name in history.history
    assert re.fullmatch(r"tiny\d{8}T\d{4}", os.path.basename(model.log_dir))
    checkpoints = sorted(f for f in os.listdir(model.log_dir) if f.endswith(".h5"))
    assert checkpoints == ["mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_0002.h5"]
    assert model.find_last() == os.path.join(model.log_dir, "mask_rcnn_tiny_0002.h5")
    assert model.epoch == 2
    assert any(f.startswith("train") or f.startswith("events") or f == "validation"
               for f in os.listdir(model.log_dir))   # TensorBoard logs


def test_loading_a_checkpoint_resumes_at_the_next_epoch(trained, config):
    model, _, model_dir = trained
    resumed = modellib.MaskRCNN("training", config, model_dir)
    resumed.load_weights(resumed.find_last())
    assert resumed.epoch == 2 and resumed.log_dir == model.log_dir


def test_training_steps_lower_the_loss(config, shapes):
    model = modellib.MaskRCNN("training", config, "/tmp/unused")
    model.set_trainable("all")
    model.compile(0.01, 0.9)
    batch = next(iter(data.build_input_pipeline(shapes, config, seed=1)))
    losses = [model.keras_model.train_on_batch(batch, return_dict=True)["loss"]
              for _ in range(25)]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses


class EmptyShapes(ShapesDataset):
    def load_mask(self, image_id):
        return Dataset.load_mask(self, image_id)


def test_images_without_objects_train(config):
    empty = EmptyShapes()
    empty.load_shapes(4, 64, 64, seed=2)
    empty.prepare()
    model = modellib.MaskRCNN("training", config, "/tmp/unused")
    model.set_trainable("all")
    model.compile(0.01, 0.9)
    batch = next(iter(data.build_input_pipeline(empty, config, seed=0)))
    assert np.all(batch["input_gt_class_ids"].numpy() == 0)
    logs = model.keras_model.train_on_batch(batch, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert logs["mrcnn_mask_loss"] == 0 and logs["mrcnn_bbox_loss"] == 0


class InferenceConfig(TinyConfig):
    IMAGES_PER_GPU = 3
    DETECTION_MIN_CONFIDENCE = 0.0   # random weights: keep whatever they find


def test_detect_save_reload_identical(tmp_path, trained, shapes):
    model = modellib.MaskRCNN("inference", InferenceConfig(), str(tmp_path))
    model.load_weights(trained[0].find_last())
    images = [shapes.load_image(i) for i in range(2)]          # fewer than BATCH_SIZE
    images.append(np.zeros((50, 70, 3), np.uint8) + 128)         # other size: resized
    results = model.detect(images)
    assert len(results) == 3
    for image, r in zip(images, results):
        n = len(r["class_ids"])
        assert r["rois"].shape == (n, 4) and r["scores"].shape == (n,)
        assert r["masks"].shape == image.shape[:2] + (n,) and r["masks"].dtype == bool
        assert np.all(r["rois"][:, 2:] <= np.array(image.shape[:2]))
        assert np.all((r["class_ids"] >= 1) & (r["class_ids"] < 4))
        assert np.all(np.diff(r["scores"]) <= 0)
    assert sum(len(r["class_ids"]) for r in results) > 0

    path = str(tmp_path / "weights.h5")
    model.save_weights(path)
    reloaded = modellib.MaskRCNN("inference", InferenceConfig(), str(tmp_path))
    reloaded.load_weights(path)
    again = reloaded.detect(images)
    for a, b in zip(results, again):
        for key in ("rois", "class_ids", "scores", "masks"):
            np.testing.assert_array_equal(a[key], b[key])


def test_run_graph_returns_named_intermediates(tmp_path, shapes):
    model = modellib.MaskRCNN("inference", InferenceConfig(), str(tmp_path))
    image = shapes.load_image(0)
    out = model.run_graph([image], [
        ("proposals", model.keras_model.get_layer("ROI").output),
        ("detections", model.keras_model.get_layer("mrcnn_detection").output),
    ])
    assert out["proposals"].shape == (1, InferenceConfig.POST_NMS_ROIS_INFERENCE, 4)
    assert out["detections"].shape == (1, InferenceConfig.DETECTION_MAX_INSTANCES, 6)


def test_set_trainable_presets_and_frozen_batchnorm():
    class ResNetConfig(TinyConfig):
        BACKBONE = "resnet50"
        COMPUTE_BACKBONE_SHAPE = None
        TRAIN_BN = False
    model = modellib.MaskRCNN("training", ResNetConfig(), "/tmp/unused")
    names = {l.name for l in model.get_trainable_layers()}
    for name in ("conv1", "bn_conv1", "res2a_branch1", "bn2a_branch1", "res4f_branch2c",
                 "fpn_c5p5", "fpn_p2", "rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred",
                 "mrcnn_class_conv1", "mrcnn_class_bn2", "mrcnn_class_logits", "mrcnn_bbox_fc",
                 "mrcnn_mask_conv4", "mrcnn_mask_bn1", "mrcnn_mask_deconv", "mrcnn_mask"):
        assert name in names, name
    assert "res4g_branch2a" not in names            # ResNet-50 stage 4 ends at block f
    model.set_trainable("heads")
    layers = {l.name: l for l in model.get_trainable_layers()}
    assert layers["rpn_conv_shared"].trainable and layers["fpn_p3"].trainable
    assert layers["mrcnn_mask"].trainable and not layers["res3a_branch2a"].trainable
    assert not layers["mrcnn_class_bn1"].trainable   # TRAIN_BN=False freezes BatchNorm
    model.set_trainable("4+")
    assert layers["res4a_branch2a"].trainable and not layers["res3d_branch2c"].trainable
    assert not layers["bn4a_branch2a"].trainable
