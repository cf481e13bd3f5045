"""COCO evaluation: numbers equal pycocotools run directly; edge cases; diagnostics."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.evaluation import evaluate
from mrcnn.data.dataset import Dataset


class BoxesDataset(Dataset):
    """Images with rectangular instances given as (class_id, y1, x1, y2, x2)."""

    def __init__(self, scenes, size=(40, 50)):
        super().__init__()
        for i, name in enumerate(["cat", "dog"], start=1):
            self.add_class("toy", i, name)
        for i, instances in enumerate(scenes):
            self.add_image("toy", image_id=i, path=None, instances=instances)
        self.size = size
        self.prepare()

    def load_image(self, image_id):
        return np.zeros(self.size + (3,), np.uint8)

    def load_mask(self, image_id):
        instances = self.image_info[image_id]["instances"]
        masks = np.zeros(self.size + (len(instances),), bool)
        for k, (_, y1, x1, y2, x2) in enumerate(instances):
            masks[y1:y2, x1:x2, k] = True
        return masks, np.array([c for c, *_ in instances], np.int32)


class FakeModel:
    """Stands in for MaskRCNN: detect() returns prepared results in order."""

    class config:
        BATCH_SIZE = 2

    def __init__(self, results):
        self.results = list(results)

    def detect(self, images):
        out, self.results = self.results[:len(images)], self.results[len(images):]
        return out


def result(dataset, dets):
    """detect()-style dict from (class_id, score, y1, x1, y2, x2) tuples."""
    masks = np.zeros(dataset.size + (len(dets),), bool)
    for k, (_, _, y1, x1, y2, x2) in enumerate(dets):
        masks[y1:y2, x1:x2, k] = True
    return {"rois": np.array([d[2:] for d in dets], np.int32).reshape(-1, 4),
            "class_ids": np.array([d[0] for d in dets], np.int32),
            "scores": np.array([d[1] for d in dets], np.float32), "masks": masks}


SCENES = [[(1, 2, 2, 20, 20), (2, 22, 25, 38, 48)],
          [(2, 5, 5, 15, 40)],
          [(1, 0, 0, 10, 10), (1, 20, 20, 35, 45)]]


def test_perfect_predictions_give_ap_one():
    ds = BoxesDataset(SCENES)
    results = [result(ds, [(c, 0.9, *b) for c, *b in scene]) for scene in SCENES]
    summary = evaluate.evaluate_coco(FakeModel(results), ds, verbose=False)
    for iou_type in ("bbox", "segm"):
        assert summary[iou_type]["AP"] == pytest.approx(1.0)
        assert summary[iou_type]["AP50"] == pytest.approx(1.0)
    assert summary["per_class"] == {"cat": pytest.approx(1.0), "dog": pytest.approx(1.0)}
    assert summary["confusion_matrix"] == [[0, 0, 0], [0, 3, 0], [0, 0, 2]]
    assert summary["warning"] is None and summary["num_detections"] == 5


def test_empty_predictions_give_zero():
    ds = BoxesDataset(SCENES)
    empty = [result(ds, []) for _ in SCENES]
    summary = evaluate.evaluate_coco(FakeModel(empty), ds, verbose=False)
    assert summary["segm"]["AP"] == 0.0 and summary["bbox"]["AR100"] == 0.0
    assert summary["confusion_matrix"] == [[0, 0, 0], [3, 0, 0], [2, 0, 0]]


def test_numbers_equal_pycocotools_run_directly(tmp_path):
    ds = BoxesDataset(SCENES)
    rng = np.random.default_rng(0)
    results = []
    for scene in SCENES:
        dets = []
        for c, y1, x1, y2, x2 in scene:
            jitter = rng.integers(-3, 4, 4)
            dets.append((c, float(rng.uniform(0.5, 1)), max(0, y1 + jitter[0]),
                         max(0, x1 + jitter[1]), y2 + jitter[2], x2 + jitter[3]))
        dets.append((3 - scene[0][0], 0.3, 0, 30, 12, 49))    # a false positive
        results.append(result(ds, dets))
    path = tmp_path / "eval.json"
    summary = evaluate.evaluate_coco(FakeModel(results), ds, verbose=False,
                                     results_path=str(path))

    # The same ground truth and detections, written as COCO json and scored by pycocotools.
    images, annotations, dets = [], [], []
    for image_id, (scene, r) in enumerate(zip(SCENES, results)):
        images.append({"id": image_id, "height": 40, "width": 50})
        for c, y1, x1, y2, x2 in scene:
            m = np.zeros((40, 50), np.uint8)
            m[y1:y2, x1:x2] = 1
            rle = mask_utils.encode(np.asfortranarray(m))
            rle["counts"] = rle["counts"].decode()
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": c, "iscrowd": 0, "segmentation": rle,
                                "area": float(m.sum()), "bbox": [x1, y1, x2 - x1, y2 - y1]})
        for k in range(len(r["class_ids"])):
            y1, x1, y2, x2 = r["rois"][k].tolist()
            rle = mask_utils.encode(np.asfortranarray(r["masks"][:, :, k].astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            dets.append({"image_id": image_id, "category_id": int(r["class_ids"][k]),
                         "score": float(r["scores"][k]), "segmentation": rle,
                         "bbox": [x1, y1, x2 - x1, y2 - y1]})
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": annotations,
                                   "categories": [{"id": 1, "name": "cat"},
                                                  {"id": 2, "name": "dog"}]}))
    coco_gt = COCO(str(gt_file))
    for iou_type in ("bbox", "segm"):
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(dets), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        np.testing.assert_allclose([summary[iou_type][n] for n in evaluate.STAT_NAMES],
                                   evaluator.stats, atol=1e-12)
    assert 0 < summary["segm"]["AP"] < 1
    saved = json.loads(path.read_text())
    assert saved["summary"]["segm"] == summary["segm"] and len(saved["detections"]) == 8


def test_crowd_regions_are_ignored():
    # Image 0 has a crowd region (negative class id) where the model fires.
    scenes = [[(1, 2, 2, 20, 20), (-2, 22, 25, 38, 48)]]
    ds = BoxesDataset(scenes)
    on_crowd = result(ds, [(1, 0.9, 2, 2, 20, 20), (2, 0.95, 22, 25, 38, 48)])
    summary = evaluate.evaluate_coco(FakeModel([on_crowd]), ds, verbose=False)
    # The detection on the crowd region is neither a hit nor a false positive.
    assert summary["segm"]["AP"] == pytest.approx(1.0)
    assert summary["per_class"]["cat"] == pytest.approx(1.0)


def test_collapse_to_one_class_is_reported():
    scenes = [[(1, 0, 0, 10, 10), (2, 20, 20, 30, 30)]] * 4
    ds = BoxesDataset(scenes)
    all_cats = [result(ds, [(1, 0.9, 0, 0, 10, 10), (1, 0.8, 20, 20, 30, 30)])] * 4
    summary = evaluate.evaluate_coco(FakeModel(all_cats), ds, verbose=False)
    assert summary["confusion_matrix"] == [[0, 0, 0], [0, 4, 0], [0, 4, 0]]
    assert "100% of predictions are 'cat' but it is 50% of the ground truth" in \
        summary["warning"]
