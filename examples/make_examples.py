"""Write a small example dataset in each format the command line reads, with its data file.

``python examples/make_examples.py`` (re)writes ``examples/<format>/`` (coco, via, labelme, dsb,
label-images): five 64x64 images (three train, two val) of known rectangles (class "box") and,
except in the one-class mask-folder formats, ellipses ("disc"), each in its tool's real layout,
and ``data.yaml`` naming them. Then, from the repository root:

    python -m mrcnn inspect examples/via/data.yaml
    python -m mrcnn train   examples/via/data.yaml --weights none --epochs 1 --steps 2

The tests write the same datasets (``tests/test_cli.py``) and check that the committed ones are
what this script writes.
"""

import argparse
import json
import os
import shutil
import sys
import zlib

import numpy as np
import skimage.draw
import skimage.io

# Run as a script, this folder is on the path but not the repository root (mrcnn's checkout).
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mrcnn.data.datafile import FORMATS  # noqa: E402

SIZE = 64
# Per image: (class, (y1, x1, y2, x2)) of each object; a "disc" fills the ellipse inside
# its box. Train has 3 images, val 2.
OBJECTS = {
    "train": [[("box", (6, 8, 30, 40)), ("disc", (36, 30, 58, 56))],
              [("box", (30, 4, 60, 26))],
              [("disc", (4, 20, 30, 50)), ("box", (40, 40, 58, 60))]],
    "val": [[("box", (10, 10, 40, 34))],
            [("disc", (20, 24, 52, 60))]],
}
ONE_CLASS_FORMATS = ("dsb", "label-images")


def object_mask(kind, box):
    """[SIZE, SIZE] bool mask of a "box" (the rectangle) or a "disc" (the ellipse in it)."""
    y1, x1, y2, x2 = box
    mask = np.zeros((SIZE, SIZE), bool)
    if kind == "box":
        mask[y1:y2, x1:x2] = True
    else:
        rr, cc = skimage.draw.ellipse((y1 + y2 - 1) / 2, (x1 + x2 - 1) / 2, (y2 - y1) / 2,
                                      (x2 - x1) / 2, shape=(SIZE, SIZE))
        mask[rr, cc] = True
    return mask


def objects_of(fmt, split):
    """The split's objects; the one-class formats keep the boxes only."""
    return [[o for o in image if fmt not in ONE_CLASS_FORMATS or o[0] == "box"]
            for image in OBJECTS[split]]


def draw_image(objects, seed):
    """[SIZE, SIZE, 3] uint8: a noisy dark background with each object in its class colour."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(60, 8, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    for kind, box in objects:
        image[object_mask(kind, box)] = (220, 60, 40) if kind == "box" else (40, 200, 90)
    return image


def polygon(kind, box):
    """The object's outline as (xs, ys) in pixel-corner coordinates."""
    y1, x1, y2, x2 = box
    if kind == "box":
        return [x1, x2, x2, x1], [y1, y1, y2, y2]
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    return (np.round(cx + rx * np.cos(angles), 2).tolist(),
            np.round(cy + ry * np.sin(angles), 2).tolist())


