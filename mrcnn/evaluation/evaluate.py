"""COCO evaluation of a model over any ``Dataset``, through pycocotools.

``evaluate_coco(model, dataset)`` builds COCO ground truth from the dataset (not only COCO json:
any ``Dataset`` subclass), runs ``model.detect`` in batches with a progress bar, encodes masks as
RLE with ``pycocotools.mask`` and scores bbox and segm with ``COCOeval``. It also returns a
per-class AP table and a confusion matrix of predicted vs ground-truth classes for matched
instances, and warns when most predictions collapse to one class.
"""

import contextlib
import io
import json
import logging
import os
import tempfile

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn import utils

logger = logging.getLogger(__name__)

# Names of COCOeval.stats, in order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def encode_mask(mask):
    """[H, W] bool -> COCO RLE with a str ``counts`` (JSON serialisable)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _xywh(box):
    y1, x1, y2, x2 = [float(v) for v in box]
    return [x1, y1, x2 - x1, y2 - y1]


def build_coco_ground_truth(dataset, image_ids=None):
    """A pycocotools ``COCO`` object holding the dataset's instances.

    Category ids are the dataset's internal class ids (1..num_classes-1). Instances with a
    negative class id are crowd regions (``iscrowd=1`` of class ``-id``), which COCOeval
    ignores: detections on them are neither true nor false positives.
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    images, annotations = [], []
    for image_id in image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        image = dataset.load_image(image_id) if masks.shape[-1] == 0 else None
        height, width = masks.shape[:2] if masks.shape[-1] else image.shape[:2]
        images.append({"id": int(image_id), "height": int(height), "width": int(width)})
        boxes = utils.extract_bboxes(masks)
        for i in range(masks.shape[-1]):
            rle = encode_mask(masks[:, :, i])
            annotations.append({
                "id": len(annotations) + 1, "image_id": int(image_id),
                "category_id": int(abs(class_ids[i])), "iscrowd": int(class_ids[i] < 0),
                "segmentation": rle, "area": float(mask_utils.area(rle)),
                "bbox": _xywh(boxes[i])})
    categories = [{"id": i, "name": dataset.class_names[i]}
                  for i in range(1, dataset.num_classes)]
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    coco.createIndex()
    return coco


def detections_to_coco(image_id, result):
    """One ``detect()`` result -> COCO result dicts (bbox, score, RLE segmentation)."""
    out = []
    for i in range(len(result["class_ids"])):
        out.append({"image_id": int(image_id), "category_id": int(result["class_ids"][i]),
                    "bbox": _xywh(result["rois"][i]), "score": float(result["scores"][i]),
                    "segmentation": encode_mask(result["masks"][:, :, i])})
    return out


def coco_stats(coco_gt, detections, iou_type, verbose=True):
    """COCOeval's 12 numbers (dict keyed by STAT_NAMES) and the evaluator (None if no dets).

    With no detections every number is 0.0 (pycocotools cannot load an empty result list).
    verbose: False silences pycocotools' own printing.
    """
    if not detections:
        return {name: 0.0 for name in STAT_NAMES}, None
    with _printing(verbose):
        coco_dt = coco_gt.loadRes([dict(d) for d in detections])
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.params.imgIds = sorted(coco_gt.getImgIds())
        evaluator.evaluate()
        evaluator.accumulate()
    if verbose:
        print("COCO {} metrics:".format(iou_type))
    with _printing(verbose):
        evaluator.summarize()
    # pycocotools marks "no ground truth in this area range" as -1.
    return {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats)}, evaluator


def _printing(verbose):
    """A context in which pycocotools prints to stdout only when ``verbose``."""
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


def per_class_ap(evaluator, class_names):
    """{class name: AP at IoU .50:.95 (all areas, 100 detections)}, NaN without GT."""
    table = {}
    if evaluator is None:
        return table
    precision = evaluator.eval["precision"]   # [IoU, recall, class, area, maxDets]
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        table[class_names[cat_id]] = float(np.mean(p)) if p.size else float("nan")
    return table


def confusion_matrix(dataset, image_ids, results, iou_threshold=0.5):
    """[num_classes, num_classes] counts of (ground-truth class, predicted class).

    Predictions are matched to ground truth by mask IoU regardless of class (best score first,
    each GT at most once), so that a cat detected as a dog lands in row cat, column dog.
    Unmatched predictions count in row 0 (background), missed objects in column 0.
    """
    n = dataset.num_classes
    matrix = np.zeros((n, n), dtype=np.int64)
    for image_id, r in zip(image_ids, results):
        gt_masks, gt_ids = dataset.load_mask(image_id)
        keep = gt_ids > 0
        gt_masks, gt_ids = gt_masks[..., keep], gt_ids[keep]
        order = np.argsort(-r["scores"], kind="stable")
        overlaps = utils.compute_overlaps_masks(r["masks"][..., order], gt_masks)
        matched = np.zeros(len(gt_ids), dtype=bool)
        for row, pred in enumerate(order):
            candidates = np.where((overlaps[row] >= iou_threshold) & ~matched)[0] \
                if overlaps.shape[1] else []
            if len(candidates):
                j = candidates[np.argmax(overlaps[row, candidates])]
                matched[j] = True
                matrix[gt_ids[j], r["class_ids"][pred]] += 1
            else:
                matrix[0, r["class_ids"][pred]] += 1
        for j in np.where(~matched)[0]:
            matrix[gt_ids[j], 0] += 1
    return matrix


