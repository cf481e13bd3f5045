"""Pure-NumPy helpers: boxes, masks, anchors, image resizing.

Nothing here imports TensorFlow. Conventions (as in Matterport): boxes are ``(y1, x1, y2, x2)`` in
pixels with y2/x2 exclusive; masks are ``[height, width, instances]`` bool arrays.
"""

import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings

import numpy as np
import scipy.ndimage
import skimage.transform

# Kept here for Matterport scripts that do `from mrcnn.utils import Dataset`.
from mrcnn.dataset import Dataset, ImageLoadError  # noqa: F401

COCO_MODEL_URL = ("https://github.com/matterport/Mask_RCNN/releases/download/v2.0/"
                  "mask_rcnn_coco.h5")


class DownloadError(OSError):
    """A weights download failed; the message says what to do instead."""


def download_trained_weights(coco_model_path, verbose=1, url=COCO_MODEL_URL, timeout=60):
    """Download Matterport's COCO-trained weights (``mask_rcnn_coco.h5``) to a path.

    The file is written to a temporary name next to the target and renamed when complete, so
    an interrupted download never leaves a truncated ``.h5``. Without network access it raises
    :class:`DownloadError` with the URL and the reason.
    """
    if verbose > 0:
        print("Downloading pretrained model to {} ...".format(coco_model_path))
    directory = os.path.dirname(os.path.abspath(coco_model_path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, coco_model_path)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise DownloadError(
            "could not download {} to {}: {}. Download the file by other means and pass its "
            "path to load_weights().".format(url, coco_model_path,
                                             getattr(e, "reason", e))) from e
    if verbose > 0:
        print("... done downloading pretrained model!")


############################################################
#  Boxes
############################################################

def extract_bboxes(mask):
    """Tight bounding boxes of masks.

    mask: [height, width, num_instances] of 0/1 or bool.
    Returns: [num_instances, (y1, x1, y2, x2)] int32; an empty mask gives a zero box.
    """
    mask = np.asarray(mask)
    boxes = np.zeros([mask.shape[-1], 4], dtype=np.int32)
    rows_any = np.any(mask, axis=1)   # [height, N]: does row y hold a pixel of instance i
    cols_any = np.any(mask, axis=0)   # [width, N]
    for i in range(mask.shape[-1]):
        ys = np.where(rows_any[:, i])[0]
        xs = np.where(cols_any[:, i])[0]
        if ys.size:
            # y2/x2 are exclusive, hence the +1.
            boxes[i] = [ys[0], xs[0], ys[-1] + 1, xs[-1] + 1]
    return boxes


def compute_iou(box, boxes, box_area, boxes_area):
    """IoU of one box with each of ``boxes``.

    box: (y1, x1, y2, x2); boxes: [N, (y1, x1, y2, x2)]; the areas are passed in so callers that
    loop can compute them once. Returns [N] float.
    """
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + boxes_area - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)
    return iou


def box_areas(boxes):
    """Areas of [N, (y1, x1, y2, x2)] boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def compute_overlaps(boxes1, boxes2):
    """IoU matrix between two sets of boxes.

    boxes1: [N1, (y1, x1, y2, x2)], boxes2: [N2, (y1, x1, y2, x2)].
    Returns: [N1, N2] float, overlaps[i, j] = IoU(boxes1[i], boxes2[j]).
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    # Broadcast [N1, 1] against [1, N2]: one vectorised pass instead of Matterport's loop.
    y1 = np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    x1 = np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    y2 = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    x2 = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    intersection = np.maximum(y2 - y1, 0) * np.maximum(x2 - x1, 0)
    union = box_areas(boxes1)[:, None] + box_areas(boxes2)[None, :] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def compute_overlaps_masks(masks1, masks2):
    """IoU matrix between two sets of masks.

    masks1: [height, width, N1], masks2: [height, width, N2]; values > 0.5 count as inside.
    Returns: [N1, N2] float.
    """
    n1, n2 = masks1.shape[-1], masks2.shape[-1]
    if n1 == 0 or n2 == 0:
        return np.zeros((n1, n2))
    m1 = np.reshape(masks1 > .5, (-1, n1)).astype(np.float32)
    m2 = np.reshape(masks2 > .5, (-1, n2)).astype(np.float32)
    area1 = np.sum(m1, axis=0)
    area2 = np.sum(m2, axis=0)
    intersections = m1.T @ m2
    union = area1[:, None] + area2[None, :] - intersections
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersections / np.maximum(union, 1e-12), 0.0)


