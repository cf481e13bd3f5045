"""Per-image latency and file size of the exported formats at 1024x1024, in one run.

Model: default Config with ResNet-50-FPN (81 classes as for COCO, random weights, one image per
call, DETECTION_MIN_CONFIDENCE 0 so that all 100 detections are kept: a busy image). Exported
as a SavedModel (any image size, everything in the graph), TFLite fp32 and dynamic-range
quantized (int8 weights), and ONNX (the fixed-size core; ``mrcnn.export.runner`` molds the
image and pastes the masks in NumPy). Each is timed on the same random 1024x1024 image: one
warm-up call, then the median of ``--runs`` calls. For the runners the time of the model call
alone (``core_s``) is reported beside the whole ``detect()``. ``model.detect([image])`` of the
model itself is timed the same way before the exports and again after them (the machine's
drift over the run), and ``detect_vs_fastest_fp32`` compares it with the fastest float32
export (issue 28's target: at most 1).

Quantization cost: fp32 and quantized TFLite on ``--accuracy-images`` images; a fp32 detection
is matched when the quantized model has one of the same class with box IoU >= 0.5, and matched
pairs report their mask IoU (pasted masks) and score difference. With random weights the scores
are nearly tied, so this is a stress test of ranking stability rather than an accuracy figure
on real data.

    python benchmarks/export_latency.py [--runs 3] [--out results.json]
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from _report import emit, machine, run_times  # noqa: E402


def timed(fn, runs):
    """(median seconds, all runs) after one warm-up call."""
    times = run_times(fn, runs)
    return round(float(np.median(times)), 3), [round(t, 3) for t in times]


def size_mib(path):
    if os.path.isdir(path):
        return round(sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path)
                         for f in files) / 2 ** 20, 1)
    return round(os.path.getsize(path) / 2 ** 20, 1)


def box_iou(a, b):
    """IoU matrix of pixel boxes a [N, 4] and b [M, 4]."""
    y1 = np.maximum(a[:, None, 0], b[None, :, 0])
    x1 = np.maximum(a[:, None, 1], b[None, :, 1])
    y2 = np.minimum(a[:, None, 2], b[None, :, 2])
    x2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.maximum(y2 - y1, 0) * np.maximum(x2 - x1, 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1)


def compare(reference, other):
    """Greedy matching of ``other``'s detections to ``reference``'s (same class, IoU >= 0.5)."""
    matched, mask_ious, score_diffs = 0, [], []
    if len(reference["boxes"]) and len(other["boxes"]):
        ious = box_iou(reference["boxes"], other["boxes"])
        ious[reference["class_ids"][:, None] != other["class_ids"][None]] = 0
        used = set()
        for i in range(len(reference["boxes"])):
            for j in np.argsort(-ious[i]):
                if ious[i, j] < 0.5:
                    break
                if j in used:
                    continue
                used.add(j)
                matched += 1
                a, b = reference["masks"][..., i], other["masks"][..., j]
                union = np.logical_or(a, b).sum()
                mask_ious.append(np.logical_and(a, b).sum() / union if union else 1.0)
                score_diffs.append(abs(float(reference["scores"][i] - other["scores"][j])))
                break
    return matched, mask_ious, score_diffs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed calls per format")
    parser.add_argument("--accuracy-images", type=int, default=3,
                        help="images for the quantization comparison")
    parser.add_argument("--size", type=int, default=1024, help="IMAGE_MAX_DIM (square)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    import onnxruntime
    import tensorflow as tf
    import tf2onnx
    from mrcnn import model as modellib
    from mrcnn.config import Config
    from mrcnn.export.runner import ExportedModel

    class BenchConfig(Config):
        NAME = "bench"
        BACKBONE = "resnet50"
        NUM_CLASSES = 81
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = args.size
        IMAGE_MAX_DIM = args.size
        DETECTION_MIN_CONFIDENCE = 0.0

    threads = os.cpu_count()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    model = modellib.MaskRCNN("inference", BenchConfig(), "/tmp/mrcnn_bench_logs")
    results = {"machine": machine(), "image": list(image.shape), "backbone": "resnet50",
               "num_classes": 81, "runs": args.runs, "threads": threads,
               "versions": {"tensorflow": tf.__version__, "onnxruntime": onnxruntime.__version__,
                            "tf2onnx": tf2onnx.__version__},
               "formats": {}}
    detect_s, detect_runs = timed(lambda: model.detect([image]), args.runs)
    results["formats"]["detect"] = {"seconds_per_image": detect_s, "all_runs_s": detect_runs,
                                    "detections": len(model.detect([image])[0]["class_ids"])}
    print("detect", results["formats"]["detect"], file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("savedmodel", None, os.path.join(tmp, "saved")),
                   ("tflite", None, os.path.join(tmp, "model.tflite")),
                   ("tflite", "dynamic", os.path.join(tmp, "model_dynamic.tflite")),
                   ("onnx", None, os.path.join(tmp, "model.onnx"))]
        runners = {}
        for fmt, quantize, path in targets:
            name = fmt + ("_" + quantize if quantize else "")
            start = time.perf_counter()
            model.export(path, format=fmt, quantize=quantize)
            entry = {"export_s": round(time.perf_counter() - start, 1),
                     "size_mib": size_mib(path)}
            if fmt == "savedmodel":
                serve = tf.saved_model.load(path).signatures["serving_default"]
                tensor = tf.constant(image)
                entry["seconds_per_image"], entry["all_runs_s"] = timed(
                    lambda: serve(image=tensor), args.runs)
                entry["detections"] = int(serve(image=tensor)["class_ids"].shape[0])
            else:
                runner = ExportedModel(path, num_threads=threads)
                runners[name] = runner
                square, window = runner.mold(image)
                entry["runtime"] = runner.runtime
                entry["seconds_per_image"], entry["all_runs_s"] = timed(
                    lambda: runner.detect(image), args.runs)
                entry["core_s"], _ = timed(lambda: runner.run(square, window), args.runs)
                entry["detections"] = len(runner.detect(image)["class_ids"])
            results["formats"][name] = entry
            print(name, entry, file=sys.stderr, flush=True)

        after_s, after_runs = timed(lambda: model.detect([image]), args.runs)
        results["formats"]["detect_after_exports"] = {"seconds_per_image": after_s,
                                                      "all_runs_s": after_runs}
        fp32 = {k: v["seconds_per_image"] for k, v in results["formats"].items()
                if k in ("savedmodel", "tflite", "onnx")}
        fastest = min(fp32, key=fp32.get)
        results["detect_vs_fastest_fp32"] = {
            "fastest": fastest, "fastest_s": fp32[fastest],
            "detect_s": round((detect_s + after_s) / 2, 3),
            "ratio": round((detect_s + after_s) / 2 / fp32[fastest], 3)}
        matched = total = 0
        mask_ious, score_diffs = [], []
        for i in range(args.accuracy_images):
            sample = np.random.default_rng(100 + i).integers(0, 256, image.shape, np.uint8)
            reference = runners["tflite"].detect(sample)
            quantized = runners["tflite_dynamic"].detect(sample)
            m, ious, diffs = compare(reference, quantized)
            matched += m
            total += len(reference["class_ids"])
            mask_ious += ious
            score_diffs += diffs
        results["quantization"] = {
            "images": args.accuracy_images, "fp32_detections": total,
            "matched_fraction": round(matched / max(total, 1), 3),
            "mean_mask_iou_of_matched": round(float(np.mean(mask_ious)), 3) if mask_ious
            else None,
            "mean_abs_score_diff_of_matched": round(float(np.mean(score_diffs)), 5)
            if score_diffs else None}
    emit(results, args.out)


if __name__ == "__main__":
    main()
