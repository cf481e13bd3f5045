"""A training process killed mid-epoch resumes with --weights last at the next epoch."""

import os
import signal
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHAPES = os.path.join(ROOT, "samples", "shapes", "shapes.py")


def train_command(logs, weights):
    return [sys.executable, SHAPES, "train", "--config", "tiny:TinyConfig", "--logs", logs,
            "--weights", weights, "--epochs", "3", "--steps", "15", "--lr-drop-epochs", "0",
            "--train-images", "30"]


def checkpoints(logs):
    found = []
    for root, _, files in os.walk(logs):
        found += [os.path.join(root, f) for f in files if f.endswith(".h5")]
    return sorted(found)


def test_killed_training_resumes_at_next_epoch(tmp_path):
    logs = str(tmp_path / "logs")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]),
               TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
    first = subprocess.Popen(train_command(logs, "none"), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not checkpoints(logs) and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    assert [os.path.basename(p) for p in checkpoints(logs)] == ["mask_rcnn_tiny_0001.h5"], \
        first.stderr.read() if first.poll() is not None else "no checkpoint in time"
    time.sleep(1.0)                       # well inside epoch 2
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert [os.path.basename(p) for p in checkpoints(logs)] == ["mask_rcnn_tiny_0001.h5"]
    run_dir = os.path.dirname(checkpoints(logs)[0])

    resumed = subprocess.run(train_command(logs, "last"), env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Same run directory, epochs 2 and 3 added, nothing half-written left behind.
    assert sorted(os.listdir(run_dir)) == sorted(
        [f for f in os.listdir(run_dir) if not f.endswith(".h5")] +
        ["mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_0002.h5", "mask_rcnn_tiny_0003.h5"])
    assert not [f for f in os.listdir(run_dir) if f.endswith(".tmp")]
    assert "Epoch 2/3" in resumed.stdout and "Epoch 1/3" not in resumed.stdout
    assert "Trained to epoch 3" in resumed.stdout
