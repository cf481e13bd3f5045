"""The command line ``python -m mrcnn <command> DATA ...`` (also installed as ``mrcnn``).

Commands, each on a data file (see :mod:`mrcnn.data.datafile`)::

    mrcnn inspect  data.yaml [--out DIR]                 # dataset report: text + one PNG page
    mrcnn train    data.yaml --weights coco|imagenet|last|none|PATH [--epochs N] [--steps N]
    mrcnn evaluate data.yaml --weights last [--split val] [--out DIR]
    mrcnn detect   data.yaml --weights last IMAGE_VIDEO_OR_FOLDER ... [--out DIR]
    mrcnn export   data.yaml --weights last --out model_dir [--format savedmodel|tflite|onnx]

``--set NAME=VALUE`` overrides a Config attribute (the value is read as YAML data: numbers,
lists, strings; never run). A new training run from random weights takes
RPN_ANCHOR_SCALES and MEAN_PIXEL from the dataset report unless something sets them
(``--no-data-defaults``); with pretrained weights they are only printed as advice, and a
resumed run keeps its own. ``detect --tiles`` runs :mod:`mrcnn.inference.tiling` on large images.
Training writes Matterport's run directory under ``--logs``
(``<name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch>.h5``) and, beside the checkpoints,
``run_config.json``: the recipe and the attributes the run set beyond the data file (the
from-scratch recipe, the data defaults, ``--set``), which evaluate, detect, export and a
resumed train read back so that a model trained with GroupNorm is rebuilt with GroupNorm.
With ``--weights none`` every layer trains from the first step under the from-scratch recipe
(:mod:`mrcnn.engine.recipes`); pretrained weights train the heads, then everything (Matterport's
schedule). Evaluate and detect write into ``--out`` (default: a
timestamped folder under ``--logs``): the metrics table, a COCO json of the detections and
pictures.
"""

import argparse
import datetime
import json
import os
import sys

import numpy as np

from mrcnn.data import datafile
from mrcnn.engine import recipes
from mrcnn.data.images import read_rgb

COMMANDS = ("inspect", "train", "evaluate", "detect", "export")
# Attributes Config computes in __init__ (instance attributes, so --set and the data file
# cannot name them); never stored in run_config.json.
COMPUTED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")
# detect: files of these extensions are images.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# detect: files of these extensions are videos (read frame by frame with OpenCV).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


class CommandError(Exception):
    """A mistake on the command line: printed as ``error: ...`` with exit status 2."""


def parse_set(items):
    """{NAME: value} of ``--set NAME=VALUE`` items; values are YAML data (``yaml.safe_load``)."""
    import yaml

    overrides = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        if not sep:
            raise CommandError("--set {!r}: expected NAME=VALUE".format(item))
        datafile.check_attribute(name, lambda message: _raise(
            "--set {}: {}".format(name, message)))
        try:
            overrides[name] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise CommandError("--set {}: not a YAML value: {}".format(item, e)) from e
    return overrides


def _raise(message):
    raise CommandError(message)


