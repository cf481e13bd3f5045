"""Training-recipe switches of Config, end to end on the tiny model: class-agnostic masks,
the mask loss choice and class weights."""

import numpy as np
import pytest

from mrcnn.data import pipeline as data
from mrcnn import model as modellib
from mrcnn.data.dataset import ClassAgnosticDataset
from tiny import TinyConfig


class AgnosticConfig(TinyConfig):
    NAME = "agnostic"
    NUM_CLASSES = 2
    MASK_CLASS_AGNOSTIC = True
    MASK_LOSS = "bce+dice"


class AgnosticInference(AgnosticConfig):
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0


def test_class_agnostic_dataset_keeps_masks_and_merges_classes(tiny_shapes):
    agnostic = ClassAgnosticDataset(tiny_shapes)
    assert agnostic.class_names == ["BG", "object"] and len(agnostic.image_ids) == 16
    masks, class_ids = agnostic.load_mask(3)
    original, _ = tiny_shapes.load_mask(3)
    np.testing.assert_array_equal(masks, original)
    assert class_ids.tolist() == [1] * original.shape[-1]
    np.testing.assert_array_equal(agnostic.load_image(3), tiny_shapes.load_image(3))


def test_class_agnostic_model_trains_loads_class_aware_weights_and_detects(
        tmp_path, tiny_shapes, capsys):
    agnostic = ClassAgnosticDataset(tiny_shapes)
    model = modellib.MaskRCNN("training", AgnosticConfig(), str(tmp_path))
    assert model.keras_model.get_layer("mrcnn_mask").output.shape[-1] == 1
    assert model.keras_model.get_layer("mrcnn_mask_loss").fn_kwargs == {"loss_type": "bce+dice"}
    model.set_trainable("all")
    model.compile(0.01, 0.9)
    batch = next(iter(data.build_input_pipeline(agnostic, AgnosticConfig(), seed=0)))
    logs = model.keras_model.train_on_batch(batch, return_dict=True)
    # (Whether the first step has positive RoIs depends on the random RPN; the loss values are
    # checked in tests/modeling/test_losses.py.)
    assert np.isfinite(logs["loss"]) and np.isfinite(logs["mrcnn_mask_loss"])

    # A class-aware checkpoint (4 mask channels): everything loads but mrcnn_mask, with a word.
    aware = modellib.MaskRCNN("inference", TinyConfig(), str(tmp_path))
    path = str(tmp_path / "aware.h5")
    aware.save_weights(path)
    class TwoClasses(AgnosticInference):
        pass
    infer = modellib.MaskRCNN("inference", TwoClasses(), str(tmp_path))
    before = infer.keras_model.get_layer("mrcnn_mask").get_weights()[0].copy()
    infer.load_weights(path, by_name=True, exclude=["mrcnn_class_logits", "mrcnn_bbox_fc"])
    assert "Skipping layer 'mrcnn_mask'" in capsys.readouterr().out
    np.testing.assert_array_equal(infer.keras_model.get_layer("mrcnn_mask").get_weights()[0],
                                  before)
    np.testing.assert_array_equal(infer.keras_model.get_layer("fpn_p2").get_weights()[0],
                                  aware.keras_model.get_layer("fpn_p2").get_weights()[0])
    result = infer.detect([tiny_shapes.load_image(0)])[0]
    assert result["masks"].shape[:2] == (64, 64)
    assert result["masks"].shape[-1] == len(result["class_ids"])


def test_balanced_class_weights_are_set_from_the_training_set(tmp_path, tiny_shapes):
    class Balanced(TinyConfig):
        CLASS_WEIGHTS = "balanced"
        STEPS_PER_EPOCH = 1
    model = modellib.MaskRCNN("training", Balanced(), str(tmp_path))
    layer = model.keras_model.get_layer("mrcnn_class_loss")
    np.testing.assert_array_equal(layer.class_weights.numpy(), np.ones(4))
    model.train(tiny_shapes, None, learning_rate=0.01, epochs=1, layers="heads", verbose=0)
    counts = np.zeros(4)
    for i in tiny_shapes.image_ids:
        counts += np.bincount(tiny_shapes.load_mask(i)[1], minlength=4)
    present = counts[1:] > 0
    expected = counts[1:].sum() / (present.sum() * counts[1:])
    np.testing.assert_allclose(layer.class_weights.numpy()[1:], expected, rtol=1e-6)


