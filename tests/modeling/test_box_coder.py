"""The one box coder: NumPy and TensorFlow run the same definition."""

import numpy as np
import tensorflow as tf

from mrcnn.modeling import box_coder, box_ops
from mrcnn import utils
from mrcnn.modeling.box_coder import MAX_LOG_SCALE, BoxCoder


def boxes_and_targets(seed=0, n=12):
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 50, (n, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 40, (n, 2))], axis=1)
    targets = boxes + rng.normal(0, 3, (n, 4))
    return boxes.astype(np.float32), targets.astype(np.float32)


def test_encode_by_hand():
    box = np.array([[0., 0., 10., 20.]])
    target = np.array([[5., 0., 25., 40.]])     # centre moves by (10, 10), size doubles
    np.testing.assert_allclose(box_coder.encode(box, target),
                               [[1.0, 0.5, np.log(2), np.log(2)]])
    np.testing.assert_allclose(box_coder.decode(box, box_coder.encode(box, target)), target)


def test_numpy_and_tensorflow_share_the_coder():
    boxes, targets = boxes_and_targets()
    deltas = box_coder.encode(boxes, targets)
    np.testing.assert_allclose(box_coder.encode(tf.constant(boxes), tf.constant(targets),
                                                box_ops.TF), deltas, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(box_coder.decode(tf.constant(boxes), tf.constant(deltas),
                                                box_ops.TF),
                               box_coder.decode(boxes, deltas), rtol=1e-5, atol=1e-4)
    # Matterport's public NumPy functions are the coder.
    np.testing.assert_array_equal(utils.box_refinement(boxes, targets), deltas)
    np.testing.assert_allclose(utils.apply_box_deltas(boxes, deltas), targets, atol=1e-3)


def test_decoder_clamps_log_scale_in_numpy_too():
    out = utils.apply_box_deltas(np.array([[0., 0., 1., 1.]]), np.array([[0., 0., 50., 0.]]))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0, 2] - out[0, 0], np.exp(MAX_LOG_SCALE), rtol=1e-5)


def test_box_coder_normalizes_by_std_dev():
    boxes, targets = boxes_and_targets(1)
    std = [0.1, 0.1, 0.2, 0.2]
    coder = BoxCoder(std)
    np.testing.assert_allclose(coder.encode(boxes, targets),
                               box_coder.encode(boxes, targets) / std, rtol=1e-5)
    np.testing.assert_allclose(coder.decode(boxes, coder.encode(boxes, targets)), targets,
                               atol=1e-3)
    tf_coder = BoxCoder(std, box_ops.TF)
    np.testing.assert_allclose(tf_coder.encode(tf.constant(boxes), tf.constant(targets)),
                               coder.encode(boxes, targets), rtol=1e-5, atol=1e-5)
