"""``Config.validate``'s checks: the allowed values, and one validator per subsystem.

Each ``validate_<subsystem>(config)`` checks the attributes that subsystem reads (named in its
docstring) and raises ``ValueError("<ConfigClass>: <message>")`` naming the first offending
attribute. ``Config.validate`` runs :data:`VALIDATORS` in order; a validator may rely on the
attributes that the earlier ones checked (NUM_CLASSES, IMAGE_CHANNEL_COUNT, BACKBONE_STRIDES).
The subsystems import TensorFlow and ``mrcnn.config`` imports this module, so the checks live
here rather than in them; the attribute names stay Matterport's, flat on ``Config``.
"""

import numbers

import numpy as np

# The five loss names; LOSS_WEIGHTS keys must be among these.
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
              "mrcnn_bbox_loss", "mrcnn_mask_loss")

RESIZE_MODES = ("none", "square", "pad64", "crop", "shortest_edge")

OPTIMIZERS = ("sgd", "adam", "adamw")

MASK_LOSSES = ("bce", "dice", "bce+dice")

NORMS = ("batch", "frozen_batch", "group")

# Config.DISTRIBUTE: None decides from GPU_COUNT and TF_CONFIG (see mrcnn.engine.distribute).
DISTRIBUTE_KINDS = (None, "mirrored", "multi_worker")

MIXED_PRECISION_POLICIES = (None, "mixed_float16", "mixed_bfloat16")

# Config.ROI_LEVEL_MAPPING (see mrcnn.modeling.roi_align.roi_level).
ROI_LEVEL_MAPPINGS = ("matterport", "torchvision")

# Config.RESNET_STYLE (see mrcnn.modeling.backbone).
RESNET_STYLES = ("matterport", "torchvision")

# Config.RPN_ANCHOR_STYLE (see mrcnn.modeling.anchors.generate_anchors) and Config.BOX_DECODING (see
# box_ops.decode_pixel_boxes).
ANCHOR_STYLES = ("matterport", "torchvision")
# Config.MASK_PASTE (see mrcnn.inference.postprocess.paste_mode).
PASTE_MODES = ("resize", "aligned", "unaligned", "torchvision")
BOX_DECODINGS = ("matterport", "torchvision")


def config_train_bn(config):
    """The effective TRAIN_BN of a config: NORM "frozen_batch" freezes BatchNorm."""
    return False if config.NORM == "frozen_batch" else config.TRAIN_BN