@pytest.mark.parametrize("attrs, message", [
    ({"MASK_LOSS": "focal"}, "MASK_LOSS must be one of"),
    ({"CLASS_WEIGHTS": [1.0, 2.0]}, "CLASS_WEIGHTS must hold NUM_CLASSES"),
    ({"CLASS_WEIGHTS": "inverse"}, "CLASS_WEIGHTS must be None, 'balanced'"),
    ({"ZERO_INIT_RESIDUAL": True, "TRAIN_BN": False}, "ZERO_INIT_RESIDUAL needs"),
    ({"ZERO_INIT_RESIDUAL": True, "NORM": "frozen_batch", "TRAIN_BN": True},
     "ZERO_INIT_RESIDUAL needs"),
])
def test_recipe_settings_are_validated(attrs, message):
    with pytest.raises(ValueError, match=message):
        type("Bad", (TinyConfig,), attrs)()


def test_group_norm_model_normalizes_per_group(tmp_path):
    class GroupNormConfig(TinyConfig):
        BACKBONE = "resnet50"
        COMPUTE_BACKBONE_SHAPE = None
        NORM = "group"
    model = modellib.MaskRCNN("training", GroupNormConfig(), str(tmp_path))
    keras_model = model.keras_model
    from mrcnn.modeling.layers import BatchNorm, GroupNorm
    inner = [getattr(l, "layer", l) for l in keras_model.layers]
    assert not any(isinstance(l, BatchNorm) for l in inner)
    for name in ("bn_conv1", "bn4f_branch2c", "fpn_p2_gn", "fpn_c5p5_gn"):
        assert isinstance(keras_model.get_layer(name), GroupNorm), name
    for name in ("mrcnn_class_bn1", "mrcnn_mask_bn4"):
        assert isinstance(keras_model.get_layer(name).layer, GroupNorm), name
    assert keras_model.get_layer("bn_conv1").groups == 32
    # Per group of channels: zero mean and unit variance over (height, width, group channels).
    layer = GroupNorm(name="check")
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 5, 5, 64)).astype(np.float32)
    y = np.asarray(layer(x)).reshape(2, 5, 5, 32, 2)
    np.testing.assert_allclose(y.mean(axis=(1, 2, 4)), 0, atol=1e-4)
    np.testing.assert_allclose(y.var(axis=(1, 2, 4)), 1, atol=1e-2)
    assert GroupNorm(name="narrow")(np.ones((1, 2, 2, 24), np.float32)).shape[-1] == 24


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_zero_init_residual_starts_every_block_as_its_shortcut(tmp_path, norm, tiny_shapes):
    class ZeroInit(TinyConfig):
        BACKBONE = "resnet50"
        COMPUTE_BACKBONE_SHAPE = None
        NORM = norm
        ZERO_INIT_RESIDUAL = True
        IMAGES_PER_GPU = 1
    model = modellib.MaskRCNN("inference", ZeroInit(), str(tmp_path))
    keras_model = model.keras_model
    last = [l for l in keras_model.layers if l.name.endswith("_branch2c")
            and l.name.startswith("bn")]
    assert len(last) == 16                                  # ResNet-50: 3 + 4 + 6 + 3 blocks
    assert all(not np.any(l.gamma.numpy()) for l in last)
    assert np.all(keras_model.get_layer("bn2a_branch2b").gamma.numpy() == 1)
    assert np.all(keras_model.get_layer("bn2a_branch1").gamma.numpy() == 1)
    # An identity block's main path adds nothing: its output is its (non-negative) input.
    names = ["res2a_out", "res2b_out", "res2c_out", "res4e_out", "res4f_out"]
    out = model.run_graph([tiny_shapes.load_image(0)],
                          [(n, keras_model.get_layer(n).output) for n in names])
    assert np.abs(out["res2a_out"]).max() > 0
    np.testing.assert_array_equal(out["res2b_out"], out["res2a_out"])
    np.testing.assert_array_equal(out["res2c_out"], out["res2a_out"])
    np.testing.assert_array_equal(out["res4f_out"], out["res4e_out"])
    # Matterport's default leaves every scale at 1.
    plain = type("Plain", (ZeroInit,), {"ZERO_INIT_RESIDUAL": False})()
    keras_model = modellib.MaskRCNN("inference", plain, str(tmp_path)).keras_model
    assert np.all(keras_model.get_layer("bn2a_branch2c").gamma.numpy() == 1)


