"""Training recipes and the run helpers every command line shares (``python -m mrcnn`` and the
samples through ``samples/common.py``): the epoch schedule of a recipe, the from-scratch recipe
that ``--weights none`` switches to, the ``--weights`` choices, and the printed COCO figures.

A recipe is a tuple of stages ``(layers, last epoch, learning-rate factor)``. With pretrained
weights the samples keep Matterport's stages (heads first, then deeper layers). From random
weights there is no pretrained backbone for a heads-first stage to protect, so
:func:`training_plan` turns any recipe into one ``"all"`` stage and applies
``FROM_SCRATCH``: the arm that won the from-scratch comparison of ``benchmarks/recipes.py``
(docs/BENCHMARKS.md, "From scratch: BatchNorm vs GroupNorm with warm-up": mask AP 0.567 against
BatchNorm's 0.347 in the same 500 steps), i.e. GroupNorm, Adam at 1e-3 under a cosine decay and
a linear warm-up over the first tenth of the steps; and the paper's RoIAlign (2x2 samples per
bin, half-pixel aligned), which raised the nucleus sample's mask AP from scratch from 0.816 to
0.912 (docs/BENCHMARKS.md, "What they are worth on the nucleus sample from scratch", 3 seeds
each). Pretrained weights keep the config's sampling (Matterport's by default: its COCO
weights were trained with it; ImageNet-initialized training was not measured with the switch).
"""

import json
import math
import os

import numpy as np

from mrcnn.config import Config

# The weights a command line accepts besides a file path.
WEIGHTS_CHOICES = ("coco", "imagenet", "last", "none", "torchvision")

WEIGHTS_HELP = ("'coco' (Matterport's COCO weights, mask_rcnn_coco.h5, downloaded when absent), "
                "'torchvision' (torchvision's COCO Mask R-CNN converted by python -m "
                "mrcnn.weights.convert into weights/mask_rcnn_torchvision_coco.h5, with its "
                "architecture), 'last' (newest checkpoint under --logs), 'imagenet' (ResNet "
                "backbone only), 'none' (random initialization: every layer trains from the "
                "first step with the from-scratch recipe) or the path of an .h5 file")

# --weights torchvision: the converted file (weights/README.md) and the attributes of
# config.TorchvisionMaskRCNNConfig a model needs to take its weights and compute what they were
# trained for (architecture, input normalization, box coding, RoIAlign, mask paste); the
# config keeps its classes, image size, thresholds and training settings.
TORCHVISION_WEIGHTS_FILE = "mask_rcnn_torchvision_coco.h5"
TORCHVISION_ARCHITECTURE = (
    "BACKBONE", "RESNET_STYLE", "MEAN_PIXEL", "PIXEL_STD", "TOP_DOWN_PYRAMID_SIZE", "FPN_NORM",
    "RPN_CONV_CHANNELS", "RPN_CONV_DEPTH", "RPN_ANCHOR_RATIOS", "RPN_ANCHOR_STYLE",
    "RPN_BBOX_STD_DEV", "BBOX_STD_DEV", "BOX_DECODING", "RPN_PROPOSALS_PER_LEVEL",
    "ROI_ALIGN_SAMPLING_RATIO", "ROI_ALIGN_ALIGNED", "ROI_LEVEL_MAPPING", "POOL_SIZE",
    "MASK_POOL_SIZE", "MASK_SHAPE", "FPN_CLASSIF_FC_LAYERS_SIZE", "BOX_HEAD_CONVS",
    "BOX_HEAD_FCS", "MASK_HEAD_CHANNELS", "MASK_PASTE")

# Layers whose shape depends on the number of classes: skipped when loading the COCO weights
# into a model with another class count.
COCO_HEAD_LAYERS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
COCO_NUM_CLASSES = 1 + 80

# Matterport's recipe for pretrained weights on a dataset of its own (the nucleus sample's):
# the heads first (they start random), then every layer.
PRETRAINED_STAGES = (("heads", 20, 1.0), ("all", 40, 1.0))

# The from-scratch recipe (see the module docstring). WARMUP_STEPS is set by training_plan to
# WARMUP_FRACTION of the run's steps (the benchmark's 50 of 500).
FROM_SCRATCH = {"NORM": "group", "OPTIMIZER": "adam", "LEARNING_RATE": 0.001,
                "LR_SCHEDULE": "cosine", "ROI_ALIGN_SAMPLING_RATIO": 2,
                "ROI_ALIGN_ALIGNED": True}
