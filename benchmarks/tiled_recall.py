"""Recall on large images with small objects: tiled detection against the downscaled image.

A shapes model (``make demo``'s ScratchShapesConfig, trained on 128x128 images with shapes of
40-64 px, triangles up to 74 px wide) detects on generated large images (``--sizes``, square) holding many shapes of the
training sizes, drawn as the shapes sample draws them on one background colour, apart from
each other. Two ways, on the same images:

- whole: ``model.detect([image])``: the image resized to 128x128, so a 1024-px image's
  shapes shrink to 5-8 px;
- tiled: ``model.detect([image], tile=True, overlap=--overlap)``: 128-px tiles at full
  resolution, merged across tile borders (``mrcnn.inference.tiling``).

For each: recall at mask IoU 0.5 and 0.75 (a ground-truth shape counts as found when a
detection of its class matches it: ``utils.compute_matches``, Matterport's matching), the
detections per ground-truth shape, AP50 (``utils.compute_ap``) and the seconds per image.
Prints JSON (``_report.machine()``).

    make demo          # trains the model: logs/demo/shapes<time>/mask_rcnn_shapes_0004.h5
    python benchmarks/tiled_recall.py [--weights PATH] [--images 3] [--out results.json]
"""

import argparse
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from _report import emit, machine  # noqa: E402


def large_image(size, count, seed):
    """A ``size`` x ``size`` image of up to ``count`` shapes of the 128-px training sizes, apart
    from each other: (image [size, size, 3] uint8, masks [size, size, N] bool, class_ids [N])."""
    import numpy as np
    from samples.shapes.shapes import SHAPES, ShapesDataset, shape_pixels

    rng = np.random.default_rng(seed)
    background = tuple(int(c) for c in rng.integers(0, 256, size=3))
    image = np.empty((size, size, 3), np.uint8)
    image[:] = background
    placed, masks, class_ids = [], [], []
    for _ in range(count * 20):
        if len(placed) == count:
            break
        shape, color, (_, _, s) = ShapesDataset.random_shape(128, 128, rng)
        # The triangle reaches s / sin(60) sideways: keep every shape whole inside the image.
        reach = int(np.ceil(s / np.sin(np.radians(60)))) + 1
        y, x = (int(v) for v in rng.integers(reach, size - reach, size=2))
        # Apart: no two shapes' boxes (grown by 4 px) overlap, so every mask is whole.
        if any(abs(y - py) < s + ps + 4 and abs(x - px) < reach + pr + 4
               for py, px, ps, pr in placed):
            continue
        placed.append((y, x, s, reach))
        rr, cc = shape_pixels(shape, (y, x, s), (size, size))
        image[rr, cc] = color
        mask = np.zeros((size, size), bool)
        mask[rr, cc] = True
        masks.append(mask)
        class_ids.append(SHAPES.index(shape) + 1)
    return image, np.stack(masks, axis=-1), np.array(class_ids, np.int32)


def score(result, masks, class_ids, iou_thresholds=(0.5, 0.75)):
    """One image's facts: shapes found at each mask-IoU threshold, detections matched, the
    unmatched ones (at 0.5) on a shape or on the background, and AP50."""
    import numpy as np
    from mrcnn import utils

    boxes = utils.extract_bboxes(masks)
    facts = {}
    for threshold in iou_thresholds:
        gt_match, pred_match, _ = utils.compute_matches(
            boxes, class_ids, masks, result["rois"], result["class_ids"], result["scores"],
            result["masks"], iou_threshold=threshold)
        facts["found_{}".format(threshold)] = int((gt_match > -1).sum())
        facts["matched_{}".format(threshold)] = int((pred_match > -1).sum())
        if threshold == 0.5:
            # compute_matches orders the detections by score: its pred_match is in that order.
            order = np.argsort(result["scores"], kind="stable")[::-1]
            unmatched = np.asarray(result["rois"]).reshape(-1, 4)[order][pred_match == -1]
    # An unmatched detection whose box overlaps a shape's: a fragment, a duplicate or the wrong
    # class; else a detection on the background.
    on_shape = (utils.compute_overlaps(unmatched.astype(np.float64),
                                       boxes.astype(np.float64)) > 0).any(axis=1) \
        if len(unmatched) else np.zeros(0, bool)
    facts["unmatched_on_a_shape"] = int(on_shape.sum())
    facts["unmatched_on_background"] = int(len(unmatched) - on_shape.sum())
    facts["ap50"] = float(utils.compute_ap(boxes, class_ids, masks, result["rois"],
                                           result["class_ids"], result["scores"],
                                           result["masks"], iou_threshold=0.5)[0])
    facts["detections"] = int(len(result["class_ids"]))
    facts["shapes"] = int(len(class_ids))
    return facts


