"""Matterport's evaluation functions: matching predictions to ground truth, AP, recall.

COCO metrics (pycocotools) are in :mod:`mrcnn.evaluation.evaluate`; these are Matterport's own NumPy
definitions, also importable from ``mrcnn.utils``.
"""

import numpy as np

from mrcnn.modeling.boxes import compute_overlaps, compute_overlaps_masks, trim_zeros



def compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores,
                    pred_masks, iou_threshold=0.5, score_threshold=0.0):
    """Match predictions to ground truth instances by mask IoU (Matterport's rules).

    Predictions are visited best score first; each takes the unmatched GT of the same class
    with the highest IoU, if that IoU is >= ``iou_threshold``. A GT is matched at most once.
    Zero-padded rows of the box arrays are ignored. ``score_threshold`` drops candidate pairs
    whose IoU is below it before matching (Matterport's name for this parameter).

    Returns:
        gt_match: [num_gt] index of the matched prediction (in the score-sorted order) or -1.
        pred_match: [num_pred] index of the matched GT or -1, predictions sorted by score.
        overlaps: [num_pred, num_gt] mask IoUs, predictions sorted by score.
    """
    gt_boxes = trim_zeros(np.asarray(gt_boxes).reshape(-1, 4))
    gt_masks = np.asarray(gt_masks)[..., :gt_boxes.shape[0]]
    pred_boxes = trim_zeros(np.asarray(pred_boxes).reshape(-1, 4))
    pred_scores = np.asarray(pred_scores)[:pred_boxes.shape[0]]
    order = np.argsort(pred_scores, kind="stable")[::-1]
    pred_class_ids = np.asarray(pred_class_ids)[order]
    pred_masks = np.asarray(pred_masks)[..., order]
    gt_class_ids = np.asarray(gt_class_ids)

    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
    pred_match = -1 * np.ones([pred_boxes.shape[0]])
    gt_match = -1 * np.ones([gt_boxes.shape[0]])
    for i in range(pred_boxes.shape[0]):
        candidates = np.argsort(overlaps[i], kind="stable")[::-1]
        candidates = candidates[overlaps[i, candidates] >= score_threshold]
        for j in candidates:
            if gt_match[j] > -1:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores,
               pred_masks, iou_threshold=0.5):
    """Average precision at one mask-IoU threshold (Matterport's VOC-style interpolation).

    Returns:
        mAP: the area under the interpolated precision-recall curve.
        precisions, recalls: the curve's points (with the (0, 0) and (1, 0) end points).
        overlaps: [num_pred, num_gt] mask IoUs (predictions sorted by score).
    An image without ground truth scores 1.0 when nothing is predicted and 0.0 otherwise.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold)
    if len(gt_match) == 0:
        ap = 1.0 if len(pred_match) == 0 else 0.0
        return ap, np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0]), overlaps
    hits = np.cumsum(pred_match > -1)
    precisions = hits / (np.arange(len(pred_match)) + 1)
    recalls = hits.astype(np.float64) / len(gt_match)
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    # Make precision monotonically decreasing from the right.
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    indices = np.where(recalls[:-1] != recalls[1:])[0] + 1
    ap = float(np.sum((recalls[indices] - recalls[indices - 1]) * precisions[indices]))
    return ap, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                     pred_mask, iou_thresholds=None, verbose=1):
    """Mean of :func:`compute_ap` over IoU thresholds (default 0.5:0.95:0.05, as COCO)."""
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = []
    for t in iou_thresholds:
        ap, *_ = compute_ap(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                            pred_mask, iou_threshold=t)
        aps.append(ap)
        if verbose:
            print("AP @{:.2f}:\t {:.3f}".format(t, ap))
    ap = float(np.mean(aps))
    if verbose:
        print("AP @{:.2f}-{:.2f}:\t {:.3f}".format(iou_thresholds[0], iou_thresholds[-1], ap))
    return ap


def _recall_overlaps(pred_boxes, gt_boxes):
    """(overlaps [P, G], None), or (None, the recall result) when there is nothing to match:
    recall 1.0 without GT boxes, 0.0 without predictions, no positive ids."""
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    if overlaps.shape[1] == 0:
        return None, (1.0, np.zeros([0], dtype=np.int64))
    if overlaps.shape[0] == 0:
        return None, (0.0, np.zeros([0], dtype=np.int64))
    return overlaps, None


def compute_recall(pred_boxes, gt_boxes, iou):
    """Box recall as Matterport defines it: each prediction's best-overlapping GT box counts as
    found when their IoU is >= ``iou``.

    Returns (recall, positive_ids): the fraction of GT boxes that are some prediction's best
    match, and the indices of the predictions whose best IoU reaches ``iou``. Without GT boxes
    the recall is 1.0, without predictions 0.0. :func:`compute_gt_recall` is the GT-side
    variant (a GT box is found when its own best prediction reaches ``iou``).
    """
    overlaps, empty = _recall_overlaps(pred_boxes, gt_boxes)
    if empty is not None:
        return empty
    iou_max = np.max(overlaps, axis=1)
    iou_argmax = np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    matched_gt_boxes = iou_argmax[positive_ids]
    return len(set(matched_gt_boxes)) / overlaps.shape[1], positive_ids


def compute_gt_recall(pred_boxes, gt_boxes, iou):
    """Box recall from the GT side: the fraction of GT boxes whose best-overlapping prediction
    has IoU >= ``iou``.

    Unlike :func:`compute_recall` (Matterport's), a GT box that is no prediction's best match
    still counts when a prediction overlaps it enough. Returns (recall, positive_ids):
    positive_ids are the indices of the GT boxes found.
    """
    overlaps, empty = _recall_overlaps(pred_boxes, gt_boxes)
    if empty is not None:
        return empty
    iou_max = np.max(overlaps, axis=0)
    positive_ids = np.where(iou_max >= iou)[0]
    return len(positive_ids) / overlaps.shape[1], positive_ids
