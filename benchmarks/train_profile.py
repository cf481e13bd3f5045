"""Where a training step's time goes, printed as JSON (issue 11's step breakdown).

The demo's training step (``ScratchShapesConfig`` unless ``--preset``: batch 8, 128x128,
ResNet-50-FPN) is cut into stages by timing prefixes of the training graph, each a Keras model
from the inputs to a stage's outputs, run forward in training mode as a compiled tf.function:

    backbone (C2..C5) -> + FPN (P2..P6) -> + RPN head -> + proposals (top-k, NMS)
    -> + RoI sampling (targets) -> + RoIAlign -> + heads -> + losses

A stage's time is its prefix's time minus the previous prefix's. Then the whole forward pass
with its gradients (backward = that minus the forward), and ``train_on_batch`` (optimizer and
Keras' step overhead = that minus forward+backward). The input pipeline is timed alone (s per
batch, its worker threads competing for nothing).

FLOPs are counted from the shapes the convolutions and dense layers see in one eager forward
pass (2 x multiply-adds); a training step is taken as 3x the forward FLOPs (the backward pass
computes a gradient for the inputs and one for the weights). The achieved rate is compared with
a float32 matmul's on the same machine in the same run.

Variants, each profiled in the same run: float32 with Keras' BatchNormalization, Keras'
optimizer updates and the optimizer built inside the first trace (the step before issue 11);
float32 and mixed bfloat16 with mrcnn's fused BatchNorm, each with Keras' optimizer updates
and with mrcnn's fused ones (mrcnn/engine/optimizers.py).
``first_step_s`` is the first ``train_on_batch``: tracing and graph optimization included.

    python benchmarks/train_profile.py [--steps 8] [--preset scratch] [--variants ...]
        [--set ATTR=VALUE ...] [--out results.json]
"""

import argparse
import ast
import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _report import emit, machine, run_times  # noqa: E402
from _report import seconds as call_seconds  # noqa: E402
from mrcnn.data import pipeline as data  # noqa: E402
from mrcnn import model as modellib  # noqa: E402
from mrcnn.engine import optimizers  # noqa: E402
from mrcnn.modeling.layers import BatchNorm  # noqa: E402
from mrcnn.engine.training import TrainingModel  # noqa: E402
from samples.shapes.shapes import PRESETS, make_datasets  # noqa: E402

# Stage name -> the layers whose outputs end it (each prefix includes every earlier stage).
STAGES = [
    ("backbone", ["res2c_out", "res3d_out", "res4f_out", "res5c_out"]),
    ("fpn", ["fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6"]),
    ("rpn_head", ["rpn_class_logits", "rpn_bbox"]),
    ("proposals_nms", ["ROI"]),
    ("roi_sampling", ["proposal_targets"]),
    ("roi_align", ["roi_align_classifier", "roi_align_mask"]),
    ("heads", ["mrcnn_class_logits", "mrcnn_bbox", "mrcnn_mask"]),
    ("losses", ["rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
                "mrcnn_mask_loss"]),
]


def median_time(fn, steps):
    """Median seconds of ``steps`` calls after two untimed ones (tracing, warm-up)."""
    return float(np.median(run_times(fn, steps, warmup=2)))


def layer_outputs(keras_model, names):
    outputs = []
    for name in names:
        out = keras_model.get_layer(name).output
        outputs.extend(out if isinstance(out, (list, tuple)) else [out])
    return outputs


def forward_flops(keras_model, batch):
    """Multiply-add FLOPs (x2) of every Conv2D, Conv2DTranspose and Dense call in one eager
    forward pass, from the shapes each call sees (RoI heads included, per RoI)."""
    counted = []
    originals = {}

    def patch(cls, count):
        original = cls.call
        originals[cls] = original

        def call(self, inputs, *args, **kwargs):
            out = original(self, inputs, *args, **kwargs)
            counted.append(count(self, tuple(inputs.shape), tuple(out.shape)))
            return out
        cls.call = call

    def conv(layer, in_shape, out_shape):
        kh, kw, cin, cout = layer.kernel.shape
        return 2 * int(np.prod(out_shape[:-1])) * kh * kw * cin * cout // max(1, getattr(
            layer, "groups", 1))

    def deconv(layer, in_shape, out_shape):
        kh, kw, cout, cin = layer.kernel.shape
        return 2 * int(np.prod(in_shape[:-1])) * kh * kw * cin * cout

    def dense(layer, in_shape, out_shape):
        cin, cout = layer.kernel.shape
        return 2 * int(np.prod(in_shape[:-1])) * cin * cout

    patch(keras.layers.Conv2D, conv)
    patch(keras.layers.Conv2DTranspose, deconv)
    patch(keras.layers.Dense, dense)
    try:
        keras_model(batch, training=True)
    finally:
        for cls, original in originals.items():
            cls.call = original
    return int(sum(counted))


