"""Seconds per image of ``MaskRCNN.detect()`` at 1024x1024, vs a plain Keras ResNet-50.

Each model runs in its own subprocess (so that peak memory is its own) on the same machine in
the same run; prints JSON. Models: Mask R-CNN with ResNet-50-FPN and ResNet-101-FPN (default
Config, 81 classes as for COCO, random weights, one image per call) and
``keras.applications.ResNet50`` (no top, random weights) at 1024x1024.

DETECTION_MIN_CONFIDENCE is set to 0 so that all DETECTION_MAX_INSTANCES (100) detections are
kept and their masks pasted: the cost of a busy image.

``--postprocess`` times instead ``detect()``'s post-processing, TensorFlow
(``mrcnn.inference.postprocess``, what ``detect()`` runs) against Matterport's NumPy unmolding
(``MaskRCNN.unmold_detections``, what ``detect()`` ran before), on the same predictions, and
``detect()`` against "detect() with the NumPy unmolding", alternating in the same process. It
also reports how far the two agree (boxes, class ids, scores; mask IoU and identical pixels).
Cases: the shapes demo config (ResNet-50-FPN, 128x128) and the default config with ResNet-50 at
512x512 and 1024x1024 (81 classes), random weights, 100 detections per image.

    python benchmarks/inference_speed.py [--runs 5] [--out results.json] [--postprocess]
"""

import argparse
import json
import os
import resource
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

from _report import emit, machine, run_times, seconds  # noqa: E402


