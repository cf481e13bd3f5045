"""The training recipes of issue 10 (Config switches) compared on generated shapes, as JSON.

Every arm trains the same small ResNet-50-FPN from random initialization for the same number
of steps on shapes images and is scored with COCO metrics (pycocotools) on held-out images of
another seed. Experiments:

- ``imbalance``: shapes whose instances are ~90 % squares, ~8 % circles, ~2 % triangles;
  baseline vs ``CLASS_WEIGHTS="balanced"`` vs ``REPEAT_FACTOR_THRESHOLD``; per-class mask AP on
  a held-out set with the three classes equally frequent (so that the rare classes' AP is
  measured on enough instances).
- ``mask_loss``: ``MASK_LOSS`` bce vs dice vs bce+dice; mask AP75.
- ``agnostic``: ``MASK_CLASS_AGNOSTIC`` trained on ``ClassAgnosticDataset`` vs the class-aware
  model, both scored class-agnostically (every detection and instance as one class).
- ``scratch``: ``NORM="batch"`` vs ``NORM="group"`` with ``WARMUP_STEPS``; mAP@0.5 and mask AP.
- ``backbone_lr``: a model trained on shapes is fine-tuned on a shifted variant (dark colours,
  larger shapes) with ``BACKBONE_LR_MULTIPLIER`` 1 vs 0.1.

    python benchmarks/recipes.py --experiment imbalance [--steps 400] [--out results.json]

The demo's task at half scale to fit a 2-core CPU: 64x64 images with shapes half the demo's
size, batch 8, narrower heads, 16 RoIs per image; the arms are compared with each other, not
with the demo's figures.
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from _report import emit, machine  # noqa: E402
from mrcnn.evaluation import evaluate  # noqa: E402
from mrcnn import model as modellib  # noqa: E402
from mrcnn.data.dataset import ClassAgnosticDataset, image_class_ids  # noqa: E402
from samples.shapes import shapes  # noqa: E402

IMAGE_SIZE = 64
SCALE = 0.5
STEPS_PER_EPOCH = 50
TRAIN_SEED, VAL_SEED, HELD_OUT_SEED = 0, 1_000_003, 2_000_029


class RecipeConfig(shapes.ScratchShapesConfig):
    """The demo's from-scratch settings, scaled down (see the module docstring)."""
    NAME = "recipes"
    # As when the recipes were measured: ShapesConfig's (Matterport's) values, which the demo
    # preset changed later (that would alter every arm's baseline).
    ZERO_INIT_RESIDUAL = shapes.ShapesConfig.ZERO_INIT_RESIDUAL
    DETECTION_MAX_INSTANCES = shapes.ShapesConfig.DETECTION_MAX_INSTANCES
    RPN_CONV_CHANNELS = shapes.ShapesConfig.RPN_CONV_CHANNELS
    WEIGHT_DECAY = shapes.ShapesConfig.WEIGHT_DECAY
    IMAGE_MIN_DIM = IMAGE_SIZE
    IMAGE_MAX_DIM = IMAGE_SIZE
    IMAGES_PER_GPU = 8
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 128
    MASK_HEAD_CHANNELS = 64
    TRAIN_ROIS_PER_IMAGE = 16
    RPN_ANCHOR_SCALES = (8, 16, 32, 48, 64)
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_TRAINING = 300
    POST_NMS_ROIS_INFERENCE = 300
    # Every arm: Adam at 1e-3 decayed to 0 by a cosine over its steps.
    LR_SCHEDULE = "cosine"
    # COCO's scoring keeps low-confidence detections (a rare class may score low).
    DETECTION_MIN_CONFIDENCE = 0.05
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 1
    TENSORBOARD_IMAGES = False
    CLASS_COLLAPSE_WARNING = False
    SEED = 0


