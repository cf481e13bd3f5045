"""Synthetic shapes: squares, circles and triangles on plain backgrounds.

The dataset is generated on the fly (no files), deterministically for a given seed, so it is the
quickest way to check that the whole pipeline trains. Matterport's ``ShapesConfig`` and
``ShapesDataset`` API is kept.
"""

import math
import os
import sys

import numpy as np
import skimage.draw

# Run as a script from anywhere: make the repository's mrcnn importable.
ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)

from mrcnn import utils  # noqa: E402
from mrcnn.config import Config, load_config_class  # noqa: E402
from mrcnn.data.dataset import Dataset  # noqa: E402
from mrcnn.modeling.precision import cpu_has_bfloat16, cpu_info  # noqa: E402

SHAPES = ("square", "circle", "triangle")


class ShapesConfig(Config):
    """Configuration for training on the shapes dataset: small images, few RoIs."""
    NAME = "shapes"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 8
    NUM_CLASSES = 1 + 3  # background + 3 shapes
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    # Small images, so smaller anchors.
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    # Few objects per image: few RoIs are enough.
    TRAIN_ROIS_PER_IMAGE = 32
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 5


class ShapesDataset(Dataset):
    """Random images of squares, circles and triangles, drawn when loaded."""

    def load_shapes(self, count, height, width, seed=None):
        """Register ``count`` random images of ``height`` x ``width``.

        seed: the same seed gives the same images (specs are drawn here; pixels when loaded).
        """
        for class_id, name in enumerate(SHAPES, start=1):
            self.add_class("shapes", class_id, name)
        rng = np.random.default_rng(seed)
        for i in range(count):
            bg_color, shapes = self.random_image(height, width, rng)
            self.add_image("shapes", image_id=i, path=None, width=width, height=height,
                           bg_color=bg_color, shapes=shapes)

    def load_image(self, image_id):
        """Draw the image from its specs: [height, width, 3] uint8."""
        info = self.image_info[image_id]
        image = np.empty([info["height"], info["width"], 3], dtype=np.uint8)
        image[:, :] = np.array(info["bg_color"], dtype=np.uint8)
        for shape, color, dims in info["shapes"]:
            rr, cc = shape_pixels(shape, dims, image.shape[:2])
            image[rr, cc] = color
        return image

    def image_reference(self, image_id):
        """The image's shapes, e.g. ``shapes: ['circle', 'square']``."""
        info = self.image_info[image_id]
        if info["source"] == "shapes":
            return "shapes: {}".format([s[0] for s in info["shapes"]])
        return super().image_reference(image_id)

    def load_mask(self, image_id):
        """Instance masks with occlusion: shapes drawn later hide the earlier ones."""
        info = self.image_info[image_id]
        shapes = info["shapes"]
        mask = np.zeros([info["height"], info["width"], len(shapes)], dtype=bool)
        for i, (shape, _, dims) in enumerate(shapes):
            rr, cc = shape_pixels(shape, dims, mask.shape[:2])
            mask[rr, cc, i] = True
        # Walk from the top-most shape down, removing what is covered.
        occlusion = np.ones(mask.shape[:2], dtype=bool)
        for i in range(len(shapes) - 1, -1, -1):
            mask[:, :, i] &= occlusion
            occlusion &= ~mask[:, :, i]
        keep = mask.any(axis=(0, 1))  # a fully hidden shape is no instance
        class_ids = np.array([self.class_names.index(s[0]) for s in shapes], dtype=np.int32)
        return mask[:, :, keep], class_ids[keep]

    @staticmethod
    def random_shape(height, width, rng):
        """A random (shape, color, (center_y, center_x, size)) that fits the image."""
        shape = SHAPES[int(rng.integers(0, len(SHAPES)))]
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        buffer = 20
        y = int(rng.integers(buffer, height - buffer))
        x = int(rng.integers(buffer, width - buffer))
        size = int(rng.integers(buffer, max(buffer + 1, height // 4 + 1)))
        return shape, color, (y, x, size)

    def random_image(self, height, width, rng):
        """Background color and 1-4 shapes, with heavily overlapping ones removed by NMS."""
        bg_color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        shapes, boxes = [], []
        for _ in range(int(rng.integers(1, 5))):
            shape, color, (y, x, s) = self.random_shape(height, width, rng)
            shapes.append((shape, color, (y, x, s)))
            boxes.append([y - s, x - s, y + s, x + s])
        keep = utils.non_max_suppression(np.array(boxes), np.arange(len(boxes)), 0.3)
        return bg_color, [shapes[i] for i in sorted(keep)]


def shape_pixels(shape, dims, image_shape):
    """Row and column indices of a shape's pixels, clipped to ``image_shape``."""
    y, x, s = dims
    if shape == "square":
        return skimage.draw.polygon([y - s, y - s, y + s, y + s], [x - s, x + s, x + s, x - s],
                                    shape=image_shape)
    if shape == "circle":
        return skimage.draw.disk((y, x), s, shape=image_shape)
    if shape == "triangle":
        half = s / math.sin(math.radians(60))
        return skimage.draw.polygon([y - s, y + s, y + s], [x, x - half, x + half],
                                    shape=image_shape)
    raise ValueError("unknown shape {!r}".format(shape))


def make_datasets(config, train_count=500, val_count=50, seed=0):
    """Prepared train and validation ShapesDatasets of the config's image size."""
    h, w = int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])
    train = ShapesDataset()
    train.load_shapes(train_count, h, w, seed=seed)
    train.prepare()
    val = ShapesDataset()
    val.load_shapes(val_count, h, w, seed=seed + 1_000_003)
    val.prepare()
    return train, val


class ScratchShapesConfig(ShapesConfig):
    """Shapes from random initialization on a CPU (the `make demo` settings).

    Without pretrained weights BatchNorm must learn its statistics (TRAIN_BN=True) and Adam
    converges much faster than SGD. Each ResNet block starts as its shortcut
    (ZERO_INIT_RESIDUAL): the loss falls faster and, above all, more evenly from run to run.
    The heads and the pyramid are narrower than Matterport's:
    at 128x128 they are a large part of a step's cost. The task itself (128x128 images, 3
    classes, 1-4 objects, 32 RoIs per image) is Matterport's. On CPUs that compute bfloat16
    natively (AMX or AVX512-BF16) the convolutions run in bfloat16 (MIXED_PRECISION): a step
    takes about two thirds of float32's time there; in twelve demo runs the mean mask AP of
    the two precisions agreed within the runs' spread (docs/BENCHMARKS.md).
    """
    BACKBONE = "resnet50"
    MIXED_PRECISION = "mixed_bfloat16" if cpu_has_bfloat16() else None
    TRAIN_BN = True
    ZERO_INIT_RESIDUAL = True
    OPTIMIZER = "adam"
    LEARNING_RATE = 0.001
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    TOP_DOWN_PYRAMID_SIZE = 128
    # Mask head 64 wide, RPN convolution 256 and no L2 term: the step 19 % shorter in bfloat16,
    # 30 % in float32, the same mAP (docs/benchmarks/history.md, fifth pass; docs/BENCHMARKS.md,
    # sixth). Matterport's L2 term divides each tensor's sum of squares by its size, so its
    # gradient on a large kernel is ~1e-10 of the weight per step, yet it cost 7 % of the step.
    MASK_HEAD_CHANNELS = 64
    RPN_CONV_CHANNELS = 256
    WEIGHT_DECAY = 0.0
    # At most 4 objects per image: far fewer proposals than COCO needs.
    PRE_NMS_LIMIT = 2000
    POST_NMS_ROIS_TRAINING = 500
    POST_NMS_ROIS_INFERENCE = 500
    DETECTION_MIN_CONFIDENCE = 0.5
    # The mask head runs on every detection slot: 20 instead of 100 took the demo's
    # evaluation of 100 images from 12.9 to 8.0 s with the same metrics.
    DETECTION_MAX_INSTANCES = 20
    # `make demo` trains 4 epochs (400 steps), the last at a tenth of the learning rate
    # (docs/BENCHMARKS.md: without ZERO_INIT_RESIDUAL it needed 600), and passes
    # --validation-steps 0.
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 2


def tiny_backbone(input_image, stage5=True, train_bn=None):
    """Five strided convs standing in for ResNet: C1..C5 at strides 2..32, 16-64 channels.

    A ``Config.BACKBONE`` callable for smoke runs (tests, notebooks' fast mode): it trains in
    seconds and learns little.
    """
    from keras import layers
    x = input_image
    outputs = []
    for i, filters in enumerate([16, 16, 32, 32, 64], start=1):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                          name="tiny_conv{}".format(i))(x)
        outputs.append(x)
    return outputs


