"""Training on several devices (mrcnn.engine.distribute): MirroredStrategy over two logical CPU
devices matches one device with the same global batch, two local workers train in lockstep with only
the chief writing, and the strategy choice, the chief and the errors follow the config."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from mrcnn.engine import distribute

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCENARIOS = os.path.join(ROOT, "tests", "distribute_scenarios.py")
TIMEOUT = 180
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
ENV.pop("TF_CONFIG", None)


def run_compare(tmp_path, *flags):
    """Run the compare scenario (tests/distribute_scenarios.py) and load what it saved."""
    out = str(tmp_path / "compare.npz")
    done = subprocess.run([sys.executable, SCENARIOS, "compare", out] + list(flags), env=ENV,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(np.load(out))


def test_mirrored_strategy_matches_one_device(tmp_path):
    """Two replicas of one image each give the loss and the weights of one device with both.

    Same (seeded) initial weights, same seed, same images, one SGD step at
    Matterport's learning rate (a run that diverges would amplify rounding). For the two
    runs to compute the same function, each image must add as many rows to each loss as the
    other (every loss is a mean over its replica's rows, and Keras averages the replicas'),
    and the RoI sampler, which draws with TensorFlow's stateful generator, must not depend
    on its draw: EqualCountsConfig keeps one positive and one negative anchor per image and
    makes every proposal (NMS suppressing none) a negative RoI, all of them taken, so the
    draw only orders rows, which the means ignore. BatchNorm is frozen (its batch statistics
    are per replica: see the next test) and gradients are not clipped (Keras clips each
    replica's share). The head losses of positives are 0 in this setting.
    """
    r = run_compare(tmp_path)
    # Usually equal to 1e-5. But batch-1 and batch-2 kernels round differently, and a
    # proposal whose score ties another's at the top-k cut can then be swapped for it in
    # one run (seen once in a full suite run: total loss 21.49 vs 21.56). A wrong reduction
    # over the replicas (a sum instead of a mean) would differ by 2x.
    for key in ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss"):
        assert r["one:loss:" + key][0] > 0.05
        np.testing.assert_allclose(r["two:loss:" + key], r["one:loss:" + key], rtol=1e-2)
    for name in ("tiny_conv1/kernel", "rpn_conv_shared/kernel", "fpn_c5p5/kernel",
                 "mrcnn_class_conv1/kernel", "mrcnn_class_logits/kernel"):
        one, two = r["one:weight:" + name], r["two:weight:" + name]
        initial = r["initial:weight:" + name]
        # The step moved the weights, and the two updates agree to 10 % of their size (a
        # swapped proposal changes the heads' gradients into the backbone: seen 4.5 %; a
        # wrong reduction over the replicas would be off by 100 %).
        step = np.abs(one - initial).max()
        assert step > 1e-5, name
        assert np.abs((two - initial) - (one - initial)).max() < 0.1 * step, name
        np.testing.assert_array_equal(r["copies:weight:" + name][0],
                                      r["copies:weight:" + name][1], err_msg=name)


def test_batchnorm_moving_statistics_are_averaged_over_replicas(tmp_path):
    """BatchNorm in training mode: each replica normalizes with its own batch statistics, and
    the moving averages average the replicas' updates, so every device keeps the same ones.

    After one step, the first BatchNorm of the classifier head (no BatchNorm before it, so its
    input is the same in both runs) has the moving mean of one device over both images: the
    replicas hold as many rows each. The RPN losses, upstream of any BatchNorm, match; the
    classifier's loss differs, normalized by per-replica statistics.
    """
    r = run_compare(tmp_path, "--train-bn")
    name = "mrcnn_class_bn1/moving_mean"
    assert np.abs(r["one:weight:" + name] - r["initial:weight:" + name]).max() > 1e-2
    np.testing.assert_allclose(r["two:weight:" + name], r["one:weight:" + name], rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_array_equal(r["copies:weight:" + name][0], r["copies:weight:" + name][1])
    for key in ("rpn_class_loss", "rpn_bbox_loss"):
        np.testing.assert_allclose(r["two:loss:" + key], r["one:loss:" + key], rtol=1e-5)


def test_layer_learning_rates_reach_every_replica(tmp_path):
    """BACKBONE_LR_MULTIPLIER's optimizer (training.with_layer_learning_rates) recognizes a
    layer's variables in each device's copy: at 0 x the learning rate the layer stays put
    under MirroredStrategy while the next one learns."""
    out = str(tmp_path / "rates.npz")
    done = subprocess.run([sys.executable, SCENARIOS, "layer_rates", out], env=ENV,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-4000:]
    change = dict(np.load(out))
    assert change["first:kernel"] == 0 and change["first:bias"] == 0
    assert change["last:kernel"] > 1e-3


def free_ports(count):
    """Ports free on localhost now (bound to port 0, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_workers_train_in_lockstep_and_only_the_chief_writes(tmp_path):
    """Two local processes under MultiWorkerMirroredStrategy (TF_CONFIG, DISTRIBUTE=None) train
    the tiny model with MaskRCNN.train: both end with the same weights and report the same
    (all-reduced) losses; only the chief writes in model_dir, and the other worker leaves no
    directory behind."""
    model_dir, out_dir, tmp_dirs = tmp_path / "logs", tmp_path / "out", tmp_path / "tmp"
    for d in (out_dir, tmp_dirs):
        d.mkdir()
    cluster = {"worker": ["localhost:{}".format(p) for p in free_ports(2)]}
    workers = []
    for index in range(2):
        env = dict(ENV, TMPDIR=str(tmp_dirs), TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            [sys.executable, SCENARIOS, "worker", str(out_dir), str(model_dir)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.time() + TIMEOUT
    try:
        # A worker that fails leaves the other waiting for it: stop at the first failure.
        while time.time() < deadline and any(w.poll() is None for w in workers) and \
                not any(w.poll() for w in workers):
            time.sleep(0.2)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        logs = [w.communicate()[0] for w in workers]
    for w, log in zip(workers, logs):
        assert w.returncode == 0, log[-4000:]

    chief, other = (dict(np.load(str(out_dir / "worker{}.npz".format(i)))) for i in range(2))
    assert bool(chief["chief"]) and not bool(other["chief"])
    assert int(chief["replicas"]) == 2
    weights = sorted(k for k in chief if k.startswith("weight:"))
    assert weights and weights == sorted(k for k in other if k.startswith("weight:"))
    for key in weights:
        np.testing.assert_array_equal(chief[key], other[key], err_msg=key)
    for key in ("loss:loss", "loss:rpn_class_loss", "loss:val_loss"):
        np.testing.assert_allclose(other[key], chief[key], rtol=1e-6)

    runs = os.listdir(model_dir)
    assert len(runs) == 1, runs
    run_files = os.listdir(model_dir / runs[0])
    assert [f for f in run_files if f.endswith(".h5")] == ["mask_rcnn_tiny_0001.h5"]
    assert os.listdir(tmp_dirs) == []


def test_more_gpus_than_found_is_a_clear_error(tiny_config, tmp_path):
    """GPU_COUNT beyond the devices TensorFlow finds names the counts found."""
    from mrcnn import model as modellib

    config = type("Eight", (type(tiny_config),), {"GPU_COUNT": 8, "IMAGES_PER_GPU": 1})()
    with pytest.raises(ValueError, match=r"GPU_COUNT=8 .* finds 0 GPU\(s\) and 1 CPU"):
        modellib.MaskRCNN("training", config, str(tmp_path))
    # Inference never distributes: the same config builds one inference model.
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    assert model.strategy is None


def test_strategy_choice(tiny_config):
    """DISTRIBUTE=None: TF_CONFIG with several workers -> multi_worker; GPU_COUNT > 1 ->
    mirrored; else no strategy. An explicit DISTRIBUTE wins; parameter servers are refused."""
    two = {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                    "task": {"type": "worker", "index": 1}})}
    cls = type(tiny_config)
    assert distribute.strategy_kind(tiny_config, environ={}) is None
    assert distribute.strategy_kind(tiny_config, environ=two) == "multi_worker"
    assert distribute.strategy_kind(type("G", (cls,), {"GPU_COUNT": 2})(), environ={}) == \
        "mirrored"
    explicit = type("M", (cls,), {"DISTRIBUTE": "mirrored"})()
    assert distribute.strategy_kind(explicit, environ=two) == "mirrored"
    with pytest.raises(ValueError, match="parameter servers"):
        distribute.strategy_kind(tiny_config, environ={"TF_CONFIG": json.dumps(
            {"cluster": {"worker": ["a:1"], "ps": ["c:3"]}, "task": {"type": "worker"}})})
    with pytest.raises(ValueError, match="DISTRIBUTE"):
        type("Bad", (cls,), {"DISTRIBUTE": "horovod"})()


def test_chief_and_worker_index_from_tf_config():
    """The chief is the "chief" task, else worker 0; ranks put the chief first."""
    def environ(cluster, task_type, index):
        return {"TF_CONFIG": json.dumps({"cluster": cluster,
                                         "task": {"type": task_type, "index": index}})}
    workers = {"worker": ["a:1", "b:2"]}
    assert distribute.is_chief(environ=environ(workers, "worker", 0))
    assert not distribute.is_chief(environ=environ(workers, "worker", 1))
    assert distribute.worker_index(environ=environ(workers, "worker", 1)) == 1
    with_chief = {"chief": ["c:0"], "worker": ["a:1", "b:2"]}
    assert distribute.is_chief(environ=environ(with_chief, "chief", 0))
    assert not distribute.is_chief(environ=environ(with_chief, "worker", 0))
    assert distribute.worker_index(environ=environ(with_chief, "worker", 1)) == 2
    assert distribute.is_chief(environ={}) and distribute.worker_index(environ={}) == 0


def test_worker_log_dir_is_private_to_a_worker_and_removed_when_empty(tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)       # tempfile re-reads TMPDIR
    with distribute.worker_log_dir(None, environ={}) as path:
        assert path is None                               # the chief logs in its run dir
    worker = {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                       "task": {"type": "worker", "index": 1}})}
    with distribute.worker_log_dir(None, environ=worker) as path:
        assert os.path.basename(path).startswith("mrcnn_worker1_") and os.path.isdir(path)
    assert not os.path.exists(path)                       # empty: removed
    with distribute.worker_log_dir(None, environ=worker) as path:
        open(os.path.join(path, "log.txt"), "w").close()
    assert os.path.isfile(os.path.join(path, "log.txt"))  # logs written there stay


def test_clip_norm_is_shared_between_replicas(tiny_config):
    """Keras clips each replica's share of the gradient (its loss divided by the replica
    count): the clip norm is divided alike, so each replica's gradient is clipped to
    GRADIENT_CLIP_NORM."""
    from mrcnn.engine import training
    one, _ = training.build_optimizer(tiny_config, 0.01, 0.9)
    two, _ = training.build_optimizer(tiny_config, 0.01, 0.9, num_replicas=2)
    assert one.clipnorm == tiny_config.GRADIENT_CLIP_NORM
    assert two.clipnorm == tiny_config.GRADIENT_CLIP_NORM / 2
