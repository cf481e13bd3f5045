"""Custom graph layers: every one round-trips through get_config / from_config; BatchNorm's
fused batch-statistics path matches Keras' BatchNormalization."""

import copy

import keras
import numpy as np

from mrcnn.modeling.detection import DetectionLayer
from mrcnn.modeling.heads import RoiDistributed
from mrcnn.modeling.layers import ActiveClassIds, BatchNorm, DetectionBoxes, LeadingRois, NormBoxes
from mrcnn.modeling.losses import LossLayer, mrcnn_mask_loss
from mrcnn.modeling.roi_align import PyramidROIAlign
from mrcnn.modeling.rpn import AnchorsLayer, ProposalLayer
from mrcnn.modeling.targets import DetectionTargetLayer


def test_custom_layers_round_trip_their_config():
    layers = [
        BatchNorm(train_bn=False, name="bn_conv1"),
        DetectionLayer(10, 0.6, 0.4, name="mrcnn_detection"),
        RoiDistributed(keras.layers.Dense(3), name="mrcnn_bbox_fc"),
        ActiveClassIds(name="a"), DetectionBoxes(name="b"), NormBoxes(name="n"),
        LeadingRois(5, name="mask_rois"),
        LossLayer(mrcnn_mask_loss, name="mrcnn_mask_loss"),
        PyramidROIAlign([7, 7], name="roi_align_classifier"),
        AnchorsLayer([8, 16], [0.5, 1, 2], [[4, 4], [2, 2]], [4, 8], 1, [16, 16], name="anchors"),
        ProposalLayer(100, 0.7, 500, name="ROI"),
        DetectionTargetLayer(32, 0.33, [0.1, 0.1, 0.2, 0.2], [28, 28], True, name="t"),
    ]
    for layer in layers:
        config = layer.get_config()
        clone = type(layer).from_config(copy.deepcopy(config))
        assert clone.get_config() == config, type(layer).__name__
        assert clone.name == layer.name


def test_fused_batch_statistics_match_keras_batchnorm():
    """BatchNorm on batch statistics runs TensorFlow's fused kernel: same output, moving
    statistics and gradients as Keras' own BatchNormalization."""
    import tensorflow as tf
    x = tf.random.stateless_normal([4, 5, 6, 8], seed=[1, 2]) * 3 + 1
    ours = BatchNorm(train_bn=None)
    keras_bn = keras.layers.BatchNormalization(momentum=0.9)
    for layer in (ours, keras_bn):
        layer.build(x.shape)
        layer.gamma.assign(np.arange(8, dtype=np.float32) / 4 + 0.5)
        layer.moving_variance.assign(np.full(8, 2.0, np.float32))
    weights = tf.range(8, dtype=tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_ours = ours(x, training=True)
        y_keras = keras_bn(x, training=True)
        loss_ours = tf.reduce_sum(y_ours * weights)
        loss_keras = tf.reduce_sum(y_keras * weights)
    np.testing.assert_allclose(y_ours, y_keras, atol=1e-5)
    np.testing.assert_allclose(ours.moving_mean, keras_bn.moving_mean, atol=1e-6)
    np.testing.assert_allclose(ours.moving_variance, keras_bn.moving_variance, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss_ours, x), tape.gradient(loss_keras, x),
                               atol=1e-5)
    # d loss / d gamma is a sum of terms that cancel to ~0: compare it at an absolute scale.
    np.testing.assert_allclose(tape.gradient(loss_ours, ours.gamma),
                               tape.gradient(loss_keras, keras_bn.gamma), atol=1e-3)
    np.testing.assert_allclose(tape.gradient(loss_ours, ours.beta),
                               tape.gradient(loss_keras, keras_bn.beta), rtol=1e-5)
    # The moving statistics moved by (1 - momentum) toward the batch's.
    batch_mean = tf.reduce_mean(x, axis=[0, 1, 2])
    np.testing.assert_allclose(ours.moving_mean, 0.1 * batch_mean, atol=1e-6)
