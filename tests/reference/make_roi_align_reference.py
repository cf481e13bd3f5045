"""Write tests/reference/roi_align_reference.npz: torchvision's RoIAlign on random inputs.

Needs torch and torchvision (not installed by ``make test``; the tests read the committed
file). Run once from the repository root:

    python tests/reference/make_roi_align_reference.py

Two parts:
- ``torchvision.ops.roi_align`` on one random feature map batch at spatial scale 1/4, for
  sampling ratios 1, 2, 3 and -1 (adaptive: ceil(roi side / output side) per box), aligned on
  and off, output sizes 7x7, 14x14 and 3x5, on boxes that
  include ones smaller than a cell, ones touching the border and ones partly outside the map;
- ``torchvision.ops.MultiScaleRoIAlign`` (level mapping and RoIAlign over four FPN levels, as
  torchvision's Mask R-CNN pools its box head: 7x7, sampling ratio 2, aligned False) on a
  256x320 image's P2..P5, and the same with the adaptive sampling ratio (-1).
"""

import os

import numpy as np
import torch
import torchvision
from torchvision.ops import MultiScaleRoIAlign, roi_align

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "roi_align_reference.npz")


def random_boxes(rng, count, height, width, max_side):
    """[count, (x1, y1, x2, y2)] image-pixel boxes (torchvision's order), float32."""
    cy = rng.uniform(-0.1 * height, 1.1 * height, count)
    cx = rng.uniform(-0.1 * width, 1.1 * width, count)
    h = np.exp(rng.uniform(np.log(0.5), np.log(max_side), count))
    w = h * np.exp(rng.uniform(-1.0, 1.0, count))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)


def main():
    rng = np.random.default_rng(25)
    # Single level: 2 images, 5 channels, a 13x17 map of a 52x68 image (scale 1/4).
    features = rng.standard_normal((2, 5, 13, 17)).astype(np.float32)
    boxes = random_boxes(rng, 60, 52, 68, 60)
    special = np.array([
        [10.0, 12.0, 11.0, 12.5],      # smaller than a cell (1 x 0.5 image pixels)
        [0.0, 0.0, 68.0, 52.0],        # the whole image, touching every border
        [0.0, 20.0, 6.0, 30.0],        # touching the left border
        [60.0, 44.0, 68.0, 52.0],      # touching the bottom-right corner
        [-12.0, -8.0, 10.0, 9.0],      # partly outside (top-left)
        [55.0, 40.0, 80.0, 70.0],      # partly outside (bottom-right)
        [-30.0, -30.0, -10.0, -10.0],  # entirely outside
        [30.0, 30.0, 30.0, 30.0],      # zero size
    ], np.float32)
    boxes = np.concatenate([boxes, special])
    box_indices = (np.arange(len(boxes)) % 2).astype(np.int32)
    rois = torch.from_numpy(np.concatenate([box_indices[:, None].astype(np.float32), boxes], 1))
    out = {"features": features, "boxes_xyxy": boxes, "box_indices": box_indices,
           "spatial_scale": np.float32(0.25)}
    cases = []
    for ratio in (1, 2, 3, -1):
        for aligned in (True, False):
            for size in ((7, 7), (14, 14), (3, 5)):
                key = "single_s{}_a{}_{}x{}".format(ratio, int(aligned), *size)
                pooled = roi_align(torch.from_numpy(features), rois, size, spatial_scale=0.25,
                                   sampling_ratio=ratio, aligned=aligned)
                out[key] = pooled.numpy().transpose(0, 2, 3, 1)       # [K, h, w, C]
                cases.append(key)
    out["single_cases"] = np.array(cases)

    # Four FPN levels of a 256x320 image, as torchvision's box head pools them.
    height, width = 256, 320
    maps = {str(i): torch.from_numpy(
        rng.standard_normal((1, 3, height // s, width // s)).astype(np.float32))
        for i, s in enumerate((4, 8, 16, 32))}
    level_boxes = random_boxes(rng, 80, height, width, 400)
    level_boxes[:, [0, 2]] = np.clip(level_boxes[:, [0, 2]], 0, width)
    level_boxes[:, [1, 3]] = np.clip(level_boxes[:, [1, 3]], 0, height)
    keep = (level_boxes[:, 2] - level_boxes[:, 0] > 1) & (level_boxes[:, 3] - level_boxes[:, 1] > 1)
    level_boxes = level_boxes[keep]
    pooler = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    pooled = pooler(maps, [torch.from_numpy(level_boxes)], [(height, width)])
    for i in range(4):
        out["pyramid_p{}".format(i + 2)] = maps[str(i)].numpy().transpose(0, 2, 3, 1)
    out["pyramid_boxes_xyxy"] = level_boxes
    out["pyramid_image_shape"] = np.array([height, width], np.int32)
    out["pyramid_pooled"] = pooled.numpy().transpose(0, 2, 3, 1)
    adaptive = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=-1)
    out["pyramid_pooled_adaptive"] = adaptive(maps, [torch.from_numpy(level_boxes)],
                                              [(height, width)]).numpy().transpose(0, 2, 3, 1)
    out["versions"] = np.array(["torch " + torch.__version__,
                                "torchvision " + torchvision.__version__])
    np.savez_compressed(OUT, **out)
    print("wrote", OUT, os.path.getsize(OUT), "bytes;", len(cases), "single-level cases,",
          len(level_boxes), "pyramid boxes")


if __name__ == "__main__":
    main()
