"""MaskRCNN end to end on a tiny config: training lowers the loss, save/reload, detect."""

import os
import re

import keras
import numpy as np
import pytest

from mrcnn.data import pipeline as data
from mrcnn import model as modellib
from mrcnn.data.dataset import Dataset
from mrcnn.modeling.layers import BatchNorm
from samples.shapes.shapes import ShapesDataset
from tiny import TinyConfig, shift_class_logits


@pytest.fixture(scope="module")
def config(tiny_config):
    return tiny_config


@pytest.fixture(scope="module")
def shapes(tiny_shapes):
    return tiny_shapes


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
    keras.utils.set_random_seed(0)    # fixed initial weights and RoI sampling
    model = modellib.MaskRCNN("training", config, "/tmp/unused")
    model.set_trainable("all")
    model.compile(0.01, 0.9)
    batch = next(iter(data.build_input_pipeline(shapes, config, seed=1)))
    losses = [model.keras_model.train_on_batch(batch, return_dict=True)["loss"]
              for _ in range(25)]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses


def test_fit_traces_the_training_step_once(config, shapes):
    """The optimizer is built before the step is traced: Keras would otherwise create its
    variables inside the first trace, and tf.function would trace the whole step again."""
    model = modellib.MaskRCNN("training", config, "/tmp/unused")
    traced = []
    train_step = model.keras_model.train_step
    model.keras_model.train_step = lambda data: traced.append(1) or train_step(data)
    model.train(shapes, None, learning_rate=0.01, epochs=2, layers="all", verbose=0)
    assert model.keras_model.optimizer.built and len(traced) == 1


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


def load_with_detections(model, path):
    """Load barely trained weights, then favour class 1 in the classifier.

    Two training steps may leave every RoI background; the shifted bias guarantees detections,
    so that comparisons between inference paths are never between empty results.
    """
    model.load_weights(path)
    shift_class_logits(model, [0, 50, 0, 0])


def test_detect_save_reload_identical(tmp_path, trained, shapes):
    model = modellib.MaskRCNN("inference", InferenceConfig(), str(tmp_path))
    load_with_detections(model, trained[0].find_last())
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
    # One tensor asked for: still a dict.
    single = model.run_graph([image], [("rois", model.keras_model.get_layer("ROI").output)])
    np.testing.assert_array_equal(single["rois"], out["proposals"])


def test_inference_model_outputs_are_named(tmp_path, shapes):
    from mrcnn.modeling.graph import INFERENCE_OUTPUTS
    model = modellib.MaskRCNN("inference", InferenceConfig(), str(tmp_path))
    molded, metas, _ = model.mold_inputs([shapes.load_image(0)])
    outputs = model.keras_model.predict_on_batch(
        [molded, metas, model.anchor_cache.batch(molded)])
    assert set(outputs) == set(INFERENCE_OUTPUTS)
    config = InferenceConfig()
    proposals, classes = config.POST_NMS_ROIS_INFERENCE, config.NUM_CLASSES
    assert outputs["detections"].shape == (1, config.DETECTION_MAX_INSTANCES, 6)
    assert outputs["mrcnn_class"].shape == (1, proposals, classes)
    assert outputs["mrcnn_bbox"].shape == (1, proposals, classes, 4)
    assert outputs["mrcnn_mask"].shape == (1, config.DETECTION_MAX_INSTANCES) + \
        tuple(config.MASK_SHAPE) + (classes,)
    assert outputs["rpn_rois"].shape == (1, proposals, 4)
    assert outputs["rpn_class"].shape[-1] == 2 and outputs["rpn_bbox"].shape[-1] == 4


def test_keras_auto_jit_compile_stays_off_where_it_sees_a_gpu(tmp_path, monkeypatch):
    """Keras' jit_compile="auto" compiles with XLA where TensorFlow lists a GPU. RoIAlign's
    crop_and_resize, NMS and RoI sampling have no XLA kernels: on a GPU, detect() failed
    ("tf2xla conversion failed", seen on an H200) until those layers set supports_jit=False."""
    import tensorflow as tf
    inference = modellib.MaskRCNN("inference", InferenceConfig(), str(tmp_path))
    probe = keras.Model(inference.keras_model.inputs,
                        inference.keras_model.get_layer("ROI").output)
    training = modellib.MaskRCNN("training", TinyConfig(), str(tmp_path))
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    listed = tf.config.list_physical_devices

    def with_gpu(device_type=None):
        return listed(device_type) + ([gpu] if device_type in (None, "GPU") else [])
    monkeypatch.setattr(tf.config, "list_physical_devices", with_gpu)
    assert plain.jit_compile is True                # Keras now sees a GPU and picks XLA
    assert inference.keras_model.jit_compile is False
    assert probe.jit_compile is False               # run_graph's models too
    unsupported = {layer.name for layer in training.keras_model.layers if not layer.supports_jit}
    assert {"ROI", "proposal_targets", "roi_align_classifier", "roi_align_mask"} <= unsupported


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