def test_frozen_batch_norm_never_trains(tmp_path):
    class Frozen(TinyConfig):
        NORM = "frozen_batch"
        TRAIN_BN = True
    model = modellib.MaskRCNN("training", Frozen(), str(tmp_path))
    model.set_trainable("all")
    bn = model.keras_model.get_layer("mrcnn_class_bn1")
    assert bn.layer.train_bn is False and not bn.trainable


def test_learning_rate_schedules_and_warmup():
    from mrcnn.engine import training

    class Step(TinyConfig):
        LR_SCHEDULE = "step"
        LR_STEP_FRACTIONS = (0.5, 0.75)
    rate = training.learning_rate_schedule(Step(), 0.1, 100)
    np.testing.assert_allclose([float(rate(s)) for s in (0, 49, 51, 74, 76, 99)],
                               [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)

    class CosineWarmup(TinyConfig):
        LR_SCHEDULE = "cosine"
        WARMUP_STEPS = 10
    rate = training.learning_rate_schedule(CosineWarmup(), 0.1, 100)
    cosine = [0.05 * (1 + np.cos(np.pi * s / 100)) for s in (0, 5, 10, 50, 100)]
    warm = [0.001, 0.001 * 0.5 + 0.5, 1, 1, 1]
    np.testing.assert_allclose([float(rate(s)) for s in (0, 5, 10, 50, 100)],
                               np.multiply(cosine, warm), rtol=1e-4, atol=1e-9)
    assert training.learning_rate_schedule(TinyConfig(), 0.1, 100) == 0.1   # Matterport's

    class GlobalClip(TinyConfig):
        GRADIENT_CLIP_GLOBAL = True
    optimizer, _ = training.build_optimizer(GlobalClip(), 0.1, 0.9)
    assert optimizer.global_clipnorm == 5.0 and optimizer.clipnorm is None
    optimizer, _ = training.build_optimizer(TinyConfig(), 0.1, 0.9)
    assert optimizer.clipnorm == 5.0 and optimizer.global_clipnorm is None
    config = training.WarmupSchedule(0.1, 10).get_config()
    assert float(training.WarmupSchedule.from_config(config)(5)) == pytest.approx(
        0.1 * (0.001 * 0.5 + 0.5))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_backbone_learns_at_a_tenth_of_the_heads_rate(optimizer):
    import keras

    from mrcnn.engine import training

    class Finetune(TinyConfig):
        OPTIMIZER = optimizer
        BACKBONE_LR_MULTIPLIER = 0.1
        GRADIENT_CLIP_NORM = None
    x = keras.Input((3,))
    backbone = keras.layers.Dense(2, name="res2a_branch2a", kernel_initializer="ones")
    head = keras.layers.Dense(2, name="mrcnn_class_logits", kernel_initializer="ones")
    model = keras.Model(x, [backbone(x), head(x)])
    opt, _ = training.build_optimizer(Finetune(), 0.01, 0.9, keras_model=model)
    grads = [np.full(v.shape, 0.5, np.float32) for v in model.trainable_variables]
    before = [np.array(v.numpy()) for v in model.trainable_variables]
    for _ in range(3):                          # momentum / Adam moments included
        opt.apply_gradients(zip(grads, model.trainable_variables))
    steps = {v.path: np.abs(v.numpy() - b).max()
             for v, b in zip(model.trainable_variables, before)}
    for name in ("kernel", "bias"):
        ratio = steps["res2a_branch2a/" + name] / steps["mrcnn_class_logits/" + name]
        assert ratio == pytest.approx(0.1, rel=1e-4), (name, steps)


def test_scale_in_canvas_moves_image_and_masks_together():
    from mrcnn.data import pipeline as data
    image = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64, 1), bool)
    image[8:40, 16:48] = 200            # a 32x32 square, its mask
    mask[8:40, 16:48, 0] = True
    window = (0, 0, 64, 64)
    rng = np.random.default_rng(3)
    small, small_mask, small_window = data.scale_in_canvas(image, mask, window, 0.5, rng)
    assert small.shape == image.shape and small_mask.shape == mask.shape
    wy1, wx1, wy2, wx2 = small_window
    assert (wy2 - wy1, wx2 - wx1) == (32, 32)
    assert small_mask.sum() == 16 * 16

    def iou(a, b):
        return np.sum(a & b) / np.sum(a | b)
    # The image is resized bilinearly, the mask by nearest neighbour: edges differ by a pixel.
    assert iou(small[..., 0] > 100, small_mask[..., 0]) > 0.85
    big, big_mask, big_window = data.scale_in_canvas(image, mask, window, 2.0, rng)
    assert big_window == (0, 0, 64, 64)                       # cropped to the canvas
    assert 0 < big_mask.sum() <= 64 * 64
    assert iou(big[..., 0] > 100, big_mask[..., 0]) > 0.9


