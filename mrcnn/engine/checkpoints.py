"""Run directories and checkpoints in Matterport's layout.

``<model_dir>/<name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch:04d>.h5``: one directory per training
run, one weights file per epoch. A second run started in the same minute gets
``<name><YYYYmmddTHHMM>_2`` (then ``_3``...), so that no run writes into another's directory.
``find_last`` returns the newest checkpoint of the newest run; loading a checkpoint resumes its
run at the next epoch.
"""

import datetime
import glob
import itertools
import os
import re

import keras

# Checkpoint files: <log_dir>/mask_rcnn_<name>_<epoch:04d>.h5 (Matterport's layout), where the
# run directory may carry a _<n> suffix (the n-th run started in that minute). Groups 1-5: the
# run's start time; 6: the epoch.
CHECKPOINT_RE = re.compile(r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(?:_\d+)?[/\\]"
                           r"mask\_rcnn\_[\w-]+(\d{4})\.h5$")

# A run directory name with its suffix split off: <name><YYYYmmddTHHMM> and _<n>.
_RUN_DIR_RE = re.compile(r"(.*\d{8}T\d{4})_(\d+)$")


def run_name(config):
    """The lower-case prefix of a config's run directories and checkpoint files."""
    return (config.NAME or "mrcnn").lower()


def checkpoint_pattern(log_dir, name):
    """The run's checkpoint path with an ``{epoch:04d}`` field."""
    return os.path.join(log_dir, "mask_rcnn_{}_{{epoch:04d}}.h5".format(name))


def run_paths(model_dir, name, model_path=None, now=None):
    """(log_dir, checkpoint_path pattern, epoch) of a run.

    model_path: a checkpoint of an earlier run: its run directory (under ``model_dir``, as in
    Matterport) and epoch are returned, so that training continues there from the next epoch.
    Otherwise the directory a new run starting ``now`` would take; :func:`new_run_dir` claims
    the actual one when the run starts training.
    """
    epoch = 0
    run_dir = "{}{:%Y%m%dT%H%M}".format(name, now or datetime.datetime.now())
    if model_path:
        path = os.path.abspath(model_path)
        m = CHECKPOINT_RE.match(path)
        if m:
            run_dir = os.path.basename(os.path.dirname(path))
            epoch = int(m.group(6))
    log_dir = os.path.join(model_dir, run_dir)
    return log_dir, checkpoint_pattern(log_dir, name), epoch


def new_run_dir(model_dir, name, now=None):
    """Create a new run's directory under ``model_dir`` and return its path.

    ``<name><YYYYmmddTHHMM>`` of ``now``, or ``..._2``, ``..._3``... when runs started in the same
    minute hold those. Each name is claimed by creating it (``os.makedirs`` with
    ``exist_ok=False``), which only one process can do, so two runs never share a directory.
    """
    base = os.path.join(model_dir, "{}{:%Y%m%dT%H%M}".format(name, now or datetime.datetime.now()))
    for n in itertools.count(1):
        path = base if n == 1 else "{}_{}".format(base, n)
        try:
            os.makedirs(path, exist_ok=False)
        except FileExistsError:
            continue
        return path


def training_paths(model_dir, name, log_dir, claimed, worker_dir=None):
    """(log_dir, checkpoint_path pattern) that a ``train()`` call writes in.

    worker_dir: a worker's private directory (``distribute.worker_log_dir``; None on the
    chief, the one process that writes in ``model_dir``). On the chief: the run's ``log_dir``
    when the run has ``claimed`` it already (resumed from its checkpoint, or trained before),
    else a new run directory claimed now (:func:`new_run_dir`).
    """
    if worker_dir is None and claimed:
        return log_dir, checkpoint_pattern(log_dir, name)
    log_dir = worker_dir or new_run_dir(model_dir, name)
    return log_dir, checkpoint_pattern(log_dir, name)


def _run_order(dir_name):
    """Sort key of run directories: by name, the n-th run of a minute (``_n``) after the first
    (``_10`` after ``_9``) and before the next minute's."""
    m = _RUN_DIR_RE.fullmatch(dir_name)
    return (m.group(1), int(m.group(2))) if m else (dir_name, 1)


def find_last(model_dir, name):
    """Path of the newest checkpoint of the newest run called ``name`` under ``model_dir``.

    A run directory of ``name`` is ``name`` followed exactly by the start time
    (``YYYYmmddTHHMM``, then ``_<n>`` for the n-th run of that minute): a prefix match would take
    the runs of ``name_b`` or ``name2`` for runs of ``name``, and resume (and write) in them.
    """
    own_run = re.compile(re.escape(name) + r"\d{8}T\d{4}(?:_\d+)?")
    try:
        dir_names = sorted((d for d in next(os.walk(model_dir))[1] if own_run.fullmatch(d)),
                           key=_run_order)
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

    mrcnn_model: the ``MaskRCNN`` being trained (its ``log_dir``, ``checkpoint_path`` and
    ``save_weights``); its ``epoch`` is advanced as each checkpoint is written. When training
    starts, temporary files of interrupted checkpoint writes in the run directory are removed.
    """

    def __init__(self, mrcnn_model):
        super().__init__()
        self.mrcnn_model = mrcnn_model

    def on_train_begin(self, logs=None):
        # Only this run writes in its directory: a *.h5.tmp there is the remains of a
        # checkpoint write that was interrupted (a killed process), never completed.
        for path in glob.glob(os.path.join(glob.escape(self.mrcnn_model.log_dir), "*.h5.tmp")):
            os.remove(path)

    def on_epoch_end(self, epoch, logs=None):
        path = self.mrcnn_model.checkpoint_path.format(epoch=epoch + 1)
        self.mrcnn_model.save_weights(path)
        self.mrcnn_model.epoch = epoch + 1
