"""Accuracy cost of TFLite dynamic-range quantization on a trained shapes model, as JSON.

Exports one trained shapes checkpoint (the demo's ``ScratchShapesConfig``: ResNet-50-FPN,
128x128) as TFLite fp32 and TFLite dynamic-range (int8 weights), runs both with LiteRT through
``mrcnn.export.runner`` on held-out shapes images (a seed disjoint from training) and scores
each, and ``model.detect()`` itself, with COCO metrics (pycocotools) and Matterport's mAP@0.5.

    python benchmarks/quantization_shapes.py --weights logs/.../mask_rcnn_shapes_0008.h5
        [--images 50] [--out results.json]

Any shapes checkpoint works: ``make demo``'s, or ``notebooks/train_shapes.ipynb``'s.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from _report import emit, machine  # noqa: E402
from mrcnn.evaluation import evaluate
from mrcnn.export import runner as export_runner  # noqa: E402
from mrcnn import model as modellib  # noqa: E402
from samples.shapes import shapes  # noqa: E402

HELD_OUT_SEED = 2_000_029


def scores(dataset, image_ids, results):
    summary = evaluate.evaluate_results(dataset, image_ids, results, verbose=False)
    return {"mask_AP": round(summary["segm"]["AP"], 4),
            "mask_AP50": round(summary["segm"]["AP50"], 4),
            "mask_AP75": round(summary["segm"]["AP75"], 4),
            "box_AP": round(summary["bbox"]["AP"], 4),
            "mAP@0.5_matterport": round(float(shapes.matterport_map(dataset, image_ids,
                                                                    results)), 4),
            "detections": summary["num_detections"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True, help="a trained shapes checkpoint (.h5)")
    parser.add_argument("--images", type=int, default=50, help="held-out images to score")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    config = shapes.inference_config(shapes.ScratchShapesConfig, 1)
    model = modellib.MaskRCNN("inference", config, tempfile.mkdtemp(prefix="quant_"))
    model.load_weights(args.weights, by_name=True)
    size = int(config.IMAGE_SHAPE[0])
    dataset = shapes.ShapesDataset()
    dataset.load_shapes(args.images, size, size, seed=HELD_OUT_SEED)
    dataset.prepare()
    image_ids = list(dataset.image_ids)
    images = [dataset.load_image(i) for i in image_ids]

    report = {"weights": args.weights, "held_out_images": len(image_ids), "variants": {}}
    start = time.time()
    results = model.detect(images)
    report["variants"]["detect (TensorFlow fp32)"] = dict(
        scores(dataset, image_ids, results), s_per_image=round((time.time() - start) /
                                                               len(images), 4))
    work = tempfile.mkdtemp(prefix="quant_export_")
    for name, quantize in (("tflite_fp32", None), ("tflite_dynamic", "dynamic")):
        path = os.path.join(work, name + ".tflite")
        model.export(path, format="tflite", quantize=quantize)
        runner = export_runner.ExportedModel(path)
        start = time.time()
        outs = [runner.detect(image) for image in images]
        seconds = (time.time() - start) / len(images)
        # The runner names the boxes "boxes"; the scoring reads detect()'s "rois".
        results = [dict(r, rois=r["boxes"]) for r in outs]
        report["variants"][name] = dict(scores(dataset, image_ids, results),
                                        s_per_image=round(seconds, 4),
                                        file_mib=round(os.path.getsize(path) / 2 ** 20, 1))
        print(name, report["variants"][name], flush=True)
    report["machine"] = machine()
    emit(report, args.out)


if __name__ == "__main__":
    main()