# GFLOP/s of a large matmul per dtype, measured once per run (see main).
MATMUL_RATES = {}


def rate_dtype(config):
    """The dtype of the matmul rate a config's step is compared with."""
    return "bfloat16" if config.MIXED_PRECISION == "mixed_bfloat16" else "float32"


def matmul_rate(dtype=tf.float32, size=2048, steps=10):
    """GFLOP/s of a [size, size] x [size, size] matmul in ``dtype`` (every thread TF uses)."""
    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    fn = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    seconds = median_time(lambda: fn().numpy(), steps)
    return 2 * size ** 3 / seconds / 1e9


VARIANTS = {
    # Before issue 11: Keras 3's own BatchNormalization (separate moment and normalize ops)
    # and optimizer updates.
    "float32_keras_batchnorm": {"MIXED_PRECISION": None, "keras_batchnorm": True,
                                "keras_optimizer": True, "keras_deferred_build": True},
    # mrcnn's fused BatchNorm, Keras' optimizer update and per-tensor clip.
    "float32_keras_optimizer": {"MIXED_PRECISION": None, "keras_optimizer": True},
    "float32": {"MIXED_PRECISION": None},
    "mixed_bfloat16_keras_optimizer": {"MIXED_PRECISION": "mixed_bfloat16",
                                       "keras_optimizer": True},
    "mixed_bfloat16": {"MIXED_PRECISION": "mixed_bfloat16"},
}


@contextlib.contextmanager
def keras_deferred_build(enabled):
    """While active, the optimizer's variables are created inside the first trace of the
    training step, as Keras does without a strategy (tf.function then traces it twice)."""
    if not enabled:
        yield
        return
    built = TrainingModel._maybe_symbolic_build
    TrainingModel._maybe_symbolic_build = keras.Model._maybe_symbolic_build
    try:
        yield
    finally:
        TrainingModel._maybe_symbolic_build = built


@contextlib.contextmanager
def keras_optimizer(enabled):
    """While active, mrcnn's optimizers update and clip as Keras' own (separate ops)."""
    if not enabled:
        yield
        return
    classes = (optimizers.FusedSGD, optimizers.FusedAdam, optimizers.FusedAdamW)
    saved = [(cls, cls.__dict__.get("update_step")) for cls in classes]
    clip = optimizers._TwoPassClip._clip_by_norm
    for cls in classes:
        keras_class = next(c for c in cls.__mro__ if c.__module__.startswith("keras."))
        cls.update_step = keras_class.update_step
    optimizers._TwoPassClip._clip_by_norm = keras.optimizers.Optimizer._clip_by_norm
    try:
        yield
    finally:
        for cls, update_step in saved:
            if update_step is None:
                del cls.update_step
            else:
                cls.update_step = update_step
        optimizers._TwoPassClip._clip_by_norm = clip


@contextlib.contextmanager
def keras_batchnorm(enabled):
    """While active, mrcnn's BatchNorm normalizes batch statistics as Keras does (unfused)."""
    if not enabled:
        yield
        return
    fused = BatchNorm._fused_batch_statistics
    BatchNorm._fused_batch_statistics = lambda self, inputs: \
        keras.layers.BatchNormalization.call(self, inputs, training=True)
    try:
        yield
    finally:
        BatchNorm._fused_batch_statistics = fused


