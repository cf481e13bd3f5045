"""Run directories and checkpoints in Matterport's layout.

``<model_dir>/<name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch:04d>.h5``: one directory per training
run, one weights file per epoch. ``find_last`` returns the newest checkpoint of the newest run;
loading a checkpoint resumes its run at the next epoch.
"""

import datetime
import os
import re

import keras

# Checkpoint files: <log_dir>/mask_rcnn_<name>_<epoch:04d>.h5 (Matterport's layout).
CHECKPOINT_RE = re.compile(
    r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]mask\_rcnn\_[\w-]+(\d{4})\.h5$")


def run_name(config):
    """The lower-case prefix of a config's run directories and checkpoint files."""
    return (config.NAME or "mrcnn").lower()


def run_paths(model_dir, name, model_path=None, now=None):
    """(log_dir, checkpoint_path pattern, epoch) of a run.

    model_path: a checkpoint of an earlier run: its run directory and epoch are returned, so
    that training continues there from the next epoch. Otherwise a new run starting ``now``.
    """
    epoch = 0
    now = now or datetime.datetime.now()
    if model_path:
        m = CHECKPOINT_RE.match(os.path.abspath(model_path))
        if m:
            now = datetime.datetime(*[int(m.group(i)) for i in range(1, 6)])
            epoch = int(m.group(6))
    log_dir = os.path.join(model_dir, "{}{:%Y%m%dT%H%M}".format(name, now))
    checkpoint_path = os.path.join(log_dir, "mask_rcnn_{}_{{epoch:04d}}.h5".format(name))
    return log_dir, checkpoint_path, epoch


def find_last(model_dir, name):
    """Path of the newest checkpoint of the newest run called ``name`` under ``model_dir``."""
    try:
        dir_names = sorted(d for d in next(os.walk(model_dir))[1] if d.startswith(name))
    except StopIteration:
        dir_names = []
    for dir_name in reversed(dir_names):
        directory = os.path.join(model_dir, dir_name)
        checkpoints = sorted(f for f in os.listdir(directory)
                             if f.startswith("mask_rcnn") and f.endswith(".h5"))
        if checkpoints:
            return os.path.join(directory, checkpoints[-1])
    raise FileNotFoundError("no checkpoint of {!r} under {!r}".format(name, model_dir))


class CheckpointCallback(keras.callbacks.Callback):
    """Save the weights at the end of every epoch, atomically, in Matterport's file layout.

    mrcnn_model: the ``MaskRCNN`` being trained (its ``checkpoint_path`` and ``save_weights``);
    its ``epoch`` is advanced as each checkpoint is written.
    """

    def __init__(self, mrcnn_model):
        super().__init__()
        self.mrcnn_model = mrcnn_model

    def on_epoch_end(self, epoch, logs=None):
        path = self.mrcnn_model.checkpoint_path.format(epoch=epoch + 1)
        self.mrcnn_model.save_weights(path)
        self.mrcnn_model.epoch = epoch + 1