WARMUP_FRACTION = 0.1
# The recipe attributes a run records beside its checkpoints, so that inference and a resumed
# run rebuild the same model (GroupNorm weights do not load into BatchNorm layers).
RECIPE_ATTRIBUTES = tuple(FROM_SCRATCH) + ("WARMUP_STEPS",)
RUN_SETTINGS = "run_config.json"
SCRATCH, PRETRAINED = "from_scratch", "pretrained"


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


def set_by_class(config_class, name):
    """True when ``config_class`` (or a class it derives from, other than Config) sets ``name``."""
    return any(name in vars(klass) for klass in config_class.__mro__
               if klass not in Config.__mro__)


def jsonable(value):
    """``value`` as JSON data, or None when it is not plain data (a callable backbone)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def same_value(a, b):
    """True when two attribute values are equal (lists, tuples and arrays alike)."""
    try:
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
    except Exception:  # ragged or odd values: compare them as they are
        return a == b


def checkpoint_path(weights, config, logs_dir):
    """The checkpoint file behind ``--weights`` (a path, or "last": the newest under
    ``logs_dir`` of ``config``'s NAME, a class or an instance); None for the other choices."""
    # Imports Keras: only when needed (`mrcnn --help` stays fast).
    from mrcnn.engine import checkpoints

    choice = str(weights).lower()
    if choice == "last":
        return checkpoints.find_last(logs_dir, checkpoints.run_name(config))
    if choice in WEIGHTS_CHOICES:
        return None
    return weights


def run_settings(config, attributes=None):
    """What a run records (:data:`RUN_SETTINGS`): its recipe (``SCRATCH``, ``PRETRAINED`` or
    None) and attributes: ``RECIPE_ATTRIBUTES`` of ``config`` and ``attributes``."""
    names = RECIPE_ATTRIBUTES
    if not torchvision_attributes("torchvision", config):
        # A model of torchvision's architecture (--weights torchvision) records it too, so
        # that its checkpoints are rebuilt so whatever the config class says.
        names += TORCHVISION_ARCHITECTURE
    recorded = {name: jsonable(getattr(config, name)) for name in names}
    recorded.update(attributes or {})
    return {"recipe": getattr(config, "_recipe", None), "attributes": recorded}


def write_run_settings(log_dir, settings):
    """Write ``settings`` as ``log_dir/run_config.json`` (JSON: data, never code), atomically
    (a temporary file, then ``os.replace``): a killed run never leaves half a file."""
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, RUN_SETTINGS)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1)
    os.replace(temporary, path)


