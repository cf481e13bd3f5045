"""What the paper's RoIAlign and torchvision's semantics are worth on shapes from scratch.

Each arm is the `make demo` run (``samples/shapes/shapes.py demo``: ScratchShapesConfig,
400 steps, evaluation on 100 held-out images) with one config change:

- ``matterport``: the demo as it is (ROI_ALIGN_SAMPLING_RATIO 0);
- ``roi_align``: the paper's RoIAlign, sampling ratio 2, aligned (detectron2's ROIAlignV2),
  with the mask targets and the paste that match it;
- ``torchvision``: that, plus torchvision's level mapping, per-level proposals and
  multi-label detection.

Runs are alternated (seed by seed, the arms' order reversed every other seed) with the same
seeds in every arm. One JSON line per run is printed (and appended to --out), then a summary
of each arm's means.

    python benchmarks/roi_align_effect.py [--seeds 0 1 2] [--arms matterport roi_align]
"""

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

from _report import emit, machine  # noqa: E402
from samples.shapes import shapes  # noqa: E402


class RoIAlignShapesConfig(shapes.ScratchShapesConfig):
    """The demo with the paper's RoIAlign (sampling ratio 2, aligned)."""
    ROI_ALIGN_SAMPLING_RATIO = 2
    ROI_ALIGN_ALIGNED = True


class TorchvisionShapesConfig(RoIAlignShapesConfig):
    """And torchvision's level mapping, per-level proposals, multi-label detection."""
    ROI_LEVEL_MAPPING = "torchvision"
    RPN_PROPOSALS_PER_LEVEL = True
    DETECTION_MULTI_LABEL = True


ARMS = {"matterport": None,
        "roi_align": "roi_align_effect:RoIAlignShapesConfig",
        "torchvision": "roi_align_effect:TorchvisionShapesConfig"}
METRICS = ("coco_mask_AP", "coco_mask_AP75", "coco_box_AP", "coco_box_AP75", "mAP@0.5",
           "train_s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS),
                        default=["matterport", "roi_align", "torchvision"])
    parser.add_argument("--out", help="append one JSON line per run to this file")
    args = parser.parse_args()
    runs = []
    for i, seed in enumerate(args.seeds):
        for arm in (args.arms if i % 2 == 0 else args.arms[::-1]):
            logs = tempfile.mkdtemp(prefix="roi_align_effect_")
            argv = ["demo", "--logs", logs, "--seed", str(seed),
                    "--out", os.path.join(logs, "detections.png")]
            if ARMS[arm]:
                argv += ["--config", ARMS[arm]]
            summary = shapes.main(argv)
            run = {"arm": arm, "seed": seed, **{k: summary[k] for k in METRICS}}
            runs.append(run)
            print("RUN " + json.dumps(run), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(run) + "\n")
    means = {arm: {k: round(sum(r[k] for r in runs if r["arm"] == arm) /
                            max(1, sum(r["arm"] == arm for r in runs)), 4) for k in METRICS}
             for arm in args.arms}
    emit({"runs": runs, "means": means, "seeds": args.seeds, "machine": machine()})


if __name__ == "__main__":
    main()
