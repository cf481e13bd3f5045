import numpy as np
import tensorflow as tf

from mrcnn.data import pipeline as data
from mrcnn import utils
from mrcnn.modeling.detection import DetectionLayer

STD = np.array([0.1, 0.1, 0.2, 0.2])


def reference(rois, probs, deltas, window, min_conf, nms, max_inst):
    """Matterport's refine_detections in NumPy."""
    class_ids = np.argmax(probs, axis=1)
    scores = probs[np.arange(len(rois)), class_ids]
    boxes = utils.apply_box_deltas(rois, deltas[np.arange(len(rois)), class_ids] * STD)
    boxes = np.stack([np.clip(boxes[:, 0], window[0], window[2]),
                      np.clip(boxes[:, 1], window[1], window[3]),
                      np.clip(boxes[:, 2], window[0], window[2]),
                      np.clip(boxes[:, 3], window[1], window[3])], axis=1)
    keep = np.where((class_ids > 0) & (scores >= min_conf))[0]
    kept = []
    for c in np.unique(class_ids[keep]):
        ix = keep[class_ids[keep] == c]
        kept.extend(ix[utils.non_max_suppression(boxes[ix], scores[ix], nms)][:max_inst])
    kept = sorted(kept, key=lambda i: -scores[i])[:max_inst]
    return np.concatenate([boxes[kept], class_ids[kept, None], scores[kept, None]], axis=1)


def clustered_rois(rng, n):
    """[n, 4] normalized RoIs, the second half near copies of the first: clusters of
    overlapping boxes so that NMS has work to do."""
    centers = rng.uniform(0.2, 0.8, (n, 2))
    sizes = rng.uniform(0.05, 0.3, (n, 2))
    centers[n // 2:] = centers[:n // 2] + rng.normal(0, 0.01, (n // 2, 2))
    return np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1).astype(np.float32)


def test_detection_layer_matches_numpy_per_class_nms():
    rng = np.random.default_rng(3)
    n, num_classes = 60, 4
    rois = clustered_rois(rng, n)
    logits = rng.normal(0, 2, (n, num_classes))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    deltas = rng.normal(0, 0.5, (n, num_classes, 4)).astype(np.float32)
    window_px = (8, 0, 120, 128)
    meta = data.compose_image_meta(0, (112, 128, 3), (128, 128, 3), window_px, 1,
                                   [1] * num_classes).astype(np.float32)
    layer = DetectionLayer(max_instances=12, min_confidence=0.5, nms_threshold=0.3,
                           bbox_std_dev=STD)
    out = layer([tf.constant(rois[None]), tf.constant(probs[None]), tf.constant(deltas[None]),
                 tf.constant(meta[None])]).numpy()[0]
    window = utils.norm_boxes(np.array([window_px]), (128, 128))[0]
    expected = reference(rois, probs, deltas, window, 0.5, 0.3, 12)
    assert 3 < len(expected) <= 12
    np.testing.assert_allclose(out[:len(expected)], expected, atol=1e-5)
    assert np.all(out[len(expected):] == 0)
    # Within a class, no two detections overlap above the NMS threshold.
    for c in np.unique(expected[:, 4]):
        b = expected[expected[:, 4] == c, :4]
        overlaps = utils.compute_overlaps(b, b) - np.eye(len(b))
        assert overlaps.max(initial=0) <= 0.3


def test_detection_layer_drops_background_and_low_scores():
    rois = np.array([[[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]]], np.float32)
    probs = np.array([[[0.9, 0.05, 0.05], [0.3, 0.6, 0.1]]], np.float32)
    deltas = np.zeros((1, 2, 3, 4), np.float32)
    meta = data.compose_image_meta(0, (64, 64, 3), (64, 64, 3), (0, 0, 64, 64), 1,
                                   [1, 1, 1]).astype(np.float32)[None]
    out = DetectionLayer(5, 0.7, 0.3)([rois, probs, deltas, meta]).numpy()[0]
    assert np.all(out == 0)                     # BG and a 0.6 score below 0.7
    out = DetectionLayer(5, 0.5, 0.3)([rois, probs, deltas, meta]).numpy()[0]
    np.testing.assert_allclose(out[0], [0.5, 0.5, 0.9, 0.9, 1, 0.6], atol=1e-6)
    assert np.all(out[1:] == 0)
    assert DetectionLayer.from_config(DetectionLayer(5, 0.5, 0.3).get_config()).max_instances == 5


def multi_label_reference(rois, probs, deltas, window, min_conf, nms, max_inst):
    """torchvision's postprocess_detections in NumPy: every (RoI, foreground class) pair with
    its class's refined box, scores >= min_conf, NMS per class, the best max_inst."""
    candidates = []
    for c in range(1, probs.shape[1]):
        boxes = utils.apply_box_deltas(rois, deltas[:, c] * STD)
        boxes = np.stack([np.clip(boxes[:, 0], window[0], window[2]),
                          np.clip(boxes[:, 1], window[1], window[3]),
                          np.clip(boxes[:, 2], window[0], window[2]),
                          np.clip(boxes[:, 3], window[1], window[3])], axis=1)
        ix = np.where(probs[:, c] >= min_conf)[0]
        for k in ix[utils.non_max_suppression(boxes[ix], probs[ix, c], nms)][:max_inst]:
            candidates.append(np.concatenate([boxes[k], [c, probs[k, c]]]))
    candidates.sort(key=lambda d: -d[5])
    return np.array(candidates[:max_inst])


def test_multi_label_detection_matches_numpy_reference():
    rng = np.random.default_rng(4)
    n, num_classes = 40, 4
    rois = clustered_rois(rng, n)
    # Flat class scores: many RoIs have two foreground classes over the threshold.
    probs = rng.dirichlet(np.ones(num_classes), n).astype(np.float32)
    deltas = rng.normal(0, 0.5, (n, num_classes, 4)).astype(np.float32)
    window_px = (8, 0, 120, 128)
    meta = data.compose_image_meta(0, (112, 128, 3), (128, 128, 3), window_px, 1,
                                   [1] * num_classes).astype(np.float32)
    layer = DetectionLayer(max_instances=30, min_confidence=0.2, nms_threshold=0.4,
                           bbox_std_dev=STD, multi_label=True)
    out = layer([tf.constant(rois[None]), tf.constant(probs[None]), tf.constant(deltas[None]),
                 tf.constant(meta[None])]).numpy()[0]
    window = utils.norm_boxes(np.array([window_px]), (128, 128))[0]
    expected = multi_label_reference(rois, probs, deltas, window, 0.2, 0.4, 30)
    # Some RoI is reported under two classes, which Matterport's argmax rule cannot do.
    two = (probs[:, 1:] >= 0.2).sum(axis=1) >= 2
    assert two.any() and 10 < len(expected) <= 30
    np.testing.assert_allclose(out[:len(expected)], expected, atol=1e-5)
    assert np.all(out[len(expected):] == 0)
    assert DetectionLayer.from_config(layer.get_config()).multi_label
