"""Throughput of the training input pipeline (images/s), printed as JSON.

Measures ``mrcnn.data.pipeline.build_input_pipeline`` on generated shapes images for two settings:
the shapes config (128x128) and the default config (images resized and padded to 1024x1024),
each with one worker thread, with the default (one map call per CPU core, two batches
prefetched, tf.data's autotuning off) and with tf.data's autotuning (AUTOTUNE map calls and
prefetch, the default before issue 11), in the same run so that ratios are comparable.

    python benchmarks/input_pipeline.py [--batches N] [--out results.json]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import albumentations as A  # noqa: E402
import tensorflow as tf  # noqa: E402

from _report import emit, machine  # noqa: E402
from mrcnn.data import pipeline as data  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from samples.shapes.shapes import ShapesConfig, ShapesDataset  # noqa: E402


class Shapes1024Config(Config):
    """Default Matterport input settings (800 min side, 1024 square) on shapes data."""
    NAME = "shapes1024"
    NUM_CLASSES = 4
    IMAGES_PER_GPU = 2


def measure(dataset, config, batches, parallel, augmentation, autotune=False):
    """Images per second over ``batches`` batches after a one-batch warm-up."""
    pipeline = data.build_input_pipeline(dataset, config, augmentation=augmentation, seed=0,
                                         num_parallel_calls=parallel, tf_data_autotune=autotune)
    iterator = iter(pipeline)
    next(iterator)  # warm-up: graph tracing, anchor cache, thread start
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - start
    return batches * config.BATCH_SIZE / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="timed batches per setting")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    augmentation = A.Compose([A.HorizontalFlip(p=0.5)])
    settings = [
        ("shapes_128", ShapesConfig(), (128, 128), args.batches),
        # Originals of 768x1024 scale up to 800x1066 -> capped at 1024 -> padded square.
        ("default_1024", Shapes1024Config(), (768, 1024), max(4, args.batches // 2)),
    ]
    results = {"machine": dict(machine(), tensorflow=tf.__version__),
               "unit": "images/s", "augmentation": "HorizontalFlip(p=0.5)", "settings": {}}
    for name, config, (h, w), batches in settings:
        dataset = ShapesDataset()
        dataset.load_shapes(200, h, w, seed=0)
        dataset.prepare()
        one = measure(dataset, config, batches, 1, augmentation)
        default = measure(dataset, config, batches, None, augmentation)
        auto = measure(dataset, config, batches, None, augmentation, autotune=True)
        results["settings"][name] = {
            "source_image": [h, w], "model_input": [int(s) for s in config.IMAGE_SHAPE],
            "batch_size": config.BATCH_SIZE, "timed_batches": batches,
            "one_thread": round(one, 2), "default": round(default, 2),
            "autotune": round(auto, 2), "default_speedup": round(default / one, 2),
            "autotune_speedup": round(auto / one, 2)}
    emit(results, args.out)


if __name__ == "__main__":
    main()