def _int_at_least(minimum, kind):
    """An argparse type of integers >= ``minimum`` (``kind`` names them in the message)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("expected a {} integer, got {!r}".format(
                kind, text)) from None
        if value < minimum:
            raise argparse.ArgumentTypeError("must be at least {}, got {}".format(minimum,
                                                                                value))
        return value
    parse.__name__ = kind.replace("-", "_") + "_int"    # argparse names the type in errors
    return parse


# Counts that must be at least 1 (0 is refused, not taken as unset), and counts where 0 means
# "none" or "all" (negative values are refused).
positive_int = _int_at_least(1, "positive")
non_negative_int = _int_at_least(0, "non-negative")


def build_parser():
    """The argparse parser of every command."""
    parser = argparse.ArgumentParser(
        prog="mrcnn", description="Mask R-CNN on an annotated dataset named by a data file "
                                  "(YAML or JSON; see mrcnn.data.datafile).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    helps = {"inspect": "dataset report: text summary and one PNG page",
             "train": "train (a run directory under --logs)",
             "evaluate": "COCO metrics on a split, detections json and pictures",
             "detect": "detect on images, videos or folders of them",
             "export": "SavedModel, TFLite or ONNX model"}
    for command in COMMANDS:
        p = sub.add_parser(command, help=helps[command], description=helps[command])
        p.add_argument("data", help="data file (.yaml, .yml or .json)")
        p.add_argument("--logs", default="logs", help="runs and checkpoints (default: logs/)")
        p.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                       help="override a Config attribute (repeatable)")
        if command != "inspect":
            p.add_argument("--weights", required=True, help=recipes.WEIGHTS_HELP)
        if command in ("inspect", "evaluate", "detect"):
            p.add_argument("--out", help="output folder (default: a timestamped folder under "
                                         "--logs)")
        if command in ("inspect", "evaluate"):
            p.add_argument("--limit", type=non_negative_int, default=0,
                           help="only the first N images of each split (0: all)")
        if command == "train":
            p.add_argument("--epochs", type=positive_int,
                           help="last epoch; the recipe's stages are scaled to it (default: "
                                "the recipe's 40)")
            p.add_argument("--steps", type=positive_int,
                           help="steps per epoch (STEPS_PER_EPOCH)")
            p.add_argument("--validation-steps", type=non_negative_int,
                           help="validation steps per epoch (VALIDATION_STEPS)")
            p.add_argument("--no-data-defaults", action="store_true",
                           help="keep the config's RPN_ANCHOR_SCALES and MEAN_PIXEL instead "
                                "of those the dataset report suggests (applied to a new "
                                "run from --weights none only; printed as advice otherwise)")
            p.add_argument("--inspect-images", type=int, default=200,
                           help="training images the data defaults are computed on "
                                "(default 200)")
        if command == "evaluate":
            p.add_argument("--split", default="val", choices=datafile.SPLITS)
            p.add_argument("--pictures", type=non_negative_int, default=4,
                           help="pictures of the first N images' detections (default 4)")
        if command == "detect":
            p.add_argument("inputs", nargs="+", metavar="IMAGE_VIDEO_OR_FOLDER",
                           help="image or video files ({}), or folders of them".format(
                               ", ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)))
            p.add_argument("--tiles", action="store_true",
                           help="detect on images in overlapping IMAGE_MAX_DIM tiles at full "
                                "resolution instead of resizing them (mrcnn.inference.tiling)")
            p.add_argument("--overlap", type=non_negative_int,
                           help="--tiles: pixels shared by neighbouring tiles (default a "
                                "quarter of the tile; above the largest object's side)")
        if command == "export":
            p.add_argument("--out", required=True,
                           help="SavedModel folder, or .tflite / .onnx file")
            p.add_argument("--format", default="savedmodel",
                           choices=("savedmodel", "tflite", "onnx"))
            p.add_argument("--quantize", choices=["dynamic"],
                           help="tflite only: dynamic-range quantization")
    return parser


def _stamp():
    return "{:%Y%m%dT%H%M%S}".format(datetime.datetime.now())


def _out_dir(args, data, command):
    out = args.out or os.path.join(args.logs, "{}_{}_{}".format(data.name, command, _stamp()))
    os.makedirs(out, exist_ok=True)
    return out


def run_attributes(config, base_class):
    """The attributes of ``config`` that differ from ``base_class``'s, as JSON data."""
    base = base_class()
    out = {}
    for name, value in config.to_dict().items():
        if name in COMPUTED or recipes.same_value(value, getattr(base, name)):
            continue
        value = recipes.jsonable(value)
        if value is not None:
            out[name] = value
    return out


def class_names_of(data):
    """The class names: the data file's ``classes``, else those of its training split."""
    if data.classes:
        return list(data.classes)
    return list(data.load("train", verbose=1).class_names[1:])


def resolve_weights(weights, config, logs):
    """(checkpoint path or the --weights choice, the run's recorded settings or None).

    "last" is the newest checkpoint of ``config``'s NAME under ``logs``; a path must exist, and
    so must the converted file of "torchvision" (``recipes.torchvision_weights_path``).
    The settings are ``recipes.read_run_settings``: the recipe and attributes of the run.
    """
    try:
        if str(weights).lower() == "torchvision":
            recipes.torchvision_weights_path()     # absent: say how to make it, before a model
        path = recipes.checkpoint_path(weights, config, logs)
    except ValueError as e:
        raise CommandError(str(e)) from e
    except FileNotFoundError as e:
        raise CommandError("--weights {}: {}".format(weights, e)) from e
    if path is None:
        return weights, None
    if not os.path.isfile(path):
        raise CommandError("--weights {}: no such file".format(weights))
    return path, recipes.read_run_settings(path)


def locate_coco_weights(logs):
    """``mask_rcnn_coco.h5`` (``utils.find_weights``): the first copy in ``$MRCNN_WEIGHTS_DIR``,
    ``weights/``, the current folder or ``logs``; downloaded into ``weights/`` when absent."""
    from mrcnn import utils

    path = utils.find_weights("mask_rcnn_coco.h5", fallbacks=(os.getcwd(), logs))
    if not os.path.isfile(path):
        utils.download_trained_weights(path)
    return path


