"""The dataset report of ``python -m mrcnn inspect``: what the data looks like to a config, and
which settings to change.

:func:`inspect_dataset` scans the images of one or more prepared datasets (splits) and returns a
plain dict; :func:`format_report` makes the text summary and :func:`draw_report` the one PNG
page. The report holds images and instances per split; instances per class and the imbalance
ratio; object sizes after the config's resizing against RPN_ANCHOR_SCALES; the anchor coverage
(the fraction of ground-truth boxes whose best anchor reaches IoU 0.7, the RPN's positive
threshold, and 0.5) and anchor scales that would raise it; MEAN_PIXEL of the training images; and
problem annotations (empty masks, tiny objects, duplicates, crowd regions) with their ids.
Annotations outside the image never get here: the loaders of :mod:`mrcnn.data.formats` refuse
them with the file and the annotation.

Sizes and anchors are those training sees: each image goes through ``data.load_image_gt``
(the config's resize mode; crop mode crops at random, with a fixed seed), its anchors come from
``mrcnn.modeling.anchors.get_anchors`` and the IoUs from ``boxes.compute_iou``.
"""

import numpy as np

from mrcnn.modeling import boxes as box_utils
from mrcnn.data import image_meta
from mrcnn import utils
from mrcnn.data.pipeline import load_image_gt
from mrcnn.modeling.anchors import get_anchors
from mrcnn.progress import progress_over

# An imbalance ratio (most / fewest instances of a class) from which the report suggests
# repeat-factor sampling or class weights.
IMBALANCE_ADVICE_RATIO = 10.0
# An object whose resized box has a side under this many pixels is "tiny": smaller than the
# stride of P2, the finest pyramid level.
TINY_SIDE = 4
# Two instances of one image whose masks overlap at least this much are "duplicated".
DUPLICATE_MASK_IOU = 0.95
# IoU thresholds of the anchor coverage: the RPN's positive IoU (Matterport's 0.7) and 0.5.
COVERAGE_IOUS = (0.7, 0.5)
# Multiples of RPN_ANCHOR_SCALES tried for the "scales that would raise it" advice.
SCALE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
# MEAN_PIXEL advice when a channel of the images' mean differs from the config's by more.
MEAN_PIXEL_TOLERANCE = 10.0
# At most this many problem ids listed per kind.
MAX_LISTED = 10


def best_anchor_ious(config, image_shape, gt_boxes):
    """[N] IoU of each of ``gt_boxes`` (pixels of the molded image) with its best anchor.

    The anchors are the config's for ``image_shape`` (``mrcnn.modeling.anchors.get_anchors``),
    compared with ``boxes.compute_iou`` one box at a time (the anchor set can hold hundreds of
    thousands).
    """
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    anchors = get_anchors(config, image_shape)
    anchor_areas = box_utils.box_areas(anchors)
    gt_areas = box_utils.box_areas(gt_boxes)
    return np.array([box_utils.compute_iou(box, anchors, area, anchor_areas).max()
                     if len(anchors) else 0.0 for box, area in zip(gt_boxes, gt_areas)])


def coverage(best_ious):
    """{iou threshold: fraction of boxes whose best anchor reaches it} (None without boxes)."""
    best_ious = np.asarray(best_ious)
    return {t: (float(np.mean(best_ious >= t)) if best_ious.size else None)
            for t in COVERAGE_IOUS}


def _scaled_config(config, factor):
    """``config`` with RPN_ANCHOR_SCALES multiplied by ``factor`` (rounded, at least 1 px)."""
    scales = tuple(max(1, int(round(s * factor))) for s in config.RPN_ANCHOR_SCALES)
    return type("Scaled" + type(config).__name__, (type(config),),
                {"RPN_ANCHOR_SCALES": scales})()


