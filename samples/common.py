"""Command-line plumbing shared by the samples: the ``--weights`` choices, ``--config``, the
epoch schedule of a training recipe and the printed COCO figures."""

import argparse
import math
import os
import sys

# Run as a script from anywhere: make the repository's mrcnn importable.
ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)

from mrcnn import evaluate as mrcnn_evaluate  # noqa: E402
from mrcnn import utils  # noqa: E402
from mrcnn.config import load_config_class  # noqa: E402

# Matterport's COCO-trained weights: looked for here and in --logs, downloaded here.
COCO_WEIGHTS_PATH = os.path.join(ROOT_DIR, "mask_rcnn_coco.h5")
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")

# Layers whose shape depends on the number of classes: skipped when loading the COCO weights
# into a model with another class count.
COCO_HEAD_LAYERS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
COCO_NUM_CLASSES = 1 + 80

WEIGHTS_HELP = ("'coco' (Matterport's COCO weights, mask_rcnn_coco.h5 from the repository root or "
                "--logs, downloaded when absent), 'last' (newest checkpoint under --logs), "
                "'imagenet' (ResNet backbone only), 'none' (random initialization) or the "
                "path of an .h5 file")


def sample_parser(description, commands, limit_default=0, weights_aliases=()):
    """An ArgumentParser with the options every sample takes.

    command, --dataset, --weights (also under ``weights_aliases``), --logs, --config,
    --epochs, --steps, --limit and --results.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("command", choices=commands, metavar="<command>",
                        help=" | ".join(commands))
    parser.add_argument("--dataset", metavar="/path/to/dataset/",
                        help="root directory of the dataset")
    parser.add_argument("--weights", *weights_aliases, dest="weights", required=True,
                        help=WEIGHTS_HELP)
    parser.add_argument("--logs", default=DEFAULT_LOGS_DIR, metavar="/path/to/logs/",
                        help="logs and checkpoints directory (default: logs/)")
    parser.add_argument("--config", metavar="package.module:Class",
                        help="use this Config subclass instead of the sample's")
    parser.add_argument("--epochs", type=int,
                        help="train: stop at this epoch; the recipe's stages are scaled to it")
    parser.add_argument("--steps", type=int,
                        help="train: steps per epoch (default: the config's STEPS_PER_EPOCH)")
    parser.add_argument("--limit", type=int, default=limit_default,
                        help="evaluate: number of images, 0 for all (default: {})".format(
                            limit_default))
    parser.add_argument("--results", metavar="FILE.json",
                        help="evaluate: also write the metrics and detections to this file")
    return parser


def make_config(config_spec, default, **attributes):
    """An instance of the --config class (or ``default``) with ``attributes`` overridden.

    config_spec: "package.module:ClassName" or None.
    """
    base = load_config_class(config_spec) if config_spec else default
    return type(base.__name__, (base,), attributes)()


def locate_coco_weights(logs_dir):
    """Path of ``mask_rcnn_coco.h5``: the repository root's or ``logs_dir``'s copy.

    When neither exists, the file is downloaded to the repository root; offline that raises
    ``utils.DownloadError`` with the URL and what to do.
    """
    for path in (COCO_WEIGHTS_PATH, os.path.join(logs_dir, "mask_rcnn_coco.h5")):
        if os.path.isfile(path):
            return path
    utils.download_trained_weights(COCO_WEIGHTS_PATH)
    return COCO_WEIGHTS_PATH


def build_model(mode, config, weights, logs_dir):
    """A ``MaskRCNN`` in ``mode`` with a --weights choice applied.

    weights: "coco", "last", "imagenet", "none" or a path (see ``WEIGHTS_HELP``). COCO weights
    skip the class-specific head layers when ``config.NUM_CLASSES`` is not COCO's 81. They are
    located (or downloaded) before the model is built, so that a failed download fails fast.
    A checkpoint of an earlier run ("last" or its path) makes training resume after its epoch.
    """
    from mrcnn import model as modellib

    choice = weights.lower()
    path = locate_coco_weights(logs_dir) if choice == "coco" else weights
    model = modellib.MaskRCNN(mode=mode, config=config, model_dir=logs_dir)
    if choice == "none":
        print("Weights: none (random initialization)")
        return model
    if choice == "imagenet":
        print("Loading ImageNet weights into the backbone")
        model.load_weights("imagenet")
        return model
    if choice == "last":
        path = model.find_last()
    exclude = COCO_HEAD_LAYERS if choice == "coco" and \
        config.NUM_CLASSES != COCO_NUM_CLASSES else None
    print("Loading weights", path)
    model.load_weights(path, by_name=True, exclude=exclude)
    return model


def schedule(stages, epochs=None):
    """A recipe's stages, ``(layers, last epoch, learning-rate factor)``, ending at ``epochs``.

    Stage ends are scaled by ``epochs / recipe length`` and rounded up; stages left empty by
    the scaling are dropped. Without ``epochs`` the recipe is returned as it is.
    """
    if epochs is None:
        return list(stages)
    if epochs < 1:
        raise ValueError("--epochs must be at least 1, got {}".format(epochs))
    total = stages[-1][1]
    scaled, previous = [], 0
    for layers, end, factor in stages:
        end = min(epochs, math.ceil(end * epochs / total))
        if end > previous:
            scaled.append((layers, end, factor))
            previous = end
    return scaled


def check_classes(dataset, config):
    """ValueError when the dataset's class count is not the config's NUM_CLASSES."""
    if dataset.num_classes != config.NUM_CLASSES:
        raise ValueError("the dataset has {} classes (background included) but NUM_CLASSES is "
                         "{}: pass --config with a Config subclass whose NUM_CLASSES is {}".format(
                             dataset.num_classes, config.NUM_CLASSES, dataset.num_classes))


def train_stages(model, train_dataset, val_dataset, stages, augmentation=None):
    """Run ``schedule`` stages in turn; stages that a resumed run has passed are skipped."""
    check_classes(train_dataset, model.config)
    for layers, end, factor in stages:
        if model.epoch >= end:
            print("Skipping '{}' (up to epoch {}): the run is at epoch {}".format(
                layers, end, model.epoch))
            continue
        learning_rate = model.config.LEARNING_RATE * factor
        print("Training '{}' layers up to epoch {} at learning rate {:g}".format(
            layers, end, learning_rate))
        model.train(train_dataset, val_dataset, learning_rate=learning_rate, epochs=end,
                    layers=layers, augmentation=augmentation)


def run_evaluation(model, dataset, limit=0, results_path=None):
    """COCO mask and box metrics of ``model`` on ``dataset`` (the first ``limit`` images),
    printed as a table; returns ``mrcnn.evaluate.evaluate_coco``'s summary."""
    check_classes(dataset, model.config)
    image_ids = list(dataset.image_ids)
    if limit:
        image_ids = image_ids[:limit]
    print("Running COCO evaluation on {} images".format(len(image_ids)))
    summary = mrcnn_evaluate.evaluate_coco(model, dataset, image_ids=image_ids,
                                           results_path=results_path)
    print("\nCOCO figures on {} images ({} detections); AP averages IoU 0.50:0.95:".format(
        summary["num_images"], summary["num_detections"]))
    print("  {:5} {:>6} {:>6} {:>6}".format("", "AP", "AP50", "AP75"))
    for iou_type, label in (("segm", "mask"), ("bbox", "box")):
        stats = summary[iou_type]
        print("  {:5} {:6.3f} {:6.3f} {:6.3f}".format(label, stats["AP"], stats["AP50"],
                                                      stats["AP75"]))
    return summary