def inference_model(args, data):
    """(MaskRCNN in inference mode with --weights loaded, class names)."""
    names = class_names_of(data)
    overrides = parse_set(args.set)
    base = data.config_class(1 + len(names))
    probe = type(base.__name__, (base,), overrides)
    weights, settings = resolve_weights(args.weights, probe, args.logs)
    # The run's settings (its recipe, --set at training), read once, then this command's
    # --set and one image per batch; build_model takes the config as it is.
    config = recipes.inference_config(base, settings,
                                      {**overrides, "GPU_COUNT": 1, "IMAGES_PER_GPU": 1})
    if str(weights).lower() == "none":
        print("Warning: --weights none: the model's weights are random")
    model = recipes.build_model("inference", config, weights, args.logs,
                                locate_coco=lambda: locate_coco_weights(args.logs))
    return model, names


def command_inspect(args, data):
    """Write ``report.txt`` and ``report.png``; returns the report dict."""
    from mrcnn.data import inspect_data

    train = data.load("train", verbose=1)
    splits = {"train": train}
    if "val" in data.splits:
        splits["val"] = data.load("val", train.class_names[1:], verbose=1)
    config = data.config_class(train.num_classes, parse_set(args.set))()
    return inspect_data.write_report(splits, config, _out_dir(args, data, "inspect"),
                                     title="{}: dataset report".format(data.name),
                                     limit=args.limit or None)


def data_defaults(base, overrides, train, args):
    """{attribute: value} chosen from the training data for a new run, printed: the
    RPN_ANCHOR_SCALES and MEAN_PIXEL that the dataset report suggests, unless the config
    class, the data file or the command line sets them. command_train applies them to a new
    run from random weights only, and prints them as advice with pretrained weights."""
    from mrcnn.data import inspect_data

    config = type(base.__name__, (base,), overrides)()
    print("Choosing defaults from the data (the first {} training images)".format(
        min(args.inspect_images, train.num_images)))
    report = inspect_data.inspect_dataset({"train": train}, config, limit=args.inspect_images)
    chosen = inspect_data.data_defaults(
        report, keep=lambda name: recipes.set_by_class(base, name) or name in overrides)
    print("Defaults from the data: {}".format(
        ", ".join("{}={}".format(k, v) for k, v in chosen.items()) or
        "none (the config's settings fit the data)"))
    return chosen


def command_train(args, data):
    """Train through the recipe of --weights; returns the last checkpoint's path."""
    train = data.load("train", verbose=1)
    val = data.load("val", train.class_names[1:], verbose=1) if "val" in data.splits else None
    overrides = parse_set(args.set)
    if args.steps is not None:
        overrides["STEPS_PER_EPOCH"] = args.steps
    if args.validation_steps is not None:
        overrides["VALIDATION_STEPS"] = args.validation_steps
    if val is None:
        overrides.setdefault("VALIDATION_STEPS", 0)
    base = data.config_class(train.num_classes)
    weights, settings = resolve_weights(args.weights, type(base.__name__, (base,), overrides),
                                        args.logs)
    # The data defaults shape a new model from random weights only: other weights were
    # trained with their anchors and mean (the defaults are printed as advice), and a resumed
    # run keeps its recorded settings.
    if settings is None and not args.no_data_defaults:
        chosen = data_defaults(base, overrides, train, args)
        if str(weights).lower() == "none":
            overrides.update(chosen)
        elif chosen:
            print("Not applied with pretrained weights (to use them: {})".format(
                " ".join("--set {}={}".format(k, json.dumps(recipes.jsonable(v)).replace(
                    " ", "")) for k, v in chosen.items())))
    # A run resumed from its checkpoint keeps its recorded settings and, when it started from
    # random weights, its every-layer stage (recipes.training_plan).
    config, stages = recipes.training_plan(base, recipes.PRETRAINED_STAGES, weights,
                                           args.epochs, logs_dir=args.logs, **overrides)
    config.display()
    print("Stages (layers, last epoch, learning-rate factor):", stages)
    model = recipes.build_model("training", config, weights, args.logs,
                                locate_coco=lambda: locate_coco_weights(args.logs))
    # The recipe and every setting the data file alone does not give, for a resumed run and
    # evaluate/detect/export to rebuild the same model: written when training begins, before
    # the first checkpoint (an interrupted run resumes with them).
    settings = recipes.run_settings(config, run_attributes(config, base))
    settings["data"] = os.path.abspath(data.path)
    recipes.train_stages(model, train, val, stages, settings=settings,
                         classes_hint=recipes.DATA_FILE_CLASSES_HINT)
    checkpoint = model.find_last()
    print("Checkpoints in", model.log_dir, "(last:", os.path.basename(checkpoint) + ")")
    return checkpoint