class VariantShapesDataset(shapes.ShapesDataset):
    """Shapes with chosen class frequencies, sizes and colours.

    probabilities: of square, circle, triangle; scale: of the shapes' size and margin;
    palette: "any" (shapes' colours) or "dark" (every channel in 0..100, the shifted domain).
    """

    def __init__(self, probabilities=(1 / 3, 1 / 3, 1 / 3), scale=SCALE, palette="any"):
        super().__init__()
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        self.scale = float(scale)
        self.palette = palette

    def random_shape(self, height, width, rng):
        shape = shapes.SHAPES[int(rng.choice(len(shapes.SHAPES), p=self.probabilities))]
        high = 256 if self.palette == "any" else 101
        color = tuple(int(c) for c in rng.integers(0, high, size=3))
        buffer = max(4, int(round(20 * self.scale)))
        y = int(rng.integers(buffer, height - buffer))
        x = int(rng.integers(buffer, width - buffer))
        size = int(rng.integers(buffer, max(buffer + 1, height // 4 + 1)))
        return shape, color, (y, x, size)

    def random_image(self, height, width, rng):
        bg_color, kept = super().random_image(height, width, rng)
        if self.palette == "dark":
            bg_color = tuple(int(c) for c in rng.integers(0, 101, size=3))
        return bg_color, kept


def make_dataset(count, seed, **variant):
    dataset = VariantShapesDataset(**variant)
    dataset.load_shapes(count, IMAGE_SIZE, IMAGE_SIZE, seed=seed)
    dataset.prepare()
    return dataset


def config_of(**overrides):
    overrides.setdefault("STEPS_PER_EPOCH", STEPS_PER_EPOCH)
    return type("Arm", (RecipeConfig,), overrides)()


def instance_counts(dataset):
    counts = np.bincount(np.concatenate(image_class_ids(dataset)),
                         minlength=dataset.num_classes)
    return {name: int(c) for name, c in zip(dataset.class_names[1:], counts[1:])}


def train_arm(config, train, val, steps, log_dir, weights=None, layers="all"):
    """Train ``steps`` steps from random initialization (or ``weights``); returns (path, s)."""
    model = modellib.MaskRCNN("training", config, log_dir)
    if weights:
        model.load_weights(weights, by_name=True)
    # train() counts epochs over the whole run: a loaded checkpoint sets the starting epoch.
    epochs = model.epoch + max(1, steps // config.STEPS_PER_EPOCH)
    start = time.time()
    model.train(train, val, learning_rate=config.LEARNING_RATE, epochs=epochs, layers=layers,
                verbose=0)
    return model.find_last(), time.time() - start


def score(config, weights, dataset, agnostic=False):
    """COCO segm/bbox figures of ``weights`` on ``dataset``; ``agnostic`` scores every
    detection and instance as one class."""
    inference = type("Inference", (type(config),), {"GPU_COUNT": 1, "IMAGES_PER_GPU": 4})()
    model = modellib.MaskRCNN("inference", inference, tempfile.mkdtemp(prefix="recipes_eval_"))
    model.load_weights(weights, by_name=True)
    image_ids, results = evaluate.detect_dataset(model, dataset, verbose=False)
    if agnostic:
        dataset = dataset if dataset.num_classes == 2 else ClassAgnosticDataset(dataset)
        results = [dict(r, class_ids=np.ones_like(r["class_ids"])) for r in results]
    summary = evaluate.evaluate_results(dataset, image_ids, results, verbose=False)
    matterport = shapes.matterport_map(dataset, image_ids, results)
    return {"mask_AP": round(summary["segm"]["AP"], 4),
            "mask_AP50": round(summary["segm"]["AP50"], 4),
            "mask_AP75": round(summary["segm"]["AP75"], 4),
            "box_AP": round(summary["bbox"]["AP"], 4),
            "mAP@0.5_matterport": round(float(matterport), 4),
            "per_class_mask_AP": {k: round(float(v), 4)
                                  for k, v in summary["per_class"].items()}}


def run_arms(arms, train, val, held_out, steps, log_root, agnostic_eval=False, reuse=None):
    """Train and score each arm; ``reuse`` {arm: checkpoint} scores a checkpoint instead."""
    reuse = reuse or {}
    out = {}
    for name, (config, train_set) in arms.items():
        if name in reuse:
            path, seconds = reuse[name], None
        else:
            path, seconds = train_arm(config, train_set or train, val, steps,
                                      os.path.join(log_root, name))
        result = score(config, path, held_out, agnostic=agnostic_eval)
        result["train_s"] = None if seconds is None else round(seconds, 1)
        out[name] = result
        print(name, json.dumps(result), flush=True)
    return out


def imbalance(args, log_root):
    rare = dict(probabilities=(0.90, 0.08, 0.02))
    train = make_dataset(args.train_images, TRAIN_SEED, **rare)
    val = make_dataset(40, VAL_SEED, **rare)
    held_out = make_dataset(args.held_out_images, HELD_OUT_SEED)
    t = args.repeat_threshold
    arms = {"baseline": (config_of(), None),
            "class_weights_balanced": (config_of(CLASS_WEIGHTS="balanced"), None),
            "repeat_factor_{:g}".format(t): (config_of(REPEAT_FACTOR_THRESHOLD=t), None)}
    if args.arms:
        arms = {name: arms[name] for name in args.arms.split(",")}
    return {"train_instances": instance_counts(train),
            "held_out_instances": instance_counts(held_out),
            "arms": run_arms(arms, train, val, held_out, args.steps, log_root)}


def mask_loss(args, log_root):
    train = make_dataset(args.train_images, TRAIN_SEED)
    val = make_dataset(40, VAL_SEED)
    held_out = make_dataset(args.held_out_images, HELD_OUT_SEED)
    arms = {loss: (config_of(MASK_LOSS=loss), None) for loss in ("bce", "dice", "bce+dice")}
    return {"arms": run_arms(arms, train, val, held_out, args.steps, log_root)}


def agnostic(args, log_root):
    train = make_dataset(args.train_images, TRAIN_SEED)
    val = make_dataset(40, VAL_SEED)
    held_out = make_dataset(args.held_out_images, HELD_OUT_SEED)
    arms = {"class_aware": (config_of(), None),
            "class_agnostic": (config_of(NUM_CLASSES=2, MASK_CLASS_AGNOSTIC=True),
                               ClassAgnosticDataset(train))}
    # The agnostic arm validates on its own one-class view of the validation set.
    out = {}
    for name, (config, train_set) in arms.items():
        val_set = val if train_set is None else ClassAgnosticDataset(val)
        if name == "class_aware" and args.default_weights:
            path, seconds = args.default_weights, None
        else:
            path, seconds = train_arm(config, train_set or train, val_set, args.steps,
                                      os.path.join(log_root, name))
        result = score(config, path, held_out, agnostic=True)
        result["train_s"] = None if seconds is None else round(seconds, 1)
        out[name] = result
        print(name, json.dumps(result), flush=True)
    return {"arms": out}


def scratch(args, log_root):
    train = make_dataset(args.train_images, TRAIN_SEED)
    val = make_dataset(40, VAL_SEED)
    held_out = make_dataset(args.held_out_images, HELD_OUT_SEED)
    warmup = max(1, args.steps // 10)
    arms = {"batch_norm": (config_of(NORM="batch"), None),
            "group_norm_warmup": (config_of(NORM="group", WARMUP_STEPS=warmup), None)}
    reuse = {"batch_norm": args.default_weights} if args.default_weights else None
    return {"warmup_steps": warmup,
            "arms": run_arms(arms, train, val, held_out, args.steps, log_root, reuse=reuse)}


def backbone_lr(args, log_root):
    train = make_dataset(args.train_images, TRAIN_SEED)
    val = make_dataset(40, VAL_SEED)
    shifted = dict(palette="dark", scale=0.65)
    shifted_train = make_dataset(args.train_images // 4, TRAIN_SEED + 7, **shifted)
    shifted_val = make_dataset(40, VAL_SEED + 7, **shifted)
    held_out = make_dataset(args.held_out_images, HELD_OUT_SEED + 7, **shifted)
    base = config_of()
    if args.default_weights:
        pretrained, seconds = args.default_weights, None
    else:
        pretrained, seconds = train_arm(base, train, val, args.steps,
                                        os.path.join(log_root, "pretrain"))
    out = {"pretrained_on_shapes": dict(score(base, pretrained, held_out),
                                        train_s=None if seconds is None else round(seconds, 1))}
    print("pretrained", json.dumps(out["pretrained_on_shapes"]), flush=True)
    # Fine-tuning: Matterport's recipe of a pretrained start at a lower learning rate.
    finetune_steps = max(base.STEPS_PER_EPOCH, args.steps // 4)
    for name, multiplier in (("multiplier_1", 1.0), ("multiplier_0.1", 0.1)):
        config = config_of(BACKBONE_LR_MULTIPLIER=multiplier, LEARNING_RATE=3e-4)
        path, seconds = train_arm(config, shifted_train, shifted_val, finetune_steps,
                                  os.path.join(log_root, name), weights=pretrained)
        out[name] = dict(score(config, path, held_out), train_s=round(seconds, 1))
        print(name, json.dumps(out[name]), flush=True)
    return {"fine_tune_steps": finetune_steps, "fine_tune_images": args.train_images // 4,
            "arms": out}


EXPERIMENTS = {"imbalance": imbalance, "mask_loss": mask_loss, "agnostic": agnostic,
               "scratch": scratch, "backbone_lr": backbone_lr}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS) + ["all"], required=True)
    parser.add_argument("--steps", type=int, default=400, help="training steps per arm")
    parser.add_argument("--train-images", type=int, default=800)
    parser.add_argument("--held-out-images", type=int, default=100)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--repeat-threshold", type=float, default=0.1,
                        help="imbalance: REPEAT_FACTOR_THRESHOLD of the repeat-factor arm")
    parser.add_argument("--arms", help="imbalance: only these arms, e.g. 'repeat_factor_0.5'")
    parser.add_argument("--default-weights",
                        help="checkpoint of the default arm (RecipeConfig on balanced shapes, "
                             "same steps), e.g. mask_loss's 'bce' arm: agnostic, scratch and "
                             "backbone_lr score it instead of training that arm again")
    args = parser.parse_args()
    global STEPS_PER_EPOCH
    STEPS_PER_EPOCH = args.steps_per_epoch
    names = sorted(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    log_root = tempfile.mkdtemp(prefix="recipes_")
    report = {"settings": {"steps_per_arm": args.steps, "image_size": IMAGE_SIZE,
                           "default_weights": args.default_weights,
                           "batch": RecipeConfig.IMAGES_PER_GPU,
                           "train_images": args.train_images,
                           "held_out_images": args.held_out_images},
              "machine": machine()}
    for name in names:
        start = time.time()
        report[name] = EXPERIMENTS[name](args, os.path.join(log_root, name))
        report[name]["wall_clock_s"] = round(time.time() - start, 1)
    emit(report, args.out)


if __name__ == "__main__":
    main()
