"""Where a training run's wall-clock time goes between the steps, printed as JSON.

Trains the demo's model (``ScratchShapesConfig``, validation on, no epoch pictures) for a few
short epochs through ``MaskRCNN.train`` and records, with a Keras callback, every step's
time and every pause between two steps: the first step (tracing), each epoch end (validation
and checkpoint; the first one also traces the validation step) and, in
``after_last_step_s``, everything from the last step's end until ``train()`` returns (the last
validation, the last checkpoint, the iterators' deletion). Each pause comes with the idle time
of the whole machine during it (core-seconds from /proc/stat, at most cores x wall). That is
how the tf.data iterator-deletion stalls of issue 11 were found: Keras deletes the validation
iterator at every evaluation after the first, and with tf.data's autotuning on the deletion
sometimes waited, idle, for seconds. ``--tf-data-autotune`` builds the input pipelines as
before (AUTOTUNE map calls and prefetch, autotuning on) to reproduce that.

    python benchmarks/epoch_timeline.py [--steps 15] [--epochs 8] [--tf-data-autotune]
        [--out results.json]
"""

import argparse
import functools
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _report import emit, machine  # noqa: E402
from mrcnn.data import pipeline as data  # noqa: E402
from mrcnn import model as modellib  # noqa: E402
from mrcnn.engine import training  # noqa: E402
from samples.shapes.shapes import ScratchShapesConfig, make_datasets  # noqa: E402


def idle_seconds():
    """Seconds the whole machine has been idle since boot, summed over its cores."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[4]) / os.sysconf("SC_CLK_TCK")


class Timeline(keras.callbacks.Callback):
    """Wall-clock time of each step and each pause between two steps, with the idle time."""

    def __init__(self):
        super().__init__()
        self.steps = []   # seconds of each train_on_batch, in order
        self.pauses = []  # (after step n, wall seconds, machine idle core-seconds)
        self.last_end = None

    def on_train_batch_begin(self, batch, logs=None):
        now = time.perf_counter()
        if self.last_end is not None:
            self.pauses.append((len(self.steps), now - self.last_end[0],
                                idle_seconds() - self.last_end[1]))
        self._begin = now

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.steps.append(now - self._begin)
        self.last_end = (now, idle_seconds())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=15, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--tf-data-autotune", action="store_true",
                        help="input pipelines with tf.data's autotuning on (before issue 11)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    if args.tf_data_autotune:
        # train() builds both pipelines through this name (mrcnn.engine.training imports it).
        training.build_input_pipeline = functools.partial(data.build_input_pipeline,
                                                          tf_data_autotune=True)
    config = type("Timed", (ScratchShapesConfig,), {
        "STEPS_PER_EPOCH": args.steps, "TENSORBOARD_IMAGES": False,
        "CLASS_COLLAPSE_WARNING": False})()
    train, val = make_datasets(config, train_count=1000, val_count=50, seed=0)
    model = modellib.MaskRCNN("training", config, tempfile.mkdtemp(prefix="epoch_timeline_"))
    timeline = Timeline()
    start = time.perf_counter()
    model.train(train, val, config.LEARNING_RATE, args.epochs, "all",
                custom_callbacks=[timeline], verbose=0)
    total = time.perf_counter() - start
    after_last_step = total - (timeline.last_end[0] - start)
    after_last_step_idle = idle_seconds() - timeline.last_end[1]

    epoch_ends = [{"after_step": n, "wall_s": round(wall, 2), "idle_core_s": round(idle, 2)}
                  for n, wall, idle in timeline.pauses if n % args.steps == 0]
    steps = np.array(timeline.steps)
    emit({"machine": dict(machine(), tensorflow=tf.__version__),
          "tf_data_autotune": args.tf_data_autotune, "steps_per_epoch": args.steps,
          "epochs": args.epochs, "train_s": round(total, 1),
          "first_step_s": round(float(steps[0]), 2),
          "median_step_s": round(float(np.median(steps[1:])), 3),
          "steps_s": round(float(steps.sum()), 1),
          # The first epoch end traces the validation step and deletes no iterator.
          "epoch_end_pauses": epoch_ends,
          "other_pauses_s": round(sum(w for n, w, _ in timeline.pauses
                                      if n % args.steps), 2),
          "after_last_step_s": round(after_last_step, 2),
          "after_last_step_idle_core_s": round(after_last_step_idle, 2)}, args.out)


if __name__ == "__main__":
    main()
