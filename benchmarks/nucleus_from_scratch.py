"""Nucleus sample from random initialization on generated nuclei: COCO AP and wall-clock time.

Writes nuclei-like fluorescence images in the DSB-2018 layout (``stage1_train/<id>/images/
<id>.png`` and one ``<id>/masks/<mask id>.png`` per nucleus), trains the nucleus sample on them
from random weights with a CPU-sized config (``samples/nucleus/nucleus.py train --weights none
--config ...``), scores the held-out images with ``nucleus.py evaluate`` (COCO mask and box AP)
and prints one JSON line: the figures, the wall-clock time of each stage, the settings and the
machine.

    python benchmarks/nucleus_from_scratch.py [--epochs 8] [--steps 40] [--data DIR]
        [--recipe all] [--out results.json]
        [--arms matterport roi_align torchvision --seeds 0 1 2 --runs-out runs.jsonl]

With ``--arms``/``--seeds`` (issue 25) it trains once per arm and seed, alternated seed by
seed with the arms' order reversed every other seed, on the same generated data: ``matterport``
(Matterport's single corner-aligned sample, ROI_ALIGN_SAMPLING_RATIO 0), ``roi_align`` (the
paper's RoIAlign, sampling ratio 2, aligned, with its mask targets and paste: what the
from-scratch recipe gives CpuNucleusConfig since issue 25), ``torchvision`` (that plus
torchvision's level mapping, per-level proposals and multi-label detection). The seed is the config's SEED (the input
pipeline's crops, order and flips); weights start from a fresh random initialization in every
run. One JSON line per run is appended to ``--runs-out``, then a summary of each arm's means.

The held-out images come from another seed than the training images; their ids are passed to
the sample as its validation list (``--val-ids``), so ``train`` validates and ``evaluate``
scores on them and never trains on them.
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, ROOT)
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # so that --config can import this module by name

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import scipy.ndimage  # noqa: E402

from _report import emit, machine  # noqa: E402
from roi_align_speed import VARIANTS  # noqa: E402
from samples.nucleus import nucleus  # noqa: E402

# The class the sample loads through --config (this file, imported by its module name).
CONFIG_SPEC = "nucleus_from_scratch:CpuNucleusConfig"

IMAGE_SIZE = 256
TRAIN_SEED, HELD_OUT_SEED = 0, 1


class CpuNucleusConfig(nucleus.NucleusConfig):
    """The nucleus sample sized for a 2-core CPU and random initialization.

    Kept from NucleusConfig: ResNet-50, one class, random crops of images scaled up at least 2x
    (IMAGE_MIN_SCALE), anchor scales 8-128, RPN NMS 0.9 in training, mini masks 56x56,
    DETECTION_MIN_CONFIDENCE 0; at inference the sample's pad64 whole images (512x512 here).
    Changed: 128x128 crops instead of 512x512, the narrow heads and Adam of the shapes demo
    (``ScratchShapesConfig``), batch-trained BatchNorm, fewer proposals and RoIs. The sample's
    ``--weights none`` adds the from-scratch recipe (``mrcnn.engine.recipes.FROM_SCRATCH``:
    GroupNorm, the cosine decay and warm-up, the paper's RoIAlign).
    """
    NAME = "nucleus_cpu"
    IMAGES_PER_GPU = 4
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    # From random initialization (see ScratchShapesConfig).
    TRAIN_BN = True
    OPTIMIZER = "adam"
    LEARNING_RATE = 0.001
    TOP_DOWN_PYRAMID_SIZE = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    MASK_HEAD_CHANNELS = 128
    # A 128x128 crop of a 2x image holds a few nuclei; a whole 512x512 image up to ~35.
    PRE_NMS_LIMIT = 2000
    POST_NMS_ROIS_TRAINING = 500
    POST_NMS_ROIS_INFERENCE = 1000
    TRAIN_ROIS_PER_IMAGE = 64
    MAX_GT_INSTANCES = 64
    DETECTION_MAX_INSTANCES = 100
    # Mean RGB of the 60 generated training images (seed 0).
    MEAN_PIXEL = np.array([19.0, 19.0, 18.9])
    STEPS_PER_EPOCH = 40
    VALIDATION_STEPS = 2
    # The per-epoch pictures cost detection time (see "TensorBoard detection pictures" in
    # docs/BENCHMARKS.md); this run spends the CPU on training.
    TENSORBOARD_IMAGES = False
    SEED = 0


# Issue 25's arms: the switches each one turns on over CpuNucleusConfig (the variants that
# benchmarks/roi_align_speed.py times).
ARMS = {arm: VARIANTS[arm] for arm in ("matterport", "roi_align", "torchvision")}
ARM_PREFIX = "ArmConfig__"


def arm_config_spec(arm, seed):
    """The ``--config`` spec of CpuNucleusConfig with ``arm``'s switches and SEED ``seed``."""
    if arm not in ARMS:
        raise ValueError("unknown arm {!r}; the arms are {}".format(arm, sorted(ARMS)))
    return "nucleus_from_scratch:{}{}__{}".format(ARM_PREFIX, arm, int(seed))


def __getattr__(name):
    """Module attribute ``ArmConfig__<arm>__<seed>``: the class ``arm_config_spec`` names.

    The sample imports its ``--config`` class by name, so each arm and seed has to be an
    attribute of this module; they are built on first access instead of listed by hand.
    """
    arm, sep, seed = name[len(ARM_PREFIX):].rpartition("__")
    if not name.startswith(ARM_PREFIX) or not sep or arm not in ARMS or not seed.isdigit():
        raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))
    cls = type(name, (CpuNucleusConfig,), dict(ARMS[arm], SEED=int(seed),
                                               __doc__="CpuNucleusConfig, arm " + arm))
    globals()[name] = cls  # one class per name, as for any module attribute
    return cls


