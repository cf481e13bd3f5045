"""Mask R-CNN configuration.

A user subclasses :class:`Config` and overrides the attributes that differ for their data, exactly
as with Matterport's ``mrcnn.config.Config``. Every Matterport attribute exists here with the same
default value, so existing configuration classes keep working unchanged.
"""

import copy
import importlib

import numpy as np

from mrcnn.data import image_meta

# The allowed values of the settings live with the checks (mrcnn.config_checks); they are
# imported from here too.
from mrcnn.config_checks import (ANCHOR_STYLES, BOX_DECODINGS, DISTRIBUTE_KINDS,  # noqa: F401
                                 LOSS_NAMES, MASK_LOSSES, MIXED_PRECISION_POLICIES, NORMS,
                                 OPTIMIZERS, PASTE_MODES, RESIZE_MODES, RESNET_STYLES,
                                 ROI_LEVEL_MAPPINGS, VALIDATORS, config_train_bn)


class Config:
    """Base configuration class.

    Subclass it and override the attributes you need. ``__init__`` computes the derived attributes
    (``BATCH_SIZE``, ``IMAGE_SHAPE``, ``IMAGE_META_SIZE``) and validates the settings, raising a
    ``ValueError`` that names the offending attribute when they are inconsistent.

    Attributes that Matterport hard-coded and mrcnn exposes (defaults keep Matterport's values):

    RPN_POSITIVE_IOU (0.7)
        An anchor whose IoU with a GT box is at least this is an RPN positive.
    RPN_NEGATIVE_IOU (0.3)
        An anchor whose best IoU with every GT box is below this is an RPN negative.
    ROI_POSITIVE_IOU (0.5)
        A proposal whose IoU with a GT box is at least this is a positive RoI for the heads.
    DETECTION_MASK_THRESHOLD (0.5)
        Threshold on the sigmoid mask output when masks are pasted back into the image.
    SEED (None)
        Seed of the training input pipeline (shuffling, augmentation, anchor sampling).
        ``None`` draws a fresh seed per ``train()`` call.
    OPTIMIZER ("SGD")
        "SGD" (Matterport's: momentum LEARNING_MOMENTUM) or "adam"/"adamw" (converge faster
        from random initialization). All clip each gradient to GRADIENT_CLIP_NORM.
    MASK_HEAD_CHANNELS (256)
        Width of the mask head's convolutions; 256 matches Matterport's weights. Narrower heads
        train faster on a CPU when no pretrained weights are used.
    RPN_CONV_CHANNELS (512)
        Width of the RPN's shared 3x3 convolution (Matterport's 512, which its weights need).
        detectron2 and torchvision use the FPN's width (TOP_DOWN_PYRAMID_SIZE); on small
        images the 512-wide convolution over P2..P6 is a fifth of a step's FLOPs.
    TENSORBOARD_IMAGES (True)
        At each epoch end, ``train()`` detects on the first validation images with the current
        weights and writes pictures of ground truth vs detections to TensorBoard (run
        ``images`` of the log directory). False turns it off.
    TENSORBOARD_IMAGE_COUNT (4)
        How many validation images those pictures show.
    CLASS_COLLAPSE_WARNING (True)
        At each epoch end, print the evaluation's "everything predicted as one class" warning
        when the detections on those validation images show it.
    MASK_CLASS_AGNOSTIC (False)
        True: the mask head predicts one mask channel for every class (instance segmentation
        without class labels; see also ``dataset.ClassAgnosticDataset``). Loading class-aware
        weights skips ``mrcnn_mask`` with a message.
    MASK_LOSS ("bce")
        "bce" (Matterport's binary cross-entropy), "dice" (1 - soft Dice per RoI) or
        "bce+dice", on the ground-truth channel of the positive RoIs.
    NORM ("batch")
        Normalization in the backbone, the FPN and both heads: "batch" (BatchNorm, in
        TRAIN_BN's mode; Matterport's, and the FPN has none), "frozen_batch" (BatchNorm on its
        moving statistics, never trained: the standard fine-tuning recipe on small data) or
        "group" (GroupNorm with 32 groups, also after the FPN convolutions, as detectron2's GN
        models: for training from scratch with small batches).
    ZERO_INIT_RESIDUAL (False)
        True starts the scale (gamma) of each ResNet block's last normalization at 0, so that
        every block starts as its shortcut: for training from random initialization
        (torchvision's ``zero_init_residual``), so it needs normalization that trains.
        Pretrained weights overwrite it; a callable BACKBONE ignores it.
    LR_SCHEDULE (None), LR_STEP_FRACTIONS ((0.67, 0.89)), WARMUP_STEPS (0)
        The learning rate over each ``train()`` call: None keeps it constant (Matterport);
        "step" multiplies it by 0.1 at each fraction of the call's steps; "cosine" decays it
        to 0. WARMUP_STEPS > 0 ramps it up linearly from 0.001x over the first steps (training
        from scratch). Keras schedules; see ``training.learning_rate_schedule``.
    BACKBONE_LR_MULTIPLIER (1.0)
        The ResNet layers learn at this multiple of the learning rate (e.g. 0.1 when
        fine-tuning pretrained weights): a true per-layer rate for every optimizer.
    IMAGE_SCALE_RANGE (None)
        Multi-scale training: (low, high) range of a random scale of each training image's
        content inside the fixed canvas ("square" mode), masks and boxes following.
    HORIZONTAL_FLIP (False)
        Flip training images horizontally with probability 0.5 (with ``train(augmentation=)``
        given as an albumentations transform, both are applied).
    REPEAT_FACTOR_THRESHOLD (None)
        Repeat-factor sampling of rare classes (LVIS): an image is repeated max over its classes
        of max(1, sqrt(t / f(c))) times per epoch, f(c) the fraction of training images with
        class c; e.g. 0.1. Deterministic for a SEED.
    GRADIENT_CLIP_GLOBAL (False)
        True clips the global norm of all gradients to GRADIENT_CLIP_NORM instead of each
        tensor's norm (Matterport's).
    CLASS_WEIGHTS (None)
        Weights of the classifier's cross-entropy per target class: a list of NUM_CLASSES
        numbers (background first), or "balanced" (from the training set's instance counts,
        see ``losses.balanced_class_weights``), against class imbalance.
    DISTRIBUTE (None)
        How ``train()`` uses several devices (``mrcnn.engine.distribute``). None decides: several
        workers in the ``TF_CONFIG`` environment variable -> "multi_worker"; else GPU_COUNT > 1
        -> "mirrored"; else one device, no strategy. "mirrored": ``tf.distribute``'s
        MirroredStrategy over GPU_COUNT GPUs of this machine (GPU_COUNT logical CPU devices on
        a machine without GPUs); fewer devices than GPU_COUNT is a ValueError. "multi_worker":
        MultiWorkerMirroredStrategy over TF_CONFIG's workers, GPU_COUNT GPUs each (one CPU
        replica per worker without GPUs), a step then taking BATCH_SIZE x workers images.
        Each replica's losses are means over its own images; the replicas' losses and
        gradients are averaged. BatchNorm in training mode normalizes with each replica's own
        batch statistics (its moving averages are averaged over the replicas); the gradient
        clip applies to each replica's gradient before the average. Only the chief writes
        checkpoints and TensorBoard logs. Inference never uses a strategy.
    ROI_ALIGN_SAMPLING_RATIO (0), ROI_ALIGN_ALIGNED (True)
        RoIAlign of both heads (7x7 box head, 14x14 mask head). 0 is Matterport's sampling
        (its weights expect it): one bilinear sample per output cell, spread from box edge to
        box edge. n > 0 is the paper's RoIAlign (torchvision ``roi_align``, detectron2
        ``ROIAlign``): each bin averages n x n bilinear samples at regular points inside it;
        torchvision's Mask R-CNN uses 2. ROI_ALIGN_ALIGNED (used when n != 0) shifts boxes by
        half a pixel so that box edges and pixel centres agree (detectron2 ``ROIAlignV2``,
        torchvision ``aligned=True``); False is torchvision's Mask R-CNN. With n != 0 the mask
        targets are cut from the GT masks with the same sampling (``targets.
        roi_align_mask_targets``), and detect() pastes masks with the matching geometry
        (``postprocess.paste_mode``); docs/fidelity.md. -1 is the adaptive grid (torchvision's
        ``sampling_ratio <= 0``, detectron2's default ``POOLER_SAMPLING_RATIO: 0``): each box
        takes ceil(side / output side) samples per bin side, in the heads and the mask targets
        (there from the RoI's size in image pixels); it runs in training, detect() and the
        SavedModel, but not in the TFLite and ONNX exports, whose crops need fixed sizes.
    ROI_LEVEL_MAPPING ("matterport")
        FPN level of a RoI: "matterport" rounds 4 + log2(sqrt(area) / 224) (area relative to
        the image); "torchvision" floors it (+1e-6) on the box's pixel area (torchvision's
        ``LevelMapper``, detectron2's ``assign_boxes_to_levels``).
    RPN_PROPOSALS_PER_LEVEL (False)
        True: PRE_NMS_LIMIT best anchors and NMS per pyramid level, then the best
        POST_NMS_ROIS_* over all levels (torchvision ``RegionProposalNetwork``, detectron2
        ``find_top_rpn_proposals``); False: Matterport's global top-k and one NMS.
    DETECTION_MULTI_LABEL (False)
        True: every foreground class of a RoI whose score passes DETECTION_MIN_CONFIDENCE is a
        candidate detection (torchvision ``postprocess_detections``, detectron2
        ``fast_rcnn_inference``); False: Matterport's most likely class per RoI only.
    PIXEL_STD (None)
        Per-channel standard deviation: images are molded as (image - MEAN_PIXEL) / PIXEL_STD
        (torchvision and detectron2 normalize so). None: image - MEAN_PIXEL (Matterport).
    RESNET_STYLE ("matterport")
        "torchvision": ResNet v1.5 as torchvision's (the stride of a stage's first block in
        its 3x3 convolution, PyTorch's symmetric padding of the strided convolutions and of
        the stem's max pool, convolutions without a bias), for its weights; "matterport":
        Keras' ResNet (the stride in the first 1x1, TensorFlow's "same" padding, biases).
        The layer names are the same.
    RPN_ANCHOR_STYLE ("matterport")
        "torchvision": anchors as torchvision's ``AnchorGenerator`` places them (half sides
        rounded to whole pixels; a level's stride is image side // map side, 61 instead of 64
        for P6 of an 800-pixel side). RPN_ANCHOR_RATIOS stay width/height: torchvision's
        aspect ratios (0.5, 1, 2) are height/width, so its order is [2, 1, 0.5] here.
    BOX_DECODING ("matterport")
        "torchvision": the RPN's and the box head's deltas are applied to boxes in pixels
        (width x2 - x1, as torchvision, detectron2 and Matterport's own RPN targets do),
        proposals are clipped to the image window and boxes under 1e-3 (proposals) or 1e-2
        (detections) pixels dropped; "matterport": applied in normalized coordinates (a box's
        normalized height is (h - 1) / (H - 1)), proposals clipped to the padded image.
    MASK_PASTE (None)
        How detect() pastes masks into the image (``postprocess.paste_mode``): None follows
        the RoIAlign settings ("resize", Matterport's, with ROI_ALIGN_SAMPLING_RATIO 0, else
        the inverse of the RoIAlign sampling, "aligned" or "unaligned"); "torchvision" is
        torchvision's ``paste_masks_in_image`` (the mask with a zero border resized into its
        grown, truncated box).
    FPN_NORM (None)
        Normalization after each FPN convolution: None follows NORM (GroupNorm with "group",
        none otherwise: Matterport's FPN), "batch" (torchvision's v2) or "group".
    RPN_CONV_DEPTH (1)
        3x3 convolutions of the RPN head (torchvision's v2: 2).
    BOX_HEAD_CONVS (0), BOX_HEAD_FCS (2)
        The box head: BOX_HEAD_CONVS normalized 3x3 convolutions on the pooled RoIs, then
        BOX_HEAD_FCS (1 or 2) "fully connected" layers of FPN_CLASSIF_FC_LAYERS_SIZE
        (Matterport: 0 and 2; torchvision's v2: 4 and 1).
    MIXED_PRECISION (None)
        "mixed_bfloat16" or "mixed_float16": the backbone, the FPN and the heads' convolutions
        compute in that type (Keras dtype policies; variables stay float32); boxes, NMS, RoI
        sampling, RoIAlign, the final logits, softmax/sigmoid and the losses stay float32 (see
        ``mrcnn.modeling.precision``). float16 trains with a dynamically scaled loss. bfloat16 is
        fast on CPUs with AMX or AVX512-BF16 and on recent GPUs; float16 on GPUs with tensor cores
        only (CPUs have no fast float16 kernels: a tiny model's step took 18 s instead of
        0.1 s).
    """

    # --- run -------------------------------------------------------------------------------
    # Name the configurations: it is the prefix of the log directory and checkpoint files.
    NAME = None
    # Devices to train on (per machine): GPU_COUNT > 1 trains with tf.distribute's
    # MirroredStrategy, one replica of IMAGES_PER_GPU images per GPU (see DISTRIBUTE).
    # BATCH_SIZE = IMAGES_PER_GPU * GPU_COUNT. Inference runs on one device.
    GPU_COUNT = 1
    # Images per device per step. 12GB GPUs fit two 1024x1024 images.
    IMAGES_PER_GPU = 2
    # Training steps per epoch (not tied to the dataset size).
    STEPS_PER_EPOCH = 1000
    # Validation steps run at the end of every epoch.
    VALIDATION_STEPS = 50

    # --- backbone --------------------------------------------------------------------------
    # "resnet50", "resnet101", or a callable(input_image, stage5, train_bn) returning [C1..C5].
    BACKBONE = "resnet101"
    # With a callable BACKBONE: a function image_shape -> [[h, w], ...] per BACKBONE_STRIDES.
    COMPUTE_BACKBONE_SHAPE = None
    # Stride of each FPN level P2..P6 relative to the input image.
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]
    # Width of the fully-connected layers of the classification head.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    # Channels of the FPN top-down layers.
    TOP_DOWN_PYRAMID_SIZE = 256

    # --- classes ---------------------------------------------------------------------------
    # Number of classes including background.
    NUM_CLASSES = 1

    # --- RPN -------------------------------------------------------------------------------
    # Anchor side in pixels, one scale per pyramid level.
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    # Anchor width/height ratios at every location.
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    # 1: an anchor at every feature-map cell; 2: every other cell, and so on.
    RPN_ANCHOR_STRIDE = 1
    # NMS threshold on RPN proposals.
    RPN_NMS_THRESHOLD = 0.7
    # Anchors per image used to train the RPN.
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    # Top-scoring anchors kept before NMS.
    PRE_NMS_LIMIT = 6000
    # Proposals kept after NMS, in training and in inference.
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000
    # Standard deviations used to normalise RPN box deltas.
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    RPN_POSITIVE_IOU = 0.7
    RPN_NEGATIVE_IOU = 0.3

    # --- masks -----------------------------------------------------------------------------
    # Store GT masks as fixed-size crops of their box (saves memory at high resolution).
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)
    # RoIAlign output for the mask head, and the mask head's output size (2x the pool).
    MASK_POOL_SIZE = 14
    MASK_SHAPE = [28, 28]
    DETECTION_MASK_THRESHOLD = 0.5

    # --- input -----------------------------------------------------------------------------
    # "none", "square" (resize and pad to IMAGE_MAX_DIM^2), "pad64" (pad to multiples of 64),
    # "crop" (random IMAGE_MIN_DIM^2 crops; training only), "shortest_edge" (torchvision's and
    # detectron2's resize, up or down, padded bottom-right to multiples of 32; inference only).
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    # Minimum scale-up factor, applied after IMAGE_MIN_DIM.
    IMAGE_MIN_SCALE = 0
    # 3 for RGB; other counts need a backbone trained from scratch (or an adapted conv1).
    IMAGE_CHANNEL_COUNT = 3
    # Per-channel mean subtracted from the image (RGB).
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])

    # --- heads -----------------------------------------------------------------------------
    # RoIs per image fed to the classifier and mask heads in training.
    TRAIN_ROIS_PER_IMAGE = 200
    # Fraction of those RoIs that are positive.
    ROI_POSITIVE_RATIO = 0.33
    # RoIAlign output for the classification head.
    POOL_SIZE = 7
    # Ground-truth instances kept per image.
    MAX_GT_INSTANCES = 100
    # Standard deviations used to normalise head box deltas.
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    ROI_POSITIVE_IOU = 0.5
    # Matterport's switch to train the heads on externally generated RoIs (False); mrcnn always
    # trains them on RPN proposals, and validate() rejects False.
    USE_RPN_ROIS = True

    # --- detection -------------------------------------------------------------------------
    DETECTION_MAX_INSTANCES = 100
    # Detections below this confidence are dropped.
    DETECTION_MIN_CONFIDENCE = 0.7
    # Per-class NMS threshold on final detections.
    DETECTION_NMS_THRESHOLD = 0.3

    # --- optimisation ----------------------------------------------------------------------
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    # L2 regularisation on weights (not on BatchNorm gamma/beta).
    WEIGHT_DECAY = 0.0001
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.,
        "rpn_bbox_loss": 1.,
        "mrcnn_class_loss": 1.,
        "mrcnn_bbox_loss": 1.,
        "mrcnn_mask_loss": 1.,
    }
    # False freezes BatchNorm (statistics and affine weights): best with small batches.
    TRAIN_BN = False
    # Clip each gradient tensor to this L2 norm (Keras clipnorm, as Matterport); None: no clip.
    GRADIENT_CLIP_NORM = 5.0

    # --- ours ------------------------------------------------------------------------------
    SEED = None
    OPTIMIZER = "SGD"
    MASK_HEAD_CHANNELS = 256
    RPN_CONV_CHANNELS = 512
    TENSORBOARD_IMAGES = True
    TENSORBOARD_IMAGE_COUNT = 4
    CLASS_COLLAPSE_WARNING = True
    MASK_CLASS_AGNOSTIC = False
    MASK_LOSS = "bce"
    CLASS_WEIGHTS = None
    NORM = "batch"
    ZERO_INIT_RESIDUAL = False
    LR_SCHEDULE = None
    LR_STEP_FRACTIONS = (0.67, 0.89)
    WARMUP_STEPS = 0
    GRADIENT_CLIP_GLOBAL = False
    BACKBONE_LR_MULTIPLIER = 1.0
    IMAGE_SCALE_RANGE = None
    HORIZONTAL_FLIP = False
    REPEAT_FACTOR_THRESHOLD = None
    DISTRIBUTE = None
    MIXED_PRECISION = None
    ROI_ALIGN_SAMPLING_RATIO = 0
    ROI_ALIGN_ALIGNED = True
    ROI_LEVEL_MAPPING = "matterport"
    RPN_PROPOSALS_PER_LEVEL = False
    DETECTION_MULTI_LABEL = False
    PIXEL_STD = None
    RESNET_STYLE = "matterport"
    RPN_ANCHOR_STYLE = "matterport"
    BOX_DECODING = "matterport"
    MASK_PASTE = None
    FPN_NORM = None
    RPN_CONV_DEPTH = 1
    BOX_HEAD_CONVS = 0
    BOX_HEAD_FCS = 2

    def __init__(self):
        """Compute the derived attributes and validate the configuration."""
        # Class-level containers are shared between instances; give each instance its own copy
        # so that `config.LOSS_WEIGHTS["x"] = ...` does not leak into other configs.
        for name in self._attribute_names():
            value = getattr(type(self), name, None)
            if isinstance(value, (dict, list, np.ndarray)):
                setattr(self, name, copy.deepcopy(value))
        self.MEAN_PIXEL = np.asarray(self.MEAN_PIXEL, dtype=np.float64)
        self.RPN_BBOX_STD_DEV = np.asarray(self.RPN_BBOX_STD_DEV, dtype=np.float64)
        self.BBOX_STD_DEV = np.asarray(self.BBOX_STD_DEV, dtype=np.float64)
        self._compute()
        self.validate()

    def _compute(self):
        """(Re)compute the attributes derived from the others."""
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        side = self.IMAGE_MIN_DIM if self.IMAGE_RESIZE_MODE == "crop" else self.IMAGE_MAX_DIM
        self.IMAGE_SHAPE = np.array([side, side, self.IMAGE_CHANNEL_COUNT])
        self.IMAGE_META_SIZE = image_meta.meta_size(self.NUM_CLASSES)

    def _attribute_names(self):
        """Upper-case attribute names, sorted (the configuration proper)."""
        return sorted(a for a in dir(self) if a.isupper() and not a.startswith("_"))

    def validate(self):
        """Raise ``ValueError`` naming the attribute when the settings are inconsistent.

        Each subsystem's attributes are checked by its validator (``mrcnn.config_checks``:
        ``validate_run``, ``validate_input``, ``validate_backbone``, ``validate_rpn``,
        ``validate_heads``, ``validate_detection``, ``validate_losses``,
        ``validate_optimizer``, ``validate_devices``)."""
        for check in VALIDATORS:
            check(self)

    def for_inference(self, **overrides):
        """A copy of this (training) config for detection: one device (GPU_COUNT 1), one image
        per batch (IMAGES_PER_GPU 1), and 'pad64' (whole images padded to multiples of 64)
        instead of the training-only 'crop' resize mode; then ``overrides`` (attribute name ->
        value, e.g. ``IMAGES_PER_GPU=8``). The derived attributes are recomputed and the copy
        validated; this config is left as it was."""
        unknown = sorted(name for name in overrides if not (name.isupper() and
                                                             hasattr(self, name)))
        if unknown:
            raise ValueError("{}: for_inference() got unknown attributes {}".format(
                type(self).__name__, unknown))
        config = copy.copy(self)
        for name in config._attribute_names():
            value = getattr(config, name)
            if isinstance(value, (dict, list, np.ndarray)):
                setattr(config, name, copy.deepcopy(value))   # not shared with this config
        config.GPU_COUNT = 1
        config.IMAGES_PER_GPU = 1
        if config.IMAGE_RESIZE_MODE == "crop":
            config.IMAGE_RESIZE_MODE = "pad64"
        for name, value in overrides.items():
            setattr(config, name, value)
        config._compute()
        config.validate()
        return config

    def to_dict(self):
        """The configuration as a dict of attribute name -> value."""
        return {name: getattr(self, name) for name in self._attribute_names()}

    def display(self):
        """Print every configuration attribute, computed ones included."""
        print("\nConfigurations:")
        for name, value in self.to_dict().items():
            print("{:30} {}".format(name, value))
        print("\n")