def scan_split(dataset, config, limit=None, seed=0, verbose=True):
    """Per-image facts of one prepared dataset under ``config`` (a dict, see the keys below)."""
    image_ids = list(dataset.image_ids)[:limit] if limit else list(dataset.image_ids)
    rng = np.random.default_rng(seed)
    counts = np.zeros(dataset.num_classes, dtype=np.int64)
    sides, molded, channel_sums, pixels = [], [], 0.0, 0
    problems = {"empty": [], "tiny": [], "duplicated": [], "crowd": []}
    images_without = 0
    for image_id in progress_over(image_ids, verbose):
        reference = dataset.image_info[image_id]["id"]
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        class_ids = np.asarray(class_ids, dtype=np.int32).reshape(-1)
        channel_sums = channel_sums + image.reshape(-1, image.shape[-1]).sum(axis=0,
                                                                           dtype=np.float64)
        pixels += image.shape[0] * image.shape[1]
        areas = masks.reshape(-1, masks.shape[-1]).sum(axis=0) if class_ids.size else []
        if class_ids.size == 0:
            images_without += 1
        # The resize factor of this image in training (load_image_gt's own resize).
        _, meta, gt_class_ids, gt_boxes, _ = load_image_gt(dataset, config, image_id,
                                                           use_mini_mask=False, rng=rng)
        parsed = image_meta.parse_image_meta(meta[np.newaxis])
        scale = float(parsed["scale"][0])
        image_shape = tuple(int(v) for v in parsed["image_shape"][0])
        raw_boxes = utils.extract_bboxes(masks) if class_ids.size else np.zeros((0, 4))
        for k, class_id in enumerate(class_ids):
            where = (reference, k)
            if areas[k] == 0:
                problems["empty"].append(where)
                continue
            if class_id < 0:
                problems["crowd"].append(where)
                continue
            counts[class_id] += 1
            height, width = (raw_boxes[k, 2:] - raw_boxes[k, :2]) * scale
            sides.append(float(np.sqrt(height * width)))
            if min(height, width) < TINY_SIDE:
                problems["tiny"].append(where)
        if class_ids.size > 1:
            overlaps = box_utils.compute_overlaps_masks(masks, masks)
            for a, b in zip(*np.nonzero(np.triu(overlaps >= DUPLICATE_MASK_IOU, k=1))):
                problems["duplicated"].append((reference, int(a), int(b)))
        keep = gt_class_ids > 0   # crowd regions are no RPN positives
        molded.append((image_shape, gt_boxes[keep]))
    return {"images": len(image_ids), "images_without_instances": images_without,
            "instances": int(counts[1:].sum()), "class_counts": counts[1:].tolist(),
            "class_names": list(dataset.class_names[1:]), "object_sides": sides,
            "molded": molded, "problems": problems,
            "mean_pixel": (channel_sums / max(pixels, 1)).tolist()}


def split_coverage(config, molded):
    """[N] best-anchor IoUs over a split's molded (image shape, GT boxes) pairs."""
    ious = [best_anchor_ious(config, shape, gt) for shape, gt in molded if len(gt)]
    return np.concatenate(ious) if ious else np.zeros(0)


def inspect_dataset(splits, config, limit=None, verbose=True):
    """The report of ``splits`` ({name: prepared dataset}, the first being the training set)
    under ``config``: a dict with per-split facts, the anchor coverage and the advice."""
    names = list(splits)
    scans = {name: scan_split(splits[name], config, limit, verbose=verbose)
             for name in names}
    train = scans[names[0]]
    ious = split_coverage(config, train["molded"])
    current = coverage(ious)
    alternatives = {}
    for factor in SCALE_FACTORS:
        if factor != 1.0:
            scaled = _scaled_config(config, factor)
            alternatives[tuple(scaled.RPN_ANCHOR_SCALES)] = coverage(
                split_coverage(scaled, train["molded"]))
    report = {"splits": {name: {k: v for k, v in scan.items() if k != "molded"}
                         for name, scan in scans.items()},
              "anchor_scales": [int(s) for s in config.RPN_ANCHOR_SCALES],
              "anchor_ratios": [float(r) for r in config.RPN_ANCHOR_RATIOS],
              "best_anchor_ious": ious.tolist(), "coverage": current,
              "coverage_with_scales": alternatives,
              "config_mean_pixel": np.asarray(config.MEAN_PIXEL, dtype=float).tolist(),
              "resize": "{} (IMAGE_MIN_DIM {}, IMAGE_MAX_DIM {}, IMAGE_MIN_SCALE {})".format(
                  config.IMAGE_RESIZE_MODE, config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM,
                  config.IMAGE_MIN_SCALE)}
    report["advice"] = advice(report)
    return report


def suggested_scales(report):
    """The tried RPN_ANCHOR_SCALES (a tuple) whose coverage at IoU 0.7 beats the config's by
    more than 5 points, the best of them; None when none does."""
    current = report["coverage"][COVERAGE_IOUS[0]]
    if current is None:
        return None
    best_scales, best = None, current
    for scales, figures in report["coverage_with_scales"].items():
        if figures[COVERAGE_IOUS[0]] > best + 0.05:
            best_scales, best = tuple(scales), figures[COVERAGE_IOUS[0]]
    return best_scales


