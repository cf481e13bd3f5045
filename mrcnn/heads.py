"""The classifier/box head and the mask head, on RoIAlign features."""

from keras import layers

from mrcnn.backbone import BatchNorm, _bn_mode
from mrcnn.roi_align import PyramidROIAlign


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True,
                         fc_layers_size=1024):
    """Classifier and box regression head.

    rois: [batch, num_rois, (y1, x1, y2, x2)] normalized; feature_maps: [P2, P3, P4, P5].
    Returns:
        logits: [batch, num_rois, NUM_CLASSES] (before softmax)
        probs: [batch, num_rois, NUM_CLASSES]
        bbox: [batch, num_rois, NUM_CLASSES, (dy, dx, log(dh), log(dw))]
    """
    mode = _bn_mode(train_bn)
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_classifier")(
        [rois, image_meta] + feature_maps)                   # [B, R, pool, pool, C]
    # Two "fully connected" layers as convolutions: a pool x pool conv then a 1x1 conv.
    x = layers.TimeDistributed(layers.Conv2D(fc_layers_size, (pool_size, pool_size),
                                             padding="valid"), name="mrcnn_class_conv1")(x)
    x = layers.TimeDistributed(BatchNorm(train_bn=mode), name="mrcnn_class_bn1")(x)
    x = layers.Activation("relu")(x)
    x = layers.TimeDistributed(layers.Conv2D(fc_layers_size, (1, 1)),
                               name="mrcnn_class_conv2")(x)
    x = layers.TimeDistributed(BatchNorm(train_bn=mode), name="mrcnn_class_bn2")(x)
    x = layers.Activation("relu")(x)
    shared = layers.Reshape((-1, fc_layers_size), name="pool_squeeze")(x)   # [B, R, fc]

    logits = layers.TimeDistributed(layers.Dense(num_classes),
                                    name="mrcnn_class_logits")(shared)
    probs = layers.TimeDistributed(layers.Activation("softmax"), name="mrcnn_class")(logits)
    x = layers.TimeDistributed(layers.Dense(num_classes * 4, activation="linear"),
                               name="mrcnn_bbox_fc")(shared)
    bbox = layers.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(x)
    return logits, probs, bbox


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True):
    """Mask head: 4 x (3x3 conv, BN, ReLU), a 2x deconv, and a 1x1 sigmoid conv.

    Returns [batch, num_rois, 2 * pool_size, 2 * pool_size, NUM_CLASSES] mask probabilities.
    """
    mode = _bn_mode(train_bn)
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_mask")(
        [rois, image_meta] + feature_maps)
    for i in range(1, 5):
        x = layers.TimeDistributed(layers.Conv2D(256, (3, 3), padding="same"),
                                   name="mrcnn_mask_conv{}".format(i))(x)
        x = layers.TimeDistributed(BatchNorm(train_bn=mode),
                                   name="mrcnn_mask_bn{}".format(i))(x)
        x = layers.Activation("relu")(x)
    x = layers.TimeDistributed(layers.Conv2DTranspose(256, (2, 2), strides=2,
                                                      activation="relu"),
                               name="mrcnn_mask_deconv")(x)
    return layers.TimeDistributed(layers.Conv2D(num_classes, (1, 1), strides=1,
                                                activation="sigmoid"), name="mrcnn_mask")(x)
