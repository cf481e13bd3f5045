"""Tiled inference: detect on images larger than the model's input at full resolution.

``detect()`` resizes an image to IMAGE_MAX_DIM, so small objects of a 4000-px photo, a slide or
an aerial tile vanish. :func:`detect_tiled` runs ``detect()`` on overlapping tiles of
IMAGE_MAX_DIM pixels (no resizing), moves each tile's detections into the whole image, and
merges them across tile borders:

- a detection whose box touches a tile edge that is not the image's edge may be cut by it; the
  neighbouring tile, which overlaps this one by ``overlap`` pixels, sees the whole object when
  it is smaller than the overlap, so whole detections take precedence over cut ones;
- per class, suppression over the union at DETECTION_NMS_THRESHOLD (the rule of
  ``boxes.non_max_suppression``, between detections of different tiles only: ``detect()``
  has suppressed within each tile) removes the copies of objects that lie in several tiles;
- an object larger than the overlap is cut in every tile that shows it. Cut fragments of one
  class from overlapping tiles whose masks agree where the two tiles overlap (IoU at least
  ``FRAGMENT_AGREEMENT`` there: both tiles see that strip whole) are parts of one object and
  are merged: their masks OR-ed, their boxes joined, the best score kept (transitively, so an
  object across four tiles comes back once). The object comes back whole as long as every
  border strip it crosses shows both sides of it;
- a cut fragment (or merged one) that survives is dropped when a kept whole detection of its
  class covers at least half of its box (the small object's cut copy in a neighbour tile).

The result has ``detect()``'s format: rois, class_ids, scores, and masks ``[H, W, N]`` bool of
the whole image. Those masks take H x W x N bytes: a 10000 x 10000 image with 100 detections
needs 10 GB (``detect()`` itself holds one tile's masks at a time, and every tile's are
kept until the merge); for such images, lower DETECTION_MAX_INSTANCES, or call this function on
large windows of the image and keep the boxes or cropped masks only.
"""

import math

import numpy as np

from mrcnn.modeling import boxes as box_utils

# A box within this many pixels of a tile edge touches it (detected boxes are not exact).
EDGE_MARGIN = 2
# A surviving cut fragment is dropped when a whole detection covers this fraction of its box.
FRAGMENT_COVER = 0.5
# Two cut fragments of one class from overlapping tiles are one object when their masks, inside
# the two tiles' overlap, have at least this IoU.
FRAGMENT_AGREEMENT = 0.5


def tile_origins(length, tile, overlap):
    """Start offsets of tiles of ``tile`` pixels covering ``length`` pixels, neighbours sharing
    at least ``overlap`` pixels; evenly spread, the first at 0 and the last at the end."""
    if tile <= overlap:
        raise ValueError("the overlap ({}) must be smaller than the tile ({})".format(
            overlap, tile))
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile - overlap)) + 1
    return [int(round(i * (length - tile) / (count - 1))) for i in range(count)]


def _covered_fraction(box, boxes):
    """[N] fraction of ``box``'s area inside each of ``boxes`` (from ``boxes.compute_iou``:
    intersection = IoU x (area1 + area2) / (1 + IoU))."""
    area = box_utils.box_areas(box)[0]
    areas = box_utils.box_areas(boxes)
    iou = box_utils.compute_iou(box, boxes, area, areas)
    return iou * (area + areas) / (1 + iou) / max(area, 1e-12)


