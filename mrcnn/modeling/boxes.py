"""Pure-NumPy box math: IoU, NMS, box deltas, normalized coordinates.

Boxes are ``(y1, x1, y2, x2)`` in pixels with y2/x2 exclusive, as in Matterport. Everything here is
also importable from ``mrcnn.utils`` (Matterport's module).
"""

import numpy as np

from mrcnn.modeling import box_coder



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
    """Apply ``[N, (dy, dx, log(dh), log(dw))]`` deltas to ``[N, (y1, x1, y2, x2)]`` boxes.

    Matterport's function on the shared coder (:func:`mrcnn.modeling.box_coder.decode`), which
    clamps the log-scale deltas at ``MAX_LOG_SCALE`` (Matterport did not) so that results stay
    finite.
    """
    return box_coder.decode(np.asarray(boxes, dtype=np.float32),
                            np.asarray(deltas, dtype=np.float32))


def box_refinement(box, gt_box):
    """Deltas ``[N, (dy, dx, log(dh), log(dw))]`` that turn ``box`` into ``gt_box``.

    The inverse of :func:`apply_box_deltas` (:func:`mrcnn.modeling.box_coder.encode`).
    """
    return box_coder.encode(np.asarray(box, dtype=np.float32),
                            np.asarray(gt_box, dtype=np.float32))


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
    # float64: in float32, 397.49998677 becomes 397.5 and rounds to 398.
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float64)
    shift = np.array([0, 0, 1, 1], dtype=np.float64)
    return np.around(np.multiply(np.asarray(boxes, dtype=np.float64), scale) +
                     shift).astype(np.int32)


def trim_zeros(x):
    """Drop the all-zero rows that pad a 2-D array (padding is at the end)."""
    assert len(x.shape) == 2
    return x[~np.all(x == 0, axis=1)]