def child(kind, runs):
    """Time one model in this process; print a JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    import numpy as np
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    if kind == "keras_resnet50":
        model = keras.applications.ResNet50(weights=None, include_top=False,
                                            input_shape=(1024, 1024, 3))
        batch = image[np.newaxis].astype(np.float32)

        def run():
            model.predict_on_batch(batch)
        detections = None
    else:
        from mrcnn import model as modellib
        from mrcnn.config import Config

        class BenchConfig(Config):
            NAME = "bench"
            BACKBONE = kind
            NUM_CLASSES = 81
            IMAGES_PER_GPU = 1
            DETECTION_MIN_CONFIDENCE = 0.0

        model = modellib.MaskRCNN("inference", BenchConfig(), "/tmp/mrcnn_bench_logs")
        detections = []

        def run():
            detections.append(len(model.detect([image])[0]["class_ids"]))
    first = seconds(run)        # first call: graph tracing
    times = run_times(run, runs, warmup=0)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"model": kind, "first_call_s": round(first, 2),
                      "seconds_per_image": round(float(np.median(times)), 3),
                      "all_runs_s": [round(t, 3) for t in times],
                      "peak_rss_mib": round(peak_mib),
                      "detections_per_image": detections[-1] if detections else None,
                      "tensorflow": tf.__version__}))


# --postprocess cases: (config overrides, original image shape). shapes_128 keeps the demo
# preset's head widths of when it was measured (docs/BENCHMARKS.md, "detect()'s
# post-processing in TensorFlow").
POSTPROCESS_CASES = {
    "shapes_128": ({"DETECTION_MAX_INSTANCES": 100, "MASK_HEAD_CHANNELS": 128,
                    "RPN_CONV_CHANNELS": 512}, (120, 128, 3)),
    "resnet50_512": ({"BACKBONE": "resnet50", "NUM_CLASSES": 81, "IMAGE_MIN_DIM": 512,
                      "IMAGE_MAX_DIM": 512}, (384, 512, 3)),
    "resnet50_1024": ({"BACKBONE": "resnet50", "NUM_CLASSES": 81}, (768, 1024, 3)),
}


def postprocess_child(case, runs):
    """Time detect() and its post-processing both ways in this process; print a JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    import numpy as np
    import tensorflow as tf

    from mrcnn import model as modellib
    from mrcnn.inference import postprocess
    from mrcnn.config import Config
    from samples.shapes.shapes import ScratchShapesConfig

    overrides, shape = POSTPROCESS_CASES[case]
    base = ScratchShapesConfig if case.startswith("shapes") else Config
    config = type("Bench", (base,), dict(overrides, NAME="bench", IMAGES_PER_GPU=1,
                                         DETECTION_MIN_CONFIDENCE=0.0))()
    model = modellib.MaskRCNN("inference", config, "/tmp/mrcnn_bench_logs")
    images = [np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
              for seed in range(3)]
    threshold = np.float32(config.DETECTION_MASK_THRESHOLD)

    def predict(image):
        molded, metas, windows = model.mold_inputs([image])
        outputs = model.keras_model.predict_on_batch(
            [molded, metas, model.anchor_cache.batch(molded)])
        return (outputs["detections"][0], outputs["mrcnn_mask"][0], image.shape,
                molded.shape[1:], windows[0])

    def numpy_unmold(args):
        return model.unmold_detections(*args)

    def tf_unmold(args):
        detections, masks, original, molded, window = args
        return [t.numpy() for t in postprocess.unmold_detections_fn(
            detections, masks, np.asarray(original[:2], np.int32),
            np.asarray(molded[:2], np.int32), np.asarray(window, np.int32), threshold)]

    def median_s(fn, count):
        return float(np.median(run_times(fn, count, warmup=0)))

    # Agreement on each image, and the first (tracing) calls out of the way.
    ious, same_pixels, pixels, same_results = [], 0, 0, True
    for image in images:
        args = predict(image)
        a, b = numpy_unmold(args), tf_unmold(args)
        same_results &= all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3]))
        union = np.logical_or(a[3], b[3]).sum((0, 1))
        inter = np.logical_and(a[3], b[3]).sum((0, 1))
        ious += np.where(union > 0, inter / np.maximum(union, 1), 1.0).tolist()
        same_pixels += int((a[3] == b[3]).sum())
        pixels += a[3].size
    model.detect([images[0]])
    args = predict(images[0])
    detect_s, numpy_detect_s = [], []
    for _ in range(runs):          # alternate, so that load on the machine hits both alike
        detect_s.append(seconds(lambda: model.detect([images[0]])))
        numpy_detect_s.append(seconds(lambda: numpy_unmold(predict(images[0]))))
    print(json.dumps({
        "case": case, "image": list(shape), "molded": list(args[3]),
        "detections_per_image": len(args[0][args[0][:, 4] > 0]),
        "detect_s": round(float(np.median(detect_s)), 4),
        "detect_with_numpy_unmold_s": round(float(np.median(numpy_detect_s)), 4),
        "tf_unmold_ms": round(1000 * median_s(lambda: tf_unmold(args), 5 * runs), 2),
        "numpy_unmold_ms": round(1000 * median_s(lambda: numpy_unmold(args), 5 * runs), 2),
        "postprocess_traces": int(
            postprocess.unmold_detections_fn.experimental_get_tracing_count()),
        "agreement": {"images": len(images), "masks": len(ious),
                      "boxes_class_ids_scores_identical": bool(same_results),
                      "mask_iou_min": round(min(ious), 6) if ious else None,
                      "mask_iou_mean": round(float(np.mean(ious)), 6) if ious else None,
                      "identical_pixel_fraction": same_pixels / pixels},
        "tensorflow": tf.__version__}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed calls per model")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--postprocess", action="store_true",
                        help="time detect()'s post-processing, TensorFlow vs NumPy")
    parser.add_argument("--cases", default=",".join(POSTPROCESS_CASES),
                        help="--postprocess cases, comma-separated")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.postprocess:
            postprocess_child(args.child, args.runs)
        else:
            child(args.child, args.runs)
        return
    if args.postprocess:
        results = {"machine": machine(), "postprocess": {}}
        for case in args.cases.split(","):
            out = subprocess.run([sys.executable, __file__, "--postprocess", "--child", case,
                                  "--runs", str(args.runs)], capture_output=True, text=True,
                                 check=True)
            results["postprocess"][case] = json.loads(out.stdout.strip().splitlines()[-1])
        emit(results, args.out)
        return
    results = {"machine": machine(),
               "image": [1024, 1024, 3], "models": {}}
    for kind in ("keras_resnet50", "resnet50", "resnet101"):
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--runs",
                              str(args.runs)], capture_output=True, text=True, check=True)
        results["models"][kind] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results["models"]["keras_resnet50"]["seconds_per_image"]
    for kind in ("resnet50", "resnet101"):
        m = results["models"][kind]
        m["ratio_to_keras_resnet50"] = round(m["seconds_per_image"] / base, 2)
    emit(results, args.out)


if __name__ == "__main__":
    main()
