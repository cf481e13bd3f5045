"""The five Mask R-CNN losses as plain functions, and thin layers that put them in the graph."""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from mrcnn.config import MASK_LOSSES
from mrcnn.data.dataset import image_class_ids


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
def mrcnn_class_loss(target_class_ids, pred_class_logits, active_class_ids, rois,
                     class_weights=None):
    """Classifier cross-entropy over the sampled RoIs.

    RoIs whose predicted class is not active in the image's dataset source are ignored (so a
    dataset mixing sources does not punish classes an image cannot contain), as are the
    zero-padding RoIs.

    target_class_ids: [batch, rois]; pred_class_logits: [batch, rois, NUM_CLASSES];
    active_class_ids: [batch, NUM_CLASSES] 1/0; rois: [batch, rois, 4] (all-zero = padding).
    class_weights: optional [NUM_CLASSES] weight of each target class (Config.CLASS_WEIGHTS):
    the loss is then the weighted mean sum(w * loss) / sum(w), as PyTorch's weighted
    cross-entropy.
    """
    target_class_ids = tf.cast(target_class_ids, tf.int32)
    pred_class_ids = tf.argmax(pred_class_logits, axis=2, output_type=tf.int32)
    active = tf.cast(active_class_ids, tf.float32)
    pred_active = tf.gather(active, pred_class_ids, batch_dims=1)        # [batch, rois]
    valid = tf.cast(tf.reduce_any(tf.not_equal(rois, 0), axis=-1), tf.float32)
    weights = pred_active * valid
    if class_weights is not None:
        weights *= tf.gather(tf.cast(class_weights, tf.float32), target_class_ids)
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
def mrcnn_mask_loss(target_masks, target_class_ids, pred_masks, loss_type="bce"):
    """Mask loss of the positive RoIs, on their GT class channel only (Config.MASK_LOSS).

    target_masks: [batch, rois, h, w] in {0, 1}; target_class_ids: [batch, rois];
    pred_masks: [batch, rois, h, w, NUM_CLASSES] logits, or [..., 1] for class-agnostic masks.
    loss_type: "bce" (Matterport: binary cross-entropy, from logits so that it stays exact
    where a sigmoid saturates, averaged over pixels), "dice" (1 - soft Dice of each RoI's mask,
    averaged over RoIs) or "bce+dice" (their sum).
    """
    if loss_type not in MASK_LOSSES:
        raise ValueError("loss_type must be one of {}, got {!r}".format(MASK_LOSSES, loss_type))
    target_class_ids = tf.cast(target_class_ids, tf.int32)
    positive = tf.where(target_class_ids > 0)
    class_ids = tf.gather_nd(target_class_ids, positive)
    # One channel: class-agnostic masks, every class reads channel 0.
    class_ids = class_ids * tf.cast(tf.shape(pred_masks)[-1] > 1, tf.int32)
    y_true = tf.gather_nd(target_masks, positive)                         # [P, h, w]
    y_pred = tf.gather_nd(pred_masks, positive)                           # [P, h, w, C]
    y_pred = tf.gather(tf.transpose(y_pred, [0, 3, 1, 2]), class_ids, batch_dims=1)
    y_true = tf.cast(y_true, y_pred.dtype)
    total = tf.constant(0.0)
    if loss_type in ("bce", "bce+dice"):
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)
        total += _mean_or_zero(tf.reshape(bce, [-1]))
    if loss_type in ("dice", "bce+dice"):
        probs = tf.sigmoid(y_pred)
        overlap = tf.reduce_sum(probs * y_true, axis=[1, 2])
        sizes = tf.reduce_sum(probs, axis=[1, 2]) + tf.reduce_sum(y_true, axis=[1, 2])
        # +1 on both sides keeps an empty target with an empty prediction at loss 0.
        total += _mean_or_zero(1.0 - (2.0 * overlap + 1.0) / (sizes + 1.0))
    return total


