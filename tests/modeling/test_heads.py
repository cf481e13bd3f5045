import keras
import numpy as np

from mrcnn.modeling.heads import RoiDistributed, build_fpn_mask_graph, fpn_classifier_graph
from mrcnn.modeling.layers import BatchNorm


def test_roi_distributed_conv_equals_time_distributed():
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 5, 4)).astype(np.float32)
    conv = keras.layers.Conv2D(6, 3, padding="same")
    ours = RoiDistributed(conv, name="mrcnn_mask_conv1")
    theirs = keras.layers.TimeDistributed(conv)
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    assert [w.name for w in ours.weights] == ["kernel", "bias"]


def test_roi_distributed_batchnorm_normalizes_over_all_rois():
    rng = np.random.default_rng(1)
    # Slot 0 holds large values, slot 1 small ones: per-slot statistics would hide that.
    x = np.concatenate([rng.normal(10, 1, (4, 1, 1, 1, 2)), rng.normal(-10, 1, (4, 1, 1, 1, 2))],
                       axis=1).astype(np.float32)
    bn = RoiDistributed(BatchNorm(epsilon=1e-6), name="mrcnn_class_bn1")
    y = np.asarray(bn(x, training=True))
    flat = x.reshape(-1, 2)
    expected = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-6)
    np.testing.assert_allclose(y.reshape(-1, 2), expected, rtol=1e-4, atol=1e-4)
    assert np.all(y[:, 0] > 0) and np.all(y[:, 1] < 0)
    # Moving statistics move toward the statistics of all 8 RoIs (momentum 0.9).
    np.testing.assert_allclose(bn.layer.moving_mean.numpy(), 0.1 * flat.mean(0), rtol=1e-4)


def test_head_output_shapes():
    rois = keras.Input((7, 4))
    meta = keras.Input((16,))
    maps = [keras.Input((s, s, 8)) for s in (32, 16, 8, 4)]
    logits, probs, bbox = fpn_classifier_graph(rois, maps, meta, 7, 4, fc_layers_size=32)
    mask = build_fpn_mask_graph(rois, maps, meta, 14, 4, channels=16)
    assert tuple(logits.shape) == (None, 7, 4) and tuple(bbox.shape) == (None, 7, 4, 4)
    assert tuple(mask.shape) == (None, 7, 28, 28, 4)