def tiny_backbone_shapes(image_shape):
    """Feature-map sizes [5, (height, width)] of ``tiny_backbone`` at strides 4..64."""
    return np.array([[int(np.ceil(image_shape[0] / s)), int(np.ceil(image_shape[1] / s))]
                     for s in (4, 8, 16, 32, 64)])


class TinyShapesConfig(ShapesConfig):
    """Smoke-run preset: ``tiny_backbone``, 64x64 images, few anchors, proposals and RoIs."""
    NAME = "tiny"
    BACKBONE = staticmethod(tiny_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(tiny_backbone_shapes)
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 24, 32, 48)
    IMAGES_PER_GPU = 2
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 300
    POST_NMS_ROIS_TRAINING = 100
    POST_NMS_ROIS_INFERENCE = 50
    TRAIN_ROIS_PER_IMAGE = 16
    MAX_GT_INSTANCES = 6
    MINI_MASK_SHAPE = (28, 28)
    DETECTION_MAX_INSTANCES = 10
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1
    TRAIN_BN = None
    SEED = 0


PRESETS = {"shapes": ShapesConfig, "scratch": ScratchShapesConfig, "tiny": TinyShapesConfig}


def inference_config(base, batch_size):
    """An inference instance of a training config class, ``batch_size`` images per batch
    (``Config.for_inference``)."""
    return base().for_inference(IMAGES_PER_GPU=batch_size)


