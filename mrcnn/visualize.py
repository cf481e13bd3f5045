"""Matterport's display functions on matplotlib.

Every function works headless (the Agg backend): pass ``save_path`` to write the figure to a file,
or ``ax`` to draw into your own axes. With an interactive backend and no ``ax`` the figure is
shown, as in Matterport's notebooks. Functions that create a figure return it.
"""

import colorsys
import html
import itertools

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import lines, patches
from skimage.measure import find_contours

from mrcnn import utils


############################################################
#  Figure plumbing
############################################################

def _new_axes(ax, figsize):
    """Return (fig, ax, created): the caller's axes or a new figure's."""
    if ax is not None:
        return ax.figure, ax, False
    fig, ax = plt.subplots(1, figsize=figsize)
    return fig, ax, True


def _finish(fig, created, save_path):
    """Save the figure if asked; show it when we created it and the backend is interactive."""
    if save_path:
        fig.savefig(save_path, bbox_inches="tight")
    if created:
        if _interactive():
            plt.show()
        elif save_path:
            plt.close(fig)
    return fig


def _interactive():
    backend = matplotlib.get_backend().lower()
    return not any(name in backend for name in ("agg", "pdf", "svg", "ps", "cairo", "template"))


############################################################
#  Colours and masks
############################################################

def random_colors(N, bright=True, seed=None):
    """N visually distinct RGB colours (floats in [0, 1]), in a shuffled order.

    seed: shuffle with this seed for reproducible pictures (None: a random order).
    """
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / max(N, 1), 1, brightness) for i in range(N)]
    rng = np.random.default_rng(seed)
    return [colors[i] for i in rng.permutation(N)]


def apply_mask(image, mask, color, alpha=0.5):
    """Blend ``color`` (RGB floats in [0, 1]) into ``image`` where ``mask`` is set.

    image: [H, W, 3]; mask: [H, W]. Returns a new array of the image's dtype.
    """
    image = np.array(image, copy=True)
    where = np.asarray(mask).astype(bool)
    for c in range(3):
        channel = image[:, :, c].astype(np.float64)
        channel[where] = channel[where] * (1 - alpha) + alpha * color[c] * 255
        image[:, :, c] = channel.astype(image.dtype)
    return image


############################################################
#  Images and instances
############################################################

