import numpy as np
import pytest

from mrcnn.config import Config, LOSS_NAMES


def test_matterport_defaults_and_computed_attributes():
    c = Config()
    assert c.NAME is None and c.GPU_COUNT == 1 and c.IMAGES_PER_GPU == 2
    assert c.BACKBONE == "resnet101" and c.BACKBONE_STRIDES == [4, 8, 16, 32, 64]
    assert c.RPN_ANCHOR_SCALES == (32, 64, 128, 256, 512)
    assert c.PRE_NMS_LIMIT == 6000 and c.POST_NMS_ROIS_TRAINING == 2000
    assert c.MINI_MASK_SHAPE == (56, 56) and c.MASK_SHAPE == [28, 28]
    assert c.DETECTION_MIN_CONFIDENCE == 0.7 and c.GRADIENT_CLIP_NORM == 5.0
    np.testing.assert_allclose(c.MEAN_PIXEL, [123.7, 116.8, 103.9])
    assert set(c.LOSS_WEIGHTS) == set(LOSS_NAMES)
    assert c.BATCH_SIZE == 2
    np.testing.assert_array_equal(c.IMAGE_SHAPE, [1024, 1024, 3])
    assert c.IMAGE_META_SIZE == 1 + 3 + 3 + 4 + 1 + 1


def test_subclass_overrides_and_crop_shape():
    class MyConfig(Config):
        NAME = "mine"
        GPU_COUNT = 2
        IMAGES_PER_GPU = 3
        NUM_CLASSES = 5
        IMAGE_RESIZE_MODE = "crop"
        IMAGE_MIN_DIM = 512

    c = MyConfig()
    assert c.BATCH_SIZE == 6
    np.testing.assert_array_equal(c.IMAGE_SHAPE, [512, 512, 3])
    assert c.IMAGE_META_SIZE == 17


def test_instances_do_not_share_mutable_defaults():
    a, b = Config(), Config()
    a.LOSS_WEIGHTS["mrcnn_mask_loss"] = 3.0
    a.BACKBONE_STRIDES.append(128)
    assert b.LOSS_WEIGHTS["mrcnn_mask_loss"] == 1.0
    assert Config.LOSS_WEIGHTS["mrcnn_mask_loss"] == 1.0
    assert b.BACKBONE_STRIDES == [4, 8, 16, 32, 64]