def settings_callback(model, settings):
    """A Keras callback writing ``settings`` into ``model``'s run directory when training
    begins (``train()`` has claimed the directory by then), before the first checkpoint: a
    run interrupted in its first stage resumes, and its checkpoints are rebuilt, with its
    recipe. Only the chief worker writes."""
    import keras

    from mrcnn.engine import distribute

    class RunSettings(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if distribute.is_chief(getattr(model, "strategy", None)):
                write_run_settings(model.log_dir, settings)

    return RunSettings()


def read_run_settings(weights_path, verbose=True):
    """The settings recorded beside the checkpoint ``weights_path``, or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(str(weights_path))), RUN_SETTINGS)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        settings = json.load(f)
    if verbose:
        print("Settings of the run ({}): {}".format(path, settings))
    return settings


# Recorded attributes that shape the graph a checkpoint's weights were trained in; the others
# (optimizer, schedule, thresholds a command may override) are the run's business.
# TORCHVISION_ARCHITECTURE holds the RoIAlign switches.
GRAPH_ATTRIBUTES = ("NORM",) + TORCHVISION_ARCHITECTURE


def graph_differences(config, weights_path):
    """["NAME: run R, config C", ...] for the GRAPH_ATTRIBUTES that the run of the checkpoint
    ``weights_path`` recorded (``run_config.json`` beside it) with another value than
    ``config`` has; [] without a record; a record that cannot be read is one difference
    (nothing can be checked). Weights load either way where the shapes agree, so a
    from-scratch checkpoint would otherwise run silently with, e.g., Matterport's RoIAlign."""
    try:
        settings = read_run_settings(weights_path, verbose=False)
    except (OSError, ValueError) as e:
        return ["{} unreadable ({})".format(RUN_SETTINGS, e)]
    recorded = (settings or {}).get("attributes", {})
    return ["{}: run {!r}, config {!r}".format(name, recorded[name], getattr(config, name))
            for name in GRAPH_ATTRIBUTES
            if name in recorded and hasattr(config, name)
            and not same_value(jsonable(getattr(config, name)), recorded[name])]


def with_run_settings(config_class, settings, keep=()):
    """``config_class`` with the recorded attributes of ``settings`` (None: unchanged), except
    those ``keep`` names (the current command line's): the run's final settings are those its
    checkpoints were trained with, whatever the class says."""
    attributes = {name: value for name, value in (settings or {}).get("attributes", {}).items()
                  if name not in keep
                  and not same_value(getattr(config_class, name, None), value)}
    if not attributes:
        return config_class
    return type(config_class.__name__, (config_class,), attributes)


def inference_config(config_class, settings, attributes=None):
    """The inference config instance of a run: ``config_class`` with the run's recorded
    ``settings`` (:func:`read_run_settings`, read once by the caller; None: none), then
    ``attributes`` (the command's own choices: its --set, GPU_COUNT=1...), which the recorded
    ones never override. Crops are a training device: a "crop" IMAGE_RESIZE_MODE becomes
    "pad64" (whole images padded to multiples of 64)."""
    attributes = dict(attributes or {})
    base = with_run_settings(config_class, settings, keep=attributes)
    if attributes.get("IMAGE_RESIZE_MODE", base.IMAGE_RESIZE_MODE) == "crop":
        # Crops are a training device: detect on whole images padded to multiples of 64.
        attributes["IMAGE_RESIZE_MODE"] = "pad64"
    return type(base.__name__, (base,), attributes)()


def training_plan(config_class, stages, weights, epochs=None, logs_dir=None, **overrides):
    """(config instance, stages) for training ``config_class`` from ``weights``.

    stages: the recipe for pretrained weights, scaled to ``epochs`` by :func:`schedule`.
    weights "none": one ``"all"`` stage to the recipe's last epoch, and ``FROM_SCRATCH``'s
    attributes except those ``config_class`` sets itself (a user's config keeps its choices)
    or ``overrides`` names; WARMUP_STEPS is a tenth of the run's steps unless set so.
    A checkpoint (a path, or "last" under ``logs_dir``) with recorded settings resumes with
    them, and a run started from scratch keeps training every layer.
    overrides: attributes set last (the command line's). What the recipe set is printed.
    """
    stages = schedule(stages, epochs)
    settings = None
    if logs_dir is not None or str(weights).lower() != "last":
        path = checkpoint_path(weights, config_class, logs_dir)
        settings = read_run_settings(path) if path else None
    if settings:
        overrides = {**settings.get("attributes", {}), **overrides}
    imposed = {k: v for k, v in torchvision_attributes(weights, config_class).items()
               if k not in overrides}
    if imposed:
        print("torchvision's weights: its architecture ({})".format(", ".join(sorted(imposed))))
        overrides = {**imposed, **overrides}
    if str(weights).lower() != "none" and (settings or {}).get("recipe") != SCRATCH:
        return type(config_class.__name__, (config_class,),
                    dict(overrides, _recipe=PRETRAINED))(), stages
    stages = [("all", stages[-1][1], 1.0)]
    # A resumed run takes what it recorded (in overrides by now) and nothing more: one started
    # before an attribute joined the recipe (the RoIAlign switches) goes on as it began.
    applied = {name: value for name, value in FROM_SCRATCH.items()
               if not set_by_class(config_class, name) and name not in overrides
               and not settings}
    attributes = {**applied, **overrides}
    if not set_by_class(config_class, "WARMUP_STEPS") and "WARMUP_STEPS" not in overrides:
        steps = attributes.get("STEPS_PER_EPOCH", config_class.STEPS_PER_EPOCH)
        applied["WARMUP_STEPS"] = attributes["WARMUP_STEPS"] = max(
            1, int(WARMUP_FRACTION * steps * stages[-1][1]))
    kept = sorted(set(FROM_SCRATCH) - set(applied))
    print("From random weights: every layer trains from the first step (from-scratch recipe: "
          "{}{})".format(", ".join("{}={!r}".format(k, v) for k, v in sorted(applied.items())),
                         "; kept from the config or the run: " + ", ".join(kept) if kept
                         else ""))
    attributes["_recipe"] = SCRATCH
    return type(config_class.__name__, (config_class,), attributes)(), stages


# check_classes' advice: the samples take a Config class with --config; python -m mrcnn
# takes the class count from the data file (its classes, or the training split's).
SAMPLES_CLASSES_HINT = "pass --config with a Config subclass whose NUM_CLASSES is {}"
DATA_FILE_CLASSES_HINT = ("check the data file's keys: 'classes' (the names, background "
                          "excluded) and 'config' (a Config class whose NUM_CLASSES it may "
                          "set), or the run the weights come from")


def check_classes(dataset, config, hint=None):
    """ValueError when the dataset's class count is not the config's NUM_CLASSES.

    hint: the advice of the message, with ``{}`` for the dataset's class count (default
    :data:`SAMPLES_CLASSES_HINT`; the command line passes :data:`DATA_FILE_CLASSES_HINT`).
    """
    if dataset.num_classes != config.NUM_CLASSES:
        raise ValueError("the dataset has {} classes (background included) but NUM_CLASSES is "
                         "{}: {}".format(dataset.num_classes, config.NUM_CLASSES,
                                         (hint or SAMPLES_CLASSES_HINT).format(
                                             dataset.num_classes)))


def train_stages(model, train_dataset, val_dataset, stages, augmentation=None, settings=None,
                 classes_hint=None):
    """Run ``schedule`` stages in turn; stages that a resumed run has passed are skipped.

    settings: what the run records (:func:`run_settings`; default: those of
    ``model.config``), written into the run directory as each stage begins training (see
    :func:`settings_callback`) and again when it ends. classes_hint: see
    :func:`check_classes`.
    """
    check_classes(train_dataset, model.config, classes_hint)
    settings = settings if settings is not None else run_settings(model.config)
    for layers, end, factor in stages:
        if model.epoch >= end:
            print("Skipping '{}' (up to epoch {}): the run is at epoch {}".format(
                layers, end, model.epoch))
            continue
        learning_rate = model.config.LEARNING_RATE * factor
        print("Training '{}' layers up to epoch {} at learning rate {:g}".format(
            layers, end, learning_rate))
        model.train(train_dataset, val_dataset, learning_rate=learning_rate, epochs=end,
                    layers=layers, augmentation=augmentation,
                    custom_callbacks=[settings_callback(model, settings)])
        # Again once the stage is done (the same settings): a train() that runs no callbacks
        # (a stand-in) still leaves them beside the run's checkpoints.
        write_run_settings(model.log_dir, settings)


def torchvision_attributes(weights, config=None):
    """The attributes --weights ``weights`` imposes: TORCHVISION_ARCHITECTURE's values of
    ``TorchvisionMaskRCNNConfig`` for "torchvision" (those ``config``, a class or instance,
    already has left out), else none."""
    if str(weights).lower() != "torchvision":
        return {}
    from mrcnn.config import TorchvisionMaskRCNNConfig

    return {name: getattr(TorchvisionMaskRCNNConfig, name) for name in TORCHVISION_ARCHITECTURE
            if config is None or not same_value(getattr(config, name), getattr(
                TorchvisionMaskRCNNConfig, name))}


def torchvision_weights_path(fallbacks=()):
    """The converted torchvision COCO weights (``utils.find_weights``); FileNotFoundError
    saying how to make them when there are none."""
    from mrcnn import utils

    path = utils.find_weights(TORCHVISION_WEIGHTS_FILE, fallbacks=fallbacks)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            "no {} (looked in $MRCNN_WEIGHTS_DIR and weights/{}); make it once, with torch "
            "installed: curl -LO https://download.pytorch.org/models/"
            "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth && python -m mrcnn.weights.convert "
            "torchvision maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth {}".format(
                TORCHVISION_WEIGHTS_FILE, "".join(", " + f for f in fallbacks), path))
    return path