def collapse_warning(matrix, class_names, threshold=0.8):
    """A message when one class takes most predictions although GT has several; else None."""
    predicted = matrix[:, 1:].sum(axis=0)
    truth = matrix[1:, :].sum(axis=1)
    if predicted.sum() < 5 or np.count_nonzero(truth) < 2:
        return None
    top = int(np.argmax(predicted))
    share = predicted[top] / predicted.sum()
    truth_share = truth[top] / max(truth.sum(), 1)
    if share >= threshold and share > truth_share + 0.2:
        return ("{:.0%} of predictions are '{}' but it is {:.0%} of the ground truth: the model "
                "may be collapsing to one class (check class balance, the class loss and "
                "LOSS_WEIGHTS)".format(share, class_names[top + 1], truth_share))
    return None


def detect_dataset(model, dataset, image_ids=None, batch_size=None, verbose=True):
    """Run ``model.detect`` over the dataset's images in batches, with a progress bar.

    Returns (image_ids, results): the ids and one ``detect()`` dict per image.
    """
    import keras

    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    batch_size = batch_size or model.config.BATCH_SIZE
    results = []
    progress = keras.utils.Progbar(len(image_ids), unit_name="image") if verbose else None
    for start in range(0, len(image_ids), batch_size):
        chunk = image_ids[start:start + batch_size]
        results.extend(model.detect([dataset.load_image(i) for i in chunk]))
        if progress:
            progress.add(len(chunk))
    return image_ids, results


def evaluate_results(dataset, image_ids, results, iou_types=("bbox", "segm"),
                     results_path=None, verbose=True):
    """COCO metrics and diagnostics of detections already made (see :func:`evaluate_coco`)."""
    if results_path:
        check_writable(results_path)
    detections = []
    for image_id, r in zip(image_ids, results):
        detections.extend(detections_to_coco(image_id, r))
    with _printing(verbose):
        coco_gt = build_coco_ground_truth(dataset, image_ids)
    summary = {"num_images": len(image_ids), "num_detections": len(detections)}
    evaluators = {}
    for iou_type in iou_types:
        summary[iou_type], evaluators[iou_type] = coco_stats(coco_gt, detections, iou_type,
                                                             verbose)
    main_type = "segm" if "segm" in iou_types else iou_types[0]
    summary["per_class"] = per_class_ap(evaluators[main_type], dataset.class_names)
    matrix = confusion_matrix(dataset, image_ids, results)
    summary["confusion_matrix"] = matrix.tolist()
    summary["class_names"] = list(dataset.class_names)
    summary["warning"] = collapse_warning(matrix, dataset.class_names)
    if verbose:
        print("Per-class AP ({}, IoU .50:.95):".format(main_type))
        for name, ap in summary["per_class"].items():
            print("  {:20} {:.3f}".format(name, ap))
        if summary["warning"]:
            print("WARNING:", summary["warning"])
    if summary["warning"]:
        logger.warning(summary["warning"])
    if results_path:
        _write_json_atomic(results_path, {"summary": summary, "detections": detections})
    return summary


def evaluate_coco(model, dataset, image_ids=None, iou_types=("bbox", "segm"), batch_size=None,
                  results_path=None, verbose=True):
    """Evaluate ``model`` (inference mode) on ``dataset`` with COCO metrics.

    Returns a dict: ``bbox`` and ``segm`` (12 numbers each, keyed by STAT_NAMES), ``per_class``
    (segm AP per class, or bbox when segm is not asked), ``confusion_matrix``, ``warning``
    (or None), ``num_images`` and ``num_detections``. With ``results_path`` the dict and the
    raw COCO detections are written there as JSON (atomically); a place that cannot be written
    is an error before any detection runs. verbose=False prints nothing.
    """
    if results_path:
        check_writable(results_path)
    image_ids, results = detect_dataset(model, dataset, image_ids, batch_size, verbose)
    return evaluate_results(dataset, image_ids, results, iou_types, results_path, verbose)


def check_writable(path):
    """Raise OSError naming ``path`` unless a file can be written there (its folder is created).

    Tried by writing a temporary file, which also catches what permission bits do not tell
    (read-only file systems, a file in place of a folder).
    """
    if os.path.isdir(path):
        raise IsADirectoryError("results_path {!r} is a directory; give a file name".format(path))
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(suffix=".probe", dir=directory)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise OSError("cannot write results_path {!r}: {}".format(path, e)) from e


def _write_json_atomic(path, payload):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".json.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
