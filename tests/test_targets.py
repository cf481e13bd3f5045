import numpy as np
import tensorflow as tf

from mrcnn import utils
from mrcnn.targets import DetectionTargetLayer


def make_layer(use_mini_mask, rois=12, ratio=0.25):
    return DetectionTargetLayer(train_rois_per_image=rois, roi_positive_ratio=ratio,
                                bbox_std_dev=[0.1, 0.1, 0.2, 0.2], mask_shape=[8, 8],
                                use_mini_mask=use_mini_mask)


def scene():
    """A 64x64 image with two rectangular objects and proposals around them."""
    masks = np.zeros((64, 64, 3), dtype=bool)
    masks[8:24, 8:32, 0] = True        # class 1
    masks[40:60, 30:50, 1] = True      # class 2
    boxes = np.zeros((3, 4), np.float32)
    boxes[:2] = utils.norm_boxes(utils.extract_bboxes(masks[..., :2]), (64, 64))
    class_ids = np.array([1, 2, 0], np.int32)      # third slot is padding
    proposals = np.concatenate([
        boxes[:2],                                             # exact: IoU 1
        boxes[:1] + [0.01, 0.01, 0.01, 0.01],                  # slightly shifted: positive
        np.array([[0.7, 0.0, 0.9, 0.2], [0.0, 0.6, 0.1, 0.9], [0.5, 0.0, 0.55, 0.05],
                  [0.8, 0.8, 0.95, 0.95], [0.3, 0.6, 0.4, 0.7]], np.float32),  # negatives
        np.zeros((3, 4), np.float32)])                         # padding
    return masks, boxes, class_ids, proposals


def run(layer, proposals, class_ids, boxes, masks):
    outputs = layer([tf.constant(proposals[None]), tf.constant(class_ids[None]),
                     tf.constant(boxes[None]), tf.constant(masks[None])])
    return [o.numpy()[0] for o in outputs]


def test_targets_positive_fraction_classes_deltas_and_full_masks():
    masks, boxes, class_ids, proposals = scene()
    rois, ids, deltas, target_masks = run(make_layer(False), proposals, class_ids, boxes, masks)
    assert rois.shape == (12, 4) and target_masks.shape == (12, 8, 8)
    # 3 positives available, cap int(12 * 0.25) = 3; negatives = 3 / 0.25 - 3 = 9, but only 5.
    positives = ids > 0
    assert positives.sum() == 3 and np.all(positives[:3])
    assert np.count_nonzero(np.any(rois != 0, axis=1)) == 3 + 5
    for i in range(3):
        gt = int(np.argmax(utils.compute_overlaps(rois[i:i + 1], boxes[:2])[0]))
        assert ids[i] == class_ids[gt]
        expected = utils.box_refinement(rois[i:i + 1], boxes[gt:gt + 1]) / [0.1, 0.1, 0.2, 0.2]
        np.testing.assert_allclose(deltas[i], expected[0], atol=1e-5)
        if np.allclose(rois[i], boxes[gt]):
            # An RoI equal to a rectangular GT box crops an all-ones mask.
            assert np.all(target_masks[i] == 1)
    assert np.all(deltas[3:] == 0) and np.all(target_masks[3:] == 0) and np.all(ids[3:] == 0)


def test_targets_from_mini_masks_match_full_masks():
    masks, boxes, class_ids, proposals = scene()
    pixel_boxes = utils.extract_bboxes(masks[..., :2])
    mini = np.zeros((16, 16, 3), dtype=bool)
    mini[..., :2] = utils.minimize_mask(pixel_boxes, masks[..., :2], (16, 16))
    tf.random.set_seed(0)
    full = run(make_layer(False), proposals, class_ids, boxes, masks)
    tf.random.set_seed(0)
    from_mini = run(make_layer(True), proposals, class_ids, boxes, mini)
    np.testing.assert_allclose(full[0], from_mini[0])
    # Rectangles survive the mini-mask round trip exactly, so the crops agree.
    np.testing.assert_allclose(full[3], from_mini[3])


def test_targets_without_objects_and_with_crowd():
    masks, boxes, class_ids, proposals = scene()
    empty_ids = np.zeros(3, np.int32)
    rois, ids, deltas, target_masks = run(make_layer(False), proposals, empty_ids,
                                          np.zeros_like(boxes), masks)
    assert np.all(ids == 0) and np.all(deltas == 0)
    # No positives: int(12 * 0.75) = 9 negatives requested, all 8 proposals taken.
    assert np.count_nonzero(np.any(rois != 0, axis=1)) == 8

    crowd_ids = np.array([1, -2, 0], np.int32)     # the second object is a crowd region
    rois, ids, _, _ = run(make_layer(False, rois=40), proposals, crowd_ids, boxes, masks)
    kept = rois[np.any(rois != 0, axis=1)]
    crowd_iou = utils.compute_overlaps(kept, boxes[1:2])[:, 0]
    assert np.all(crowd_iou == 0)            # nothing touching the crowd box, not even as negative
    assert set(ids.tolist()) <= {0, 1}


def test_target_layer_config_round_trip():
    layer = make_layer(True)
    clone = DetectionTargetLayer.from_config(layer.get_config())
    assert clone.params == layer.params