def suggested_mean_pixel(report):
    """The training images' mean (a list) when a channel differs from the config's
    MEAN_PIXEL by more than MEAN_PIXEL_TOLERANCE, else None."""
    mean = np.asarray(next(iter(report["splits"].values()))["mean_pixel"])
    configured = np.asarray(report["config_mean_pixel"])
    if mean.shape == configured.shape and np.any(np.abs(mean - configured) >
                                                 MEAN_PIXEL_TOLERANCE):
        return [round(float(v), 1) for v in mean]
    return None


def data_defaults(report, keep=lambda name: False):
    """{attribute: value} the report suggests (MEAN_PIXEL, RPN_ANCHOR_SCALES), without those
    ``keep(name)`` is true for (the ones a config or the command line sets itself)."""
    suggested = {"MEAN_PIXEL": suggested_mean_pixel(report),
                 "RPN_ANCHOR_SCALES": suggested_scales(report)}
    return {name: value for name, value in suggested.items()
            if value is not None and not keep(name)}


def imbalance_ratio(class_counts):
    """Most / fewest instances over the classes (inf when a class has none; None if empty)."""
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.size == 0 or counts.max() == 0:
        return None
    return float("inf") if counts.min() == 0 else float(counts.max() / counts.min())


def advice(report):
    """Lines of advice: settings to change, from the report's figures."""
    lines = []
    train = next(iter(report["splits"].values()))
    ratio = imbalance_ratio(train["class_counts"])
    if ratio is not None and ratio >= IMBALANCE_ADVICE_RATIO:
        lines.append("Classes are imbalanced ({} times as many instances of the most frequent "
                     "class as of the rarest): try REPEAT_FACTOR_THRESHOLD = 0.1 (repeat images "
                     "of rare classes) or CLASS_WEIGHTS = 'balanced'.".format(
                         "infinitely" if ratio == float("inf") else "{:.0f}".format(ratio)))
    sides = np.asarray(train["object_sides"])
    smallest = min(report["anchor_scales"])
    if sides.size and np.median(sides) < smallest:
        lines.append("Objects are small for the anchors: median side {:.1f} px after resizing, "
                     "smallest anchor {} px. Use smaller RPN_ANCHOR_SCALES (see below) or "
                     "enlarge the images (IMAGE_MIN_SCALE, IMAGE_MAX_DIM), or tile large "
                     "images.".format(float(np.median(sides)), smallest))
    scales = suggested_scales(report)
    if scales is not None:
        lines.append("RPN_ANCHOR_SCALES = {} would raise the anchor coverage at IoU {} "
                     "from {:.0%} to {:.0%}.".format(
                         scales, COVERAGE_IOUS[0], report["coverage"][COVERAGE_IOUS[0]],
                         report["coverage_with_scales"][scales][COVERAGE_IOUS[0]]))
    mean, configured = np.asarray(train["mean_pixel"]), np.asarray(report["config_mean_pixel"])
    if suggested_mean_pixel(report) is not None:
        lines.append("MEAN_PIXEL = [{}] (the training images' mean; the config has [{}]).".format(
            ", ".join("{:.1f}".format(v) for v in mean),
            ", ".join("{:.1f}".format(v) for v in configured)))
    for name, split in report["splits"].items():
        listed = {kind: ids for kind, ids in split["problems"].items() if ids}
        if listed:
            lines.append("{}: problem annotations: {} (listed above).".format(
                name, ", ".join("{} {}".format(len(ids), kind) for kind, ids in listed.items())))
    return lines


def _percent(value):
    return "n/a" if value is None else "{:.1%}".format(value)