def _draw(image, result, names, path, title):
    from mrcnn import visualize
    visualize.display_instances(image, result["rois"], result["masks"], result["class_ids"],
                                names, result["scores"], title=title, figsize=(8, 8),
                                save_path=path)


def command_evaluate(args, data):
    """COCO metrics of a split: ``metrics.txt``, ``metrics.json`` (summary and COCO
    detections) and pictures; returns the summary."""
    from mrcnn.evaluation import evaluate

    model, names = inference_model(args, data)
    dataset = data.load(args.split, names, verbose=1)
    recipes.check_classes(dataset, model.config, recipes.DATA_FILE_CLASSES_HINT)
    out = _out_dir(args, data, "evaluate")
    image_ids = list(dataset.image_ids)[:args.limit or None]
    print("Detecting on {} images of {}".format(len(image_ids), args.split))
    image_ids, results = evaluate.detect_dataset(model, dataset, image_ids, batch_size=1)
    summary = evaluate.evaluate_results(dataset, image_ids, results,
                                        results_path=os.path.join(out, "metrics.json"))
    table = recipes.format_metrics(summary)
    lines = [table, "Per-class AP:"] + ["  {:20} {:.3f}".format(k, v)
                                        for k, v in summary["per_class"].items()]
    if summary["warning"]:
        lines.append("WARNING: " + summary["warning"])
    with open(os.path.join(out, "metrics.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    for image_id, result in list(zip(image_ids, results))[:args.pictures]:
        _draw(dataset.load_image(image_id), result, dataset.class_names,
              os.path.join(out, "detections_{}.png".format(image_id)),
              str(dataset.image_info[image_id]["id"]))
    print("\n" + table)
    print("Results in", out)
    summary["out"] = out
    return summary


def input_files(inputs):
    """The image and video files of ``inputs`` (files, or folders whose images and videos are
    taken, sorted)."""
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item)
                           if os.path.splitext(f)[1].lower() in known)
            if not found:
                raise CommandError("{}: no image or video files ({}) in this folder".format(
                    item, ", ".join(known)))
            files.extend(found)
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise CommandError("{}: no such file or folder".format(item))
    return files


def is_video(path):
    """True for the files ``detect`` reads as videos (by extension)."""
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _import_cv2():
    try:
        import cv2
    except ImportError as e:
        raise CommandError("detecting on videos needs OpenCV: pip install "
                           "opencv-python-headless") from e
    return cv2


def overlay(image, result, colors):
    """``image`` with each detection's mask blended in and its box drawn, in its class's
    colour (``visualize.apply_mask`` and ``draw_box``: no matplotlib, fast enough per frame)."""
    from mrcnn import visualize

    out = np.array(image, dtype=np.uint8, copy=True)
    for i, class_id in enumerate(result["class_ids"]):
        color = colors[int(class_id) % len(colors)]
        out = visualize.apply_mask(out, result["masks"][:, :, i], color)
        visualize.draw_box(out, result["rois"][i], [int(255 * c) for c in color])
    return out