class _Checks:
    """The checks the validators share, failing with the config class's name."""

    def __init__(self, config):
        self.config = config

    def fail(self, message):
        raise ValueError("{}: {}".format(type(self.config).__name__, message))

    def positive_int(self, *names):
        for name in names:
            value = getattr(self.config, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                self.fail("{} must be a positive integer, got {!r}".format(name, value))

    def non_negative_int(self, name):
        value = getattr(self.config, name)
        if not isinstance(value, numbers.Integral) or value < 0:
            self.fail("{} must be a non-negative integer, got {!r}".format(name, value))

    def sequence(self, name, length=None):
        # Tuple-valued settings are checked before the checks that read them: given a scalar
        # (IMAGE_SCALE_RANGE = 1.5), those and the code that reads them would fail with
        # "cannot unpack non-iterable float" or "object of type 'int' has no len()", naming
        # no attribute.
        value = getattr(self.config, name)
        if not (isinstance(value, (list, tuple, np.ndarray)) and np.ndim(value) == 1 and
                (length is None or len(value) == length) and
                all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
            self.fail("{} must be a list or tuple of {}numbers, got {!r}".format(
                name, "{} ".format(length) if length else "", value))

    def one_of(self, name, allowed):
        if getattr(self.config, name) not in allowed:
            self.fail("{} must be one of {}, got {!r}".format(name, allowed,
                                                              getattr(self.config, name)))

    def boolean(self, *names):
        for name in names:
            if not isinstance(getattr(self.config, name), (bool, np.bool_)):
                self.fail("{} must be True or False, got {!r}".format(
                    name, getattr(self.config, name)))

    def fraction(self, *names):
        for name in names:
            value = getattr(self.config, name)
            if not 0 <= value <= 1:
                self.fail("{} must be in [0, 1], got {!r}".format(name, value))

    def std_dev(self, name):
        value = getattr(self.config, name)
        if value.shape != (4,) or np.any(value <= 0):
            self.fail("{} must be 4 positive numbers, got {!r}".format(name, value))


def validate_run(config):
    """The run (``MaskRCNN.train``, ``mrcnn.engine.callbacks``): devices, batch, steps, classes."""
    check = _Checks(config)
    check.positive_int("GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH", "NUM_CLASSES",
                       "TENSORBOARD_IMAGE_COUNT")
    if not isinstance(config.VALIDATION_STEPS, numbers.Integral) or config.VALIDATION_STEPS < 0:
        check.fail("VALIDATION_STEPS must be a non-negative integer, got {!r}".format(
            config.VALIDATION_STEPS))


def validate_input(config):
    """Images and ground truth (``utils.resize_image``, ``mrcnn.inference.molding``,
    ``mrcnn.data.pipeline``, ``mrcnn.data.repeat_factor``): resize mode and sizes, pixel statistics,
    mini masks, multi-scale training, repeat-factor sampling."""
    check = _Checks(config)
    check.positive_int("IMAGE_CHANNEL_COUNT", "MAX_GT_INSTANCES")
    check.sequence("MEAN_PIXEL")
    check.sequence("MINI_MASK_SHAPE", 2)
    if config.IMAGE_SCALE_RANGE is not None:
        check.sequence("IMAGE_SCALE_RANGE", 2)
    check.one_of("IMAGE_RESIZE_MODE", RESIZE_MODES)
    mode = config.IMAGE_RESIZE_MODE
    # Five stride-2 stages plus P6 mean the padded image side must divide by 2^6.
    if mode == "square" and config.IMAGE_MAX_DIM % 64:
        check.fail("IMAGE_MAX_DIM must be divisible by 64 in 'square' mode (the backbone halves "
                   "the image 6 times), got {}; use e.g. {}".format(
                       config.IMAGE_MAX_DIM, max(64, 64 * round(config.IMAGE_MAX_DIM / 64))))
    if mode == "crop" and config.IMAGE_MIN_DIM % 64:
        check.fail("IMAGE_MIN_DIM must be divisible by 64 in 'crop' mode, got {}".format(
            config.IMAGE_MIN_DIM))
    if config.IMAGE_MIN_DIM and config.IMAGE_MAX_DIM and \
            config.IMAGE_MIN_DIM > config.IMAGE_MAX_DIM and \
            mode in ("square", "pad64", "shortest_edge"):
        check.fail("IMAGE_MIN_DIM ({}) must not exceed IMAGE_MAX_DIM ({})".format(
            config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM))
    if config.PIXEL_STD is not None:
        std = np.asarray(config.PIXEL_STD, dtype=np.float64)
        if std.shape != (config.IMAGE_CHANNEL_COUNT,) or np.any(std <= 0) or \
                not np.all(np.isfinite(std)):
            check.fail("PIXEL_STD must be None or IMAGE_CHANNEL_COUNT ({}) positive numbers, "
                       "got {!r}".format(config.IMAGE_CHANNEL_COUNT, config.PIXEL_STD))
    if config.MEAN_PIXEL.shape != (config.IMAGE_CHANNEL_COUNT,):
        check.fail("MEAN_PIXEL has {} values but IMAGE_CHANNEL_COUNT is {}".format(
            config.MEAN_PIXEL.size, config.IMAGE_CHANNEL_COUNT))
    if min(config.MINI_MASK_SHAPE) < 1:
        check.fail("MINI_MASK_SHAPE must be (height, width), got {!r}".format(
            config.MINI_MASK_SHAPE))
    if config.IMAGE_SCALE_RANGE is not None:
        low, high = config.IMAGE_SCALE_RANGE
        if not 0 < low <= high or mode != "square":
            check.fail("IMAGE_SCALE_RANGE must be (low, high) with 0 < low <= high, in 'square' "
                       "mode; got {!r} in {!r} mode".format(config.IMAGE_SCALE_RANGE, mode))
    threshold = config.REPEAT_FACTOR_THRESHOLD
    if threshold is not None and not 0 < threshold <= 1:
        check.fail("REPEAT_FACTOR_THRESHOLD must be in (0, 1], got {!r}".format(threshold))


def validate_backbone(config):
    """Backbone and FPN (``mrcnn.modeling.backbone``, ``graph.build_features``): the network, its
    strides, style and normalization."""
    check = _Checks(config)
    check.positive_int("TOP_DOWN_PYRAMID_SIZE")
    check.sequence("BACKBONE_STRIDES")
    if callable(config.BACKBONE):
        if config.COMPUTE_BACKBONE_SHAPE is None:
            check.fail("a callable BACKBONE needs COMPUTE_BACKBONE_SHAPE (image_shape -> "
                       "feature map shapes) to place the anchors")
    elif config.BACKBONE not in ("resnet50", "resnet101"):
        check.fail("BACKBONE must be 'resnet50', 'resnet101' or a callable, got {!r}".format(
            config.BACKBONE))
    check.one_of("RESNET_STYLE", RESNET_STYLES)
    if config.FPN_NORM not in (None, "batch", "group"):
        check.fail("FPN_NORM must be None, 'batch' or 'group', got {!r}".format(config.FPN_NORM))
    check.one_of("NORM", NORMS)
    if config.ZERO_INIT_RESIDUAL and config.NORM != "group" and \
            config_train_bn(config) is False:
        check.fail("ZERO_INIT_RESIDUAL needs normalization that trains (TRAIN_BN True or None, "
                   "or NORM 'group'): with NORM {!r} and TRAIN_BN {!r} the residual branches' "
                   "scales would stay 0".format(config.NORM, config.TRAIN_BN))


def validate_rpn(config):
    """Anchors, RPN and proposals (``mrcnn.modeling.anchors``, ``mrcnn.modeling.rpn``, the RPN
    targets of ``mrcnn.modeling.targets`` and ``mrcnn.modeling.matching``)."""
    check = _Checks(config)
    check.positive_int("RPN_TRAIN_ANCHORS_PER_IMAGE", "PRE_NMS_LIMIT", "POST_NMS_ROIS_TRAINING",
                       "POST_NMS_ROIS_INFERENCE", "RPN_ANCHOR_STRIDE", "RPN_CONV_CHANNELS",
                       "RPN_CONV_DEPTH")
    check.sequence("RPN_ANCHOR_SCALES")
    check.sequence("RPN_ANCHOR_RATIOS")
    check.sequence("RPN_BBOX_STD_DEV", 4)
    check.boolean("RPN_PROPOSALS_PER_LEVEL")
    check.one_of("RPN_ANCHOR_STYLE", ANCHOR_STYLES)
    check.one_of("BOX_DECODING", BOX_DECODINGS)
    check.std_dev("RPN_BBOX_STD_DEV")
    if len(config.RPN_ANCHOR_SCALES) != len(config.BACKBONE_STRIDES):
        check.fail("RPN_ANCHOR_SCALES has {} scales but BACKBONE_STRIDES has {} levels; "
                   "one anchor scale per pyramid level is needed".format(
                       len(config.RPN_ANCHOR_SCALES), len(config.BACKBONE_STRIDES)))
    if not len(config.RPN_ANCHOR_RATIOS) or any(r <= 0 for r in config.RPN_ANCHOR_RATIOS):
        check.fail("RPN_ANCHOR_RATIOS must be positive numbers, got {!r}".format(
            config.RPN_ANCHOR_RATIOS))
    check.fraction("RPN_NMS_THRESHOLD", "RPN_POSITIVE_IOU", "RPN_NEGATIVE_IOU")
    if config.RPN_NEGATIVE_IOU > config.RPN_POSITIVE_IOU:
        check.fail("RPN_NEGATIVE_IOU ({}) must not exceed RPN_POSITIVE_IOU ({})".format(
            config.RPN_NEGATIVE_IOU, config.RPN_POSITIVE_IOU))


def validate_heads(config):
    """RoI sampling, RoIAlign and the box and mask heads (``mrcnn.modeling.targets``,
    ``mrcnn.modeling.roi_align``, ``mrcnn.modeling.heads``)."""
    check = _Checks(config)
    check.positive_int("TRAIN_ROIS_PER_IMAGE", "POOL_SIZE", "MASK_POOL_SIZE",
                       "FPN_CLASSIF_FC_LAYERS_SIZE", "MASK_HEAD_CHANNELS")
    check.sequence("BBOX_STD_DEV", 4)
    check.sequence("MASK_SHAPE", 2)
    ratio = config.ROI_ALIGN_SAMPLING_RATIO
    if not isinstance(ratio, numbers.Integral) or isinstance(ratio, bool) or ratio < -1:
        check.fail("ROI_ALIGN_SAMPLING_RATIO must be 0 (Matterport's sampling), a positive "
                   "integer or -1 (the adaptive grid of torchvision and detectron2), got "
                   "{!r}".format(ratio))
    check.boolean("ROI_ALIGN_ALIGNED")
    check.one_of("ROI_LEVEL_MAPPING", ROI_LEVEL_MAPPINGS)
    if config.BOX_HEAD_FCS not in (1, 2):
        check.fail("BOX_HEAD_FCS must be 1 or 2, got {!r}".format(config.BOX_HEAD_FCS))
    check.non_negative_int("BOX_HEAD_CONVS")
    check.std_dev("BBOX_STD_DEV")
    if list(config.MASK_SHAPE) != [2 * config.MASK_POOL_SIZE] * 2:
        check.fail("MASK_SHAPE must be twice MASK_POOL_SIZE (the mask head upsamples once): "
                   "MASK_POOL_SIZE={} needs MASK_SHAPE=[{}, {}], got {!r}".format(
                       config.MASK_POOL_SIZE, 2 * config.MASK_POOL_SIZE,
                       2 * config.MASK_POOL_SIZE, config.MASK_SHAPE))
    check.fraction("ROI_POSITIVE_RATIO", "ROI_POSITIVE_IOU")
    if not config.USE_RPN_ROIS:
        check.fail("USE_RPN_ROIS=False (training the heads on externally generated RoIs) is not "
                   "supported; the heads train on RPN proposals")


def validate_detection(config):
    """Detections and their masks (``mrcnn.modeling.detection``,
    ``mrcnn.inference.postprocess``)."""
    check = _Checks(config)
    check.positive_int("DETECTION_MAX_INSTANCES")
    check.boolean("DETECTION_MULTI_LABEL")
    if config.MASK_PASTE not in (None,) + PASTE_MODES:
        check.fail("MASK_PASTE must be None or one of {}, got {!r}".format(PASTE_MODES,
                                                                        config.MASK_PASTE))
    check.fraction("DETECTION_MIN_CONFIDENCE", "DETECTION_NMS_THRESHOLD",
                   "DETECTION_MASK_THRESHOLD")


def validate_losses(config):
    """The losses (``mrcnn.modeling.losses``, ``training.TrainingModel``): weights and options."""
    check = _Checks(config)
    if not isinstance(config.LOSS_WEIGHTS, dict):
        check.fail("LOSS_WEIGHTS must be a dict of loss name -> weight, got {!r}".format(
            config.LOSS_WEIGHTS))
    unknown = set(config.LOSS_WEIGHTS) - set(LOSS_NAMES)
    if unknown:
        check.fail("LOSS_WEIGHTS has unknown keys {}; valid keys are {}".format(
            sorted(unknown), list(LOSS_NAMES)))
    check.one_of("MASK_LOSS", MASK_LOSSES)
    weights = config.CLASS_WEIGHTS
    if weights is not None and not isinstance(weights, str):
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (config.NUM_CLASSES,) or np.any(weights < 0) or \
                not np.all(np.isfinite(weights)):
            check.fail("CLASS_WEIGHTS must hold NUM_CLASSES ({}) non-negative numbers, "
                       "background first, got {!r}".format(config.NUM_CLASSES,
                                                           config.CLASS_WEIGHTS))
    elif weights not in (None, "balanced"):
        check.fail("CLASS_WEIGHTS must be None, 'balanced' or a list of NUM_CLASSES numbers, "
                   "got {!r}".format(weights))


def validate_optimizer(config):
    """The optimizer and its schedule (``training.build_optimizer``,
    ``mrcnn.engine.optimizers``)."""
    check = _Checks(config)
    check.sequence("LR_STEP_FRACTIONS")
    if config.LR_SCHEDULE not in (None, "step", "cosine"):
        check.fail("LR_SCHEDULE must be None, 'step' or 'cosine', got {!r}".format(
            config.LR_SCHEDULE))
    fractions = config.LR_STEP_FRACTIONS
    if any(not 0 < f < 1 for f in fractions) or list(fractions) != sorted(fractions):
        check.fail("LR_STEP_FRACTIONS must be increasing fractions in (0, 1), got {!r}".format(
            fractions))
    check.non_negative_int("WARMUP_STEPS")
    if str(config.OPTIMIZER).lower() not in OPTIMIZERS:
        check.fail("OPTIMIZER must be one of {}, got {!r}".format(OPTIMIZERS, config.OPTIMIZER))
    for name in ("LEARNING_RATE", "WEIGHT_DECAY", "LEARNING_MOMENTUM",
                 "BACKBONE_LR_MULTIPLIER"):
        if getattr(config, name) < 0:
            check.fail("{} must not be negative, got {!r}".format(name, getattr(config, name)))
    if config.GRADIENT_CLIP_NORM is not None and config.GRADIENT_CLIP_NORM <= 0:
        check.fail("GRADIENT_CLIP_NORM must be positive or None, got {!r}".format(
            config.GRADIENT_CLIP_NORM))


def validate_devices(config):
    """Precision and distribution (``mrcnn.modeling.precision``, ``mrcnn.engine.distribute``)."""
    check = _Checks(config)
    check.one_of("MIXED_PRECISION", MIXED_PRECISION_POLICIES)
    check.one_of("DISTRIBUTE", DISTRIBUTE_KINDS)


# Config.validate runs these in this order.
VALIDATORS = (validate_run, validate_input, validate_backbone, validate_rpn, validate_heads,
              validate_detection, validate_losses, validate_optimizer, validate_devices)
