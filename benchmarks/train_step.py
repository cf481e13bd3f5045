"""Seconds per training step on shapes (batch 8, 128x128, ResNet-50-FPN), printed as JSON.

Compares, in one run, the `make demo` preset (``ScratchShapesConfig``: narrow heads) with the
same settings at Matterport's head widths (FPN 256, classifier 1024, mask head 256). Each
variant builds the training model, runs one step (graph tracing) and times further steps.

    python benchmarks/train_step.py [--steps 6] [--out results.json]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from _report import emit, machine, train_step_times  # noqa: E402
from samples.shapes.shapes import ScratchShapesConfig  # noqa: E402

VARIANTS = {
    "scratch_preset": {},
    "matterport_head_widths": {"TOP_DOWN_PYRAMID_SIZE": 256, "FPN_CLASSIF_FC_LAYERS_SIZE": 1024,
                               "MASK_HEAD_CHANNELS": 256},
}


def measure(attrs, steps):
    config = type("Bench", (ScratchShapesConfig,), dict(attrs, SEED=0))()
    model, first, _, times = train_step_times(config, steps)
    return {"first_step_s": round(first, 1), "seconds_per_step": round(float(np.median(times)), 3),
            "batch_size": config.BATCH_SIZE, "params": int(model.keras_model.count_params())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    results = {"machine": machine(),
               "variants": {name: measure(attrs, args.steps) for name, attrs in VARIANTS.items()}}
    emit(results, args.out)


if __name__ == "__main__":
    main()
