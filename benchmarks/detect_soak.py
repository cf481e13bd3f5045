"""Soak test of ``MaskRCNN.detect()``: memory and graph retracing over many calls on varied
image sizes, printed as JSON.

A tiny-backbone inference model (tests/tiny.py's ``TinyConfig``, random weights) in
IMAGE_RESIZE_MODE "pad64", so each image size gives its own molded shape, runs ``detect()`` on
one image per call, with sizes drawn between 40 and 320 pixels a side. Reports the resident set
size (RSS, now, not the peak) after calls 10, 100 and the last, its growth between call 100 and
the last (the target is under 2 %), and how often Keras traced its predict function against
the number of distinct molded shapes it saw (retracing per shape would grow both without
bound). DETECTION_MIN_CONFIDENCE is 0, so every call unmolds and pastes all its detections.

    python benchmarks/detect_soak.py [--calls 500] [--out results.json]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402

from _report import emit, machine  # noqa: E402
from mrcnn import model as modellib  # noqa: E402
from tiny import TinyConfig  # noqa: E402

# RSS is read after these calls (and after the last one).
CHECKPOINTS = (10, 100)


class SoakConfig(TinyConfig):
    NAME = "soak"
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "pad64"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 320
    DETECTION_MIN_CONFIDENCE = 0.0


def rss_mib():
    """This process's resident set size now, in MiB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def soak(calls, seed=0):
    """Run ``calls`` detect() calls; returns the figures as a dict."""
    model = modellib.MaskRCNN("inference", SoakConfig(), "/tmp/mrcnn_bench_logs")
    rng = np.random.default_rng(seed)
    sizes = rng.integers(40, 321, (calls, 2))
    rss, molded_shapes, times, detections = {}, set(), [], 0
    start = time.perf_counter()
    for k, (h, w) in enumerate(sizes, start=1):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        molded_shapes.add(model.mold_inputs([image])[0].shape[1:3])
        t = time.perf_counter()
        detections += len(model.detect([image])[0]["class_ids"])
        times.append(time.perf_counter() - t)
        if k in CHECKPOINTS or k == calls:
            rss[k] = round(rss_mib(), 1)
    total = time.perf_counter() - start
    last = rss[calls]
    return {
        "calls": calls,
        "distinct_image_sizes": len({tuple(s) for s in sizes.tolist()}),
        "distinct_molded_shapes": len(molded_shapes),
        "predict_function_traces": int(
            model.keras_model.predict_function.experimental_get_tracing_count()),
        "anchor_cache_entries": len(model.anchor_cache),
        "rss_mib": {str(k): v for k, v in rss.items()},
        "rss_growth_100_to_last_pct": round(100 * (last - rss[100]) / rss[100], 2),
        "seconds_per_call_median": round(float(np.median(times)), 4),
        "first_call_s": round(times[0], 2),
        "detections_per_call": round(detections / calls, 1),
        "total_s": round(total, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="detect() calls (at least 100)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if args.calls < max(CHECKPOINTS):
        parser.error("--calls must be at least {}".format(max(CHECKPOINTS)))
    import tensorflow as tf
    results = {"machine": machine(), "tensorflow": tf.__version__,
               "model": "tests/tiny.py TinyConfig backbone, pad64, 1 image per call",
               "soak": soak(args.calls)}
    emit(results, args.out)


if __name__ == "__main__":
    main()