# The default function of each loss output; MaskRCNN(losses={...}) replaces any of them.
DEFAULT_LOSSES = {
    "rpn_class_loss": rpn_class_loss,
    "rpn_bbox_loss": rpn_bbox_loss,
    "mrcnn_class_loss": mrcnn_class_loss,
    "mrcnn_bbox_loss": mrcnn_bbox_loss,
    "mrcnn_mask_loss": mrcnn_mask_loss,
}


def default_loss_options(config, train_dataset=None):
    """{loss name: keyword arguments} that a config gives the default loss functions.

    CLASS_WEIGHTS "balanced" gives ``class_weights`` computed from ``train_dataset``
    (:func:`balanced_class_weights`), or ones without it: the graph is built with those, and
    ``MaskRCNN.train`` sets the training set's (``TrainingModel.set_loss_options``).
    """
    weights = config.CLASS_WEIGHTS
    if isinstance(weights, str):     # "balanced" (Config.validate allows no other string)
        weights = [1.0] * config.NUM_CLASSES if train_dataset is None else \
            balanced_class_weights(train_dataset)
    return {"mrcnn_mask_loss": {"loss_type": config.MASK_LOSS},
            "mrcnn_class_loss": {} if weights is None else
            {"class_weights": [float(w) for w in weights]}}


def balanced_class_weights(dataset):
    """CLASS_WEIGHTS="balanced": [num_classes] weights from the dataset's instance counts.

    Foreground class c gets total / (K * count_c), K the number of classes with instances (so
    they average 1 over instances); background and classes without instances get 1.
    """
    counts = np.zeros(dataset.num_classes)
    for ids in image_class_ids(dataset):
        counts += np.bincount(ids, minlength=dataset.num_classes)
    weights = np.ones(dataset.num_classes)
    present = counts > 0
    present[0] = False
    if present.any():
        weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


@keras.saving.register_keras_serializable(package="mrcnn")
class LossLayer(layers.Layer):
    """Computes ``fn(*inputs, **fn_kwargs)`` as a scalar output of the training graph.

    fn: a loss function; to save the layer's config it must be registered with
    ``keras.saving.register_keras_serializable`` (the defaults are). fn_kwargs: its options
    (JSON-serializable). The options in :attr:`VARIABLE_OPTIONS` (``class_weights``) become
    non-trainable weights of the layer, which :meth:`set_options` sets after the graph is
    built (``MaskRCNN.train``: balanced weights from the training set).
    """

    VARIABLE_OPTIONS = ("class_weights",)

    def __init__(self, fn, fn_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(fn, (str, dict)):
            fn = keras.saving.deserialize_keras_object(fn)
        if not callable(fn):
            raise TypeError("LossLayer needs a callable loss, got {!r}".format(fn))
        self.fn = fn
        self.fn_kwargs = dict(fn_kwargs or {})
        self.class_weights = None
        if "class_weights" in self.fn_kwargs:
            values = np.asarray(self.fn_kwargs["class_weights"], dtype=np.float32)
            self.class_weights = self.add_weight(
                name="class_weights", shape=values.shape, trainable=False,
                initializer=keras.initializers.Constant(values))

    def set_options(self, **options):
        """Set the options this layer holds as weights (:attr:`VARIABLE_OPTIONS` that its
        function was given); others are fixed in the graph and left out, as are those its
        function was not given (a replaced loss)."""
        for name, value in options.items():
            variable = getattr(self, name) if name in self.VARIABLE_OPTIONS else None
            if variable is not None:
                variable.assign(np.asarray(value, dtype=np.float32))

    def call(self, inputs):
        kwargs = dict(self.fn_kwargs)
        if self.class_weights is not None:
            kwargs["class_weights"] = self.class_weights
        return self.fn(*inputs, **kwargs)

    def compute_output_shape(self, input_shapes):
        return ()

    def get_config(self):
        config = super().get_config()
        config["fn"] = keras.saving.serialize_keras_object(self.fn)
        config["fn_kwargs"] = self.fn_kwargs
        return config