@pytest.mark.parametrize("attrs, message", [
    ({"IMAGE_MAX_DIM": 1000}, "IMAGE_MAX_DIM must be divisible by 64"),
    ({"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 100}, "IMAGE_MIN_DIM must be divisible"),
    ({"MEAN_PIXEL": [1.0, 2.0]}, "MEAN_PIXEL has 2 values but IMAGE_CHANNEL_COUNT is 3"),
    ({"IMAGE_CHANNEL_COUNT": 1}, "MEAN_PIXEL has 3 values but IMAGE_CHANNEL_COUNT is 1"),
    ({"NUM_CLASSES": 0}, "NUM_CLASSES must be a positive integer"),
    ({"IMAGE_RESIZE_MODE": "stretch"}, "IMAGE_RESIZE_MODE must be one of"),
    ({"BACKBONE": "vgg16"}, "BACKBONE must be"),
    ({"BACKBONE": lambda *a: None}, "COMPUTE_BACKBONE_SHAPE"),
    ({"MASK_SHAPE": [56, 56]}, "MASK_SHAPE must be twice MASK_POOL_SIZE"),
    ({"RPN_ANCHOR_SCALES": (32, 64)}, "one anchor scale per pyramid level"),
    ({"LOSS_WEIGHTS": {"mask_loss": 1.0}}, "unknown keys"),
    ({"ROI_POSITIVE_RATIO": 1.5}, "ROI_POSITIVE_RATIO must be in"),
    ({"IMAGES_PER_GPU": 0}, "IMAGES_PER_GPU must be a positive integer"),
    ({"ROI_ALIGN_SAMPLING_RATIO": -2}, "ROI_ALIGN_SAMPLING_RATIO must be 0"),
    ({"ROI_ALIGN_SAMPLING_RATIO": 1.5}, "ROI_ALIGN_SAMPLING_RATIO must be 0"),
    ({"ROI_LEVEL_MAPPING": "round"}, "ROI_LEVEL_MAPPING must be one of"),
    ({"RESNET_STYLE": "caffe"}, "RESNET_STYLE must be one of"),
    ({"RPN_PROPOSALS_PER_LEVEL": "False"}, "RPN_PROPOSALS_PER_LEVEL must be True or False"),
    ({"PIXEL_STD": [1.0, 0.0, 1.0]}, "PIXEL_STD must be None or IMAGE_CHANNEL_COUNT"),
    ({"PIXEL_STD": [1.0, 2.0]}, "PIXEL_STD must be None or IMAGE_CHANNEL_COUNT"),
])
def test_inconsistent_settings_raise_clear_errors(attrs, message):
    Bad = type("Bad", (Config,), attrs)
    with pytest.raises(ValueError, match=message):
        Bad()


@pytest.mark.parametrize("attrs, message", [
    # Issue 27 case 13: scalars where a tuple is expected used to fail with "cannot unpack
    # non-iterable float" or "has no len()", naming no attribute.
    ({"IMAGE_SCALE_RANGE": 1.5}, r"IMAGE_SCALE_RANGE must be a list or tuple of 2 numbers, "
                                 r"got 1\.5"),
    ({"IMAGE_SCALE_RANGE": (0.5, 1.0, 2.0)}, "IMAGE_SCALE_RANGE must be a list or tuple of 2"),
    ({"MINI_MASK_SHAPE": 56}, "MINI_MASK_SHAPE must be a list or tuple of 2 numbers, got 56"),
    ({"MASK_SHAPE": 28}, "MASK_SHAPE must be a list or tuple of 2 numbers, got 28"),
    ({"RPN_ANCHOR_SCALES": 32}, "RPN_ANCHOR_SCALES must be a list or tuple of numbers, got 32"),
    ({"RPN_ANCHOR_RATIOS": 1}, "RPN_ANCHOR_RATIOS must be a list or tuple of numbers"),
    ({"BACKBONE_STRIDES": 4}, "BACKBONE_STRIDES must be a list or tuple of numbers"),
    ({"LR_STEP_FRACTIONS": 0.5}, "LR_STEP_FRACTIONS must be a list or tuple of numbers"),
    ({"RPN_BBOX_STD_DEV": 0.1}, "RPN_BBOX_STD_DEV must be a list or tuple of 4 numbers"),
    ({"MEAN_PIXEL": 120.0}, "MEAN_PIXEL must be a list or tuple of numbers"),
    ({"RPN_ANCHOR_SCALES": ("32", 64, 128, 256, 512)}, "RPN_ANCHOR_SCALES must be a list"),
    ({"LOSS_WEIGHTS": 1.0}, "LOSS_WEIGHTS must be a dict of loss name -> weight, got 1.0"),
])
def test_tuple_valued_settings_given_a_scalar_name_the_attribute(attrs, message):
    Bad = type("Bad", (Config,), attrs)
    with pytest.raises(ValueError, match="Bad: " + message):
        Bad()
    # The valid forms pass.
    assert type("Good", (Config,), {"IMAGE_SCALE_RANGE": [0.5, 1.5]})().IMAGE_SCALE_RANGE


def test_every_roi_align_sampling_ratio_of_the_docstring_passes():
    # 0 Matterport's, n > 0 the paper's, -1 the adaptive grid (torchvision, detectron2).
    for ratio in (0, 1, 2, -1):
        assert type("R", (Config,), {"ROI_ALIGN_SAMPLING_RATIO": ratio})(
        ).ROI_ALIGN_SAMPLING_RATIO == ratio


def test_valid_non_default_settings_pass():
    Gray = type("Gray", (Config,), {"IMAGE_CHANNEL_COUNT": 1, "MEAN_PIXEL": [128.0],
                                    "IMAGE_RESIZE_MODE": "pad64", "IMAGE_MAX_DIM": 1000})
    c = Gray()
    np.testing.assert_array_equal(c.IMAGE_SHAPE, [1000, 1000, 1])


def test_display_lists_every_attribute(capsys):
    c = Config()
    c.display()
    out = capsys.readouterr().out
    for name in ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE", "LOSS_WEIGHTS", "SEED",
                 "RPN_POSITIVE_IOU", "BACKBONE", "MEAN_PIXEL"):
        assert name in out
    assert "IMAGE_META_SIZE                13" in out


def test_our_switches_default_to_matterport_behaviour():
    c = Config()
    assert c.OPTIMIZER == "SGD" and c.MASK_HEAD_CHANNELS == 256 and c.SEED is None
    with pytest.raises(ValueError, match="OPTIMIZER must be one of"):
        type("Bad", (Config,), {"OPTIMIZER": "rmsprop"})()
    with pytest.raises(ValueError, match="MASK_HEAD_CHANNELS must be a positive integer"):
        type("Bad", (Config,), {"MASK_HEAD_CHANNELS": 0})()


def test_fidelity_switches_default_to_matterport_and_mold_with_pixel_std():
    from mrcnn.inference import molding as transform
    c = Config()
    assert (c.ROI_ALIGN_SAMPLING_RATIO, c.ROI_LEVEL_MAPPING, c.RPN_PROPOSALS_PER_LEVEL,
            c.DETECTION_MULTI_LABEL, c.PIXEL_STD, c.RESNET_STYLE) == (
        0, "matterport", False, False, None, "matterport")
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    assert np.array_equal(transform.mold_image(image, c),
                          image.astype(np.float32) - c.MEAN_PIXEL.astype(np.float32))
    Std = type("Std", (Config,), {"PIXEL_STD": [58.4, 57.1, 57.4]})
    molded = transform.mold_image(image, Std())
    np.testing.assert_allclose(molded, (image - c.MEAN_PIXEL) / [58.4, 57.1, 57.4], rtol=1e-5)
    assert np.array_equal(transform.unmold_image(molded, Std()), image)


def test_for_inference_is_a_validated_one_device_copy():
    class Crop(Config):
        NAME = "crop"
        GPU_COUNT = 2
        IMAGES_PER_GPU = 4
        IMAGE_RESIZE_MODE = "crop"
        IMAGE_MIN_DIM = 256
    training = Crop()
    config = training.for_inference()
    assert type(config) is Crop
    assert (config.GPU_COUNT, config.IMAGES_PER_GPU, config.BATCH_SIZE) == (1, 1, 1)
    assert config.IMAGE_RESIZE_MODE == "pad64"
    np.testing.assert_array_equal(config.IMAGE_SHAPE, [1024, 1024, 3])
    # The training config is left as it was, its containers not shared.
    assert training.BATCH_SIZE == 8 and training.IMAGE_RESIZE_MODE == "crop"
    config.LOSS_WEIGHTS["rpn_class_loss"] = 2.0
    assert training.LOSS_WEIGHTS["rpn_class_loss"] == 1.0
    batch = training.for_inference(IMAGES_PER_GPU=3, DETECTION_MIN_CONFIDENCE=0.5)
    assert batch.BATCH_SIZE == 3 and batch.DETECTION_MIN_CONFIDENCE == 0.5
    with pytest.raises(ValueError, match=r"unknown attributes \['IMAGES_PER_GUP'\]"):
        training.for_inference(IMAGES_PER_GUP=3)
    with pytest.raises(ValueError, match="DETECTION_MIN_CONFIDENCE must be in"):
        training.for_inference(DETECTION_MIN_CONFIDENCE=2.0)


@pytest.mark.parametrize("validator, name, value, message", [
    ("validate_run", "GPU_COUNT", 0, "GPU_COUNT must be a positive integer"),
    ("validate_input", "IMAGE_RESIZE_MODE", "fit", "IMAGE_RESIZE_MODE must be one of"),
    ("validate_backbone", "NORM", "layer", "NORM must be one of"),
    ("validate_rpn", "RPN_NEGATIVE_IOU", 0.9, "RPN_NEGATIVE_IOU .* must not exceed"),
    ("validate_heads", "BOX_HEAD_FCS", 3, "BOX_HEAD_FCS must be 1 or 2"),
    ("validate_detection", "MASK_PASTE", "nearest", "MASK_PASTE must be None or one of"),
    ("validate_losses", "MASK_LOSS", "focal", "MASK_LOSS must be one of"),
    ("validate_optimizer", "LR_SCHEDULE", "poly", "LR_SCHEDULE must be None"),
    ("validate_devices", "DISTRIBUTE", "horovod", "DISTRIBUTE must be one of"),
])
def test_each_subsystem_validates_its_own_attributes(validator, name, value, message):
    from mrcnn import config_checks
    config = Config()
    setattr(config, name, value)
    with pytest.raises(ValueError, match="Config: " + message):
        config.validate()
    check = getattr(config_checks, validator)
    with pytest.raises(ValueError, match=message):
        check(config)
    for other in config_checks.VALIDATORS:
        if other is not check:
            other(config)      # the attribute is no other subsystem's