def video_frames(path):
    """(frames per second, frame count or None, generator of [H, W, 3] uint8 RGB frames)."""
    cv2 = _import_cv2()
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise CommandError("{}: OpenCV cannot open this video".format(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0   # some containers do not record it
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def frames():
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield np.ascontiguousarray(frame[..., ::-1])   # OpenCV frames are BGR
        finally:
            capture.release()
    return fps, count, frames()


def command_detect(args, data):
    """Detect on images and videos: a picture per image, an annotated ``.avi`` (Motion JPEG)
    per video, and ``detections.json`` (COCO format: images, or video frames as images with
    ``video`` and ``frame``, categories, and the detections as annotations with their score);
    returns the json's path."""
    import keras

    from mrcnn.evaluation import evaluate
    from mrcnn import visualize

    files = input_files(args.inputs)
    model, names = inference_model(args, data)
    out = _out_dir(args, data, "detect")
    class_names = ["BG"] + names
    colors = visualize.random_colors(len(class_names), seed=0)
    images, annotations = [], []

    def record(image, result, **entry):
        entry.update(id=len(images) + 1, height=int(image.shape[0]), width=int(image.shape[1]))
        images.append(entry)
        for detection in evaluate.detections_to_coco(entry["id"], result):
            detection.update(id=len(annotations) + 1, iscrowd=0,
                             area=float(detection["bbox"][2] * detection["bbox"][3]))
            annotations.append(detection)

    still = [f for f in files if not is_video(f)]
    progress = keras.utils.Progbar(len(still), unit_name="image") if still else None
    # One stream over all the images: detect_iter reads and molds the next ones while the
    # graph runs, and the loop below takes their results in the same order. Tiled detection
    # goes one image at a time.
    still_results = None if args.tiles else model.detect_iter(still, return_images=True)
    skipped = []
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        if not is_video(path):
            if args.tiles:
                image = read_rgb(path)
                result = model.detect([image], tile=True, overlap=args.overlap)[0]
            else:
                result = next(still_results)
                if "error" in result:   # named and skipped; the other files go on
                    print("skipped:", result["error"], file=sys.stderr)
                    skipped.append(result["name"])
                    progress.add(1)
                    continue
                image = result["image"]
            record(image, result, file_name=os.path.abspath(path))
            _draw(image, result, class_names,
                  os.path.join(out, "{:04d}_{}.png".format(len(images), stem)),
                  os.path.basename(path))
            progress.add(1)
            continue
        _detect_video(model, path, os.path.join(out, "{}_detections.avi".format(stem)), colors,
                      record)
    if still_results is not None:
        still_results.close()
    json_path = os.path.join(out, "detections.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump({"images": images, "annotations": annotations,
                   "categories": [{"id": i, "name": n} for i, n in enumerate(names, start=1)]},
                  f)
    print("{} detections in {} images or frames; written to {}{}".format(
        len(annotations), len(images), out,
        "; {} skipped (see above): {}".format(len(skipped), ", ".join(skipped))
        if skipped else ""))
    return json_path


def _detect_video(model, path, video_out, colors, record):
    """Detect on every frame of video ``path``: the frames with their detections drawn go to
    ``video_out`` (Motion JPEG), each frame's detections to ``record(frame, result, ...)``."""
    import keras

    fps, count, frames = video_frames(path)
    print("Video", path)
    cv2 = _import_cv2()
    writer, frame_progress = None, keras.utils.Progbar(count, unit_name="frame")
    # Frames are decoded and molded ahead while the graph runs on the current ones.
    detections = model.detect_iter(frames, return_images=True)
    try:
        for result in detections:
            if "error" in result:
                raise CommandError("{}: frame {}: {}".format(path, result["index"],
                                                             result["error"]))
            index, frame = result["index"], result["image"]
            record(frame, result, file_name="{}#{}".format(os.path.abspath(path), index),
                   video=os.path.abspath(path), frame=index)
            if writer is None:
                writer = cv2.VideoWriter(video_out, cv2.VideoWriter_fourcc(*"MJPG"), fps,
                                         (frame.shape[1], frame.shape[0]))
            writer.write(np.ascontiguousarray(overlay(frame, result, colors)[..., ::-1]))
            frame_progress.add(1)
    finally:
        detections.close()   # stops its reading thread, also on an error here
        if writer is not None:
            writer.release()
    if writer is None:
        raise CommandError("{}: no frame could be read".format(path))


def command_export(args, data):
    """Export the model; returns the output path."""
    from mrcnn.export import formats as export_formats

    if args.quantize and args.format != "tflite":
        raise CommandError("--quantize applies to --format tflite only")
    model, _ = inference_model(args, data)
    path = export_formats.export(model, args.out, format=args.format, quantize=args.quantize)
    print("Exported {} to {}".format(args.format, path))
    return path


HANDLERS = {"inspect": command_inspect, "train": command_train, "evaluate": command_evaluate,
            "detect": command_detect, "export": command_export}


def run(argv=None):
    """Parse ``argv`` and run the command; returns its result. Errors raise (for callers)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "overlap", None) is not None and not args.tiles:
        parser.error("--overlap applies to --tiles only")
    data = datafile.read(args.data)
    return HANDLERS[args.command](args, data)


def main(argv=None):
    """The console entry point: :func:`run`, with data-file and command-line mistakes (and a
    failed download, a config the settings make invalid) printed as one ``error:`` line and
    exit status 2."""
    from mrcnn import utils

    try:
        run(argv)
    except (datafile.DataFileError, CommandError, utils.DownloadError, ValueError,
            FileNotFoundError) as e:
        print("error: {}".format(e), file=sys.stderr)
        return 2
    return 0
