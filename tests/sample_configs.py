"""Tiny versions of the samples' configs, for ``--config sample_configs:<Class>`` in tests.

Each keeps its sample's class count, names and resize mode, and swaps in the tiny backbone
and sizes of ``tiny.TinyConfig`` so that a training step takes well under a second on a CPU.
"""

from samples.balloon.balloon import BalloonConfig
from samples.coco.coco import CocoConfig
from samples.nucleus.nucleus import NucleusConfig
from tiny import TorchvisionSmallConfig, tiny_backbone, tiny_backbone_shapes


class TinyMixin:
    """Tiny backbone and heads, 64x64 images, few RoIs, 1-step epochs."""
    BACKBONE = staticmethod(tiny_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(tiny_backbone_shapes)
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    IMAGE_MIN_SCALE = 0
    RPN_ANCHOR_SCALES = (8, 16, 24, 32, 48)
    IMAGES_PER_GPU = 2
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    MASK_HEAD_CHANNELS = 32
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 300
    POST_NMS_ROIS_TRAINING = 100
    POST_NMS_ROIS_INFERENCE = 50
    TRAIN_ROIS_PER_IMAGE = 16
    MAX_GT_INSTANCES = 12
    MINI_MASK_SHAPE = (28, 28)
    DETECTION_MAX_INSTANCES = 10
    STEPS_PER_EPOCH = 1
    VALIDATION_STEPS = 1
    TRAIN_BN = None
    SEED = 0
    TENSORBOARD_IMAGES = False     # tests/engine/test_callbacks.py covers the pictures
    CLASS_COLLAPSE_WARNING = False


class TinyBalloonConfig(TinyMixin, BalloonConfig):
    NAME = "balloon_tiny"


class TinyNucleusConfig(TinyMixin, NucleusConfig):
    NAME = "nucleus_tiny"


class TinyCocoConfig(TinyMixin, CocoConfig):
    NAME = "coco_tiny"
    NUM_CLASSES = 1 + 2  # the test's COCO json has two categories


class TinyTorchvisionBalloonConfig(TorchvisionSmallConfig):
    """The balloon sample's classes on the small torchvision architecture of
    tests/reference/make_torchvision_reference.py: fine-tuning a converted model."""
    NAME = "balloon_torchvision_tiny"
    NUM_CLASSES = 1 + 1
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    IMAGES_PER_GPU = 1
    STEPS_PER_EPOCH = 1
    VALIDATION_STEPS = 1
    TRAIN_ROIS_PER_IMAGE = 16
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    MAX_GT_INSTANCES = 12
    MINI_MASK_SHAPE = (28, 28)
    POST_NMS_ROIS_TRAINING = 100
    DETECTION_MIN_CONFIDENCE = 0.0
    TENSORBOARD_IMAGES = False
    CLASS_COLLAPSE_WARNING = False
