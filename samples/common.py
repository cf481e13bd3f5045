"""Command-line plumbing shared by the samples: the ``--weights`` choices, ``--config``, the
epoch schedule of a training recipe and the printed COCO figures."""

import argparse
import os
import sys

# Run as a script from anywhere: make the repository's mrcnn importable.
ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)

from mrcnn.engine import recipes  # noqa: E402
from mrcnn import utils  # noqa: E402
from mrcnn.cli import non_negative_int, positive_int  # noqa: E402
from mrcnn.config import load_config_class  # noqa: E402
# The recipe helpers live in mrcnn.engine.recipes (shared with ``python -m mrcnn``); the samples
# keep calling them as common.<name>.
from mrcnn.engine.recipes import (  # noqa: E402,F401
    COCO_HEAD_LAYERS, COCO_NUM_CLASSES, check_classes, run_evaluation, schedule, train_stages)

# Matterport's COCO-trained weights: looked for by utils.find_weights in $MRCNN_WEIGHTS_DIR and
# weights/, then (where the samples kept them before) at the repository root and in --logs;
# downloaded into weights/ (see weights/README.md).
COCO_WEIGHTS_FILE = "mask_rcnn_coco.h5"
DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")

WEIGHTS_HELP = ("'coco' (Matterport's COCO weights, mask_rcnn_coco.h5 from weights/ "
                "($MRCNN_WEIGHTS_DIR first), the repository root or --logs, downloaded into "
                "weights/ when absent), 'torchvision' (torchvision's COCO Mask R-CNN converted "
                "into weights/mask_rcnn_torchvision_coco.h5 by python -m mrcnn.weights.convert, "
                "with its architecture), 'last' (newest checkpoint under --logs), "
                "'imagenet' (ResNet backbone only), 'none' (random initialization: every "
                "layer trains from the first step with the from-scratch recipe) or the path of "
                "an .h5 file")


class SampleParser(argparse.ArgumentParser):
    """The samples' parser: --weights is required by every command but ``inspect`` (which
    builds no model)."""

    def parse_known_args(self, args=None, namespace=None):
        parsed, extra = super().parse_known_args(args, namespace)
        if getattr(parsed, "command", None) != "inspect" and parsed.weights is None:
            self.error("the following arguments are required: --weights")
        return parsed, extra


def sample_parser(description, commands, limit_default=0, weights_aliases=()):
    """An ArgumentParser with the options every sample takes.

    command, --dataset, --weights (also under ``weights_aliases``; not needed by
    ``inspect``), --logs, --config, --epochs, --steps, --limit and --results.
    """
    parser = SampleParser(description=description)
    parser.add_argument("command", choices=commands, metavar="<command>",
                        help=" | ".join(commands))
    parser.add_argument("--dataset", metavar="/path/to/dataset/",
                        help="root directory of the dataset")
    parser.add_argument("--weights", *weights_aliases, dest="weights",
                        help=WEIGHTS_HELP + " (every command but inspect)")
    parser.add_argument("--logs", default=DEFAULT_LOGS_DIR, metavar="/path/to/logs/",
                        help="logs and checkpoints directory (default: logs/)")
    parser.add_argument("--config", metavar="package.module:Class",
                        help="use this Config subclass instead of the sample's")
    parser.add_argument("--epochs", type=int,
                        help="train: stop at this epoch; the recipe's stages are scaled to it")
    parser.add_argument("--steps", type=positive_int,
                        help="train: steps per epoch (default: the config's STEPS_PER_EPOCH)")
    parser.add_argument("--limit", type=non_negative_int, default=limit_default,
                        help="evaluate: number of images; inspect: images of each split; "
                             "0 for all (default: {})".format(limit_default))
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
    """Path of ``mask_rcnn_coco.h5`` (``utils.find_weights``): the first copy found in
    ``$MRCNN_WEIGHTS_DIR``, ``weights/``, the repository root or ``logs_dir``.

    When none exists, the file is downloaded into ``weights/`` (``utils.weights_dir()``);
    offline that raises ``utils.DownloadError`` with the URL and what to do.
    """
    path = utils.find_weights(COCO_WEIGHTS_FILE, fallbacks=(ROOT_DIR, logs_dir))
    if not os.path.isfile(path):
        utils.download_trained_weights(path)
    return path


def build_model(mode, config, weights, logs_dir):
    """A ``MaskRCNN`` in ``mode`` with a --weights choice applied (``recipes.build_model``);
    "coco" is ``mask_rcnn_coco.h5`` of ``weights/``, the repository root or ``logs_dir``,
    downloaded into ``weights/`` when absent (see :func:`locate_coco_weights`).

    In inference mode the settings recorded by the checkpoint's run (its recipe: GroupNorm
    from scratch...) are applied here, once (``recipes.inference_config``), except those
    ``config``'s own class sets (:func:`make_config`'s attributes: GPU_COUNT=1...).
    (Training configs come with their run's settings from :func:`training_config`.)
    """
    if mode == "inference":
        checkpoint = recipes.checkpoint_path(weights, config, logs_dir)
        settings = recipes.read_run_settings(checkpoint) if checkpoint else None
        if settings:
            own = {name: value for name, value in vars(type(config)).items()
                   if name.isupper()}
            config = recipes.inference_config(type(config), settings, own)
    return recipes.build_model(mode, config, weights, logs_dir,
                               locate_coco=lambda: locate_coco_weights(logs_dir))


def training_config(config_spec, default, weights, stages, epochs=None, logs_dir=None,
                    **attributes):
    """(config, stages) to train the --config class (or ``default``) from ``weights``.

    ``recipes.training_plan``: Matterport's ``stages`` scaled to ``epochs`` with pretrained
    weights; with "none", every layer from the first step under the from-scratch recipe; a
    checkpoint ("last" under ``logs_dir``, or a path) resumes with its run's recorded recipe.
    attributes: the command line's overrides (e.g. STEPS_PER_EPOCH), applied last.
    """
    base = load_config_class(config_spec) if config_spec else default
    return recipes.training_plan(base, stages, weights, epochs, logs_dir=logs_dir,
                                 **attributes)


def inspect_splits(splits, config, logs_dir, limit=None):
    """The samples' ``inspect`` command: the dataset report of ``splits`` ({name: prepared
    dataset}, training set first) under ``config``, written to
    ``logs_dir/<name>_inspect_<time>/`` (``mrcnn.data.inspect_data.write_report``); returns it.
    limit: only the first N images of each split (None or 0: all)."""
    import datetime

    from mrcnn.data import inspect_data

    name = (config.NAME or "mrcnn").lower()
    out = os.path.join(logs_dir, "{}_inspect_{:%Y%m%dT%H%M%S}".format(name,
                                                                   datetime.datetime.now()))
    return inspect_data.write_report(splits, config, out,
                                     title="{}: dataset report".format(name),
                                     limit=limit or None)
