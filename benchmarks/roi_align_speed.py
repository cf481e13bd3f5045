"""Speed of Matterport's RoIAlign against the paper's (sampling ratio 2), in one run.

Two measurements, each alternating the variants in one process, printed as JSON:

- ``detect()`` seconds per image at 1024x1024: ResNet-50-FPN, 81 classes, random weights,
  DETECTION_MIN_CONFIDENCE 0 (100 detections and masks pasted per image);
- a training step of the shapes demo preset (``ScratchShapesConfig``, 8 images of 128x128).

Variants: ``matterport`` (ROI_ALIGN_SAMPLING_RATIO 0, the default), ``roi_align`` (2,
aligned), ``torchvision`` (that plus torchvision's level mapping, per-level proposals and
multi-label detection) and ``adaptive`` (-1, aligned: detectron2's per-box grid).

    python benchmarks/roi_align_speed.py [--runs 3] [--steps 6] [--variants ...]
        [--out results.json]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from _report import emit, machine, seconds, train_step_times  # noqa: E402

VARIANTS = {
    # Explicit: the from-scratch recipe would otherwise give the nucleus arm the paper's.
    "matterport": {"ROI_ALIGN_SAMPLING_RATIO": 0},
    "roi_align": {"ROI_ALIGN_SAMPLING_RATIO": 2, "ROI_ALIGN_ALIGNED": True},
    "torchvision": {"ROI_ALIGN_SAMPLING_RATIO": 2, "ROI_ALIGN_ALIGNED": True,
                    "ROI_LEVEL_MAPPING": "torchvision", "RPN_PROPOSALS_PER_LEVEL": True,
                    "DETECTION_MULTI_LABEL": True},
    "adaptive": {"ROI_ALIGN_SAMPLING_RATIO": -1, "ROI_ALIGN_ALIGNED": True},
}


def detect_times(runs, variants):
    """{variant: [seconds per detect() call]}, the variants' calls alternated."""
    from mrcnn import model as modellib
    from mrcnn.config import Config

    image = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    models = {}
    for name in variants:
        attrs = VARIANTS[name]
        config = type("Bench", (Config,), dict(attrs, NAME="bench", BACKBONE="resnet50",
                                               NUM_CLASSES=81, IMAGES_PER_GPU=1,
                                               DETECTION_MIN_CONFIDENCE=0.0))()
        models[name] = modellib.MaskRCNN("inference", config, "/tmp/mrcnn_bench_logs")
        models[name].detect([image])            # first call: graph tracing
    times = {name: [] for name in variants}
    for _ in range(runs):
        for name, model in models.items():
            times[name].append(seconds(lambda: model.detect([image])))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed detect() calls per variant")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per variant")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                        default=["matterport", "roi_align", "torchvision"])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    from samples.shapes.shapes import ScratchShapesConfig

    results = {"machine": machine(), "detect_1024_s_per_image": {}, "train_step_s": {}}
    for name, times in detect_times(args.runs, args.variants).items():
        results["detect_1024_s_per_image"][name] = {
            "median": round(float(np.median(times)), 3), "all": [round(t, 3) for t in times]}
    # Training: one variant after the other (a model each), then the order reversed, so that
    # machine drift shows in the two halves.
    steps = {name: [] for name in args.variants}
    for order in (args.variants, args.variants[::-1]):
        for name in order:
            config = type("Bench", (ScratchShapesConfig,), dict(VARIANTS[name], SEED=0))()
            _, _, _, times = train_step_times(config, args.steps)
            steps[name] += times
    for name, times in steps.items():
        results["train_step_s"][name] = {"median": round(float(np.median(times)), 3),
                                         "steps": len(times)}
    emit(results, args.out)


if __name__ == "__main__":
    main()
