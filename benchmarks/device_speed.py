"""Training step and ``detect()`` at 1024x1024 on the device TensorFlow picks (a GPU if it sees
one), float32 against mixed precision; prints JSON with the device's name.

Each precision runs in its own subprocess (a fresh TensorFlow, its own peak device memory):

- training: Matterport's default ``Config`` with ResNet-50-FPN, 2 images of 1024x1024 per
  step (``--images``), 200 RoIs per image, frozen BatchNorm, SGD with momentum; generated
  shapes (4 classes) as data. ``train_on_batch`` is timed after a first (tracing) step and
  WARMUP_STEPS more (still autotuning on a GPU), on batches prepared beforehand.
- ``detect()``: the default ``Config`` with ResNet-50-FPN, 81 classes as for COCO, random
  weights, one 1024x1024 image per call, DETECTION_MIN_CONFIDENCE 0 so that all 100 detections
  are kept and their masks pasted (as ``benchmarks/inference_speed.py``).

Precisions: float32 (``MIXED_PRECISION = None``), ``mixed_float16`` (dynamic loss scaling) and
``mixed_bfloat16``. ``--size`` and ``--steps`` make a quick run on a CPU possible.

    python benchmarks/device_speed.py [--steps 10] [--runs 10] [--images 2] [--size 1024]
        [--precisions float32,mixed_float16] [--out results.json]
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

from _report import emit, machine, run_times, seconds, train_step_times  # noqa: E402

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
WARMUP_STEPS = 4


def device_info(tf):
    """Name and compute capability of the first GPU TensorFlow sees, else {"device": "CPU"}."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return {"device": "CPU"}
    details = tf.config.experimental.get_device_details(gpus[0])
    return {"device": details.get("device_name", gpus[0].name),
            "compute_capability": details.get("compute_capability"), "gpus": len(gpus)}


def peak_memory_mib(tf):
    """Peak memory TensorFlow allocated on GPU:0 since the last call (None on a CPU)."""
    if not tf.config.list_physical_devices("GPU"):
        return None
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
    tf.config.experimental.reset_memory_stats("GPU:0")
    return round(peak / 2 ** 20)


def child(precision, size, images, steps, runs):
    """Time training and detect() in this process for one precision; print a JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    import keras
    import tensorflow as tf

    from mrcnn.config import Config

    policy = None if precision == "float32" else precision
    common = dict(NAME="bench", BACKBONE="resnet50", IMAGE_MIN_DIM=size, IMAGE_MAX_DIM=size,
                  MIXED_PRECISION=policy, SEED=0)

    def make_config(**attrs):
        return type("Bench", (Config,), dict(common, **attrs))()

    result = {"precision": precision, "tensorflow": tf.__version__, **device_info(tf)}
    parts = (("train", lambda: time_training(make_config(NUM_CLASSES=4, IMAGES_PER_GPU=images),
                                             steps)),
             ("detect", lambda: time_detect(make_config(NUM_CLASSES=81, IMAGES_PER_GPU=1,
                                                        DETECTION_MIN_CONFIDENCE=0.0),
                                            size, runs)))
    for name, part in parts:
        try:
            result[name] = part()
        except Exception as error:      # keep the other part's figures; say what failed
            result[name] = {"error": "{}: {}".format(type(error).__name__, error)[-2000:]}
        keras.utils.clear_session(free_memory=True)
    print(json.dumps(result))


def time_training(config, steps):
    """Seconds per ``train_on_batch`` on generated shapes, after a first (tracing) step and
    WARMUP_STEPS more (left out of the median)."""
    import numpy as np
    import tensorflow as tf

    _, first, warmup, times = train_step_times(config, steps, warmup=WARMUP_STEPS)
    median = float(np.median(times))
    return {"images_per_step": config.BATCH_SIZE, "first_step_s": round(first, 2),
            "warmup_steps_s": [round(t, 4) for t in warmup],
            "seconds_per_step": round(median, 4),
            "images_per_s": round(config.BATCH_SIZE / median, 2),
            "all_steps_s": [round(t, 4) for t in times],
            "peak_device_memory_mib": peak_memory_mib(tf)}


def time_detect(config, size, runs):
    """Seconds per ``detect()`` of one random image, after a first (tracing) call."""
    import numpy as np
    import tensorflow as tf

    from mrcnn import model as modellib

    model = modellib.MaskRCNN("inference", config, "/tmp/mrcnn_bench_logs")
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    found = []

    def run():
        found.append(len(model.detect([image])[0]["class_ids"]))
    first = seconds(run)
    times = run_times(run, runs, warmup=0)
    return {"first_call_s": round(first, 2),
            "seconds_per_image": round(float(np.median(times)), 4),
            "all_runs_s": [round(t, 4) for t in times],
            "detections_per_image": found[-1],
            "peak_device_memory_mib": peak_memory_mib(tf)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--runs", type=int, default=10, help="timed detect() calls")
    parser.add_argument("--size", type=int, default=1024, help="image side (a multiple of 64)")
    parser.add_argument("--images", type=int, default=2, help="training images per step")
    parser.add_argument("--precisions", default=",".join(PRECISIONS),
                        help="comma-separated, from " + ", ".join(PRECISIONS))
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.size, args.images, args.steps, args.runs)
        return
    results = {"machine": machine(), "image": [args.size, args.size, 3], "precisions": {}}
    for precision in args.precisions.split(","):
        if precision not in PRECISIONS:
            parser.error("unknown precision {!r}".format(precision))
        start = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--child", precision, "--size",
                              str(args.size), "--images", str(args.images), "--steps",
                              str(args.steps), "--runs", str(args.runs)],
                             capture_output=True, text=True)
        if out.returncode != 0:     # keep the other precisions' figures; say what failed
            results["precisions"][precision] = {"error": out.stderr.strip()[-2000:]}
        else:
            results["precisions"][precision] = json.loads(out.stdout.strip().splitlines()[-1])
        results["precisions"][precision]["wall_s"] = round(time.perf_counter() - start, 1)
        print(json.dumps({precision: results["precisions"][precision]}), file=sys.stderr,
              flush=True)
    emit(results, args.out)


if __name__ == "__main__":
    main()