def build_model(mode, config, weights, logs_dir, locate_coco):
    """A ``MaskRCNN`` in ``mode`` with a --weights choice applied.

    weights: "coco", "torchvision", "last", "imagenet", "none" or a path (see
    ``WEIGHTS_HELP``). "torchvision" builds the model with torchvision's architecture
    (:func:`torchvision_attributes`; training configs have them from :func:`training_plan`).
    COCO weights skip the class-specific head layers when ``config.NUM_CLASSES`` is not the
    file's (81 for Matterport's, 91 for torchvision's). locate_coco: a function returning the
    path of ``mask_rcnn_coco.h5`` (downloading it when absent), called before the model is
    built so that a failed download fails fast. A checkpoint of an earlier run ("last" or its
    path) makes training resume after its epoch.
    config is used as it is: its run's recorded settings (e.g. GroupNorm from scratch) are
    applied once, by the caller (:func:`training_plan`, or :func:`inference_config`).
    """
    from mrcnn import model as modellib

    choice = str(weights).lower()
    path = locate_coco() if choice == "coco" else weights
    if choice == "torchvision":
        path = torchvision_weights_path()
        attributes = torchvision_attributes(weights, config)
        if attributes:
            config = type(type(config).__name__, (type(config),), attributes)()
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
    from mrcnn.config import TorchvisionMaskRCNNConfig

    file_classes = {"coco": COCO_NUM_CLASSES,
                    "torchvision": TorchvisionMaskRCNNConfig.NUM_CLASSES}
    exclude = COCO_HEAD_LAYERS if choice in file_classes and \
        config.NUM_CLASSES != file_classes[choice] else None
    run_file = os.path.join(os.path.dirname(os.path.abspath(str(path))), RUN_SETTINGS)
    if choice not in file_classes and not os.path.isfile(run_file):
        exclude = pretrained_exclusions(path, config)
    print("Loading weights", path)
    model.load_weights(path, by_name=True, exclude=exclude)
    return model


