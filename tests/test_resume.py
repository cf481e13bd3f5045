"""A training process killed mid-epoch resumes with --weights last at the next epoch."""

import os
import signal
import subprocess
import sys
import time

import pytest

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


def test_find_last_takes_only_runs_of_exactly_that_name(tmp_path):
    # Issue 27 case 9: a prefix match let "killtiny" resume (and write into) the newest run of
    # "killtiny_b" ("_" sorts after the digits of the timestamp).
    from mrcnn.engine import checkpoints as ckpt

    def run(dir_name, name, epoch):
        os.makedirs(tmp_path / dir_name)
        path = tmp_path / dir_name / "mask_rcnn_{}_{:04d}.h5".format(name, epoch)
        path.write_bytes(b"")
        return str(path)

    own = run("killtiny20261201T1000", "killtiny", 2)
    newer_own = run("killtiny20261201T1000_2", "killtiny", 1)
    run("killtiny_b20261201T1100", "killtiny_b", 3)
    run("killtiny220261201T1200", "killtiny2", 1)     # "killtiny2" + timestamp
    run("killtiny20261201T1300x", "killtiny", 1)      # not a run directory of ours
    run("killtiny", "killtiny", 1)
    assert ckpt.find_last(str(tmp_path), "killtiny") == newer_own
    log_dir, _, epoch = ckpt.run_paths(str(tmp_path), "killtiny", model_path=newer_own)
    assert log_dir == os.path.dirname(newer_own) and epoch == 1
    assert ckpt.find_last(str(tmp_path), "killtiny_b").endswith(
        os.path.join("killtiny_b20261201T1100", "mask_rcnn_killtiny_b_0003.h5"))
    os.remove(newer_own)
    assert ckpt.find_last(str(tmp_path), "killtiny") == own
    with pytest.raises(FileNotFoundError, match="no checkpoint of 'kill'"):
        ckpt.find_last(str(tmp_path), "kill")