def matterport_map(dataset, image_ids, results, iou_threshold=0.5):
    """Mean over images of Matterport's mask AP at ``iou_threshold`` (``utils.compute_ap``)."""
    from mrcnn import utils as mutils
    aps = []
    for image_id, r in zip(image_ids, results):
        gt_masks, gt_class_ids = dataset.load_mask(image_id)
        ap, *_ = mutils.compute_ap(mutils.extract_bboxes(gt_masks), gt_class_ids, gt_masks,
                                   r["rois"], r["class_ids"], r["scores"], r["masks"],
                                   iou_threshold)
        aps.append(ap)
    return float(np.mean(aps))


def evaluate_map(model, dataset, iou_threshold=0.5):
    """Detect on every image of ``dataset`` and return Matterport's mAP at ``iou_threshold``."""
    from mrcnn.evaluation import evaluate
    image_ids, results = evaluate.detect_dataset(model, dataset, verbose=False)
    return matterport_map(dataset, image_ids, results, iou_threshold)


def _weights_path(model, weights):
    if weights == "last":
        return model.find_last()
    return weights


def main(argv=None):
    import argparse
    import time

    from samples.common import positive_int

    parser = argparse.ArgumentParser(description="Train, evaluate or run Mask R-CNN on the "
                                                 "synthetic shapes dataset.")
    parser.add_argument("command", choices=["train", "evaluate", "detect", "demo"],
                        help="demo = train from scratch, evaluate, detect (what `make demo` "
                             "runs)")
    parser.add_argument("--weights", default="none",
                        help="'none' (random initialization), 'last' (newest checkpoint under "
                             "--logs) or a path to an .h5 file")
    parser.add_argument("--logs", default=os.path.join(ROOT_DIR, "logs"),
                        help="directory for logs and checkpoints (default: logs/)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="scratch",
                        help="'scratch': settings for random initialization (default); "
                             "'shapes': Matterport's ShapesConfig")
    parser.add_argument("--config", help="use this Config subclass instead of a preset, as "
                                         "'package.module:ClassName'")
    parser.add_argument("--epochs", type=int, default=4,
                        help="train up to this epoch (cumulative, as in Matterport; default "
                             "4, the scratch demo's)")
    parser.add_argument("--steps", type=positive_int,
                        help="steps per epoch (default: the preset's)")
    parser.add_argument("--validation-steps", type=int,
                        help="validation steps at each epoch end, 0 for none (default: the "
                             "preset's; the demo's: none)")
    parser.add_argument("--lr-drop-epochs", type=int, default=1,
                        help="train the last N epochs at a tenth of the learning rate")
    parser.add_argument("--no-epoch-pictures", action="store_true",
                        help="train: skip the detections on validation images at each epoch "
                             "end (TensorBoard pictures and the class-collapse check); the "
                             "demo does, its epochs are short")
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--images", type=int, default=100,
                        help="held-out images for evaluate, pictures for detect")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="shapes_detections.png",
                        help="detect: where to write the picture")
    parser.add_argument("--results", help="evaluate: also write the metrics and detections "
                                          "to this JSON file")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args)

    import keras

    from mrcnn import model as modellib

    base = config_class(args)
    if args.command == "train":
        config = base()
        config.display()
        train, val = make_datasets(config, train_count=args.train_images, val_count=50,
                                   seed=args.seed)
        model = modellib.MaskRCNN("training", config, args.logs)
        if args.weights != "none":
            model.load_weights(_weights_path(model, args.weights), by_name=True)
        start = time.time()
        drop_at = args.epochs - args.lr_drop_epochs
        callbacks = []
        if args.lr_drop_epochs and config.LR_SCHEDULE is None:
            # One train() call (one graph trace) with the learning-rate drop as a callback.
            callbacks.append(keras.callbacks.LearningRateScheduler(
                lambda epoch, lr: config.LEARNING_RATE / (10 if epoch >= drop_at else 1)))
        model.train(train, val, config.LEARNING_RATE, args.epochs, "all",
                    custom_callbacks=callbacks)
        print("Trained to epoch {} in {:.0f} s; checkpoints in {}".format(
            model.epoch, time.time() - start, model.log_dir))
        return

    model, held_out = load_inference_model(base, args)
    if args.command == "evaluate":
        return evaluate_command(model, held_out, args)
    return detect_command(model, held_out, args)


