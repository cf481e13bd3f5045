import numpy as np
import tensorflow as tf

from mrcnn.modeling import box_ops
from mrcnn import utils


def test_graph_box_ops_match_numpy():
    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 0.6, (10, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(0.1, 0.4, (10, 2))], axis=1)
    boxes = boxes.astype(np.float32)
    gt = (boxes + rng.normal(0, 0.02, (10, 4))).astype(np.float32)
    deltas = utils.box_refinement(boxes, gt)
    np.testing.assert_allclose(box_ops.box_refinement_graph(boxes, gt), deltas, atol=1e-5)
    np.testing.assert_allclose(box_ops.apply_box_deltas_graph(boxes, deltas),
                               utils.apply_box_deltas(boxes, deltas), atol=1e-5)
    np.testing.assert_allclose(box_ops.overlaps_graph(boxes, gt),
                               utils.compute_overlaps(boxes, gt), atol=1e-5)
    np.testing.assert_allclose(box_ops.norm_boxes_graph(np.array([[0, 0, 128, 64]]),
                                                        [128, 64]), [[0, 0, 1, 1]])


def test_huge_deltas_stay_finite():
    boxes = tf.constant([[0.4, 0.4, 0.6, 0.6]])
    deltas = tf.constant([[0.0, 0.0, 500.0, 1e4]])
    out = box_ops.apply_box_deltas_graph(boxes, deltas).numpy()
    assert np.all(np.isfinite(out))
    # Growth is capped at 1000/16 times the side.
    np.testing.assert_allclose(out[0, 2] - out[0, 0], 0.2 * 1000 / 16, rtol=1e-5)
    clipped = box_ops.clip_boxes_graph(out, tf.constant([0., 0., 1., 1.])).numpy()
    np.testing.assert_allclose(clipped, [[0, 0, 1, 1]])
