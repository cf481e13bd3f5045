"""Shared setup of the notebooks: import paths, fast/full settings, logs, small helpers.

``import nb_setup`` first in a notebook (the notebooks run with ``notebooks/`` as their working
directory). It makes the repository's ``mrcnn`` and ``samples`` importable and picks the settings:

- full (the default): the shapes demo's ResNet-50-FPN (``ScratchShapesConfig``) on 128x128
  images, trained for a few minutes on a CPU: the pictures mean something.
- fast (``MRCNN_NOTEBOOK_FAST=1``, set by ``tests/test_notebooks.py``): a tiny backbone on
  64x64 images and a couple of training steps, so that every cell runs in seconds.

Logs and checkpoints go to ``notebooks/logs/`` (ignored by git), or to ``MRCNN_NOTEBOOK_LOGS``.
Nothing here downloads anything.
"""

import os
import sys

# TensorFlow's C++ log lines (oneDNN notices, "no CUDA") would show as red cell output; level 3
# keeps only fatal ones.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

NOTEBOOK_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT_DIR = os.path.dirname(NOTEBOOK_DIR)
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)



def _import_tensorflow_quietly():
    """Import TensorFlow and initialize its devices with the C++ start-up noise filtered out.

    On machines without CUDA, TensorFlow writes "Could not find cuda drivers" and "failed call
    to cuInit" to the process's stderr; in a notebook they would appear as red output of the
    first cell that touches TensorFlow. Other lines go through.
    """
    import tempfile
    noise = ("absl::InitializeLog", "cudart_stub.cc", "cuda_platform.cc", "cuInit",
             "cuda_executor.cc", "Unable to register cu", "oneDNN", "port.cc")
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2: nothing to filter
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf
            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode("utf-8", "replace")
    kept = [line for line in text.splitlines() if line and not any(n in line for n in noise)]
    if kept:
        print("\n".join(kept), file=sys.stderr)


_import_tensorflow_quietly()

# run_graph builds a new Keras model for each probe, which TensorFlow reports as "retracing".
import tensorflow as _tf  # noqa: E402

_tf.get_logger().setLevel("ERROR")

# Pictures small enough to keep the notebooks (saved with their outputs) light.
import matplotlib  # noqa: E402

matplotlib.rcParams["figure.dpi"] = 72

import numpy as np  # noqa: E402

from samples.shapes.shapes import ScratchShapesConfig, TinyShapesConfig  # noqa: E402

FAST = os.environ.get("MRCNN_NOTEBOOK_FAST", "").strip().lower() in ("1", "true", "yes")
LOG_DIR = os.environ.get("MRCNN_NOTEBOOK_LOGS") or os.path.join(NOTEBOOK_DIR, "logs")
# Where Matterport's COCO weights are (they are not downloaded by the notebooks): the first
# copy in $MRCNN_WEIGHTS_DIR, weights/ or the repository root (their older home), else where
# utils.download_trained_weights() puts them, weights/mask_rcnn_coco.h5 (see weights/README.md).
from mrcnn import utils as _utils  # noqa: E402

COCO_MODEL_PATH = _utils.find_weights("mask_rcnn_coco.h5", fallbacks=[ROOT_DIR])
# torchvision's COCO weights converted by `python -m mrcnn.weights.convert torchvision` (never made
# by the notebooks: the conversion needs torch).
TORCHVISION_MODEL_PATH = _utils.find_weights("mask_rcnn_torchvision_coco.h5",
                                             fallbacks=[ROOT_DIR])

# How much data and training each mode uses.
if FAST:
    TRAIN_IMAGES, VAL_IMAGES, EVAL_IMAGES, EPOCHS = 16, 8, 4, 1
else:
    TRAIN_IMAGES, VAL_IMAGES, EVAL_IMAGES, EPOCHS = 500, 50, 50, 8
# Longer training for better pictures: e.g. MRCNN_NOTEBOOK_EPOCHS=10 (`make demo` trains 4
# epochs of 100 steps, the last at a tenth of the rate, to mAP@0.5 0.922-0.952 in twelve demo runs).
EPOCHS = int(os.environ.get("MRCNN_NOTEBOOK_EPOCHS") or EPOCHS)


############################################################
#  Configurations
############################################################

class FastShapesConfig(TinyShapesConfig):
    """Fast mode: the shapes sample's tiny preset (tiny backbone, 64x64 images, two steps per
    epoch)."""
    NAME = "shapes_tiny"
    MASK_HEAD_CHANNELS = 32
    # An untrained model is never confident: keep every detection so every cell has some.
    DETECTION_MIN_CONFIDENCE = 0.0
    VALIDATION_STEPS = 0   # no validation pass: it would cost a second graph trace


