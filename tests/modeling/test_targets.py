import numpy as np
import pytest
import tensorflow as tf

from mrcnn import utils
from mrcnn.modeling.targets import DetectionTargetLayer


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


def test_rpn_targets_tie_every_anchor_within_the_tolerance_of_a_gt_boxs_best():
    # Issue 27: a 1-px box lies inside 9 anchors of area 64, IoU 1/64 each; float32 rounding
    # of the anchors' coordinates made 3 of them "the best" under exact equality (2 in
    # Matterport's float64 code). All 9 tie within matching.TIE_TOLERANCE.
    from mrcnn.modeling import matching, targets
    anchors = utils.generate_pyramid_anchors((8, 16, 32, 64, 128), [0.5, 1, 2],
                                             [[32, 32], [16, 16], [8, 8], [4, 4], [2, 2]],
                                             [4, 8, 16, 32, 64], 1)
    gt_boxes = np.array([[100.3, 60.7, 101.3, 61.7]])
    iou = utils.compute_overlaps(anchors, gt_boxes)[:, 0]
    tied = np.flatnonzero(np.abs(iou - 1 / 64) < 1e-12)
    assert len(tied) == 9 and iou.max() < 1 / 64 + 1e-12
    params = {"num_samples": 256, "positive_iou": 0.7, "negative_iou": 0.3,
              "std_dev": [0.1, 0.1, 0.2, 0.2]}
    rpn_match, rpn_bbox = targets.rpn_targets_graph(anchors, np.array([1]), gt_boxes, params,
                                                    seed=np.array([1, 2]))
    np.testing.assert_array_equal(np.flatnonzero(rpn_match.numpy() == 1), tied)
    assert np.count_nonzero(np.any(rpn_bbox.numpy() != 0, axis=1)) == 9

    # On an IoU matrix: within the tolerance ties, beyond it does not; a GT box whose best IoU
    # is under the tolerance does not tie with the candidates that miss it.
    iou = tf.constant([[0.5, 0.0], [0.5 - 0.5 * matching.TIE_TOLERANCE, 0.0],
                       [0.5 - 5 * matching.TIE_TOLERANCE, 0.0], [0.1, 1e-7], [0.1, 0.0]])
    labels, _ = matching.match(iou, 0.7, 0.3, allow_low_quality=True)
    np.testing.assert_array_equal(labels, [1, 1, 0, 1, -1])


# --- mask targets with the paper's RoIAlign (ROI_ALIGN_SAMPLING_RATIO > 0) -------------------

def roi_align_layer(use_mini_mask, aligned, rois=12, ratio=2):
    return DetectionTargetLayer(train_rois_per_image=rois, roi_positive_ratio=0.25,
                                bbox_std_dev=[0.1, 0.1, 0.2, 0.2], mask_shape=[8, 8],
                                use_mini_mask=use_mini_mask, mask_sampling_ratio=ratio,
                                mask_aligned=aligned, image_shape=(64, 64))


def ellipse_scene():
    """scene() with the first object an ellipse, so that the sampling geometry shows."""
    masks, boxes, class_ids, proposals = scene()
    y, x = np.mgrid[:64, :64]
    masks[..., 0] = ((y + 0.5 - 16) / 8) ** 2 + ((x + 0.5 - 20) / 12) ** 2 <= 1
    boxes[:1] = utils.norm_boxes(utils.extract_bboxes(masks[..., :1]), (64, 64))
    proposals[0] = boxes[0]
    proposals[2] = boxes[0] + [0.01, 0.01, 0.01, 0.01]
    return masks, boxes, class_ids, proposals


@pytest.mark.parametrize("ratio", [2, -1])
@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_mask_targets_sample_as_roi_align(aligned, ratio):
    # Each target cell is the RoIAlign value of the GT mask over the RoI (spatial scale 1),
    # thresholded at 0.5: checked against the loop reference of tests/modeling/test_roi_align.py
    # (ratio -1: the adaptive grid, 2-3 samples per bin side for these 16-24 pixel RoIs).
    from test_roi_align import reference_roi_align
    masks, boxes, class_ids, proposals = ellipse_scene()
    rois, ids, _, target_masks = run(roi_align_layer(False, aligned, ratio=ratio), proposals,
                                     class_ids, boxes, masks)
    for i in np.nonzero(ids > 0)[0]:
        gt = int(np.argmax(utils.compute_overlaps(rois[i:i + 1], boxes[:2])[0]))
        pixels = rois[i] * 63 + [0, 0, 1, 1]         # the inverse of norm_boxes
        value = reference_roi_align(masks[np.newaxis, ..., gt:gt + 1].astype(np.float32),
                                    pixels[np.newaxis], [0], (8, 8), ratio, aligned)[0, ..., 0]
        decided = np.abs(value - 0.5) > 1e-4
        assert decided.mean() > 0.9
        np.testing.assert_array_equal(target_masks[i][decided], (value >= 0.5)[decided])