def test_multi_scale_training_samples_follow_the_scale(tiny_shapes):
    from mrcnn.data import pipeline as data
    from mrcnn import utils

    class MultiScale(TinyConfig):
        IMAGE_SCALE_RANGE = (0.5, 0.5)
    image, meta, class_ids, boxes, masks = data.load_image_gt(
        tiny_shapes, MultiScale(), 3, use_mini_mask=False, rng=np.random.default_rng(0))
    full, _ = tiny_shapes.load_mask(3)
    parsed = data.parse_image_meta(meta)
    assert parsed["scale"] == pytest.approx(0.5)
    np.testing.assert_array_equal(boxes, utils.extract_bboxes(masks))
    np.testing.assert_allclose(masks.sum(axis=(0, 1)), full.sum(axis=(0, 1)) / 4, rtol=0.25)


def test_repeat_factor_sampling_repeats_images_of_rare_classes(tiny_shapes):
    from mrcnn.data import pipeline as data, repeat_factor
    builder = data.SampleBuilder(tiny_shapes, TinyConfig(), seed=4, repeat_factor_threshold=1.0)
    factors = repeat_factor.repeat_factors(tiny_shapes, 1.0)
    assert factors.max() > 1
    seen = np.bincount([builder.image_id(k) for k in range(len(tiny_shapes.image_ids) * 50)],
                       minlength=16)
    np.testing.assert_allclose(seen / seen.sum(), factors / factors.sum(), atol=0.02)
    again = data.SampleBuilder(tiny_shapes, TinyConfig(), seed=4, repeat_factor_threshold=1.0)
    assert [again.image_id(k) for k in range(40)] == [builder.image_id(k) for k in range(40)]


def test_horizontal_flip_setting_composes_with_albumentations():
    import albumentations as A

    from mrcnn.data import pipeline as data
    assert isinstance(data.with_horizontal_flip(None), A.HorizontalFlip)
    composed = data.with_horizontal_flip(A.RandomBrightnessContrast())
    assert isinstance(composed, A.Compose) and isinstance(composed.transforms[0],
                                                            A.HorizontalFlip)
