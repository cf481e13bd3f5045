"""Check a converted model against torchvision's forward pass, stage by stage.

:func:`torchvision_stages` runs an mrcnn inference model on one image and returns each stage's
output in torchvision's layouts (``(x1, y1, x2, y2)`` pixel boxes, deltas ``(dx, dy, dw, dh)``,
one objectness logit per anchor); :func:`compare_stages` measures how far they are from
torchvision's own outputs for the same image. tests/weights/test_convert.py holds them to thresholds
on a small model; benchmarks/torchvision_parity.py reports them at full size. The names are
those tests/reference/make_torchvision_reference.py stores.
"""

import numpy as np

from mrcnn import utils
from mrcnn.modeling.anchors import get_anchors
from mrcnn.weights.convert import XYXY

FPN_STAGES = {"fpn_0": "fpn_p2", "fpn_1": "fpn_p3", "fpn_2": "fpn_p4", "fpn_3": "fpn_p5",
              "fpn_pool": "fpn_p6"}


def _pixels(boxes, shape):
    """Normalized boxes of a molded image of ``shape`` -> pixels (utils.norm_boxes inverse)."""
    h, w = shape
    return boxes * [h - 1, w - 1, h - 1, w - 1] + [0, 0, 1, 1]


def torchvision_stages(model, image):
    """{stage name: array} of ``model`` (an inference ``MaskRCNN``) on one image, in
    torchvision's layouts: fpn_0..fpn_3, fpn_pool [1, h, w, C]; anchors [A, 4] and
    rpn_objectness [A], rpn_deltas [A, 4]; proposals [P, 4] (zero padding dropped) with
    class_logits [P, classes] and box_regression [P, classes * 4] on them; boxes [D, 4],
    labels [D], scores [D] and mask_logits [D, 28, 28] (the label's channel) of the
    detections. Boxes are pixels of the molded image."""
    km = model.keras_model
    layer_names = {layer.name for layer in km.layers}
    # A normalized FPN's maps are its normalization layers' outputs (Config.FPN_NORM).
    fpn = {n: next((n + s for s in ("_bn", "_gn") if n + s in layer_names), n)
           for n in FPN_STAGES.values()}
    names = list(fpn.values()) + ["ROI", "mrcnn_class_logits", "mrcnn_bbox",
                                  "mrcnn_detection", "mrcnn_mask"]
    out = {k: v[0] for k, v in model.run_graph(
        [image], [(n, km.get_layer(n).output) for n in names]).items()}
    out.update({n: out[layer] for n, layer in fpn.items()})
    shape = model.mold_inputs([image])[0].shape[1:3]
    rpn = km.get_layer("rpn_model")
    logits, _, deltas = (np.concatenate([rpn([out[n][np.newaxis]])[k].numpy()[0]
                                         for n in FPN_STAGES.values()]) for k in range(3))
    stages = {tv: out[ours][np.newaxis] for tv, ours in FPN_STAGES.items()}
    # Our background logit is 0 for converted weights: foreground minus background is
    # torchvision's objectness.
    stages["rpn_objectness"] = logits[:, 1] - logits[:, 0]
    stages["rpn_deltas"] = deltas[:, XYXY]
    stages["anchors"] = get_anchors(model.config, shape + (3,))[:, XYXY]
    valid = np.any(out["ROI"] != 0, axis=1)
    stages["proposals"] = _pixels(out["ROI"][valid], shape)[:, XYXY]
    stages["class_logits"] = out["mrcnn_class_logits"][valid]
    stages["box_regression"] = out["mrcnn_bbox"][valid][..., XYXY].reshape(int(valid.sum()), -1)
    dets = out["mrcnn_detection"]
    n = int(np.sum(dets[:, 4] > 0))
    stages["boxes"] = _pixels(dets[:n, :4], shape)[:, XYXY]
    stages["labels"] = dets[:n, 4].astype(np.int32)
    stages["scores"] = dets[:n, 5]
    stages["mask_logits"] = out["mrcnn_mask"][np.arange(n), :, :, stages["labels"]]
    return stages


def match_boxes(ours, theirs, threshold=0.99):
    """One to one, greedily in the reference's order: for each reference box [N, (x1, y1, x2,
    y2)] the index of our best box not taken yet with IoU > threshold (-1: none). Per-level
    NMS keeps near duplicates from different levels, so a plain argmax could take one box
    twice."""
    iou = utils.compute_overlaps(np.asarray(theirs)[:, XYXY], np.asarray(ours)[:, XYXY])
    index = np.full(len(theirs), -1)
    for r in range(len(theirs)):
        if iou.shape[1]:
            best = int(np.argmax(iou[r]))
            if iou[r, best] > threshold:
                index[r] = best
                iou[:, best] = -1.0
    return index


def relative_error(ours, theirs):
    """Largest difference relative to the reference's largest magnitude."""
    scale = np.max(np.abs(theirs)) if np.size(theirs) else 0.0
    return float(np.max(np.abs(ours - theirs)) / scale) if scale else 0.0


def compare_stages(ours, theirs, score_tolerance=1e-3):
    """How far :func:`torchvision_stages` is from torchvision's outputs ``theirs`` (same
    names). Returns {measure: value}: the relative error of every tensor stage (logits and
    deltas on the proposals and detections that match), the share of torchvision's
    proposals and detections matched one to one (IoU > 0.99; detections also of the same
    label and a score within ``score_tolerance``), the largest matched score difference and
    the counts."""
    report = {k: relative_error(ours[k], theirs[k]) for k in FPN_STAGES}
    report["anchors_max_abs"] = float(np.max(np.abs(ours["anchors"] - theirs["anchors"])))
    report["rpn_objectness"] = relative_error(ours["rpn_objectness"], theirs["rpn_objectness"])
    report["rpn_deltas"] = relative_error(ours["rpn_deltas"], theirs["rpn_deltas"])
    proposals = match_boxes(ours["proposals"], theirs["proposals"])
    hit = proposals >= 0
    report.update(proposals=len(ours["proposals"]), torchvision_proposals=len(proposals),
                  proposals_matched=float(np.mean(hit)) if len(hit) else 1.0)
    for key in ("class_logits", "box_regression"):
        report[key] = relative_error(ours[key][proposals[hit]], theirs[key][hit])
    detections = match_boxes(ours["boxes"], theirs["boxes"])
    same = detections >= 0
    same[same] &= (ours["labels"][detections[same]] == theirs["labels"][same]) & (
        np.abs(ours["scores"][detections[same]] - theirs["scores"][same]) < score_tolerance)
    report.update(detections=len(ours["boxes"]), torchvision_detections=len(detections),
                  detections_matched=float(np.mean(same)) if len(same) else 1.0)
    if np.any(same):
        mine = detections[same]
        report["score_max_abs"] = float(np.max(np.abs(ours["scores"][mine] -
                                                      theirs["scores"][same])))
        report["box_max_abs"] = float(np.max(np.abs(ours["boxes"][mine] -
                                                    theirs["boxes"][same])))
        report["mask_logits"] = relative_error(ours["mask_logits"][mine],
                                               theirs["mask_logits"][same])
    return report
