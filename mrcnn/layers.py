"""Small layers shared by the graph: normalization (BatchNorm with a pinned mode, GroupNorm)
and input adapters."""

import math

import keras
import tensorflow as tf
from keras import layers

from mrcnn import box_ops, image_meta


@keras.saving.register_keras_serializable(package="mrcnn")
class BatchNorm(layers.BatchNormalization):
    """BatchNormalization whose mode can be pinned by the config's TRAIN_BN.

    train_bn: None runs as Keras decides (training mode in fit, inference otherwise); False
    always uses the moving statistics (small batches make batch statistics noisy); True always
    uses batch statistics. With TRAIN_BN=False the model also marks these layers non-trainable,
    which freezes gamma and beta.

    The moving averages use momentum 0.9 (PyTorch's and detectron2's 0.1 update) rather than
    Keras' 0.99: when BatchNorm trains from scratch, 0.99 leaves the inference statistics
    hundreds of steps behind the weights. Frozen BatchNorm (TRAIN_BN=False) is unaffected.
    """

    def __init__(self, train_bn=None, momentum=0.9, **kwargs):
        super().__init__(momentum=momentum, **kwargs)
        self.train_bn = train_bn

    def call(self, inputs, training=None):
        if self.train_bn is not None:
            training = self.train_bn
        return super().call(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config["train_bn"] = self.train_bn
        return config


def bn_mode(train_bn):
    """TRAIN_BN -> BatchNorm's train_bn: False pins inference mode; True/None follow Keras."""
    return False if train_bn is False else None


@keras.saving.register_keras_serializable(package="mrcnn")
class GroupNorm(layers.GroupNormalization):
    """GroupNormalization over ``groups`` (32) channel groups, as detectron2's GN models; a
    layer with fewer channels, or a count 32 does not divide, uses the largest divisor."""

    def __init__(self, groups=32, **kwargs):
        super().__init__(groups=groups, **kwargs)

    def build(self, input_shape):
        self.groups = math.gcd(self.groups, int(input_shape[-1]))
        super().build(input_shape)


def config_train_bn(config):
    """The effective TRAIN_BN of a config: NORM "frozen_batch" freezes BatchNorm."""
    return False if config.NORM == "frozen_batch" else config.TRAIN_BN


def normalization(norm, train_bn, name=None):
    """The normalization layer of Config.NORM: "batch" (BatchNorm in TRAIN_BN's mode),
    "frozen_batch" (BatchNorm on its moving statistics, never trained) or "group" (GroupNorm,
    for training from scratch with small batches)."""
    if norm == "group":
        return GroupNorm(name=name)
    if norm == "frozen_batch":
        train_bn = False
    elif norm != "batch":
        raise ValueError("norm must be 'batch', 'frozen_batch' or 'group', got {!r}".format(
            norm))
    return BatchNorm(train_bn=bn_mode(train_bn), name=name)


@keras.saving.register_keras_serializable(package="mrcnn")
class NormBoxes(layers.Layer):
    """Pixel GT boxes [batch, N, 4] -> normalized, using the image tensor's height and width."""

    def call(self, inputs):
        boxes, image = inputs
        return box_ops.norm_boxes_graph(boxes, tf.shape(image)[1:3])

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@keras.saving.register_keras_serializable(package="mrcnn")
class ActiveClassIds(layers.Layer):
    """The active_class_ids field [batch, NUM_CLASSES] of the image meta."""

    def call(self, meta):
        return image_meta.split_image_meta(meta)[image_meta.ACTIVE_CLASS_IDS]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] - image_meta.FIXED_SIZE)


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionBoxes(layers.Layer):
    """The (y1, x1, y2, x2) part of DetectionLayer's output: [batch, N, 4]."""

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)


@keras.saving.register_keras_serializable(package="mrcnn")
class LeadingRois(layers.Layer):
    """The first ``count`` RoIs of each image: [batch, rois, ...] -> [batch, count, ...].

    DetectionTargetLayer puts the positive RoIs first, and at most
    int(TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO) of them, so this slice holds every positive.
    Only positives enter the mask loss, so the mask head is run on this slice alone in training.
    """

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)

    def call(self, tensor):
        return tensor[:, :self.count]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.count) + tuple(input_shape[2:])

    def get_config(self):
        config = super().get_config()
        config["count"] = self.count
        return config
