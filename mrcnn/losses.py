"""The five Mask R-CNN losses as plain functions, and thin layers that put them in the graph."""

import keras
import tensorflow as tf
from keras import layers


def smooth_l1(y_true, y_pred):
    """Elementwise smooth L1 (Huber with delta 1)."""
    y_pred = tf.convert_to_tensor(y_pred)
    diff = tf.abs(tf.cast(y_true, y_pred.dtype) - y_pred)
    return tf.where(diff < 1.0, 0.5 * diff ** 2, diff - 0.5)


def _mean_or_zero(values):
    """Mean of a 1-D tensor, 0 when it is empty (no positives in the batch)."""
    return tf.math.divide_no_nan(tf.reduce_sum(values), tf.cast(tf.size(values), values.dtype))


@keras.saving.register_keras_serializable(package="mrcnn")
def rpn_class_loss(rpn_match, rpn_class_logits):
    """RPN foreground/background cross-entropy over the sampled anchors; neutral ones ignored.

    rpn_match: [batch, anchors, 1] (1 positive, -1 negative, 0 neutral);
    rpn_class_logits: [batch, anchors, 2].
    """
    rpn_match = tf.squeeze(rpn_match, -1)
    indices = tf.where(tf.not_equal(rpn_match, 0))
    labels = tf.cast(tf.equal(tf.gather_nd(rpn_match, indices), 1), tf.int32)
    logits = tf.gather_nd(rpn_class_logits, indices)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _mean_or_zero(loss)


@keras.saving.register_keras_serializable(package="mrcnn")
def rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox):
    """Smooth L1 between the positive anchors' predicted and target deltas.

    target_bbox: [batch, RPN_TRAIN_ANCHORS_PER_IMAGE, 4], the positives' deltas in anchor order,
    zero-padded; rpn_match: [batch, anchors, 1]; rpn_bbox: [batch, anchors, 4].
    """
    rpn_match = tf.squeeze(rpn_match, -1)
    positive = tf.equal(rpn_match, 1)
    pred = tf.boolean_mask(rpn_bbox, positive)                           # [P, 4], batch-major
    # The targets of image b are its first count_b rows, in the same anchor order.
    counts = tf.reduce_sum(tf.cast(positive, tf.int32), axis=1)
    target_mask = tf.sequence_mask(counts, tf.shape(target_bbox)[1])
    target = tf.boolean_mask(target_bbox, target_mask)
    return _mean_or_zero(tf.reshape(smooth_l1(target, pred), [-1]))


@keras.saving.register_keras_serializable(package="mrcnn")
def mrcnn_class_loss(target_class_ids, pred_class_logits, active_class_ids, rois):
    """Classifier cross-entropy over the sampled RoIs.

    RoIs whose predicted class is not active in the image's dataset source are ignored (so a
    dataset mixing sources does not punish classes an image cannot contain), as are the
    zero-padding RoIs.

    target_class_ids: [batch, rois]; pred_class_logits: [batch, rois, NUM_CLASSES];
    active_class_ids: [batch, NUM_CLASSES] 1/0; rois: [batch, rois, 4] (all-zero = padding).
    """
    target_class_ids = tf.cast(target_class_ids, tf.int32)
    pred_class_ids = tf.argmax(pred_class_logits, axis=2, output_type=tf.int32)
    active = tf.cast(active_class_ids, tf.float32)
    pred_active = tf.gather(active, pred_class_ids, batch_dims=1)        # [batch, rois]
    valid = tf.cast(tf.reduce_any(tf.not_equal(rois, 0), axis=-1), tf.float32)
    weights = pred_active * valid
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_class_ids,
                                                          logits=pred_class_logits)
    return tf.math.divide_no_nan(tf.reduce_sum(loss * weights), tf.reduce_sum(weights))


@keras.saving.register_keras_serializable(package="mrcnn")
def mrcnn_bbox_loss(target_bbox, target_class_ids, pred_bbox):
    """Smooth L1 on the positive RoIs' deltas for their GT class.

    target_bbox: [batch, rois, 4]; target_class_ids: [batch, rois]; pred_bbox:
    [batch, rois, NUM_CLASSES, 4].
    """
    target_class_ids = tf.cast(target_class_ids, tf.int32)
    positive = tf.where(target_class_ids > 0)                            # [P, (b, r)]
    class_ids = tf.gather_nd(target_class_ids, positive)
    target = tf.gather_nd(target_bbox, positive)
    pred = tf.gather(tf.gather_nd(pred_bbox, positive), class_ids, batch_dims=1)
    return _mean_or_zero(tf.reshape(smooth_l1(target, pred), [-1]))


@keras.saving.register_keras_serializable(package="mrcnn")
def mrcnn_mask_loss(target_masks, target_class_ids, pred_masks):
    """Binary cross-entropy of the positive RoIs' masks, on their GT class channel only.

    target_masks: [batch, rois, h, w] in {0, 1}; target_class_ids: [batch, rois];
    pred_masks: [batch, rois, h, w, NUM_CLASSES] logits (the cross-entropy is computed from
    logits, which stays exact where a sigmoid would saturate).
    """
    target_class_ids = tf.cast(target_class_ids, tf.int32)
    positive = tf.where(target_class_ids > 0)
    class_ids = tf.gather_nd(target_class_ids, positive)
    y_true = tf.gather_nd(target_masks, positive)                         # [P, h, w]
    y_pred = tf.gather_nd(pred_masks, positive)                           # [P, h, w, C]
    y_pred = tf.gather(tf.transpose(y_pred, [0, 3, 1, 2]), class_ids, batch_dims=1)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(y_true, y_pred.dtype),
                                                  logits=y_pred)
    return _mean_or_zero(tf.reshape(bce, [-1]))


# The default function of each loss output; MaskRCNN(losses={...}) replaces any of them.
DEFAULT_LOSSES = {
    "rpn_class_loss": rpn_class_loss,
    "rpn_bbox_loss": rpn_bbox_loss,
    "mrcnn_class_loss": mrcnn_class_loss,
    "mrcnn_bbox_loss": mrcnn_bbox_loss,
    "mrcnn_mask_loss": mrcnn_mask_loss,
}


@keras.saving.register_keras_serializable(package="mrcnn")
class LossLayer(layers.Layer):
    """Computes ``fn(*inputs)`` as a scalar output of the training graph.

    fn: a loss function; to save the layer's config it must be registered with
    ``keras.saving.register_keras_serializable`` (the defaults are).
    """

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        if isinstance(fn, (str, dict)):
            fn = keras.saving.deserialize_keras_object(fn)
        if not callable(fn):
            raise TypeError("LossLayer needs a callable loss, got {!r}".format(fn))
        self.fn = fn

    def call(self, inputs):
        return self.fn(*inputs)

    def compute_output_shape(self, input_shapes):
        return ()

    def get_config(self):
        config = super().get_config()
        config["fn"] = keras.saving.serialize_keras_object(self.fn)
        return config