def non_max_suppression(boxes, scores, threshold):
    """Greedy non-maximum suppression.

    boxes: [N, (y1, x1, y2, x2)]; scores: [N]; a box is dropped when its IoU with a kept,
    higher-scoring box is above ``threshold``. Returns the kept indices, int32, best first.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.shape[0] == 0:
        return np.zeros([0], dtype=np.int32)
    area = box_areas(boxes)
    # Stable sort so equal scores keep input order (deterministic results).
    order = np.argsort(-np.asarray(scores), kind="stable")
    pick = []
    while order.size:
        i = order[0]
        pick.append(i)
        iou = compute_iou(boxes[i], boxes[order[1:]], area[i], area[order[1:]])
        order = order[1:][iou <= threshold]
    return np.array(pick, dtype=np.int32)


def apply_box_deltas(boxes, deltas):
    """Apply ``[dy, dx, log(dh), log(dw)]`` deltas to ``[N, (y1, x1, y2, x2)]`` boxes."""
    boxes = np.asarray(boxes, dtype=np.float32)
    deltas = np.asarray(deltas, dtype=np.float32)
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height + deltas[:, 0] * height
    center_x = boxes[:, 1] + 0.5 * width + deltas[:, 1] * width
    height = height * np.exp(deltas[:, 2])
    width = width * np.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1)


def box_refinement(box, gt_box):
    """Deltas ``[N, (dy, dx, log(dh), log(dw))]`` that turn ``box`` into ``gt_box``.

    The inverse of :func:`apply_box_deltas`. Both inputs are [N, (y1, x1, y2, x2)].
    """
    box = np.asarray(box, dtype=np.float32)
    gt_box = np.asarray(gt_box, dtype=np.float32)
    height = box[:, 2] - box[:, 0]
    width = box[:, 3] - box[:, 1]
    center_y = box[:, 0] + 0.5 * height
    center_x = box[:, 1] + 0.5 * width
    gt_height = gt_box[:, 2] - gt_box[:, 0]
    gt_width = gt_box[:, 3] - gt_box[:, 1]
    gt_center_y = gt_box[:, 0] + 0.5 * gt_height
    gt_center_x = gt_box[:, 1] + 0.5 * gt_width
    dy = (gt_center_y - center_y) / height
    dx = (gt_center_x - center_x) / width
    dh = np.log(gt_height / height)
    dw = np.log(gt_width / width)
    return np.stack([dy, dx, dh, dw], axis=1)


def norm_boxes(boxes, shape):
    """Pixel boxes -> normalized coordinates.

    boxes: [N, (y1, x1, y2, x2)] pixels; shape: (height, width). In normalized coordinates
    (0, 0) is the first pixel and (1, 1) the last, so y2/x2 become inclusive.
    """
    h, w = shape[0], shape[1]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float32)
    shift = np.array([0, 0, 1, 1], dtype=np.float32)
    return np.divide((np.asarray(boxes, dtype=np.float32) - shift), scale).astype(np.float32)


def denorm_boxes(boxes, shape):
    """Normalized boxes -> pixel boxes [N, (y1, x1, y2, x2)] int32 (inverse of norm_boxes)."""
    h, w = shape[0], shape[1]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float32)
    shift = np.array([0, 0, 1, 1], dtype=np.float32)
    return np.around(np.multiply(boxes, scale) + shift).astype(np.int32)


def trim_zeros(x):
    """Drop the all-zero rows that pad a 2-D array (padding is at the end)."""
    assert len(x.shape) == 2
    return x[~np.all(x == 0, axis=1)]


############################################################
#  Images and masks
############################################################

def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True,
           preserve_range=False, anti_aliasing=False, anti_aliasing_sigma=None):
    """``skimage.transform.resize`` with Matterport's defaults (no anti-aliasing)."""
    return skimage.transform.resize(
        image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
        preserve_range=preserve_range, anti_aliasing=anti_aliasing,
        anti_aliasing_sigma=anti_aliasing_sigma)


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square", rng=None):
    """Resize an image keeping its aspect ratio.

    mode:
        none   -- return the image unchanged.
        square -- scale so the short side is ``min_dim`` but the long side at most ``max_dim``,
                  then zero-pad to ``max_dim x max_dim``.
        pad64  -- scale as in square, then pad each side up to a multiple of 64.
        crop   -- scale as in square (without the ``max_dim`` cap), then take a random
                  ``min_dim x min_dim`` crop (``rng``: a ``numpy.random.Generator``).
    min_scale: scale up at least this much even when ``min_dim`` does not require it.

    Returns:
        image: the resized image, same dtype as the input.
        window: (y1, x1, y2, x2) of the image inside the padded result (y2/x2 exclusive).
        scale: the scale factor applied.
        padding: [(top, bottom), (left, right), (0, 0)] padding added.
        crop: (y, x, h, w) of the crop, or None.
    """
    image_dtype = image.dtype
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None

    if mode == "none":
        return image, window, scale, padding, crop
    if mode not in ("square", "pad64", "crop"):
        raise ValueError("Unknown resize mode {!r}".format(mode))

    if min_dim:
        scale = max(1, min_dim / min(h, w))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        image_max = max(h, w)
        if round(image_max * scale) > max_dim:
            scale = max_dim / image_max

    if scale != 1:
        image = resize(image, (round(h * scale), round(w * scale)), preserve_range=True)

    if mode == "square":
        h, w = image.shape[:2]
        top_pad = (max_dim - h) // 2
        bottom_pad = max_dim - h - top_pad
        left_pad = (max_dim - w) // 2
        right_pad = max_dim - w - left_pad
        padding = [(top_pad, bottom_pad), (left_pad, right_pad), (0, 0)]
        image = np.pad(image, padding, mode="constant", constant_values=0)
        window = (top_pad, left_pad, h + top_pad, w + left_pad)
    elif mode == "pad64":
        h, w = image.shape[:2]
        if min_dim and min_dim % 64 != 0:
            raise ValueError("min_dim must be a multiple of 64 in pad64 mode, got {}".format(
                min_dim))
        top_pad, bottom_pad = _pad_to_64(h)
        left_pad, right_pad = _pad_to_64(w)
        padding = [(top_pad, bottom_pad), (left_pad, right_pad), (0, 0)]
        image = np.pad(image, padding, mode="constant", constant_values=0)
        window = (top_pad, left_pad, h + top_pad, w + left_pad)
    else:  # crop
        h, w = image.shape[:2]
        if h < min_dim or w < min_dim:
            raise ValueError("image of {}x{} is smaller than the {}x{} crop".format(
                h, w, min_dim, min_dim))
        rng = rng if rng is not None else np.random.default_rng()
        y = int(rng.integers(0, h - min_dim + 1))
        x = int(rng.integers(0, w - min_dim + 1))
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        window = (0, 0, min_dim, min_dim)
    return image.astype(image_dtype), window, scale, padding, crop