def detect_tiled(model, image, tile=None, overlap=None, nms_threshold=None):
    """``detect()`` on one large image through overlapping full-resolution tiles.

    model: an inference ``MaskRCNN`` (or anything with ``config`` and ``detect``); tile: the
    tile side (default IMAGE_MAX_DIM, so tiles are not resized in "square" mode); overlap:
    pixels shared by neighbouring tiles (default a quarter of the tile; it should exceed the
    largest object); nms_threshold: default DETECTION_NMS_THRESHOLD.
    Returns one dict as ``detect()`` does (see the module docstring).
    """
    config = model.config
    image = np.asarray(image)
    tile = int(tile or config.IMAGE_MAX_DIM)
    overlap = tile // 4 if overlap is None else int(overlap)
    threshold = config.DETECTION_NMS_THRESHOLD if nms_threshold is None else nms_threshold
    height, width = image.shape[:2]
    origins = [(y, x) for y in tile_origins(height, tile, overlap)
               for x in tile_origins(width, tile, overlap)]
    crops = [image[y:y + tile, x:x + tile] for y, x in origins]
    results = model.detect(crops)

    # Every detection in whole-image coordinates: (tile index, index in it), box, cut or not.
    where, boxes, class_ids, scores, cut = [], [], [], [], []
    for t, ((y, x), crop, r) in enumerate(zip(origins, crops, results)):
        h, w = crop.shape[:2]
        for k, (y1, x1, y2, x2) in enumerate(np.asarray(r["rois"]).reshape(-1, 4)):
            where.append((t, k))
            boxes.append([y1 + y, x1 + x, y2 + y, x2 + x])
            class_ids.append(int(r["class_ids"][k]))
            scores.append(float(r["scores"][k]))
            cut.append((y > 0 and y1 <= EDGE_MARGIN) or (x > 0 and x1 <= EDGE_MARGIN) or
                       (y + h < height and y2 >= h - EDGE_MARGIN) or
                       (x + w < width and x2 >= w - EDGE_MARGIN))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    class_ids, scores = np.asarray(class_ids, np.int32), np.asarray(scores, np.float64)
    cut = np.asarray(cut, bool)

    # Cut fragments of one object in overlapping tiles: merged into groups (union-find).
    groups = _merge_fragments(origins, crops, results, where, boxes, class_ids, cut)
    members = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    entries = list(members.values())        # each a list of detection indices
    boxes = np.array([[boxes[e, 0].min(), boxes[e, 1].min(), boxes[e, 2].max(),
                       boxes[e, 3].max()] for e in entries], np.float64).reshape(-1, 4)
    tiles = [frozenset(where[i][0] for i in e) for e in entries]
    class_ids = np.array([class_ids[e[0]] for e in entries], np.int32)
    scores = np.array([scores[e].max() for e in entries], np.float64)
    cut = np.array([cut[e].all() for e in entries], bool)

    # Greedy suppression across tiles only: detect() has already suppressed duplicates
    # within each tile (so one tile gives detect()'s own result). Whole detections first, then
    # by score; a candidate goes when a kept detection of its class from other tiles
    # overlaps it above the threshold (the NMS rule of boxes.non_max_suppression) or, for a
    # cut fragment, covers half of it.
    areas = box_utils.box_areas(boxes)
    kept = []
    for i in sorted(range(len(scores)), key=lambda i: (cut[i], -scores[i])):
        others = [j for j in kept if class_ids[j] == class_ids[i] and
                  not tiles[j] & tiles[i]]
        if others:
            if np.any(box_utils.compute_iou(boxes[i], boxes[others], areas[i],
                                            areas[others]) > threshold):
                continue
            whole = [j for j in others if not cut[j]]
            if cut[i] and whole and np.any(
                    _covered_fraction(boxes[i], boxes[whole]) >= FRAGMENT_COVER):
                continue
        kept.append(i)
    kept = sorted(kept, key=lambda i: -scores[i])

    masks = np.zeros((height, width, len(kept)), dtype=bool)
    for n, i in enumerate(kept):
        for member in entries[i]:
            t, k = where[member]
            y, x = origins[t]
            tile_mask = results[t]["masks"][:, :, k]
            masks[y:y + tile_mask.shape[0], x:x + tile_mask.shape[1], n] |= tile_mask
    return {"rois": boxes[kept].astype(np.int32).reshape(-1, 4), "class_ids": class_ids[kept],
            "scores": scores[kept].astype(np.float32), "masks": masks}


def _merge_fragments(origins, crops, results, where, boxes, class_ids, cut):
    """[N] group label of each detection: cut detections of one class from two overlapping
    tiles share a label (transitively) when their masks agree inside the tiles' overlap
    (IoU >= FRAGMENT_AGREEMENT, both non-empty there); every other detection has its own."""
    parent = list(range(len(where)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    extents = [(y, x, y + c.shape[0], x + c.shape[1]) for (y, x), c in zip(origins, crops)]
    fragments = [i for i in range(len(where)) if cut[i]]
    for a, i in enumerate(fragments):
        for j in fragments[a + 1:]:
            (t, k), (u, m) = where[i], where[j]
            if t == u or class_ids[i] != class_ids[j]:
                continue
            # The two tiles' overlap, where both see the image whole.
            y1, x1 = max(extents[t][0], extents[u][0]), max(extents[t][1], extents[u][1])
            y2, x2 = min(extents[t][2], extents[u][2]), min(extents[t][3], extents[u][3])
            if y1 >= y2 or x1 >= x2 or np.any(np.maximum(boxes[i, :2], boxes[j, :2]) >=
                                              np.minimum(boxes[i, 2:], boxes[j, 2:])):
                continue
            (ty, tx), (uy, ux) = origins[t], origins[u]
            mask_i = results[t]["masks"][y1 - ty:y2 - ty, x1 - tx:x2 - tx, k]
            mask_j = results[u]["masks"][y1 - uy:y2 - uy, x1 - ux:x2 - ux, m]
            union = np.count_nonzero(mask_i | mask_j)
            if union and np.count_nonzero(mask_i & mask_j) >= FRAGMENT_AGREEMENT * union:
                parent[root(i)] = root(j)
    return [root(i) for i in range(len(where))]
