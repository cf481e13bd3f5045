"""Small layers shared by the graph: normalization (BatchNorm with a pinned mode, GroupNorm)
and input adapters."""

import math

import keras
import tensorflow as tf
from keras import layers

from mrcnn.modeling import box_ops
from mrcnn.data import image_meta


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

    def add_weight(self, *args, **kwargs):
        """Keras' add_weight; the moving statistics (the non-trainable weights) average their
        replicas' updates under ``tf.distribute``: Keras creates them without aggregation, and
        each device's copy would then keep its own replica's statistics
        (mrcnn.engine.distribute)."""
        if not kwargs.get("trainable", True):
            kwargs.setdefault("aggregation", "mean")
        return super().add_weight(*args, **kwargs)

    def call(self, inputs, training=None, mask=None):
        if self.train_bn is not None:
            training = self.train_bn
        if training and self.trainable and mask is None and len(inputs.shape) == 4 \
                and self.axis in (-1, 3) and self.scale and self.center and not self.renorm \
                and not self.synchronized:
            return self._fused_batch_statistics(inputs)
        # The moving statistics: Keras' elementwise form, which TensorFlow's graph optimizer
        # folds into the preceding convolution (faster here than the fused kernel).
        return super().call(inputs, training=training, mask=mask)

    def _fused_batch_statistics(self, inputs):
        """BatchNorm of an NHWC tensor on its batch statistics, as one fused kernel.

        Keras 3 normalizes with separate moment, subtract, multiply and add ops (and upcasts
        bfloat16/float16 inputs to float32 around them); TensorFlow's FusedBatchNormV3 does
        it in one pass, in the input's type with float32 statistics, and its gradient is one
        kernel too. On a 2-core CPU this cut ResNet-50's forward+backward time (batch 8,
        128x128) by 31 % in float32 and 46 % in bfloat16. The moving averages are updated as
        Keras updates them, from the biased variance.
        """
        x = tf.cast(inputs, self.compute_dtype)
        empty = tf.constant([], tf.float32)
        y, mean, variance = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=tf.cast(self.gamma, tf.float32), offset=tf.cast(self.beta, tf.float32),
            mean=empty, variance=empty, epsilon=self.epsilon, exponential_avg_factor=1.0,
            data_format="NHWC", is_training=True)[:3]
        # The kernel returns the unbiased (n - 1) variance for the running average.
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
        variance = variance * tf.maximum(n - 1.0, 0.0) / tf.maximum(n, 1.0)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        return y

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


def normalization(norm, train_bn, name=None, zero_gamma=False):
    """The normalization layer of Config.NORM: "batch" (BatchNorm in TRAIN_BN's mode),
    "frozen_batch" (BatchNorm on its moving statistics, never trained) or "group" (GroupNorm,
    for training from scratch with small batches). zero_gamma: the scale starts at 0 instead
    of 1 (Config.ZERO_INIT_RESIDUAL)."""
    gamma = {"gamma_initializer": "zeros"} if zero_gamma else {}
    if norm == "group":
        return GroupNorm(name=name, **gamma)
    if norm == "frozen_batch":
        train_bn = False
    elif norm != "batch":
        raise ValueError("norm must be 'batch', 'frozen_batch' or 'group', got {!r}".format(
            norm))
    return BatchNorm(train_bn=bn_mode(train_bn), name=name, **gamma)


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