def write_json(path, content):
    """Write ``content`` as json at ``path``, making its folder."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(content, f)


def write_split(root, fmt, split):
    """Write one split in ``fmt`` under ``root``; returns its data-file entry."""
    images_dir = os.path.join(root, split, "images")
    os.makedirs(images_dir, exist_ok=True)
    coco = {"images": [], "annotations": [],
            "categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "disc"}]}
    via = {}
    for index, objects in enumerate(objects_of(fmt, split)):
        name = "{}_{}".format(split, index)
        # A seed of its own per image, the same in every process (str hashes are not).
        image = draw_image(objects, seed=zlib.crc32("{} {} {}".format(fmt, split, index).encode()))
        if fmt == "dsb":
            folder = os.path.join(root, split, "images", name)
            os.makedirs(os.path.join(folder, "images"))
            skimage.io.imsave(os.path.join(folder, "images", name + ".png"), image,
                              check_contrast=False)
            os.makedirs(os.path.join(folder, "masks"))
            for k, (kind, box) in enumerate(objects):
                skimage.io.imsave(os.path.join(folder, "masks", "{}.png".format(k)),
                                  object_mask(kind, box).astype(np.uint8) * 255,
                                  check_contrast=False)
            continue
        skimage.io.imsave(os.path.join(images_dir, name + ".png"), image, check_contrast=False)
        if fmt == "label-images":
            labels = np.zeros((SIZE, SIZE), np.uint8)
            for k, (kind, box) in enumerate(objects, start=1):
                labels[object_mask(kind, box)] = k
            os.makedirs(os.path.join(root, split, "labels"), exist_ok=True)
            skimage.io.imsave(os.path.join(root, split, "labels", name + ".png"), labels,
                              check_contrast=False)
        elif fmt == "coco":
            coco["images"].append({"id": index + 1, "file_name": name + ".png",
                                   "height": SIZE, "width": SIZE})
            for kind, box in objects:
                xs, ys = polygon(kind, box)
                y1, x1, y2, x2 = box
                coco["annotations"].append({
                    "id": len(coco["annotations"]) + 1, "image_id": index + 1,
                    "category_id": 1 if kind == "box" else 2, "iscrowd": 0,
                    "segmentation": [[v for xy in zip(xs, ys) for v in xy]],
                    "area": float((y2 - y1) * (x2 - x1)), "bbox": [x1, y1, x2 - x1, y2 - y1]})
        elif fmt == "via":
            regions = []
            for kind, box in objects:
                xs, ys = polygon(kind, box)
                regions.append({"shape_attributes": {"name": "polygon", "all_points_x": xs,
                                                     "all_points_y": ys},
                                "region_attributes": {"type": kind}})
            via[name + ".png"] = {"filename": name + ".png", "size": 0, "regions": regions,
                                  "file_attributes": {}}
        elif fmt == "labelme":
            shapes = []
            for kind, box in objects:
                xs, ys = polygon(kind, box)
                shapes.append({"label": kind, "points": [list(p) for p in zip(xs, ys)],
                               "shape_type": "polygon", "group_id": None})
            write_json(os.path.join(root, split, "labelme", name + ".json"),
                       {"imagePath": "../images/{}.png".format(name), "imageData": None,
                        "imageHeight": SIZE, "imageWidth": SIZE, "shapes": shapes})
    if fmt == "coco":
        write_json(os.path.join(root, split, "instances.json"), coco)
        return {"annotations": split + "/instances.json", "images": split + "/images"}
    if fmt == "via":
        write_json(os.path.join(root, split, "via.json"),
                   {"_via_settings": {}, "_via_img_metadata": via, "_via_attributes": {}})
        return {"annotations": split + "/via.json", "images": split + "/images",
                "class_attribute": "type"}
    if fmt == "labelme":
        return {"annotations": split + "/labelme"}
    if fmt == "dsb":
        return {"images": split + "/images"}
    return {"images": split + "/images", "labels": split + "/labels"}


def write_data(root, fmt, extension=".yaml", **extra):
    """A dataset in ``fmt`` and its data file under ``root``; returns the data file's path.

    extra: further keys of the data file (``config``, ``classes``, ``overrides``, ...).
    """
    import yaml

    root = str(root)
    content = {"format": fmt, "name": "example_" + fmt.replace("-", "_"),
               "train": write_split(root, fmt, "train"), "val": write_split(root, fmt, "val"),
               **extra}
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, "data" + extension)
    with open(path, "w") as f:
        if extension == ".json":
            json.dump(content, f, indent=1)
        else:
            f.write("# The data file of `python -m mrcnn` (docs/data.md): the annotations' format,\n"
                    "# each split's files (paths relative to this file), Config overrides.\n")
            yaml.safe_dump(content, f, sort_keys=False)
    return path


# What the committed examples' data files add: 64x64 images, so a model of 64x64 inputs with
# anchors for objects of 18-36 px; the other settings are the command line's defaults.
EXAMPLE_OVERRIDES = {"IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 64, "BACKBONE": "resnet50",
                     "RPN_ANCHOR_SCALES": [8, 16, 24, 32, 48]}


def write_examples(out_dir):
    """Write every format's example under ``out_dir/<format>/`` (replacing what is there);
    returns the data files."""
    paths = []
    for fmt in FORMATS:
        root = os.path.join(out_dir, fmt)
        if os.path.isdir(root):
            shutil.rmtree(root)
        paths.append(write_data(root, fmt, overrides=EXAMPLE_OVERRIDES))
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default=os.path.dirname(os.path.abspath(__file__)),
                        help="folder to write the examples into (default: this folder)")
    args = parser.parse_args(argv)
    for path in write_examples(args.out):
        print(path)


if __name__ == "__main__":
    main()
