"""Seconds per image of ``MaskRCNN.detect()`` at 1024x1024, vs a plain Keras ResNet-50.

Each model runs in its own subprocess (so that peak memory is its own) on the same machine in
the same run; prints JSON. Models: Mask R-CNN with ResNet-50-FPN and ResNet-101-FPN (default
Config, 81 classes as for COCO, random weights, one image per call) and
``keras.applications.ResNet50`` (no top, random weights) at 1024x1024.

DETECTION_MIN_CONFIDENCE is set to 0 so that all DETECTION_MAX_INSTANCES (100) detections are
kept and their masks pasted: the cost of a busy image.

    python benchmarks/inference_speed.py [--runs 5] [--out results.json]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

from _report import emit, machine  # noqa: E402


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
    start = time.perf_counter()
    run()                       # first call: graph tracing
    first = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"model": kind, "first_call_s": round(first, 2),
                      "seconds_per_image": round(float(np.median(times)), 3),
                      "all_runs_s": [round(t, 3) for t in times],
                      "peak_rss_mib": round(peak_mib),
                      "detections_per_image": detections[-1] if detections else None,
                      "tensorflow": tf.__version__}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed calls per model")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs)
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
