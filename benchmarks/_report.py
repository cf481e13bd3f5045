"""Shared pieces of the benchmark scripts: the machine's description, timers, a timed
training loop, and JSON output on stdout, optionally to a file."""

import json
import os
import platform
import sys
import time


def machine():
    """What the figures were measured on: CPU count, model and SIMD flags, Python version."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    if root not in sys.path:
        sys.path.insert(0, root)
    from mrcnn.modeling.precision import cpu_info
    return {"cpus": os.cpu_count(), **cpu_info(), "python": platform.python_version()}


def seconds(fn):
    """Wall-clock seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_times(fn, runs, warmup=1):
    """Seconds of each of ``runs`` calls of ``fn``, after ``warmup`` untimed calls (tracing)."""
    for _ in range(warmup):
        fn()
    return [seconds(fn) for _ in range(runs)]


def train_step_times(config, steps, warmup=0):
    """Train a fresh model of ``config`` (all layers) on generated shapes of its image size.

    Returns (model, seconds of the first ``train_on_batch`` (graph tracing), seconds of each
    of the ``warmup`` steps after it (on a GPU still autotuning: cuDNN's algorithm search;
    callers leave them out of medians), seconds of each of the ``steps`` steps after those).
    The batches are prepared before the clock starts: step times, not the input pipeline's.
    """
    from mrcnn.data import pipeline as data
    from mrcnn import model as modellib
    from samples.shapes.shapes import make_datasets

    model = modellib.MaskRCNN("training", config, "/tmp/mrcnn_bench_logs")
    train, _ = make_datasets(config, train_count=config.BATCH_SIZE * (1 + warmup + steps),
                             val_count=1)
    model.set_trainable("all")
    model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM)
    batches = iter(data.build_input_pipeline(train, config, seed=0))
    first = seconds(lambda: model.keras_model.train_on_batch(next(batches)))
    prepared = [next(batches) for _ in range(warmup + steps)]
    times = [seconds(lambda b=b: model.keras_model.train_on_batch(b)) for b in prepared]
    return model, first, times[:warmup], times[warmup:]


def emit(results, out=None):
    """Print ``results`` as indented JSON and, with ``out``, write the same text there."""
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
