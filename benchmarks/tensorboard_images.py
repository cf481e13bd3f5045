"""Epoch-time overhead of the TensorBoard detection pictures (TENSORBOARD_IMAGES), as JSON.

Trains the shapes demo config (``ScratchShapesConfig``: ResNet-50-FPN, 128x128, batch 8) from
random initialization with ``model.train`` for a few short epochs with the pictures off and on,
back to back in one process, timing each epoch with a Keras callback. The first epoch is
reported apart (it traces the training step and, with the pictures on, builds the inference
model); the overhead is the ratio of the mean later epochs. Then it times one
``DetectionImagesCallback`` directly, set up as ``train()`` sets it up: the first call (building
the inference model, copying the weights, detecting and drawing) and later calls, with
``detect()`` and the drawing of one picture timed on their own.

    python benchmarks/tensorboard_images.py [--epochs 6] [--steps 20] [--order off,on]
        [--out results.json]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from _report import emit, machine  # noqa: E402
from mrcnn.engine import callbacks as callbacks_lib  # noqa: E402
from mrcnn.evaluation import evaluate  # noqa: E402
from mrcnn import model as modellib  # noqa: E402
from samples.shapes.shapes import ScratchShapesConfig, make_datasets  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Seconds from each epoch's start to the end of the callbacks listed before this one
    (``train()`` puts custom callbacks last, so the detection pictures are inside)."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def train_variant(pictures, train, val, epochs, steps, logs):
    """Per-epoch seconds of ``model.train`` with TENSORBOARD_IMAGES = ``pictures``, and the
    trained model."""
    # The collapse warning (CLASS_COLLAPSE_WARNING) detects on the same images at each epoch
    # end; it is off in both variants so that "off" runs no detection at all.
    config = type("Bench", (ScratchShapesConfig,), {
        "TENSORBOARD_IMAGES": pictures, "CLASS_COLLAPSE_WARNING": False,
        "STEPS_PER_EPOCH": steps, "SEED": 0})()
    model = modellib.MaskRCNN("training", config, logs)
    timer = EpochTimer()
    model.train(train, val, config.LEARNING_RATE, epochs, "all", custom_callbacks=[timer],
                verbose=2)
    return timer.seconds, model


def time_callback(model, val, logs, calls=3):
    """One DetectionImagesCallback built as ``train()`` builds it, its calls timed directly."""
    config = model.config
    callback = callbacks_lib.DetectionImagesCallback(
        lambda: modellib.MaskRCNN("inference", callbacks_lib.inference_config(config),
                                  model.model_dir, **vars(model.parts)),
        model.keras_model, val, os.path.join(logs, "direct"), config.TENSORBOARD_IMAGE_COUNT,
        pictures=True, check_collapse=False)
    # The first call sets the callback up (builds the inference model, pairs its layers with
    # the training model's, reads the pictured images); timed apart, then the calls themselves
    # (copy the weights, detect, draw, write the summaries). The first detect() traces.
    start = time.perf_counter()
    callback._setup()
    setup_s = time.perf_counter() - start
    epoch_end = []
    for epoch in range(calls):
        start = time.perf_counter()
        callback.on_epoch_end(epoch)
        epoch_end.append(time.perf_counter() - start)
    # The parts of a call: detect() on the pictured images, then the drawing of one picture.
    images = [image for image, _, _ in callback._ground_truth]
    detect_s, draw_s = [], []
    for _ in range(calls):
        start = time.perf_counter()
        results = callback._detector.detect(images)
        detect_s.append(time.perf_counter() - start)
    collapse_s = []
    for _ in range(calls):
        start = time.perf_counter()
        evaluate.collapse_warning(evaluate.confusion_matrix(val, callback.image_ids, results),
                                  val.class_names)
        collapse_s.append(time.perf_counter() - start)
    image, masks, class_ids = callback._ground_truth[0]
    for _ in range(calls):
        start = time.perf_counter()
        callbacks_lib.render_ground_truth_and_detections(image, masks, class_ids, results[0],
                                                         val.class_names)
        draw_s.append(time.perf_counter() - start)
    return {"images_per_call": len(images),
            "first_call_s": round(setup_s + epoch_end[0], 2),
            "setup_s": round(setup_s, 2),
            "first_call_after_setup_s": round(epoch_end[0], 2),
            "later_calls_s": [round(s, 2) for s in epoch_end[1:]],
            "later_call_median_s": round(float(np.median(epoch_end[1:])), 2),
            "detect_median_s": round(float(np.median(detect_s)), 3),
            "draw_one_picture_median_s": round(float(np.median(draw_s)), 3),
            "collapse_check_median_s": round(float(np.median(collapse_s)), 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per variant (at least 2)")
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch")
    parser.add_argument("--order", default="off,on",
                        help="the variants in the order they run, e.g. 'off,on' or 'on,off'")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is reported apart)")
    order = args.order.split(",")
    if sorted(order) != ["off", "on"]:
        parser.error("--order must name 'off' and 'on' once each")

    logs = tempfile.mkdtemp(prefix="tensorboard_images_")
    config = ScratchShapesConfig()
    train, val = make_datasets(config, train_count=500, val_count=50)
    variants, trained = {}, None
    for name in order:
        seconds, model = train_variant(name == "on", train, val, args.epochs, args.steps, logs)
        variants[name] = {"epoch_s": [round(s, 2) for s in seconds],
                          "first_epoch_s": round(seconds[0], 2),
                          "later_epochs_mean_s": round(float(np.mean(seconds[1:])), 2)}
        if name == "on":
            trained = model
    off, on = variants["off"], variants["on"]
    results = {
        "benchmark": "tensorboard_images",
        "config": "ScratchShapesConfig", "batch_size": config.BATCH_SIZE,
        "image_size": int(config.IMAGE_SHAPE[0]), "steps_per_epoch": args.steps,
        "validation_steps": config.VALIDATION_STEPS, "epochs": args.epochs,
        "pictured_images": config.TENSORBOARD_IMAGE_COUNT, "order": order,
        "pictures_off": off, "pictures_on": on,
        "first_epoch_extra_s": round(on["first_epoch_s"] - off["first_epoch_s"], 2),
        "later_epoch_extra_s": round(on["later_epochs_mean_s"] - off["later_epochs_mean_s"], 2),
        "later_epoch_ratio_on_off": round(on["later_epochs_mean_s"] / off["later_epochs_mean_s"],
                                          3),
        "callback_direct": time_callback(trained, val, logs),
        "machine": machine(),
    }
    emit(results, args.out)


if __name__ == "__main__":
    main()
