"""Tiny configs and a tiny backbone that keep model tests fast on 2 CPU cores."""

import numpy as np
from keras import layers

from samples.shapes.shapes import ShapesConfig


def tiny_backbone(input_image, stage5=True, train_bn=None):
    """Five strided convs standing in for ResNet: C1..C5 at strides 2..32, 16-64 channels."""
    x = input_image
    outputs = []
    for i, filters in enumerate([16, 16, 32, 32, 64], start=1):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                          name="tiny_conv{}".format(i))(x)
        outputs.append(x)
    return outputs


def tiny_backbone_shapes(image_shape):
    return np.array([[int(np.ceil(image_shape[0] / s)), int(np.ceil(image_shape[1] / s))]
                     for s in (4, 8, 16, 32, 64)])


class TinyConfig(ShapesConfig):
    NAME = "tiny"
    BACKBONE = staticmethod(tiny_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(tiny_backbone_shapes)
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 24, 32, 48)
    IMAGES_PER_GPU = 2
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 300
    POST_NMS_ROIS_TRAINING = 100
    POST_NMS_ROIS_INFERENCE = 50
    TRAIN_ROIS_PER_IMAGE = 16
    MAX_GT_INSTANCES = 6
    MINI_MASK_SHAPE = (28, 28)
    DETECTION_MAX_INSTANCES = 10
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1
    TRAIN_BN = None
    SEED = 0
    # Detection pictures and the collapse check cost a second model per train() call;
    # tests/test_callbacks.py turns them back on.
    TENSORBOARD_IMAGES = False
    CLASS_COLLAPSE_WARNING = False