def summarize(rows):
    """Totals over the images of one size and mode."""
    shapes = sum(r["shapes"] for r in rows)
    detections = sum(r["detections"] for r in rows)
    return {"images": len(rows), "shapes": shapes, "detections": detections,
            "recall_0.5": round(sum(r["found_0.5"] for r in rows) / shapes, 4),
            "recall_0.75": round(sum(r["found_0.75"] for r in rows) / shapes, 4),
            "precision_0.5": round(sum(r["matched_0.5"] for r in rows) / max(detections, 1), 4),
            "unmatched_on_a_shape": sum(r["unmatched_on_a_shape"] for r in rows),
            "unmatched_on_background": sum(r["unmatched_on_background"] for r in rows),
            "mean_ap50": round(sum(r["ap50"] for r in rows) / len(rows), 4),
            "s_per_image": round(sum(r["seconds"] for r in rows) / len(rows), 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="the shapes model (default: the newest checkpoint "
                                          "under logs/demo, as `make demo` leaves it)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--images", type=int, default=3, help="images per size")
    parser.add_argument("--shapes-per-megapixel", type=float, default=40.0,
                        help="shapes placed per 1024x1024 pixels (default 40)")
    parser.add_argument("--overlap", type=int, default=80,
                        help="pixels neighbouring tiles share (default 80: above the widest "
                             "shape, a 74-px triangle)")
    parser.add_argument("--batch", type=int, default=8, help="tiles per graph call")
    parser.add_argument("--out")
    args = parser.parse_args(argv)

    from mrcnn import model as modellib
    from mrcnn.engine import checkpoints
    from samples.shapes.shapes import ScratchShapesConfig, inference_config

    logs = os.path.join(ROOT, "logs", "demo")
    weights = args.weights or checkpoints.find_last(logs, "shapes")
    # Tiles go --batch to a graph call; the whole image alone (a batch of 8 would pad it with
    # 7 blank images and time those too).
    models = {}
    for mode, batch in (("tiled", args.batch), ("whole", 1)):
        config = inference_config(ScratchShapesConfig, batch_size=batch)
        models[mode] = modellib.MaskRCNN("inference", config, logs)
        models[mode].load_weights(weights, by_name=True)
    warm = large_image(256, 4, seed=0)[0]       # tracing
    models["tiled"].detect([warm], tile=True, overlap=args.overlap)
    models["whole"].detect([warm])

    results = {"benchmark": "tiled_recall", "weights": os.path.abspath(weights),
               "overlap": args.overlap, "tile": models["tiled"].config.IMAGE_MAX_DIM, "sizes": {},
               "machine": machine()}
    for size in args.sizes:
        count = max(1, int(round(args.shapes_per_megapixel * size * size / 1024 ** 2)))
        rows = {"whole": [], "tiled": []}
        for k in range(args.images):
            image, masks, class_ids = large_image(size, count, seed=1000 * size + k)
            for mode in ("whole", "tiled"):
                start = time.perf_counter()
                if mode == "whole":
                    result = models[mode].detect([image])[0]
                else:
                    result = models[mode].detect([image], tile=True, overlap=args.overlap)[0]
                seconds = time.perf_counter() - start
                rows[mode].append({**score(result, masks, class_ids), "seconds": seconds})
        results["sizes"][str(size)] = {mode: summarize(r) for mode, r in rows.items()}
        print(size, results["sizes"][str(size)], flush=True)
    emit(results, args.out)


if __name__ == "__main__":
    main()