def format_report(report):
    """The text summary of :func:`inspect_dataset`'s report."""
    out = []
    for name, split in report["splits"].items():
        out.append("{}: {} images ({} without instances), {} instances".format(
            name, split["images"], split["images_without_instances"], split["instances"]))
        ratio = imbalance_ratio(split["class_counts"])
        for class_name, count in zip(split["class_names"], split["class_counts"]):
            out.append("  {:24} {:7d}".format(class_name, count))
        if ratio is not None:
            out.append("  imbalance ratio (most / fewest): {}".format(
                "inf" if ratio == float("inf") else "{:.1f}".format(ratio)))
        for kind, ids in split["problems"].items():
            if ids:
                shown = ", ".join("{}#{}".format(i[0], "/".join(str(v) for v in i[1:]))
                                  for i in ids[:MAX_LISTED])
                out.append("  {} {}: {}{}".format(len(ids), kind, shown,
                                                  ", ..." if len(ids) > MAX_LISTED else ""))
    train = next(iter(report["splits"].values()))
    sides = np.asarray(train["object_sides"])
    out.append("Resize: " + report["resize"])
    if sides.size:
        p = np.percentile(sides, [5, 50, 95])
        out.append("Object side after resizing (sqrt of box area): 5% {:.1f} px, median {:.1f} "
                   "px, 95% {:.1f} px; anchor scales {}".format(*p, report["anchor_scales"]))
    out.append("Anchor coverage (training boxes whose best anchor reaches the IoU): "
               + ", ".join("IoU {}: {}".format(t, _percent(v))
                           for t, v in report["coverage"].items()))
    for scales, figures in report["coverage_with_scales"].items():
        out.append("  with RPN_ANCHOR_SCALES = {}: ".format(tuple(scales)) + ", ".join(
            "IoU {}: {}".format(t, _percent(v)) for t, v in figures.items()))
    out.append("MEAN_PIXEL of the training images: [{}]".format(
        ", ".join("{:.1f}".format(v) for v in train["mean_pixel"])))
    out.append("Advice:" if report["advice"] else "Advice: none, the settings fit the data.")
    out.extend("  - " + line for line in report["advice"])
    return "\n".join(out)


def draw_report(report, path, title="Dataset report"):
    """Write the one-page PNG of the report to ``path``: instances per class, object sizes
    against the anchor scales, best-anchor IoUs, and the advice."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0, 0]
    names = None
    for offset, (name, split) in enumerate(report["splits"].items()):
        names = split["class_names"]
        x = np.arange(len(names)) + 0.4 * offset
        ax.bar(x, split["class_counts"], width=0.4, label=name)
    ax.set_xticks(np.arange(len(names or [])) + 0.2)
    ax.set_xticklabels(names or [], rotation=30, ha="right")
    ax.set_title("instances per class")
    ax.legend()
    ax = axes[0, 1]
    sides = next(iter(report["splits"].values()))["object_sides"]
    if sides:
        ax.hist(sides, bins=30, color="tab:blue")
    for scale in report["anchor_scales"]:
        ax.axvline(scale, color="tab:red", linestyle="--", linewidth=1)
    ax.set_title("object side after resizing (px); anchor scales dashed")
    ax = axes[1, 0]
    if report["best_anchor_ious"]:
        ax.hist(report["best_anchor_ious"], bins=20, range=(0, 1), color="tab:green")
    for t in COVERAGE_IOUS:
        ax.axvline(t, color="black", linestyle=":", linewidth=1)
    ax.set_title("best anchor IoU per box: " + ", ".join(
        ">= {}: {}".format(t, _percent(v)) for t, v in report["coverage"].items()))
    ax = axes[1, 1]
    ax.axis("off")
    text = "\n".join(["Advice:"] + ["- " + line for line in report["advice"]]
                     if report["advice"] else ["No advice: the settings fit the data."])
    ax.text(0, 1, text, va="top", ha="left", wrap=True, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_report(splits, config, out_dir, title="Dataset report", limit=None, verbose=True):
    """Inspect ``splits`` under ``config`` and write ``out_dir/report.txt`` and ``report.png``;
    prints the text and returns the report (with ``out`` set to ``out_dir``). The one report
    writer of ``python -m mrcnn inspect`` and the samples' ``inspect`` command."""
    import os

    os.makedirs(out_dir, exist_ok=True)
    if verbose:
        print("Scanning {} ({}, IMAGE_RESIZE_MODE {})".format(
            ", ".join("{}: {} images".format(k, v.num_images) for k, v in splits.items()),
            type(config).__name__, config.IMAGE_RESIZE_MODE))
    report = inspect_dataset(splits, config, limit=limit, verbose=verbose)
    text = format_report(report)
    with open(os.path.join(out_dir, "report.txt"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    draw_report(report, os.path.join(out_dir, "report.png"), title=title)
    if verbose:
        print(text)
        print("Report written to", out_dir)
    report["out"] = out_dir
    return report