def _pad_to_64(side):
    """(before, after) padding that brings ``side`` up to a multiple of 64."""
    if side % 64 == 0:
        return 0, 0
    total = 64 - side % 64
    return total // 2, total - total // 2


def resize_mask(mask, scale, padding, crop=None):
    """Apply the scale, crop and padding of :func:`resize_image` to a mask.

    mask: [height, width, N]. Returns a bool mask of the resized image's size.
    """
    mask = np.asarray(mask)
    h, w = mask.shape[:2]
    if scale != 1:
        if mask.shape[-1] == 0:
            mask = np.zeros((round(h * scale), round(w * scale), 0), dtype=bool)
        else:
            # Nearest-neighbour zoom keeps the mask binary. scipy warns about its output-shape
            # rounding change since 0.13; the shapes agree with resize_image's round().
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mask = scipy.ndimage.zoom(mask.astype(np.uint8), zoom=[scale, scale, 1],
                                          order=0)
    if crop is not None:
        y, x, ch, cw = crop
        mask = mask[y:y + ch, x:x + cw]
    else:
        mask = np.pad(mask, padding, mode="constant", constant_values=0)
    return mask.astype(bool)


def minimize_mask(bbox, mask, mini_shape):
    """Crop each mask to its box and resize it to ``mini_shape``.

    bbox: [N, (y1, x1, y2, x2)]; mask: [height, width, N]. Returns [mini_h, mini_w, N] bool.
    """
    mini_mask = np.zeros(tuple(mini_shape) + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        m = mask[y1:y2, x1:x2, i].astype(np.float32)
        if m.size == 0:
            raise ValueError("Invalid bounding box with area of zero: {}".format(bbox[i]))
        m = resize(m, mini_shape)
        mini_mask[:, :, i] = np.around(m).astype(bool)
    return mini_mask


def expand_mask(bbox, mini_mask, image_shape):
    """Paste mini masks back into full-image masks (inverse of :func:`minimize_mask`).

    bbox: [N, (y1, x1, y2, x2)]; mini_mask: [mini_h, mini_w, N]; image_shape: (height, width, ...).
    Returns [height, width, N] bool.
    """
    mask = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        h, w = y2 - y1, x2 - x1
        if h <= 0 or w <= 0:
            continue
        m = resize(mini_mask[:, :, i].astype(np.float32), (h, w))
        mask[y1:y2, x1:x2, i] = np.around(m).astype(bool)
    return mask


def unmold_mask(mask, bbox, image_shape, threshold=0.5):
    """Paste a predicted soft mask into a full-image binary mask.

    mask: [mask_h, mask_w] float in [0, 1] (the mask head's output for one instance);
    bbox: (y1, x1, y2, x2) pixel box it covers; image_shape: (height, width, ...).
    Returns [height, width] bool.
    """
    y1, x1, y2, x2 = [int(v) for v in bbox[:4]]
    full_mask = np.zeros(image_shape[:2], dtype=bool)
    if y2 <= y1 or x2 <= x1:
        return full_mask
    # Resize the soft mask first and threshold after, as Matterport does: sharper edges.
    # Edge clamping (not Matterport's zero padding) keeps border pixels from fading, and is
    # what tf.image.resize does, so the exported SavedModel pastes identical masks.
    m = resize(np.asarray(mask, dtype=np.float32), (y2 - y1, x2 - x1), mode="edge")
    m = m >= threshold
    # Clip the paste to the image so boxes that overhang the border still work.
    H, W = full_mask.shape
    cy1, cx1, cy2, cx2 = max(y1, 0), max(x1, 0), min(y2, H), min(x2, W)
    if cy2 > cy1 and cx2 > cx1:
        full_mask[cy1:cy2, cx1:cx2] = m[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
    return full_mask


############################################################
#  Anchors
############################################################

def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride):
    """Anchors of one pyramid level.

    scales: anchor sides in pixels (e.g. [32, 64, 128]); ratios: width/height ratios
    (e.g. [0.5, 1, 2]); shape: [height, width] of the feature map; feature_stride: its stride in
    pixels; anchor_stride: place anchors at every ``anchor_stride``-th feature cell.

    Returns [N, (y1, x1, y2, x2)] float pixel boxes, ordered by position (row-major) and then by
    (ratio, scale) within a position, as Matterport orders them.
    """
    scales, ratios = np.meshgrid(np.array(scales), np.array(ratios))
    scales = scales.flatten()
    ratios = ratios.flatten()
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)

    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    shifts_x, shifts_y = np.meshgrid(shifts_x, shifts_y)

    box_widths, box_centers_x = np.meshgrid(widths, shifts_x)
    box_heights, box_centers_y = np.meshgrid(heights, shifts_y)
    box_centers = np.stack([box_centers_y, box_centers_x], axis=2).reshape([-1, 2])
    box_sizes = np.stack([box_heights, box_widths], axis=2).reshape([-1, 2])
    return np.concatenate([box_centers - 0.5 * box_sizes, box_centers + 0.5 * box_sizes], axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride):
    """Anchors of every pyramid level, concatenated level by level (P2 first).

    scales[i] is the anchor side at level i. Returns [N, (y1, x1, y2, x2)] float pixel boxes.
    """
    anchors = [generate_anchors(scales[i], ratios, feature_shapes[i], feature_strides[i],
                                anchor_stride)
               for i in range(len(scales))]
    return np.concatenate(anchors, axis=0)