def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None,
                   save_path=None):
    """Show a grid of images with optional titles."""
    titles = titles if titles is not None else [""] * len(images)
    rows = (len(images) + cols - 1) // cols
    fig = plt.figure(figsize=(14, 14 * rows // cols + 1))
    for i, (image, title) in enumerate(zip(images, titles), start=1):
        ax = fig.add_subplot(rows, cols, i)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        ax.imshow(np.asarray(image).astype(np.uint8), cmap=cmap, norm=norm,
                  interpolation=interpolation)
    return _finish(fig, True, save_path)


def display_instances(image, boxes, masks, class_ids, class_names, scores=None, title="",
                      figsize=(16, 16), ax=None, show_mask=True, show_bbox=True, colors=None,
                      captions=None, save_path=None):
    """Draw instances: boxes, mask overlays and outlines, and "class score" captions.

    boxes: [N, (y1, x1, y2, x2)] pixels; masks: [H, W, N]; class_ids: [N]; class_names: list of
    names indexed by class id; scores: optional [N]; captions: optional [N] strings that replace
    the default captions; colors: optional [N] RGB tuples.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    N = boxes.shape[0]
    if masks is not None and N != np.asarray(masks).shape[-1]:
        raise ValueError("{} boxes but {} masks".format(N, np.asarray(masks).shape[-1]))
    if N != len(class_ids):
        raise ValueError("{} boxes but {} class ids".format(N, len(class_ids)))
    fig, ax, created = _new_axes(ax, figsize)
    colors = colors or random_colors(N, seed=0)

    height, width = image.shape[:2]
    ax.set_ylim(height + 10, -10)
    ax.set_xlim(-10, width + 10)
    ax.axis("off")
    ax.set_title(title if N else (title or "") + " (no instances)")

    masked_image = np.asarray(image).astype(np.uint32).copy()
    for i in range(N):
        color = colors[i]
        if not np.any(boxes[i]):
            continue  # a zero-padded slot
        y1, x1, y2, x2 = boxes[i]
        if show_bbox:
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2, alpha=0.7,
                                           linestyle="dashed", edgecolor=color,
                                           facecolor="none"))
        if captions is None:
            class_id = int(class_ids[i])
            label = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
            caption = "{} {:.3f}".format(label, scores[i]) if scores is not None else label
        else:
            caption = captions[i]
        ax.text(x1, y1 + 8, caption, color="w", size=11, backgroundcolor="none")

        if masks is None:
            continue
        mask = np.asarray(masks)[:, :, i]
        if show_mask:
            masked_image = apply_mask(masked_image, mask, color)
        # Pad so that contours of masks touching the border close.
        padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.uint8)
        padded[1:-1, 1:-1] = mask
        for verts in find_contours(padded, 0.5):
            verts = np.fliplr(verts) - 1  # (row, col) -> (x, y), undo the padding
            ax.add_patch(patches.Polygon(verts, facecolor="none", edgecolor=color))
    ax.imshow(masked_image.astype(np.uint8))
    return _finish(fig, created, save_path)


def display_differences(image, gt_box, gt_class_id, gt_mask, pred_box, pred_class_id,
                        pred_score, pred_mask, class_names, title="", ax=None, show_mask=True,
                        show_box=True, iou_threshold=0.5, score_threshold=0.5, save_path=None):
    """Ground truth (green) and predictions (red) with match status and IoU in the captions."""
    gt_match, pred_match, overlaps = utils.compute_matches(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold)
    # compute_matches sorts predictions by score; show them in that order.
    order = np.argsort(np.asarray(pred_score), kind="stable")[::-1]
    pred_box = np.asarray(pred_box)[order]
    pred_class_id = np.asarray(pred_class_id)[order]
    pred_score = np.asarray(pred_score)[order]
    pred_mask = np.asarray(pred_mask)[..., order]
    colors = [(0, 1, 0, .8)] * len(gt_match) + [(1, 0, 0, 1)] * len(pred_match)
    class_ids = np.concatenate([gt_class_id, pred_class_id])
    scores = np.concatenate([np.zeros([len(gt_match)]), pred_score])
    boxes = np.concatenate([gt_box, pred_box])
    masks = np.concatenate([gt_mask, pred_mask], axis=-1)
    # Caption of a prediction: "score / IoU" with its matched GT, or its best IoU if unmatched.
    best_iou = overlaps.max(axis=1) if overlaps.shape[1] else np.zeros(len(pred_match))
    ious = [overlaps[i, int(j)] if j > -1 else best_iou[i] for i, j in enumerate(pred_match)]
    captions = [""] * len(gt_match) + ["{:.2f} / {:.2f}".format(pred_score[i], ious[i])
                                        for i in range(len(pred_match))]
    title = title or "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU"
    return display_instances(image, boxes, masks, class_ids, class_names, scores, ax=ax,
                             show_bbox=show_box, show_mask=show_mask, colors=colors,
                             captions=captions, title=title, save_path=save_path)


def draw_rois(image, rois, refined_rois, mask, class_ids, class_names, limit=10,
              save_path=None):
    """Draw up to ``limit`` positive RoIs (dashed), their refined boxes, and anchors-to-box lines.

    rois, refined_rois: [N, (y1, x1, y2, x2)]; class_ids: [N]; mask: [N, mask_h, mask_w] soft
    masks of the RoIs' classes (pasted into their RoI boxes) or None.
    """
    masked_image = np.asarray(image).copy()
    fig, ax, created = _new_axes(None, (12, 12))
    ids = np.arange(rois.shape[0], dtype=np.int32)
    if ids.shape[0] > limit:
        ids = np.sort(np.random.default_rng(0).choice(ids, limit, replace=False))
    ax.set_title("Showing {} random ROIs out of {}".format(len(ids), rois.shape[0]))
    ax.set_ylim(image.shape[0] + 20, -20)
    ax.set_xlim(-50, image.shape[1] + 20)
    ax.axis("off")
    colors = random_colors(len(ids), seed=0)
    for color, i in zip(colors, ids):
        class_id = class_ids[i]
        y1, x1, y2, x2 = rois[i]
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2,
                                       edgecolor=color if class_id else "gray",
                                       facecolor="none", linestyle="dashed"))
        if class_id:
            ry1, rx1, ry2, rx2 = refined_rois[i]
            ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2,
                                           edgecolor=color, facecolor="none"))
            ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
            ax.text(rx1, ry1 + 8, class_names[class_id], color="w", size=11,
                    backgroundcolor="none")
            if mask is not None:
                m = utils.unmold_mask(mask[i], rois[i].astype(np.int32), image.shape)
                masked_image = apply_mask(masked_image, m, color)
    ax.imshow(masked_image)
    print("Positive ROIs: ", class_ids[class_ids > 0].shape[0])
    print("Negative ROIs: ", class_ids[class_ids == 0].shape[0])
    print("Positive Ratio: {:.2f}".format(
        class_ids[class_ids > 0].shape[0] / max(class_ids.shape[0], 1)))
    return _finish(fig, created, save_path)


def draw_box(image, box, color):
    """Draw a 1-pixel box outline into ``image`` in place (fast, no matplotlib).

    box: (y1, x1, y2, x2) with y2/x2 exclusive; color: value per channel. Returns the image.
    """
    y1, x1, y2, x2 = [int(v) for v in box]
    image[y1:y1 + 1, x1:x2] = color
    image[y2 - 1:y2, x1:x2] = color
    image[y1:y2, x1:x1 + 1] = color
    image[y1:y2, x2 - 1:x2] = color
    return image


def display_top_masks(image, mask, class_ids, class_names, limit=4, save_path=None):
    """The image and one panel per most frequent class (by mask area) with its masks merged."""
    to_display = [image]
    titles = ["H x W={}x{}".format(image.shape[0], image.shape[1])]
    class_ids = np.asarray(class_ids)
    unique_class_ids = np.unique(class_ids)
    mask_area = [np.sum(mask[:, :, np.where(class_ids == i)[0]]) for i in unique_class_ids]
    top_ids = [v[0] for v in sorted(zip(unique_class_ids, mask_area), key=lambda r: r[1],
                                    reverse=True) if v[1] > 0]
    for i in range(limit):
        class_id = top_ids[i] if i < len(top_ids) else -1
        m = mask[:, :, np.where(class_ids == class_id)[0]]
        m = np.sum(m * np.arange(1, m.shape[-1] + 1), -1) if m.shape[-1] else \
            np.zeros(mask.shape[:2])
        to_display.append(m)
        titles.append(class_names[class_id] if class_id != -1 else "-")
    return display_images(to_display, titles=titles, cols=limit + 1, cmap="Blues_r",
                          save_path=save_path)


############################################################
#  Evaluation plots
############################################################

def plot_precision_recall(AP, precisions, recalls, ax=None, save_path=None):
    """Precision-recall curve with the AP in the title."""
    fig, ax, created = _new_axes(ax, (6, 5))
    ax.set_title("Precision-Recall Curve. AP@50 = {:.3f}".format(AP))
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.plot(recalls, precisions)
    return _finish(fig, created, save_path)


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores, overlaps, class_names,
                  threshold=0.5, save_path=None):
    """Grid of IoUs between predictions (rows) and ground truth (columns).

    Cells are labelled "match" (IoU above ``threshold``, same class), "wrong" (IoU above the
    threshold, other class) or left blank; the IoU is shown in every cell.
    """
    gt_class_ids = np.asarray(gt_class_ids)[np.asarray(gt_class_ids) != 0]
    pred_class_ids = np.asarray(pred_class_ids)[np.asarray(pred_class_ids) != 0]
    fig, ax = plt.subplots(figsize=(12, 10))
    ax.imshow(overlaps, interpolation="nearest", cmap=plt.cm.Blues, vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(pred_class_ids)))
    ax.set_yticklabels(["{} ({:.2f})".format(class_names[int(i)], pred_scores[n])
                        for n, i in enumerate(pred_class_ids)])
    ax.set_xticks(np.arange(len(gt_class_ids)))
    ax.set_xticklabels([class_names[int(i)] for i in gt_class_ids], rotation=90)
    thresh = overlaps.max() / 2. if overlaps.size else 0
    for i, j in itertools.product(range(overlaps.shape[0]), range(overlaps.shape[1])):
        text = ""
        if overlaps[i, j] > threshold:
            text = "match" if gt_class_ids[j] == pred_class_ids[i] else "wrong"
        color = "white" if overlaps[i, j] > thresh else \
            "black" if overlaps[i, j] > 0 else "grey"
        ax.text(j, i, "{:.3f}\n{}".format(overlaps[i, j], text), horizontalalignment="center",
                verticalalignment="center", fontsize=9, color=color)
    ax.set_ylabel("Predictions")
    ax.set_xlabel("Ground Truth")
    fig.tight_layout()
    return _finish(fig, True, save_path)


def plot_confusion_matrix(matrix, class_names, normalize=True, title="", save_path=None):
    """Confusion matrix of ground-truth (rows) vs predicted (columns) classes.

    matrix: [num_classes, num_classes] counts, as ``mrcnn.evaluation.evaluate.confusion_matrix``
    returns (row 0 = unmatched predictions, column 0 = missed objects). normalize: show each row as
    fractions of its ground truth, with the counts in the cells.
    """
    matrix = np.asarray(matrix)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 * n + 3, 1.2 * n + 2))
    ax.imshow(shown, cmap=plt.cm.Blues, vmin=0, vmax=1 if normalize else None)
    labels = ["BG / missed" if i == 0 else name for i, name in enumerate(class_names)]
    ax.set_xticks(range(n))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticks(range(n))
    ax.set_yticklabels(["BG / false pos." if i == 0 else name
                        for i, name in enumerate(class_names)])
    for i, j in itertools.product(range(n), range(n)):
        ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                color="white" if shown[i, j] > 0.5 * shown.max() else "black")
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Ground truth")
    ax.set_title(title or "Confusion matrix (matched at mask IoU 0.5)")
    fig.tight_layout()
    return _finish(fig, True, save_path)


def draw_boxes(image, boxes=None, refined_boxes=None, masks=None, captions=None,
               visibilities=None, title="", ax=None, save_path=None):
    """Draw boxes (dashed), refined boxes (solid) with connecting lines, masks and captions.

    visibilities: per box 0 (skip), 1 (faint) or 2 (bold; the default).
    """
    if boxes is None and refined_boxes is None:
        raise ValueError("draw_boxes needs boxes or refined_boxes")
    N = boxes.shape[0] if boxes is not None else refined_boxes.shape[0]
    fig, ax, created = _new_axes(ax, (12, 12))
    colors = random_colors(N, seed=0)
    margin = image.shape[0] // 10
    ax.set_ylim(image.shape[0] + margin, -margin)
    ax.set_xlim(-margin, image.shape[1] + margin)
    ax.axis("off")
    ax.set_title(title)
    masked_image = np.asarray(image).astype(np.uint32).copy()
    for i in range(N):
        visibility = visibilities[i] if visibilities is not None else 1
        if visibility == 0:
            color, style, alpha = "gray", "dotted", 0.5
        elif visibility == 1:
            color, style, alpha = colors[i], "dotted", 1
        else:
            color, style, alpha = colors[i], "solid", 1
        if boxes is not None:
            if not np.any(boxes[i]):
                continue
            y1, x1, y2, x2 = boxes[i]
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2, alpha=alpha,
                                           linestyle=style, edgecolor=color, facecolor="none"))
        if refined_boxes is not None and visibility > 0:
            ry1, rx1, ry2, rx2 = refined_boxes[i].astype(np.int32)
            ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2,
                                           edgecolor=color, facecolor="none"))
            if boxes is not None:
                ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
        if captions is not None:
            x = refined_boxes[i][1] if refined_boxes is not None else x1
            y = refined_boxes[i][0] if refined_boxes is not None else y1
            ax.text(x, y, captions[i], size=11, verticalalignment="top", color="w",
                    backgroundcolor="none", bbox={"facecolor": color, "alpha": 0.5,
                                                  "pad": 2, "edgecolor": "none"})
        if masks is not None:
            mask = masks[:, :, i]
            masked_image = apply_mask(masked_image, mask, color)
            padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.uint8)
            padded[1:-1, 1:-1] = mask
            for verts in find_contours(padded, 0.5):
                ax.add_patch(patches.Polygon(np.fliplr(verts) - 1, facecolor="none",
                                             edgecolor=color))
    ax.imshow(masked_image.astype(np.uint8))
    return _finish(fig, created, save_path)


############################################################
#  Tables
############################################################

def display_table(table):
    """Show a table (list of rows of cells) as HTML in Jupyter, or as text elsewhere.

    Returns the HTML string.
    """
    rows = "".join(
        "<tr>" + "".join("<td>{}</td>".format(html.escape(str(c))) for c in row) + "</tr>"
        for row in table)
    markup = "<table>" + rows + "</table>"
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
        if get_ipython() is not None:
            display(HTML(markup))
            return markup
    except ImportError:
        pass
    widths = [max(len(str(row[i])) for row in table if i < len(row))
              for i in range(max(len(r) for r in table))] if table else []
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    return markup


def display_weight_stats(model):
    """Table of every weight tensor of a model: name, shape, min, max, std.

    model: a ``MaskRCNN`` (its ``keras_model`` is used) or any Keras model. Tensors whose
    standard deviation is zero or not finite (untrained or diverged) are flagged with "*".
    Returns the table as a list of rows.
    """
    keras_model = getattr(model, "keras_model", model)
    table = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for layer in keras_model.layers:
        for w in layer.weights:
            value = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
            name = getattr(w, "path", None) or w.name
            alert = ""
            std = float(value.std()) if value.size else 0.0
            if value.size and (not np.isfinite(value).all() or (std == 0 and value.size > 1
                                                                 and "bias" not in name
                                                                 and "beta" not in name
                                                                 and "mean" not in name)):
                alert = " *"
            table.append([name + alert, str(value.shape),
                          "{:+9.4f}".format(float(value.min()) if value.size else 0.0),
                          "{:+10.4f}".format(float(value.max()) if value.size else 0.0),
                          "{:+9.4f}".format(std)])
    display_table(table)
    return table