############################################################
#  Generated nuclei in the DSB-2018 layout
############################################################

def random_nuclei(rng, size):
    """Ellipses (cy, cx, a, b, angle) of 10-35 nuclei: semi-axes 4-14 px, some touching."""
    count = int(rng.integers(10, 36))
    nuclei = []
    for _ in range(40 * count):
        if len(nuclei) == count:
            break
        a = rng.uniform(5.0, 14.0)
        b = max(4.0, a * rng.uniform(0.6, 1.0))
        cy, cx = rng.uniform(0, size, size=2)
        # Centres may be closer than the two radii: neighbours touch or overlap a little.
        if all(np.hypot(cy - y, cx - x) >= 0.8 * ((a + b) / 2 + (a2 + b2) / 2)
               for y, x, a2, b2, _ in nuclei):
            nuclei.append((cy, cx, a, b, rng.uniform(0, np.pi)))
    return nuclei


def render(nuclei, rng, size):
    """(RGB uint8 image, [N, H, W] bool masks): each pixel belongs to at most one nucleus.

    A pixel inside several ellipses goes to the one whose (normalized) centre is nearest, so
    overlapping nuclei meet along a boundary as in the DSB annotations.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    distance = np.full((len(nuclei), size, size), np.inf, dtype=np.float32)
    for i, (cy, cx, a, b, angle) in enumerate(nuclei):
        dy, dx = yy - cy, xx - cx
        u = dy * np.cos(angle) + dx * np.sin(angle)
        v = -dy * np.sin(angle) + dx * np.cos(angle)
        q = (u / a) ** 2 + (v / b) ** 2
        distance[i][q <= 1] = q[q <= 1]
    owner = np.argmin(distance, axis=0)
    inside = np.isfinite(distance.min(axis=0))
    masks = (owner[None] == np.arange(len(nuclei))[:, None, None]) & inside[None]
    # Fluorescence: dark background, nuclei of varied brightness, brighter at the centre,
    # with some chromatin texture, optical blur and camera noise.
    background = rng.uniform(4, 20)
    texture = scipy.ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 1.5)
    image = np.full((size, size), background, dtype=np.float32)
    for i in range(len(nuclei)):
        m = masks[i]
        if m.any():
            level = rng.uniform(60, 230)
            image[m] = level * (1 - 0.35 * distance[i][m]) + 12 * texture[m]
    image = scipy.ndimage.gaussian_filter(image, rng.uniform(0.6, 1.2))
    image += rng.normal(0, rng.uniform(1.5, 5.0), image.shape)
    # Mostly grey; some images slightly tinted, as stained fluorescence often is.
    tint = np.array([1.0, 1.0, 1.0]) if rng.random() < 0.7 else rng.uniform(0.85, 1.1, 3)
    rgb = np.clip(image[..., None] * tint, 0, 255).astype(np.uint8)
    keep = masks.sum(axis=(1, 2)) >= 16  # a sliver cut off by a neighbour is no nucleus
    return rgb, masks[keep]


def write_images(stage_dir, count, seed, size=IMAGE_SIZE):
    """Write ``count`` images with their masks under ``stage_dir``; returns (ids, instances)."""
    ids, instances = [], 0
    for n in range(count):
        rng = np.random.default_rng((seed, n))
        image, masks = render(random_nuclei(rng, size), rng, size)
        image_id = hashlib.sha256("nuclei-{}-{}".format(seed, n).encode()).hexdigest()
        folder = os.path.join(stage_dir, image_id)
        os.makedirs(os.path.join(folder, "images"), exist_ok=True)
        os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
        PIL.Image.fromarray(image, "RGB").save(os.path.join(folder, "images", image_id + ".png"))
        for k, mask in enumerate(masks):
            mask_id = hashlib.sha256("{}-{}".format(image_id, k).encode()).hexdigest()
            PIL.Image.fromarray(mask.astype(np.uint8) * 255, "L").save(
                os.path.join(folder, "masks", mask_id + ".png"))
        ids.append(image_id)
        instances += len(masks)
    return ids, instances


def make_dataset(data_dir, train_count, held_out_count):
    """The generated dataset under ``data_dir``; returns (val ids file, facts about it)."""
    stage_dir = os.path.join(data_dir, "stage1_train")
    train_ids, train_instances = write_images(stage_dir, train_count, TRAIN_SEED)
    held_out_ids, held_out_instances = write_images(stage_dir, held_out_count, HELD_OUT_SEED)
    val_ids_path = os.path.join(data_dir, "val_ids.txt")
    with open(val_ids_path, "w") as f:
        f.write("# held-out images (seed {})\n".format(HELD_OUT_SEED))
        f.write("\n".join(held_out_ids) + "\n")
    mean = np.mean([np.asarray(PIL.Image.open(os.path.join(stage_dir, i, "images", i + ".png")),
                               dtype=np.float64).mean(axis=(0, 1)) for i in train_ids], axis=0)
    facts = {"dir": data_dir, "image_size": IMAGE_SIZE,
             "train_images": train_count, "train_instances": train_instances,
             "held_out_images": held_out_count, "held_out_instances": held_out_instances,
             "train_mean_pixel": [round(float(v), 1) for v in mean]}
    return val_ids_path, facts


############################################################
#  Report
############################################################

def config_summary(config):
    names = ("BACKBONE", "IMAGE_RESIZE_MODE", "IMAGE_MIN_DIM", "IMAGE_MIN_SCALE", "BATCH_SIZE",
             "TRAIN_BN", "OPTIMIZER", "LEARNING_RATE", "TOP_DOWN_PYRAMID_SIZE",
             "FPN_CLASSIF_FC_LAYERS_SIZE", "MASK_HEAD_CHANNELS", "RPN_ANCHOR_SCALES",
             "RPN_TRAIN_ANCHORS_PER_IMAGE", "PRE_NMS_LIMIT", "POST_NMS_ROIS_TRAINING",
             "POST_NMS_ROIS_INFERENCE", "TRAIN_ROIS_PER_IMAGE", "MAX_GT_INSTANCES",
             "DETECTION_MAX_INSTANCES", "STEPS_PER_EPOCH", "VALIDATION_STEPS", "NORM",
             "LR_SCHEDULE", "WARMUP_STEPS", "ROI_ALIGN_SAMPLING_RATIO", "ROI_ALIGN_ALIGNED")
    out = {}
    for name in names:
        value = getattr(config, name)
        out[name] = value.tolist() if isinstance(value, np.ndarray) else \
            list(value) if isinstance(value, tuple) else value
    return out


def train_and_evaluate(config_spec, data_dir, val_ids_path, epochs, steps, logs):
    """Train the sample from random weights with ``config_spec``, evaluate the held-out ids.

    Returns (config, stages, evaluation summary, train seconds, evaluate seconds).
    """
    # The stages and config the sample trains with (its from-scratch recipe), for the report.
    config, stages = nucleus.common.training_config(config_spec, nucleus.NucleusConfig, "none",
                                                    nucleus.TRAINING_STAGES, epochs,
                                                    STEPS_PER_EPOCH=steps)
    common_args = ["--dataset", data_dir, "--logs", logs, "--config", config_spec,
                   "--val-ids", val_ids_path]
    start = time.time()
    checkpoint = nucleus.main(["train", "--weights", "none", "--epochs", str(epochs),
                               "--steps", str(steps)] + common_args)
    train_s = time.time() - start
    start = time.time()
    summary = nucleus.main(["evaluate", "--weights", checkpoint] + common_args)
    return config, stages, summary, train_s, time.time() - start


def figures(summary):
    """The COCO figures of one evaluation, rounded."""
    return {"coco_mask_AP": round(summary["segm"]["AP"], 4),
            "coco_mask_AP50": round(summary["segm"]["AP50"], 4),
            "coco_mask_AP75": round(summary["segm"]["AP75"], 4),
            "coco_box_AP": round(summary["bbox"]["AP"], 4),
            "coco_box_AP50": round(summary["bbox"]["AP50"], 4),
            "coco_box_AP75": round(summary["bbox"]["AP75"], 4)}


def run_arms(args, data_dir, val_ids_path, data_facts, work):
    """One training per arm and seed, alternated; returns the report."""
    runs = []
    for i, seed in enumerate(args.seeds):
        for arm in (args.arms if i % 2 == 0 else args.arms[::-1]):
            logs = os.path.join(work, "logs_{}_{}".format(arm, seed))
            config, _, summary, train_s, evaluate_s = train_and_evaluate(
                arm_config_spec(arm, seed), data_dir, val_ids_path, args.epochs, args.steps,
                logs)
            run = {"arm": arm, "seed": seed, **figures(summary),
                   "detections": summary["num_detections"], "train_s": round(train_s, 1),
                   "evaluate_s": round(evaluate_s, 1)}
            runs.append(run)
            print("RUN " + json.dumps(run), flush=True)
            if args.runs_out:
                with open(args.runs_out, "a") as f:
                    f.write(json.dumps(run) + "\n")
    metrics = [k for k in runs[0] if k.startswith("coco_")] + ["train_s"]
    means = {arm: {k: round(float(np.mean([r[k] for r in runs if r["arm"] == arm])), 4)
                   for k in metrics} for arm in args.arms}
    return {"benchmark": "nucleus_from_scratch_arms", "runs": runs, "means": means,
            "seeds": args.seeds, "epochs": args.epochs, "steps_per_epoch": args.steps,
            "config": dict(config_summary(config), name="CpuNucleusConfig"),
            "arms": {arm: ARMS[arm] for arm in args.arms}, "data": data_facts,
            "machine": machine()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8,
                        help="train to this epoch; the sample's recipe is scaled to it")
    parser.add_argument("--steps", type=int, default=CpuNucleusConfig.STEPS_PER_EPOCH,
                        help="steps per epoch")
    # Kept so that the recorded command runs: the sample itself now trains every layer from
    # the first step with --weights none (mrcnn.engine.recipes.training_plan).
    parser.add_argument("--recipe", choices=("all",), default="all",
                        help="'all': every layer from the first step (what nucleus.py train "
                             "--weights none does)")
    parser.add_argument("--train-images", type=int, default=60)
    parser.add_argument("--held-out-images", type=int, default=20)
    parser.add_argument("--data", help="write the generated dataset here (default: a temporary "
                                       "directory)")
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS),
                        help="compare these arms of issue 25 (one run per arm and seed)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="with --arms: the SEED of each arm's runs")
    parser.add_argument("--runs-out", help="with --arms: append one JSON line per run here")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="nucleus_scratch_")
    data_dir = args.data or os.path.join(work, "nucleus")
    start = time.time()
    val_ids_path, data_facts = make_dataset(data_dir, args.train_images, args.held_out_images)
    generate_s = time.time() - start
    if args.arms:
        emit(run_arms(args, data_dir, val_ids_path, data_facts, work), args.out)
        return

    config, stages, summary, train_s, evaluate_s = train_and_evaluate(
        CONFIG_SPEC, data_dir, val_ids_path, args.epochs, args.steps, os.path.join(work, "logs"))
    results = {
        "benchmark": "nucleus_from_scratch", **figures(summary),
        "held_out_images": summary["num_images"], "detections": summary["num_detections"],
        "epochs": args.epochs, "steps_per_epoch": args.steps,
        "stages": [list(stage) for stage in stages], "recipe": args.recipe,
        "generate_s": round(generate_s, 1), "train_s": round(train_s, 1),
        "evaluate_s": round(evaluate_s, 1), "total_s": round(generate_s + train_s + evaluate_s, 1),
        "config": dict(config_summary(config), name="CpuNucleusConfig"),
        "inference_resize": "pad64 (whole {0}x{0} images scaled {1:g}x)".format(
            IMAGE_SIZE, config.IMAGE_MIN_SCALE),
        "data": data_facts, "warning": summary["warning"],
        "machine": machine(),
    }
    emit(results, args.out)


if __name__ == "__main__":
    main()