def config_class(args):
    """The preset (or ``--config``) class with the command line's seed and steps per epoch."""
    base = PRESETS[args.preset]
    if args.config:
        base = load_config_class(args.config)
    attrs = {"SEED": args.seed}
    if args.no_epoch_pictures:
        attrs.update(TENSORBOARD_IMAGES=False, CLASS_COLLAPSE_WARNING=False)
    if args.steps is not None:
        attrs["STEPS_PER_EPOCH"] = args.steps
    if args.validation_steps is not None:
        attrs["VALIDATION_STEPS"] = args.validation_steps
    return type(base.__name__, (base,), attrs)


def load_inference_model(base, args):
    """(inference MaskRCNN with ``args.weights`` loaded, held-out ShapesDataset)."""
    from mrcnn import model as modellib
    config = inference_config(base, batch_size=10)
    model = modellib.MaskRCNN("inference", config, args.logs)
    if args.weights == "none":
        print("Warning: evaluating randomly initialized weights")
    else:
        path = _weights_path(model, args.weights)
        print("Loading weights", path)
        model.load_weights(path, by_name=True)
    # Held-out images: a seed far from the training and validation seeds.
    size = base.IMAGE_MAX_DIM
    held_out = ShapesDataset()
    held_out.load_shapes(args.images, size, size, seed=args.seed + 7_777_777)
    held_out.prepare()
    return model, held_out


def evaluate_command(model, held_out, args):
    """COCO metrics and Matterport's mAP@0.5 of ``model`` on ``held_out``; returns the summary."""
    import time

    from mrcnn.evaluation import evaluate
    start = time.time()
    image_ids, results = evaluate.detect_dataset(model, held_out)
    seconds = time.time() - start
    summary = evaluate.evaluate_results(held_out, image_ids, results, verbose=False,
                                        results_path=args.results)
    m = matterport_map(held_out, image_ids, results)
    print("\nEvaluation on {} held-out images ({:.1f} s of detection):".format(
        len(held_out.image_ids), seconds))
    print("  {:8} {:>6} {:>6} {:>6}".format("", "AP", "AP50", "AP75"))
    for iou_type in ("segm", "bbox"):
        stats = summary[iou_type]
        print("  {:8} {:6.3f} {:6.3f} {:6.3f}".format(
            "mask" if iou_type == "segm" else "box", stats["AP"], stats["AP50"],
            stats["AP75"]))
    print("  per-class mask AP: " + ", ".join(
        "{} {:.3f}".format(k, v) for k, v in summary["per_class"].items()))
    if summary["warning"]:
        print("  WARNING: " + summary["warning"])
    print("mAP@0.5 (Matterport) on {} held-out images: {:.3f}".format(
        len(held_out.image_ids), m))
    summary["mAP@0.5"] = m
    return summary