def profile(config, steps):
    model = modellib.MaskRCNN("training", config, "/tmp/mrcnn_bench_logs")
    km = model.keras_model
    train, _ = make_datasets(config, train_count=64, val_count=1)
    model.set_trainable("all")
    model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM)
    pipeline = data.build_input_pipeline(train, config, seed=0)
    batches = iter(pipeline)
    batch = next(batches)

    # The input pipeline alone: batches per second with nothing else running.
    input_s = median_time(lambda: next(batches), steps)

    stages, previous = {}, 0.0
    names = []
    for stage, stage_layers in STAGES:
        names = names + stage_layers
        prefix = keras.Model(km.inputs, layer_outputs(km, names))
        fn = tf.function(lambda x, prefix=prefix: prefix(x, training=True))
        seconds = median_time(lambda: [t.numpy() for t in tf.nest.flatten(fn(batch))], steps)
        stages[stage] = round(seconds - previous, 4)
        previous = seconds
    forward_s = previous

    variables = km.trainable_variables

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            outputs = km(x, training=True)
            loss = km.compute_loss(x, None, outputs)
        return loss, tape.gradient(loss, variables)

    fwd_bwd_s = median_time(lambda: forward_backward(batch)[0].numpy(), steps)
    # The first call traces and optimizes the training graph (fit's first step pays it too).
    first_step_s = call_seconds(lambda: km.train_on_batch(batch))
    step_s = median_time(lambda: km.train_on_batch(batch), steps)
    stages["backward"] = round(fwd_bwd_s - forward_s, 4)
    stages["optimizer_and_keras_step"] = round(step_s - fwd_bwd_s, 4)

    flops = forward_flops(km, batch)
    achieved = 3 * flops / step_s / 1e9
    rate = MATMUL_RATES[rate_dtype(config)]
    return {
        "batch_size": config.BATCH_SIZE, "image_shape": [int(v) for v in config.IMAGE_SHAPE],
        "seconds_per_step": round(step_s, 4), "first_step_s": round(first_step_s, 2),
        "forward_s": round(forward_s, 4),
        "forward_backward_s": round(fwd_bwd_s, 4), "input_pipeline_s_per_batch":
        round(input_s, 4), "stages_s": stages,
        "stage_share_of_step": {k: round(v / step_s, 3) for k, v in stages.items()},
        "forward_gflop": round(flops / 1e9, 2), "train_step_gflop (3x forward)":
        round(3 * flops / 1e9, 2), "achieved_gflop_per_s": round(achieved, 1),
        "fraction_of_matmul_rate (same dtype)": round(achieved / rate, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed repetitions per stage")
    parser.add_argument("--preset", default="scratch", choices=sorted(PRESETS),
                        help="shapes sample preset (default: the demo's)")
    parser.add_argument("--set", nargs="*", default=[], metavar="ATTR=VALUE",
                        help="Config overrides, Python literals (e.g. TRAIN_ROIS_PER_IMAGE=16)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS),
                        help="what to profile (default: all, in one run)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    overrides = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    runs = []
    for name in args.variants:
        attrs = dict(VARIANTS[name])
        switches = [attrs.pop(key, False) for key in
                    ("keras_batchnorm", "keras_optimizer", "keras_deferred_build")]
        config = type("Profile", (PRESETS[args.preset],), dict(attrs, SEED=0, **overrides))()
        runs.append((name, config, switches))
    # Only the dtypes the variants use: a bfloat16 matmul fails where oneDNN has no bfloat16
    # kernel (e.g. under ONEDNN_MAX_CPU_ISA=AVX2) even when only float32 is profiled.
    for dtype in sorted({rate_dtype(config) for _, config, _ in runs}):
        MATMUL_RATES[dtype] = matmul_rate(getattr(tf, dtype))
    results = {"machine": machine(), "preset": args.preset, "overrides": overrides,
               "matmul_gflop_per_s": {k: round(v, 1) for k, v in MATMUL_RATES.items()},
               "variants": {}}
    for name, config, (unfused, keras_update, deferred) in runs:
        with keras_batchnorm(unfused), keras_optimizer(keras_update), \
                keras_deferred_build(deferred):
            results["variants"][name] = profile(config, args.steps)
    emit(results, args.out)


if __name__ == "__main__":
    main()