@pytest.mark.parametrize("ratio", [2, -1])
@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_mask_targets_from_mini_masks_match_full_masks(aligned, ratio):
    masks, boxes, class_ids, proposals = ellipse_scene()
    pixel_boxes = utils.extract_bboxes(masks[..., :2])
    mini = np.zeros((56, 56, 3), dtype=bool)
    mini[..., :2] = utils.minimize_mask(pixel_boxes, masks[..., :2], (56, 56))
    tf.random.set_seed(0)
    full = run(roi_align_layer(False, aligned, ratio=ratio), proposals, class_ids, boxes, masks)
    tf.random.set_seed(0)
    from_mini = run(roi_align_layer(True, aligned, ratio=ratio), proposals, class_ids, boxes,
                    mini)
    np.testing.assert_allclose(full[0], from_mini[0])
    # The mini mask is a 56x56 resampling of the GT, so cells whose value is near the threshold
    # may flip (unaligned samples often fall halfway between two pixels: value 0.5); the
    # others agree, which they would not if the mini-mask frame were off by half a pixel.
    from test_roi_align import reference_roi_align
    rois, ids = full[0], full[1]
    for i in np.nonzero(ids > 0)[0]:
        gt = int(np.argmax(utils.compute_overlaps(rois[i:i + 1], boxes[:2])[0]))
        value = reference_roi_align(masks[np.newaxis, ..., gt:gt + 1].astype(np.float32),
                                    (rois[i] * 63 + [0, 0, 1, 1])[np.newaxis], [0], (8, 8),
                                    ratio, aligned)[0, ..., 0]
        decided = np.abs(value - 0.5) > 0.1
        assert decided.mean() > 0.85
        np.testing.assert_array_equal(from_mini[3][i][decided], full[3][i][decided])


def test_adaptive_mask_targets_from_mini_masks_take_the_grid_of_the_roi_in_image_pixels():
    # ratio -1 on a mini mask: the grid is ceil(RoI side in image pixels / 8), here 3 x 4 (a
    # 20x26-pixel RoI), not that of the RoI's size in mini-mask cells (7 x 8 here: 56 x 60.7
    # cells). Random bits make the sample count show in the thresholded targets.
    from test_roi_align import reference_roi_align
    from mrcnn.modeling.box_ops import pixel_boxes
    from mrcnn.modeling.targets import roi_align_mask_targets
    rng = np.random.default_rng(8)
    mini = rng.random((1, 56, 56, 1)) < 0.5
    gt_px = np.array([[10.0, 12.0, 30.0, 36.0]])                 # 20 x 24 pixels
    roi_px = np.array([[11.0, 11.0, 31.0, 37.0]])                # 20 x 26 pixels
    gt, roi = (utils.norm_boxes(b, (64, 64)).astype(np.float32) for b in (gt_px, roi_px))
    params = {"image_shape": [64, 64], "mask_aligned": True, "use_mini_mask": True,
              "mask_shape": [8, 8], "mask_sampling_ratio": -1}
    got = roi_align_mask_targets(tf.constant(mini, tf.float32), tf.constant(roi),
                                 tf.constant(gt), params).numpy()[0]
    # The RoI in the mini mask's frame: continuous pixel y -> (y - gy1) * 56 / gh.
    roi_back = pixel_boxes(tf.constant(roi), [64, 64]).numpy().astype(np.float64)
    gt_back = pixel_boxes(tf.constant(gt), [64, 64]).numpy().astype(np.float64)
    scale = 56.0 / (gt_back[:, 2:] - gt_back[:, :2])
    in_mini = (roi_back - np.tile(gt_back[:, :2], 2)) * np.tile(scale, 2)
    value = {grid: reference_roi_align(mini.astype(np.float32), in_mini, [0], (8, 8), -1, True,
                                       grid=[grid])[0, ..., 0]
             for grid in ((3, 4), (7, 8))}
    assert np.mean((value[(3, 4)] >= 0.5) != (value[(7, 8)] >= 0.5)) > 0.1
    decided = np.abs(value[(3, 4)] - 0.5) > 1e-4
    np.testing.assert_array_equal(got[decided], (value[(3, 4)] >= 0.5)[decided])


def test_roi_align_target_layer_needs_the_image_shape_and_round_trips():
    with pytest.raises(ValueError, match="image_shape"):
        DetectionTargetLayer(12, 0.25, [0.1, 0.1, 0.2, 0.2], [8, 8], True,
                             mask_sampling_ratio=2)
    layer = roi_align_layer(True, False)
    clone = DetectionTargetLayer.from_config(layer.get_config())
    assert clone.params == layer.params
    assert clone.params["mask_sampling_ratio"] == 2 and not clone.params["mask_aligned"]


def test_torchvision_box_decoding_encodes_in_pixels():
    """BOX_DECODING "torchvision": the head's deltas are decoded in pixels, so its targets are
    encoded there; decoding them in pixels (box_coder, as torchvision's BoxCoder) gives the GT
    box back."""
    from mrcnn.modeling import box_coder
    masks, boxes, class_ids, proposals = scene()
    layer = DetectionTargetLayer(12, 0.25, [0.1, 0.1, 0.2, 0.2], [8, 8], False,
                                 image_shape=(64, 64), box_decoding="torchvision")
    rois, ids, deltas, _ = run(layer, proposals, class_ids, boxes, masks)
    shifted = np.where(np.all(np.abs(rois - proposals[2]) < 1e-6, axis=1))[0]
    assert len(shifted) == 1
    to_pixels = np.array([63, 63, 63, 63]), np.array([0, 0, 1, 1])
    roi = rois[shifted[0]] * to_pixels[0] + to_pixels[1]
    gt = boxes[0] * to_pixels[0] + to_pixels[1]
    decoded = box_coder.decode(roi, deltas[shifted[0]] * [0.1, 0.1, 0.2, 0.2])
    np.testing.assert_allclose(decoded, gt, atol=1e-3)
    # The same RoI's Matterport deltas (normalized coordinates) differ.
    rois, _, matterport, _ = run(make_layer(False), proposals, class_ids, boxes, masks)
    same = np.where(np.all(np.abs(rois - proposals[2]) < 1e-6, axis=1))[0][0]
    assert not np.allclose(matterport[same], deltas[shifted[0]], atol=1e-3)