def compute_backbone_shapes(config, image_shape):
    """[[height, width], ...] of each backbone level (one per BACKBONE_STRIDES entry)."""
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(image_shape)
    return np.array([[int(np.ceil(image_shape[0] / stride)),
                      int(np.ceil(image_shape[1] / stride))]
                     for stride in config.BACKBONE_STRIDES])


_ANCHOR_CACHE = {}


def get_anchors(config, image_shape):
    """Pixel anchors for an image shape under ``config`` (cached: computing them is not free)."""
    key = (tuple(np.asarray(config.RPN_ANCHOR_SCALES).tolist()),
           tuple(np.asarray(config.RPN_ANCHOR_RATIOS).tolist()),
           tuple(config.BACKBONE_STRIDES), config.RPN_ANCHOR_STRIDE,
           tuple(int(s) for s in image_shape[:2]),
           id(config.BACKBONE) if callable(config.BACKBONE) else config.BACKBONE)
    if key not in _ANCHOR_CACHE:
        shapes = compute_backbone_shapes(config, image_shape)
        _ANCHOR_CACHE[key] = generate_pyramid_anchors(
            config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes,
            config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    return _ANCHOR_CACHE[key]


############################################################
#  Matching predictions to ground truth
############################################################

def compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores,
                    pred_masks, iou_threshold=0.5, score_threshold=0.0):
    """Match predictions to ground truth instances by mask IoU (Matterport's rules).

    Predictions are visited best score first; each takes the unmatched GT of the same class
    with the highest IoU, if that IoU is >= ``iou_threshold``. A GT is matched at most once.
    Zero-padded rows of the box arrays are ignored. ``score_threshold`` drops candidate pairs
    whose IoU is below it before matching (Matterport's name for this parameter).

    Returns:
        gt_match: [num_gt] index of the matched prediction (in the score-sorted order) or -1.
        pred_match: [num_pred] index of the matched GT or -1, predictions sorted by score.
        overlaps: [num_pred, num_gt] mask IoUs, predictions sorted by score.
    """
    gt_boxes = trim_zeros(np.asarray(gt_boxes).reshape(-1, 4))
    gt_masks = np.asarray(gt_masks)[..., :gt_boxes.shape[0]]
    pred_boxes = trim_zeros(np.asarray(pred_boxes).reshape(-1, 4))
    pred_scores = np.asarray(pred_scores)[:pred_boxes.shape[0]]
    order = np.argsort(pred_scores, kind="stable")[::-1]
    pred_class_ids = np.asarray(pred_class_ids)[order]
    pred_masks = np.asarray(pred_masks)[..., order]
    gt_class_ids = np.asarray(gt_class_ids)

    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
    pred_match = -1 * np.ones([pred_boxes.shape[0]])
    gt_match = -1 * np.ones([gt_boxes.shape[0]])
    for i in range(pred_boxes.shape[0]):
        candidates = np.argsort(overlaps[i], kind="stable")[::-1]
        candidates = candidates[overlaps[i, candidates] >= score_threshold]
        for j in candidates:
            if gt_match[j] > -1:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores,
               pred_masks, iou_threshold=0.5):
    """Average precision at one mask-IoU threshold (Matterport's VOC-style interpolation).

    Returns:
        mAP: the area under the interpolated precision-recall curve.
        precisions, recalls: the curve's points (with the (0, 0) and (1, 0) end points).
        overlaps: [num_pred, num_gt] mask IoUs (predictions sorted by score).
    An image without ground truth scores 1.0 when nothing is predicted and 0.0 otherwise.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold)
    if len(gt_match) == 0:
        ap = 1.0 if len(pred_match) == 0 else 0.0
        return ap, np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0]), overlaps
    hits = np.cumsum(pred_match > -1)
    precisions = hits / (np.arange(len(pred_match)) + 1)
    recalls = hits.astype(np.float64) / len(gt_match)
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    # Make precision monotonically decreasing from the right.
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    indices = np.where(recalls[:-1] != recalls[1:])[0] + 1
    ap = float(np.sum((recalls[indices] - recalls[indices - 1]) * precisions[indices]))
    return ap, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                     pred_mask, iou_thresholds=None, verbose=1):
    """Mean of :func:`compute_ap` over IoU thresholds (default 0.5:0.95:0.05, as COCO)."""
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = []
    for t in iou_thresholds:
        ap, *_ = compute_ap(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                            pred_mask, iou_threshold=t)
        aps.append(ap)
        if verbose:
            print("AP @{:.2f}:\t {:.3f}".format(t, ap))
    ap = float(np.mean(aps))
    if verbose:
        print("AP @{:.2f}-{:.2f}:\t {:.3f}".format(iou_thresholds[0], iou_thresholds[-1], ap))
    return ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """Box recall: the fraction of GT boxes whose best-overlapping prediction has IoU >= iou.

    Returns (recall, positive_ids): positive_ids are the indices of the GT boxes found.
    """
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    if overlaps.shape[1] == 0:
        return 1.0, np.zeros([0], dtype=np.int64)
    if overlaps.shape[0] == 0:
        return 0.0, np.zeros([0], dtype=np.int64)
    iou_max = np.max(overlaps, axis=0)
    positive_ids = np.where(iou_max >= iou)[0]
    return len(set(positive_ids)) / gt_boxes.shape[0], positive_ids