def test_detect_molded_equals_detect_on_unresized_images(trained, shapes):
    model = modellib.MaskRCNN("inference", InferenceConfig(), "/tmp/unused")
    load_with_detections(model, trained[0].find_last())
    images = [shapes.load_image(i) for i in range(3)]     # 64x64: the model's own size
    molded, metas, _ = model.mold_inputs(images)
    by_molded = model.detect_molded(molded, metas)
    direct = model.detect(images)
    assert all(len(r["class_ids"]) > 0 for r in direct)
    for a, b in zip(by_molded, direct):
        for key in ("rois", "class_ids", "masks"):
            np.testing.assert_array_equal(a[key], b[key])

    # A 48x64 image is padded by 8 rows at the top: detect_molded reports boxes in the padded
    # (molded) frame, detect() in the original one.
    image = shapes.load_image(3)[8:56]
    molded, metas, windows = model.mold_inputs([image])
    assert tuple(windows[0]) == (8, 0, 56, 64)
    in_molded = model.detect_molded(molded, metas)[0]
    in_original = model.detect([image])[0]
    assert len(in_original["class_ids"]) > 0
    np.testing.assert_array_equal(in_molded["class_ids"], in_original["class_ids"])
    np.testing.assert_allclose(in_molded["rois"], in_original["rois"] + [8, 0, 8, 0], atol=1)
    assert in_molded["masks"].shape[:2] == (64, 64)


class _Scalar(keras.layers.Layer):
    """Test helper: a fixed scalar output that depends on one trainable kernel."""

    def __init__(self, value, **kwargs):
        super().__init__(**kwargs)
        self.value = value

    def call(self, x):
        return keras.ops.sum(x) * 0 + self.value


def test_total_loss_honours_loss_weights_and_weight_decay():
    x = keras.Input((2,))
    h = keras.layers.Dense(3, name="fc", kernel_initializer="ones", bias_initializer="ones")(x)
    bn = BatchNorm(name="bn", gamma_initializer=keras.initializers.Constant(5.0))(h)
    values = {"rpn_class_loss": 1.0, "rpn_bbox_loss": 2.0, "mrcnn_class_loss": 3.0,
              "mrcnn_bbox_loss": 4.0, "mrcnn_mask_loss": 5.0}
    outputs = {name: _Scalar(v, name=name)(bn) for name, v in values.items()}
    weights = {"rpn_class_loss": 0.0, "mrcnn_mask_loss": 2.0}
    model = modellib.TrainingModel(x, outputs, loss_weights=weights, weight_decay=0.1)
    y_pred = model(np.zeros((1, 2), np.float32))
    total = float(model.compute_loss(y_pred=y_pred))
    # 0*1 + 2 + 3 + 4 + 2*5, plus 0.1 * mean(w^2) of the Dense kernel (2x3 ones) and bias (3
    # ones): 0.1 + 0.1; BatchNorm gamma (5s) and beta are not decayed.
    assert total == pytest.approx(19 + 0.2, rel=1e-6)
    assert float(model.mrcnn_mask_loss_tracker.result()) == 5.0


class FidelityConfig(TinyConfig):
    """Every torchvision/detectron2 switch of Config on (issue 25)."""
    ROI_ALIGN_SAMPLING_RATIO = 2
    ROI_ALIGN_ALIGNED = True
    ROI_LEVEL_MAPPING = "torchvision"
    RPN_PROPOSALS_PER_LEVEL = True
    DETECTION_MULTI_LABEL = True
    PIXEL_STD = [58.4, 57.1, 57.4]


@pytest.mark.parametrize("ratio, aligned", [(2, True), (2, False), (-1, True)])
def test_fidelity_switches_train_and_detect(tmp_path, shapes, ratio, aligned):
    # ratio -1: the adaptive grid (detectron2's default) in both heads and the mask targets.
    config = type("Fidelity", (FidelityConfig,), {"ROI_ALIGN_ALIGNED": aligned,
                                                  "ROI_ALIGN_SAMPLING_RATIO": ratio})()
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    assert model.keras_model.get_layer("roi_align_mask").sampling_ratio == ratio
    model.set_trainable("all")
    model.compile(0.01, 0.9)
    batch = next(iter(data.build_input_pipeline(shapes, config, seed=1)))
    logs = model.keras_model.train_on_batch(batch, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values())
    path = str(tmp_path / "w.h5")
    model.save_weights(path)

    inference = type("FidelityInference", (InferenceConfig,), {
        name: getattr(config, name) for name in (
            "ROI_ALIGN_SAMPLING_RATIO", "ROI_ALIGN_ALIGNED", "ROI_LEVEL_MAPPING",
            "RPN_PROPOSALS_PER_LEVEL", "DETECTION_MULTI_LABEL", "PIXEL_STD")})()
    detector = modellib.MaskRCNN("inference", inference, str(tmp_path))
    load_with_detections(detector, path)
    images = [shapes.load_image(i) for i in range(3)]
    results = detector.detect(images)
    assert sum(len(r["class_ids"]) for r in results) > 0
    for image, r in zip(images, results):
        assert r["masks"].shape[:2] == image.shape[:2]
        assert len(r["rois"]) == len(r["scores"]) == r["masks"].shape[-1]