def detect_command(model, held_out, args):
    """Draw ``model``'s detections on the first (up to 4) held-out images to ``args.out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mrcnn import visualize
    count = min(len(held_out.image_ids), 4) or 4
    images = [held_out.load_image(i) for i in range(count)]
    results = model.detect(images)
    fig, axes = plt.subplots(1, count, figsize=(4 * count, 4.4))
    axes = np.atleast_1d(axes)
    for ax, image, r in zip(axes, images, results):
        visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"],
                                    held_out.class_names, r["scores"], ax=ax)
    fig.suptitle("mrcnn detections on held-out shapes")
    fig.savefig(args.out, bbox_inches="tight")
    plt.close(fig)
    print("Wrote {} ({} detections in {} images)".format(
        os.path.abspath(args.out), sum(len(r["class_ids"]) for r in results), count))
    return args.out


def run_demo(args):
    """Train from random initialization, evaluate on held-out images, draw detections.

    Training runs through :func:`main`; the evaluation and the picture share one inference
    model loaded from the last checkpoint. Returns a dict of the mAP, the picture's path and
    the wall-clock seconds of each stage.
    """
    import argparse
    import json
    import time

    common = ["--logs", args.logs, "--preset", args.preset, "--seed", str(args.seed)] + (
        ["--config", args.config] if args.config else [])
    timings = {}
    start = time.time()
    # No validation pass: the held-out evaluation below measures the model, and the
    # validation graph's first trace alone took ~4 s (docs/benchmarks/history.md, third pass).
    main(["train", "--weights", args.weights, "--epochs", str(args.epochs),
          "--lr-drop-epochs", str(args.lr_drop_epochs), "--train-images",
          str(args.train_images), "--no-epoch-pictures", "--validation-steps",
          str(0 if args.validation_steps is None else args.validation_steps)]
         + (["--steps", str(args.steps)] if args.steps is not None else [])
         + common)
    timings["train_s"] = round(time.time() - start, 1)
    start = time.time()
    # One inference model, with the last checkpoint, for the evaluation and the picture.
    args = argparse.Namespace(**{**vars(args), "weights": "last", "results": None})
    model, held_out = load_inference_model(config_class(args), args)
    evaluation = evaluate_command(model, held_out, args)
    m = evaluation["mAP@0.5"]
    timings["evaluate_s"] = round(time.time() - start, 1)
    start = time.time()
    picture = detect_command(model, held_out, args)
    timings["detect_s"] = round(time.time() - start, 1)
    summary = {"mAP@0.5": round(m, 4), "held_out_images": args.images,
               "coco_mask_AP": round(evaluation["segm"]["AP"], 4),
               "coco_mask_AP50": round(evaluation["segm"]["AP50"], 4),
               "coco_mask_AP75": round(evaluation["segm"]["AP75"], 4),
               "coco_box_AP": round(evaluation["bbox"]["AP"], 4),
               "coco_box_AP50": round(evaluation["bbox"]["AP50"], 4),
               "coco_box_AP75": round(evaluation["bbox"]["AP75"], 4),
               "picture": os.path.abspath(picture), "epochs": args.epochs,
               "preset": args.preset, **timings,
               "total_s": round(sum(timings.values()), 1), "cpus": os.cpu_count(),
               **cpu_info()}
    print("\nDemo summary: " + json.dumps(summary))
    print("mAP@0.5 on {} held-out images: {:.3f}".format(args.images, m))
    print("Total {:.0f} s ({:.1f} min) on {} CPUs: {} [{}]".format(
        summary["total_s"], summary["total_s"] / 60, summary["cpus"],
        summary["cpu_model"], " ".join(summary["cpu_flags"])))
    print("Detections picture: {}".format(summary["picture"]))
    return summary


if __name__ == "__main__":
    main()