def pretrained_exclusions(path, config):
    """The class-specific layers to leave out when loading pretrained weights that are not a
    run's checkpoint (no run_config.json beside them: a converted or downloaded file, to
    fine-tune) into a model of another class count; None when the counts agree. A run's own
    checkpoint of another class count stays an error: it is a wrong --config."""
    from mrcnn.weights import loading as weights_lib

    if not os.path.isfile(str(path)):
        return None      # load_weights says what is wrong with the path
    classes = weights_lib.file_num_classes(path)
    if classes is None or classes == config.NUM_CLASSES:
        return None
    print("{} was trained for {} classes, NUM_CLASSES is {}: its class-specific layers ({}) "
          "are left out and start random".format(path, classes, config.NUM_CLASSES,
                                                 ", ".join(COCO_HEAD_LAYERS)))
    return COCO_HEAD_LAYERS


def format_metrics(summary):
    """The metrics table of an ``evaluate_coco`` summary, as printed lines."""
    lines = ["COCO figures on {} images ({} detections); AP averages IoU 0.50:0.95:".format(
        summary["num_images"], summary["num_detections"]),
        "  {:5} {:>6} {:>6} {:>6}".format("", "AP", "AP50", "AP75")]
    for iou_type, label in (("segm", "mask"), ("bbox", "box")):
        stats = summary[iou_type]
        lines.append("  {:5} {:6.3f} {:6.3f} {:6.3f}".format(label, stats["AP"], stats["AP50"],
                                                            stats["AP75"]))
    return "\n".join(lines)


def run_evaluation(model, dataset, limit=0, results_path=None):
    """COCO mask and box metrics of ``model`` on ``dataset`` (the first ``limit`` images),
    printed as a table; returns ``mrcnn.evaluation.evaluate.evaluate_coco``'s summary."""
    from mrcnn.evaluation import evaluate as mrcnn_evaluate

    check_classes(dataset, model.config)
    image_ids = list(dataset.image_ids)
    if limit:
        image_ids = image_ids[:limit]
    print("Running COCO evaluation on {} images".format(len(image_ids)))
    summary = mrcnn_evaluate.evaluate_coco(model, dataset, image_ids=image_ids,
                                           results_path=results_path)
    print("\n" + format_metrics(summary))
    return summary