def load_config_class(spec):
    """The class named by ``'package.module:ClassName'`` (``--config`` of the command lines).

    Raises ValueError for a malformed spec and for a name that is not a Config subclass.
    """
    module_name, sep, class_name = str(spec).partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError("a config must be given as 'package.module:ConfigClass', got {!r}"
                         .format(spec))
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Config)):
        raise ValueError("{!r} is not a Config subclass in module {!r}".format(class_name,
                                                                            module_name))
    return cls


# torchvision's COCO detection classes: index = COCO category id (the ids COCO skips are
# "N/A"), as torchvision's COCO weights number their 91 outputs.
TORCHVISION_COCO_CLASSES = (
    "BG", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench",
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
    "N/A", "backpack", "umbrella", "N/A", "N/A", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
    "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A",
    "dining table", "N/A", "N/A", "toilet", "N/A", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "N/A",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")


class TorchvisionMaskRCNNConfig(Config):
    """torchvision's ``maskrcnn_resnet50_fpn`` with its inference settings, for the weights
    ``python -m mrcnn.weights.convert torchvision`` makes from its ``.pth`` (docs/fidelity.md).

    91 class slots numbered as COCO's category ids (TORCHVISION_COCO_CLASSES: index 0 is the
    background, the 11 ids COCO skips are "N/A" and never predicted); its resize (short side
    800, long side at most 1333, padded to multiples of 32); ImageNet's mean and standard
    deviation; ResNet v1.5; rounded anchors with height/width ratios (0.5, 1, 2); 1000
    proposals per level, NMS 0.7, the best 1000 kept; the paper's RoIAlign (2 x 2 samples, not
    aligned) with torchvision's level mapping; deltas decoded in pixels; every class over 0.05
    is a detection, NMS 0.5, 100 per image. Fine-tune it like any Config: subclass, set
    NUM_CLASSES and the training attributes, and exclude the class-specific layers when
    loading (see README, "Pretrained weights").
    """
    NAME = "torchvision_coco"
    BACKBONE = "resnet50"
    NUM_CLASSES = 91
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "shortest_edge"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1333
    MEAN_PIXEL = np.array([0.485, 0.456, 0.406]) * 255.0
    PIXEL_STD = np.array([0.229, 0.224, 0.225]) * 255.0
    RESNET_STYLE = "torchvision"
    RPN_CONV_CHANNELS = 256
    RPN_ANCHOR_RATIOS = [2, 1, 0.5]
    RPN_ANCHOR_STYLE = "torchvision"
    RPN_BBOX_STD_DEV = np.array([1.0, 1.0, 1.0, 1.0])
    RPN_NMS_THRESHOLD = 0.7
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_INFERENCE = 1000
    RPN_PROPOSALS_PER_LEVEL = True
    BOX_DECODING = "torchvision"
    ROI_ALIGN_SAMPLING_RATIO = 2
    ROI_ALIGN_ALIGNED = False
    ROI_LEVEL_MAPPING = "torchvision"
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    DETECTION_MIN_CONFIDENCE = 0.05
    DETECTION_NMS_THRESHOLD = 0.5
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MULTI_LABEL = True
    MASK_PASTE = "torchvision"


class TorchvisionMaskRCNNV2Config(TorchvisionMaskRCNNConfig):
    """torchvision's ``maskrcnn_resnet50_fpn_v2`` (Li et al. 2021's improved recipe): as
    TorchvisionMaskRCNNConfig, with BatchNorm after the FPN's convolutions, two 3x3
    convolutions in the RPN head, a box head of four normalized 3x3 convolutions and one fully
    connected layer, and BatchNorm in the mask head."""
    NAME = "torchvision_v2_coco"
    FPN_NORM = "batch"
    RPN_CONV_DEPTH = 2
    BOX_HEAD_CONVS = 4
    BOX_HEAD_FCS = 1
