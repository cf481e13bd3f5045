"""XLA on this machine: can the training step compile, and does XLA speed up what can, as JSON.

1. The demo's whole training step (``ScratchShapesConfig``) compiled with Keras'
   ``jit_compile=True``: reports whether it compiles and, if not, TensorFlow's reason.
2. The part of the graph with static shapes, ResNet-50 forward + backward on a batch of 8
   128x128 images in training mode, as a ``tf.function`` with and without ``jit_compile``,
   in float32 and mixed bfloat16, timed alternately in one run (median of ``--steps``).

    python benchmarks/xla.py [--steps 5] [--out results.json]
"""

import argparse
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _report import emit, machine, seconds  # noqa: E402
from mrcnn.data import pipeline as data
from mrcnn.modeling import precision  # noqa: E402
from mrcnn import model as modellib  # noqa: E402
from mrcnn.modeling.backbone import resnet_graph  # noqa: E402
from samples.shapes.shapes import ScratchShapesConfig, make_datasets  # noqa: E402


def whole_step_compiles():
    """Try one jit-compiled training step of the demo's model; (ok, reason)."""
    config = type("Xla", (ScratchShapesConfig,), {"SEED": 0, "MIXED_PRECISION": None})()
    model = modellib.MaskRCNN("training", config, "/tmp/mrcnn_bench_logs")
    model.set_trainable("all")
    model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM)
    model.keras_model.compile(optimizer=model.keras_model.optimizer, jit_compile=True)
    train, _ = make_datasets(config, train_count=8, val_count=1)
    batch = next(iter(data.build_input_pipeline(train, config, seed=0)))
    try:
        model.keras_model.train_on_batch(batch)
        return True, None
    except Exception as error:   # report TensorFlow's reason, whatever its type
        found = re.search(r"Detected unsupported operations[^\n]*?: (\w+) \(", str(error))
        reason = "unsupported op {}".format(found.group(1)) if found else \
            str(error).splitlines()[0][:300]
        return False, reason


def backbone_step(policy, jit):
    with precision.compute_scope(policy):
        image = keras.Input([128, 128, 3])
        outputs = resnet_graph(image, "resnet50", train_bn=None)
    backbone = keras.Model(image, outputs[1:])
    x = tf.random.stateless_normal([8, 128, 128, 3], seed=[0, 0])

    @tf.function(jit_compile=jit)
    def step(x):
        with tf.GradientTape() as tape:
            features = backbone(x, training=True)
            loss = tf.add_n([tf.reduce_sum(tf.cast(f, tf.float32)) for f in features])
        return tape.gradient(loss, backbone.trainable_variables)[0]

    step(x)
    step(x)
    return lambda: step(x).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    ok, reason = whole_step_compiles()
    variants = {(policy or "float32", jit): backbone_step(policy, jit)
                for policy in (None, "mixed_bfloat16") for jit in (False, True)}
    times = {key: [] for key in variants}
    for _ in range(args.steps):            # alternate, so that machine noise hits all alike
        for key, fn in variants.items():
            times[key].append(seconds(fn))
    backbone = {"{} {}".format(policy, "xla" if jit else "no_xla"):
                round(float(np.median(t)), 4) for (policy, jit), t in times.items()}
    emit({"machine": machine(), "whole_training_step_compiles": ok, "reason": reason,
          "resnet50_forward_backward_s (batch 8, 128x128)": backbone,
          "xla_over_no_xla": {policy: round(backbone[policy + " xla"] /
                                            backbone[policy + " no_xla"], 2)
                              for policy in ("float32", "mixed_bfloat16")}}, args.out)


if __name__ == "__main__":
    main()
