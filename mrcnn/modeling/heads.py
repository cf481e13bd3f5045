"""The classifier/box head and the mask head, on RoIAlign features."""

import inspect

import keras
import tensorflow as tf
from keras import layers

from mrcnn.modeling import precision
from mrcnn.config import config_train_bn
from mrcnn.modeling.layers import normalization
from mrcnn.modeling.roi_align import PyramidROIAlign, roi_align_options


@keras.saving.register_keras_serializable(package="mrcnn")
class RoiDistributed(layers.Wrapper):
    """Apply a layer to every RoI: [batch, rois, ...] -> one call on [batch * rois, ...].

    Keras 3's ``TimeDistributed`` calls the inner layer once per RoI slot (a Python loop or
    ``vectorized_map``). With BatchNorm inside, that normalizes each slot over the batch
    alone (8 samples, positives in the first slots, negatives in the rest) instead of over all
    RoIs as Keras 2 and Matterport did, and it runs hundreds of small convolutions at
    inference. Folding the RoI axis into the batch restores both. The wrapper holds the inner
    layer's weights under its own name (e.g. ``mrcnn_class_conv1``), as TimeDistributed did.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(layer, **kwargs)
        self._pass_training = "training" in inspect.signature(layer.call).parameters

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None,) + tuple(input_shape[2:]))
        self.built = True

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def call(self, inputs, training=None):
        shape = tf.shape(inputs)
        inner_dims = [d if d is not None else -1 for d in inputs.shape[2:]]
        x = tf.reshape(inputs, [-1] + inner_dims) if -1 not in inner_dims else \
            tf.reshape(inputs, tf.concat([[-1], shape[2:]], axis=0))
        kwargs = {"training": training} if self._pass_training else {}
        y = self.layer.call(x, **kwargs)
        y = tf.reshape(y, tf.concat([shape[:2], tf.shape(y)[1:]], axis=0))
        y.set_shape([inputs.shape[0], inputs.shape[1]] + list(
            self.layer.compute_output_shape((None,) + tuple(inputs.shape[2:]))[1:]))
        return y


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True,
                         fc_layers_size=1024, norm="batch", compute_dtype=None,
                         roi_align=None, convs=0, fcs=2):
    """Classifier and box regression head.

    rois: [batch, num_rois, (y1, x1, y2, x2)] normalized; feature_maps: [P2, P3, P4, P5].
    compute_dtype: a mixed dtype policy for the two "fully connected" convolutions
    (Config.MIXED_PRECISION); the logits, softmax and box deltas are float32. roi_align: the
    RoIAlign options of ``PyramidROIAlign`` ({} or None: Matterport's; see
    ``roi_align.roi_align_options``). convs: 3x3 convolutions (each normalized, ReLU) on the
    pooled RoIs before the "fully connected" layers (``mrcnn_box_conv{i}``, ``mrcnn_box_bn{i}``;
    Config.BOX_HEAD_CONVS, torchvision's v2 head has 4); fcs: 2 "fully connected" layers
    (Matterport's) or 1 (torchvision's v2; Config.BOX_HEAD_FCS).
    Returns:
        logits: [batch, num_rois, NUM_CLASSES] (before softmax)
        probs: [batch, num_rois, NUM_CLASSES]
        bbox: [batch, num_rois, NUM_CLASSES, (dy, dx, log(dh), log(dw))]
    """
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_classifier",
                        **(roi_align or {}))(
        [rois, image_meta] + feature_maps)                   # [B, R, pool, pool, C]
    # Two "fully connected" layers as convolutions: a pool x pool conv then a 1x1 conv.
    with precision.compute_scope(compute_dtype):
        channels = x.shape[-1]
        for i in range(1, convs + 1):
            x = RoiDistributed(layers.Conv2D(channels, (3, 3), padding="same"),
                               name="mrcnn_box_conv{}".format(i))(x)
            x = RoiDistributed(normalization(norm, train_bn), name="mrcnn_box_bn{}".format(i))(x)
            x = layers.Activation("relu")(x)
        x = RoiDistributed(layers.Conv2D(fc_layers_size, (pool_size, pool_size),
                                         padding="valid"), name="mrcnn_class_conv1")(x)
        x = RoiDistributed(normalization(norm, train_bn), name="mrcnn_class_bn1")(x)
        x = layers.Activation("relu")(x)
        if fcs == 2:
            x = RoiDistributed(layers.Conv2D(fc_layers_size, (1, 1)),
                               name="mrcnn_class_conv2")(x)
            x = RoiDistributed(normalization(norm, train_bn), name="mrcnn_class_bn2")(x)
            x = layers.Activation("relu")(x)
    shared = layers.Reshape((-1, fc_layers_size), name="pool_squeeze")(x)   # [B, R, fc]

    logits = RoiDistributed(layers.Dense(num_classes), name="mrcnn_class_logits")(shared)
    probs = RoiDistributed(layers.Activation("softmax"), name="mrcnn_class")(logits)
    x = RoiDistributed(layers.Dense(num_classes * 4, activation="linear"),
                       name="mrcnn_bbox_fc")(shared)
    bbox = layers.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(x)
    return logits, probs, bbox


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True,
                         channels=256, norm="batch", compute_dtype=None, roi_align=None):
    """Mask head: 4 x (3x3 conv, BN, ReLU), a 2x deconv, and a 1x1 conv to one logit per class.

    channels: width of the convolutions (256 in Matterport). The sigmoid is applied by the
    caller (``mask_probabilities``): the loss takes the logits. compute_dtype: a mixed dtype
    policy for the convolutions and the deconvolution (Config.MIXED_PRECISION); the logits
    are float32. roi_align: as in :func:`fpn_classifier_graph`.
    Returns [batch, num_rois, 2 * pool_size, 2 * pool_size, NUM_CLASSES] mask logits.
    """
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_mask", **(roi_align or {}))(
        [rois, image_meta] + feature_maps)
    with precision.compute_scope(compute_dtype):
        for i in range(1, 5):
            x = RoiDistributed(layers.Conv2D(channels, (3, 3), padding="same"),
                               name="mrcnn_mask_conv{}".format(i))(x)
            x = RoiDistributed(normalization(norm, train_bn),
                               name="mrcnn_mask_bn{}".format(i))(x)
            x = layers.Activation("relu")(x)
        x = RoiDistributed(layers.Conv2DTranspose(channels, (2, 2), strides=2,
                                                  activation="relu"),
                           name="mrcnn_mask_deconv")(x)
    return RoiDistributed(layers.Conv2D(num_classes, (1, 1), strides=1),
                          name="mrcnn_mask")(x)


def mask_probabilities(mask_logits):
    """Sigmoid of the mask head's logits (layer ``mrcnn_mask_probs``)."""
    return layers.Activation("sigmoid", name="mrcnn_mask_probs")(mask_logits)


def classifier_head(rois, feature_maps, image_meta, config):
    """The default classifier/box head of ``MaskRCNN``: :func:`fpn_classifier_graph` with the
    config's sizes. Returns (logits, probs, bbox)."""
    return fpn_classifier_graph(rois, feature_maps, image_meta, config.POOL_SIZE,
                                config.NUM_CLASSES, train_bn=config_train_bn(config),
                                fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE,
                                norm=config.NORM, compute_dtype=config.MIXED_PRECISION,
                                roi_align=roi_align_options(config),
                                convs=config.BOX_HEAD_CONVS, fcs=config.BOX_HEAD_FCS)


def mask_head(rois, feature_maps, image_meta, config):
    """The default mask head of ``MaskRCNN``: :func:`build_fpn_mask_graph` with the config's
    sizes; one output channel when MASK_CLASS_AGNOSTIC. Returns mask logits."""
    return build_fpn_mask_graph(rois, feature_maps, image_meta, config.MASK_POOL_SIZE,
                                1 if config.MASK_CLASS_AGNOSTIC else config.NUM_CLASSES,
                                train_bn=config_train_bn(config),
                                channels=config.MASK_HEAD_CHANNELS, norm=config.NORM,
                                compute_dtype=config.MIXED_PRECISION,
                                roi_align=roi_align_options(config))