class FullShapesConfig(ScratchShapesConfig):
    """Full mode: the shapes demo (ResNet-50-FPN from scratch, 128x128), fewer steps."""
    NAME = "shapes"
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 2
    SEED = 0


NotebookConfig = FastShapesConfig if FAST else FullShapesConfig

# A backbone layer whose activations are worth a look.
BACKBONE_LAYER = "tiny_conv2" if FAST else "res2c_out"


def inference_config(config_class=None, images_per_gpu=1):
    """An inference instance of ``config_class`` (default ``NotebookConfig``):
    ``images_per_gpu`` images per batch (``Config.for_inference``)."""
    return (config_class or NotebookConfig)().for_inference(IMAGES_PER_GPU=images_per_gpu)


def describe():
    """Print which mode the notebook runs in."""
    if FAST:
        print("FAST mode (MRCNN_NOTEBOOK_FAST=1): tiny backbone, 64x64 images, {} step(s); "
              "the pictures show the plumbing, not a trained model.".format(
                  EPOCHS * FastShapesConfig.STEPS_PER_EPOCH))
    else:
        print("FULL mode: ResNet-50-FPN from scratch on 128x128 shapes, {} epochs of {} "
              "steps.".format(EPOCHS, FullShapesConfig.STEPS_PER_EPOCH))
    print("Logs and checkpoints:", LOG_DIR)


############################################################
#  Training helpers
############################################################

def train_shapes(model, train_dataset, val_dataset, epochs=None, verbose=2):
    """Train every layer from scratch up to ``epochs`` (default EPOCHS), the last epoch at a
    tenth of the learning rate (one graph trace: the drop is a callback)."""
    import keras
    epochs = EPOCHS if epochs is None else epochs
    config = model.config
    drop_at = max(1, epochs - 1)
    schedule = keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: config.LEARNING_RATE / (10 if epoch >= drop_at else 1))
    return model.train(train_dataset, val_dataset, learning_rate=config.LEARNING_RATE,
                       epochs=epochs, layers="all", custom_callbacks=[schedule],
                       verbose=verbose)


def last_checkpoint(config=None, model_dir=None):
    """The newest checkpoint of ``config``'s NAME under ``model_dir`` (default LOG_DIR), or
    None. ``train_shapes.ipynb`` writes these."""
    from mrcnn.engine import checkpoints
    config = config or NotebookConfig()
    try:
        return checkpoints.find_last(model_dir or LOG_DIR, checkpoints.run_name(config))
    except FileNotFoundError:
        return None


def checkpoint_or_train(epochs=None, model_dir=None):
    """Path of trained shapes weights: the newest checkpoint under ``model_dir`` (e.g. from
    ``train_shapes.ipynb``), or, when there is none, the last of a short training run here."""
    from mrcnn import model as modellib
    from samples.shapes.shapes import make_datasets
    model_dir = model_dir or LOG_DIR
    path = last_checkpoint(NotebookConfig(), model_dir)
    if path:
        print("Using the checkpoint", path)
        return path
    print("No checkpoint under {}: training a shapes model here.".format(model_dir))
    config = NotebookConfig()
    train, val = make_datasets(config, train_count=TRAIN_IMAGES, val_count=VAL_IMAGES)
    model = modellib.MaskRCNN("training", config, model_dir)
    train_shapes(model, train, val, epochs)
    return model.find_last()


############################################################
#  Pictures
############################################################

def get_ax(rows=1, cols=1, size=4):
    """A grid of Matplotlib axes, ``size`` inches per cell (Matterport's notebook helper)."""
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(rows, cols, figsize=(size * cols, size * rows))
    return ax


def to_uint8(array):
    """Scale an array to 0..255 (for ``display_images``, which shows uint8)."""
    array = np.asarray(array, dtype=np.float32)
    low, high = float(array.min()), float(array.max())
    return ((array - low) / max(high - low, 1e-6) * 255).astype(np.uint8)


def log(text, array=None):
    """Print a text and, for an array, its shape, min, max and dtype (Matterport's ``log``)."""
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25)
        if array.size:
            text += "shape: {:20}  min: {:10.5f}  max: {:10.5f}  {}".format(
                str(array.shape), float(array.min()), float(array.max()), array.dtype)
        else:
            text += "shape: {:20}  (empty)  {}".format(str(array.shape), array.dtype)
    print(text)
