"""Annotation-format loaders: each test writes a tiny fixture and checks masks pixel for pixel."""

import base64
import json
import os

import numpy as np
import pytest
import skimage.io
from matplotlib.path import Path
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mrcnn.data import pipeline as data, formats
from mrcnn.config import Config
from mrcnn.data.formats import (AnnotationError, CocoDataset, LabelmeDataset, MaskFolderDataset,
                                ViaDataset)

H, W = 40, 50
ROWS, COLS = np.mgrid[0:H, 0:W]
# Pixel (r, c) covers [c, c + 1) x [r, r + 1): shapes are tested at pixel centres.
X, Y = COLS + 0.5, ROWS + 0.5


def write_image(path, height=H, width=W, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    skimage.io.imsave(path, image, check_contrast=False)
    return image


def write_json(path, content):
    with open(path, "w") as f:
        json.dump(content, f)
    return str(path)


def check_load_image_gt(dataset, image_id):
    """The loader's dataset plugs into training: load_image_gt resizes its image and masks."""
    class FormatsConfig(Config):
        NAME = "formats"
        NUM_CLASSES = dataset.num_classes
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = 64
        BACKBONE = "resnet50"
        IMAGES_PER_GPU = 1

    _, class_ids = dataset.load_mask(image_id)
    image, meta, gt_class_ids, boxes, masks = data.load_image_gt(
        dataset, FormatsConfig(), image_id, rng=np.random.default_rng(0))
    assert image.shape == (64, 64, 3)
    np.testing.assert_array_equal(gt_class_ids, class_ids)
    assert boxes.shape == (len(class_ids), 4) and masks.shape[-1] == len(class_ids)
    assert len(class_ids) > 0 and np.all(boxes[:, 2:] > boxes[:, :2])


# Independent rasterizations of the shapes, on pixel centres.

def polygon_mask(xs, ys):
    return Path(np.stack([xs, ys], axis=1)).contains_points(
        np.stack([X.ravel(), Y.ravel()], axis=1)).reshape(H, W)


def ellipse_mask(cx, cy, rx, ry, theta=0.0):
    # theta turns the rx axis from +x towards +y (image rows grow downwards).
    dx, dy = X - cx, Y - cy
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    return (u / rx) ** 2 + (v / ry) ** 2 < 1


def rect_mask(x, y, width, height):
    mask = np.zeros((H, W), bool)
    mask[y:y + height, x:x + width] = True
    return mask


def assert_close(mask, expected, tolerance=3):
    """Equal up to ``tolerance`` pixels (points on a shape's boundary go either way)."""
    assert mask.shape == expected.shape and expected.sum() > 20
    assert np.sum(mask != expected) <= tolerance, (np.sum(mask != expected), expected.sum())


############################################################
#  COCO
############################################################

def uncompressed_rle(mask):
    """COCO's uncompressed RLE: run lengths of the column-major mask, starting with zeros."""
    flat = mask.ravel(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return {"counts": ([0] + counts) if flat[0] else counts, "size": [H, W]}


@pytest.fixture
def coco_file(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        write_image(str(tmp_path / "images" / name))
    block = rect_mask(5, 25, 12, 10)
    compressed = mask_utils.encode(np.asfortranarray(rect_mask(30, 2, 15, 8).astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode("ascii")
    crowd = rect_mask(35, 20, 10, 15) | rect_mask(20, 36, 6, 3)
    anns = [
        (1, 3, [[3, 3, 20, 4, 12, 18]], 0),                                  # polygon
        (1, 7, [[22, 5, 30, 5, 30, 15, 22, 15], [40, 30, 48, 38, 40, 38]], 0),  # two parts
        (1, 7, uncompressed_rle(block), 0),
        (1, 3, compressed, 0),
        (1, 3, uncompressed_rle(crowd), 1),
        (1, 3, [[10.1, 10.1, 10.3, 10.1, 10.2, 10.3]], 0),                  # under a pixel
        (3, 7, [[5, 5, 25, 5, 15, 30]], 0),
    ]
    content = {
        "images": [{"id": i, "file_name": name, "height": H, "width": W}
                   for i, name in ((1, "a.png"), (2, "b.png"), (3, "c.png"))],
        "categories": [{"id": 3, "name": "car"}, {"id": 7, "name": "boat"}],
        "annotations": [{"id": k, "image_id": image, "category_id": cat, "segmentation": seg,
                         "iscrowd": crowd, "area": 1.0, "bbox": [0, 0, 1, 1]}
                        for k, (image, cat, seg, crowd) in enumerate(anns, start=10)],
    }
    return write_json(tmp_path / "instances.json", content), str(tmp_path / "images")


def test_coco_masks_match_pycocotools(coco_file):
    annotation_file, image_dir = coco_file
    ds = CocoDataset()
    coco = ds.load_coco_json(annotation_file, image_dir, return_coco=True)
    ds.prepare()
    assert isinstance(coco, COCO)
    assert ds.class_names == ["BG", "car", "boat"]
    assert [info["id"] for info in ds.image_info] == [1, 2, 3]
    assert ds.image_reference(0) == os.path.join(image_dir, "a.png")

    masks, class_ids = ds.load_mask(0)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert coco.annToMask(anns[5]).sum() == 0     # the polygon under a pixel is dropped
    assert masks.shape == (H, W, 5) and masks.dtype == bool and class_ids.dtype == np.int32
    np.testing.assert_array_equal(class_ids, [1, 2, 2, 1, -1])   # crowd -> negative id
    for i, ann in enumerate(anns[:5]):
        np.testing.assert_array_equal(masks[..., i], coco.annToMask(ann).astype(bool))
    np.testing.assert_array_equal(masks[..., 2], rect_mask(5, 25, 12, 10))

    masks, class_ids = ds.load_mask(1)            # image without annotations: kept, empty
    assert masks.shape == (H, W, 0) and class_ids.shape == (0,)
    masks, class_ids = ds.load_mask(2)
    np.testing.assert_array_equal(masks[..., 0], coco.annToMask(coco.anns[16]).astype(bool))
    np.testing.assert_array_equal(class_ids, [2])
    check_load_image_gt(ds, 0)


def test_coco_class_subset_and_class_map(coco_file):
    annotation_file, image_dir = coco_file
    ds = CocoDataset()
    assert ds.load_coco_json(annotation_file, image_dir, class_ids=[7]) is None
    ds.prepare()
    # Only images holding the kept class; only its annotations.
    assert ds.class_names == ["BG", "boat"]
    assert [info["id"] for info in ds.image_info] == [1, 3]
    np.testing.assert_array_equal(ds.load_mask(0)[1], [1, 1])

    merged = CocoDataset()
    merged.load_coco_json(annotation_file, image_dir, class_map={"coco.7": "coco.3"})
    merged.prepare()
    assert merged.class_names == ["BG", "car"]
    np.testing.assert_array_equal(merged.load_mask(0)[1], [1, 1, 1, 1, -1])

    with pytest.raises(AnnotationError, match=r"instances\.json.*\[5\]"):
        CocoDataset().load_coco_json(annotation_file, image_dir, class_ids=[3, 5])


def test_coco_class_names_are_unambiguous(coco_file, tmp_path):
    annotation_file, image_dir = coco_file
    named = CocoDataset()
    named.load_coco_json(annotation_file, image_dir, class_names=["boat"])
    named.prepare()
    assert named.class_names == ["BG", "boat"]
    # Both selections at once: which one wins would be a guess.
    with pytest.raises(ValueError, match="class_ids or class_names, not both"):
        CocoDataset().load_coco_json(annotation_file, image_dir, class_ids=[3],
                                     class_names=["car"])
    # Two categories named "car": the name selects neither silently.
    with open(annotation_file) as f:
        content = json.load(f)
    content["categories"].append({"id": 9, "name": "car"})
    twice = write_json(tmp_path / "twice.json", content)
    with pytest.raises(AnnotationError, match=r"twice\.json: categories \[3, 9\] share the "
                                              r"name 'car'"):
        CocoDataset().load_coco_json(twice, image_dir, class_names=["car"])
    # A name asked for that is not shared still loads.
    boats = CocoDataset()
    boats.load_coco_json(twice, image_dir, class_names=["boat"])
    boats.prepare()
    assert boats.class_names == ["BG", "boat"]


def coco_with(tmp_path, annotations, images=None, categories=None):
    """A COCO file of one 40x50 image (id 1, a.png) and one category (id 3), and its folder."""
    write_image(str(tmp_path / "images" / "a.png"))
    content = {
        "images": images or [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
        "categories": categories or [{"id": 3, "name": "car"}],
        "annotations": [{"id": k, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 1.0,
                         "bbox": [0, 0, 1, 1], **ann}
                        for k, ann in enumerate(annotations, start=10)],
    }
    return write_json(tmp_path / "instances.json", content), str(tmp_path / "images")


@pytest.mark.parametrize("segmentation, problem", [
    # Issue 27 case 1: pycocotools would allocate without bound (or crash) on these.
    ([[3, 3, 20, float("nan"), 12, 18]], r"polygon 0: expected a list of finite numbers"),
    ([[3, 3, 1e9, 4, 12, 18]], r"polygon 0: polygon spans x 3\.\.1e\+09.*more than 4 image "
                               r"sizes outside the 50x40 image"),
    # Case 5: the rule of the VIA and labelme loaders.
    ([[3, 3, 20, 4, 12, 18], [60, 1, 70, 1, 65, 9]], r"polygon 1: polygon spans x 60\.\.70, "
                                                     r"y 1\.\.9: entirely outside the 50x40"),
    # Case 2: run lengths that do not cover the image exactly (uninitialized memory).
    ({"counts": [100, 50], "size": [H, W]}, r"uncompressed RLE counts add up to 150 pixels, "
                                             r"but the 50x40 image has 2000"),
    ({"counts": [1000, 500, 1000], "size": [H, W]}, "add up to 2500 pixels"),
    ({"counts": [2100, -100], "size": [H, W]}, "with negative runs"),
    ({"counts": "Q1", "size": [H, W]}, "compressed RLE counts add up to"),
    ({"counts": [1.5, 1998.5], "size": [H, W]}, "must be a list of integers"),
])
def test_coco_bad_segmentation_names_the_annotation(tmp_path, segmentation, problem):
    annotation_file, image_dir = coco_with(tmp_path, [{"segmentation": segmentation}])
    with pytest.raises(AnnotationError, match=r"instances\.json: image id 1, annotation id 10"
                                              r".*" + problem):
        CocoDataset().load_coco_json(annotation_file, image_dir)


def test_rle_string_counts_are_pycocotools(tmp_path):
    mask = rect_mask(5, 25, 12, 10) | rect_mask(30, 2, 15, 8) | rect_mask(0, 0, 50, 1)
    compressed = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert formats._rle_string_counts(compressed["counts"]) == uncompressed_rle(mask)["counts"]
    # A compressed RLE that covers the image loads as pycocotools decodes it.
    compressed["counts"] = compressed["counts"].decode("ascii")
    annotation_file, image_dir = coco_with(tmp_path, [
        {"segmentation": compressed}])
    ds = CocoDataset()
    ds.load_coco_json(annotation_file, image_dir)
    ds.prepare()
    np.testing.assert_array_equal(ds.load_mask(0)[0][..., 0], mask)


def test_coco_ids_must_be_unique(tmp_path):
    # Issue 27 case 3: pycocotools keys images by id, so one of these would vanish.
    write_image(str(tmp_path / "images" / "b.png"))
    images = [{"id": 1, "file_name": "a.png", "height": H, "width": W},
              {"id": 1, "file_name": "b.png", "height": H, "width": W}]
    annotation_file, image_dir = coco_with(tmp_path, [], images=images)
    with pytest.raises(AnnotationError, match=r"instances\.json: images\[0\] and images\[1\] "
                                              r"have the same id 1"):
        CocoDataset().load_coco_json(annotation_file, image_dir)
    square = {"segmentation": [[3, 3, 20, 3, 20, 20, 3, 20]]}
    annotation_file, image_dir = coco_with(tmp_path, [square, square])
    data = json.load(open(annotation_file))
    data["annotations"][1]["id"] = 10
    write_json(annotation_file, data)
    with pytest.raises(AnnotationError, match=r"annotations\[0\] and annotations\[1\] have "
                                              r"the same id 10"):
        CocoDataset().load_coco_json(annotation_file, image_dir)
    annotation_file, image_dir = coco_with(tmp_path, [dict(square, image_id=[1])])
    with pytest.raises(AnnotationError, match=r"annotations\[0\] has image_id \[1\]; ids are "
                                              r"integers"):
        CocoDataset().load_coco_json(annotation_file, image_dir)


def test_coco_annotations_of_undefined_images_or_categories(tmp_path):
    # Issue 27 case 4: ignored with a warning that counts them, refused when strict.
    square = [[3, 3, 20, 3, 20, 20, 3, 20]]
    annotation_file, image_dir = coco_with(tmp_path, [
        {"segmentation": square}, {"segmentation": square, "image_id": 7},
        {"segmentation": square, "image_id": 8}, {"segmentation": square, "category_id": 99}])
    ds = CocoDataset()
    with pytest.warns(UserWarning) as record:
        ds.load_coco_json(annotation_file, image_dir)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert "instances.json: 1 annotation(s) whose category_id is not defined in 'categories' " \
        "are ignored (first: annotation id 13 -> category_id 99)" in messages[0]
    assert "instances.json: 2 annotation(s) whose image_id is not defined in 'images' are " \
        "ignored (first: annotation id 11 -> image_id 7, annotation id 12 -> image_id 8)" \
        in messages[1]
    ds.prepare()
    assert ds.load_mask(0)[1].tolist() == [1]
    with pytest.raises(AnnotationError, match=r"instances\.json: 2 annotation\(s\) whose "
                                              r"image_id is not defined in 'images'"):
        CocoDataset().load_coco_json(annotation_file, image_dir, strict=True)


def test_coco_json_errors_name_the_file_and_the_format(tmp_path):
    # Issue 27 case 12: a truncated file, and a VIA or labelme file given as COCO.
    write_image(str(tmp_path / "a.png"))
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"images": [{"id": 1, "file_na')
    with pytest.raises(AnnotationError, match=r"truncated\.json: cannot read json: "
                                              r"Unterminated string"):
        CocoDataset().load_coco_json(str(truncated), str(tmp_path))
    via = write_json(tmp_path / "via.json", via_entries(tmp_path, as_dict=True))
    with pytest.raises(AnnotationError, match=r"via\.json: not a COCO instances json: no "
                                              r"'images' or 'categories' list; it looks like a "
                                              r"VIA project or export \(ViaDataset\.load_via"):
        CocoDataset().load_coco_json(via, str(tmp_path))
    labelme = write_json(tmp_path / "a.json", labelme_json("a.png", []))
    with pytest.raises(AnnotationError, match=r"a\.json: not a COCO .*it looks like a labelme "
                                              r"file"):
        CocoDataset().load_coco_json(labelme, str(tmp_path))
    annotation_file, image_dir = coco_with(tmp_path, [])
    with pytest.raises(AnnotationError, match=r"instances\.json: entry 'images' has no "
                                              r"'filename'.*it looks like a COCO json"):
        ViaDataset().load_via(annotation_file, image_dir)
    with pytest.raises(AnnotationError, match=r"instances\.json: not a labelme file \(no "
                                              r"'shapes'\); it looks like a COCO json"):
        LabelmeDataset().load_labelme([annotation_file])


############################################################
#  VIA
############################################################

# (shape_attributes, class, expected mask, tolerance)
VIA_REGIONS = [
    ({"name": "polygon", "all_points_x": [5, 30, 20], "all_points_y": [5, 8, 30]}, "cat",
     polygon_mask([5, 30, 20], [5, 8, 30]), 3),
    ({"name": "rect", "x": 32, "y": 4, "width": 10, "height": 12}, "dog",
     rect_mask(32, 4, 10, 12), 0),
    ({"name": "circle", "cx": 12, "cy": 30, "r": 6}, "cat", ellipse_mask(12, 30, 6, 6), 3),
    ({"name": "ellipse", "cx": 38, "cy": 27, "rx": 9, "ry": 4, "theta": 0.5}, "dog",
     ellipse_mask(38, 27, 9, 4, 0.5), 3),
    # A polyline is closed; this one is partly outside the image and gets clipped.
    ({"name": "polyline", "all_points_x": [42, 58, 58, 44], "all_points_y": [33, 34, 46, 44]},
     "cat", polygon_mask([42, 58, 58, 44], [33, 34, 46, 44]), 3),
]


def via_regions(as_dict):
    regions = []
    for i, (shape, name, _, _) in enumerate(VIA_REGIONS):
        # VIA's checkbox attributes are dicts of ticked names.
        species = {name: True, "bird": False} if i == 1 else name
        regions.append({"shape_attributes": shape, "region_attributes": {"species": species}})
    return {str(i): r for i, r in enumerate(regions)} if as_dict else regions


def via_entries(tmp_path, as_dict):
    write_image(str(tmp_path / "a.png"))
    write_image(str(tmp_path / "empty.png"), 30, 20)
    return {"a.png1234": {"filename": "a.png", "size": 1234, "regions": via_regions(as_dict),
                          "file_attributes": {}},
            "empty.png99": {"filename": "empty.png", "size": 99,
                            "regions": {} if as_dict else [], "file_attributes": {}}}


def check_via_masks(ds, class_ids_expected):
    masks, class_ids = ds.load_mask(0)
    assert masks.shape == (H, W, len(VIA_REGIONS))
    for i, (_, _, expected, tolerance) in enumerate(VIA_REGIONS):
        assert_close(masks[..., i], expected, tolerance)
    np.testing.assert_array_equal(class_ids, class_ids_expected)
    masks, class_ids = ds.load_mask(1)       # no regions: kept, empty, own size
    assert masks.shape == (30, 20, 0) and class_ids.shape == (0,)
    assert (ds.image_info[1]["height"], ds.image_info[1]["width"]) == (30, 20)


def test_via1_regions_dict(tmp_path):
    annotation_file = write_json(tmp_path / "via.json", via_entries(tmp_path, as_dict=True))
    ds = ViaDataset()
    ds.load_via(annotation_file, str(tmp_path), class_attribute="species")
    ds.prepare()
    assert ds.class_names == ["BG", "cat", "dog"]      # sorted names found
    assert [info["id"] for info in ds.image_info] == ["a.png", "empty.png"]
    check_via_masks(ds, [1, 2, 1, 2, 1])
    check_load_image_gt(ds, 0)


def test_via2_project_uses_attribute_options(tmp_path):
    project = {"_via_settings": {}, "_via_img_metadata": via_entries(tmp_path, as_dict=False),
               "_via_attributes": {"region": {"species": {
                   "type": "dropdown", "options": {"dog": "", "cat": "", "bird": ""}}},
                   "file": {}}}
    annotation_file = write_json(tmp_path / "project.json", project)
    ds = ViaDataset()
    ds.load_via(annotation_file, str(tmp_path), class_attribute="species")
    ds.prepare()
    assert ds.class_names == ["BG", "dog", "cat", "bird"]   # the project's option order
    check_via_masks(ds, [2, 1, 2, 1, 2])

    one_class = ViaDataset()                # no class attribute: one class
    one_class.load_via(annotation_file, str(tmp_path))
    one_class.prepare()
    assert one_class.class_names == ["BG", "object"]
    check_via_masks(one_class, [1] * 5)
    check_load_image_gt(one_class, 0)
    named = ViaDataset()
    named.load_via(annotation_file, str(tmp_path), class_names=["balloon"])
    named.prepare()
    assert named.class_names == ["BG", "balloon"]


@pytest.mark.parametrize("region, problem", [
    ({"shape_attributes": {"name": "polygon", "all_points_x": [60, 70, 65],
                           "all_points_y": [1, 1, 9]}}, "entirely outside"),
    ({"shape_attributes": {"name": "rect", "x": -20, "y": 5, "width": 20, "height": 5}},
     "entirely outside"),
    ({"shape_attributes": {"name": "polygon", "all_points_x": [1, 9, 5],
                           "all_points_y": [1, 1]}}, "3 x coordinates but 2 y"),
    ({"shape_attributes": {"name": "polygon", "all_points_x": [1, 9],
                           "all_points_y": [1, 1]}}, "at least 3 points"),
    ({"shape_attributes": {"name": "point", "cx": 3, "cy": 4}}, "unsupported region shape"),
    ({"shape_attributes": {"name": "circle", "cx": 3, "cy": 4}}, "without 'r'"),
    ({"shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 5, "height": 5},
      "region_attributes": {"species": "horse"}}, "unknown class 'horse'"),
    # Issue 27: the coordinate range of every loader (a 1e9 corner, a huge circle).
    ({"shape_attributes": {"name": "polygon", "all_points_x": [1, 1e9, 5],
                           "all_points_y": [1, 1, 9]}}, "more than 4 image sizes outside"),
    ({"shape_attributes": {"name": "circle", "cx": 3, "cy": 4, "r": 1e9}},
     "more than 4 image sizes outside"),
])
def test_via_malformed_region(tmp_path, region, problem):
    write_image(str(tmp_path / "a.png"))
    ok = {"shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 5, "height": 5},
          "region_attributes": {"species": "cat"}}
    region = {"region_attributes": {"species": "cat"}, **region}
    annotation_file = write_json(tmp_path / "bad.json", {"a.png1": {
        "filename": "a.png", "size": 1, "regions": [ok, region]}})
    with pytest.raises(AnnotationError) as error:
        ViaDataset().load_via(annotation_file, str(tmp_path), class_attribute="species",
                              class_names=["cat", "dog"])
    message = str(error.value)
    assert annotation_file in message and "'a.png'" in message and "region 1" in message
    assert problem in message


def test_via_same_image_in_two_entries(tmp_path):
    # Issue 27 case 6: each entry would load the image with part of its regions.
    entries = via_entries(tmp_path, as_dict=False)
    entries["a.png999"] = {"filename": "a.png", "size": 999, "file_attributes": {},
                           "regions": via_regions(False)[:1]}
    annotation_file = write_json(tmp_path / "via.json", entries)
    with pytest.raises(AnnotationError, match=r"via\.json: entries 'a\.png1234' and 'a\.png999' "
                                              r"both name image 'a\.png'"):
        ViaDataset().load_via(annotation_file, str(tmp_path))


def test_via_missing_image(tmp_path):
    annotation_file = write_json(tmp_path / "via.json", {"gone.png1": {
        "filename": "gone.png", "size": 1, "regions": {}}})
    with pytest.raises(AnnotationError, match=r"via\.json: image 'gone\.png'.*not found"):
        ViaDataset().load_via(annotation_file, str(tmp_path))


############################################################
#  labelme
############################################################

def labelme_json(image_path, shapes, image_data=None):
    return {"version": "5.4.1", "flags": {}, "imagePath": image_path, "imageData": image_data,
            "imageHeight": H, "imageWidth": W,
            "shapes": [{"label": label, "points": points, "group_id": group,
                        "shape_type": kind, "flags": {}}
                       for label, kind, points, group in shapes]}


def test_labelme_shapes_groups_and_embedded_image(tmp_path):
    write_image(str(tmp_path / "a.png"))
    shapes = [
        ("dog", "polygon", [[5, 5], [30, 8], [20, 30]], None),
        ("cat", "rectangle", [[30, 20], [10, 5]], None),          # corners in any order
        ("dog", "circle", [[35, 30], [35, 36]], None),
        # Shapes sharing label and group_id are one instance.
        ("cat", "polygon", [[40, 2], [48, 2], [48, 10]], 1),
        ("cat", "polygon", [[40, 12], [48, 12], [44, 18]], 1),
    ]
    write_json(tmp_path / "a.json", labelme_json("a.png", shapes))
    # A second json whose image exists only as imageData.
    embedded = write_image(str(tmp_path / "tmp" / "b.png"), seed=1)
    with open(tmp_path / "tmp" / "b.png", "rb") as f:
        encoded = base64.b64encode(f.read()).decode("ascii")
    os.remove(tmp_path / "tmp" / "b.png")
    write_json(tmp_path / "b.json", labelme_json("..\\photos\\b.png", shapes[:1], encoded))

    ds = LabelmeDataset()
    ds.load_labelme(str(tmp_path))
    ds.prepare()
    assert ds.class_names == ["BG", "cat", "dog"]
    assert [os.path.basename(info["id"]) for info in ds.image_info] == ["a.json", "b.json"]
    masks, class_ids = ds.load_mask(0)
    np.testing.assert_array_equal(class_ids, [2, 1, 2, 1])
    assert_close(masks[..., 0], polygon_mask([5, 30, 20], [5, 8, 30]))
    np.testing.assert_array_equal(masks[..., 1], rect_mask(10, 5, 20, 15))
    assert_close(masks[..., 2], ellipse_mask(35, 30, 6, 6))
    assert_close(masks[..., 3], polygon_mask([40, 48, 48], [2, 2, 10]) |
                 polygon_mask([40, 48, 44], [12, 12, 18]), 6)
    np.testing.assert_array_equal(ds.load_image(1), embedded)
    check_load_image_gt(ds, 0)

    fixed = LabelmeDataset()              # a fixed class list; one file as a list
    fixed.load_labelme([str(tmp_path / "b.json")], class_names=["bird", "dog"])
    fixed.prepare()
    np.testing.assert_array_equal(fixed.load_mask(0)[1], [2])


@pytest.mark.parametrize("shape, problem", [
    (("cat", "line", [[1, 1], [9, 9]], None), "unsupported shape_type 'line'"),
    (("horse", "polygon", [[1, 1], [9, 1], [5, 9]], None), "unknown label 'horse'"),
    (("cat", "rectangle", [[1, 1], [9, 1], [5, 9]], None), "needs 2 points"),
    (("cat", "circle", [[-20, -20], [-20, -15]], None), "entirely outside"),
    (("cat", "polygon", [[1, 1], [9, -1e9], [5, 9]], None), "more than 4 image sizes outside"),
])
def test_labelme_malformed_shape(tmp_path, shape, problem):
    write_image(str(tmp_path / "a.png"))
    path = write_json(tmp_path / "a.json", labelme_json(
        "a.png", [("cat", "polygon", [[1, 1], [9, 1], [5, 9]], None), shape]))
    with pytest.raises(AnnotationError) as error:
        LabelmeDataset().load_labelme([path], class_names=["cat"])
    assert "{}: shape 1".format(path) in str(error.value) and problem in str(error.value)


def test_labelme_missing_image(tmp_path):
    path = write_json(tmp_path / "a.json", labelme_json("gone.png", []))
    with pytest.raises(AnnotationError, match=r"a\.json: image file .*gone\.png.* not found"):
        LabelmeDataset().load_labelme([path])


############################################################
#  Mask folders
############################################################

def write_mask(path, mask):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    skimage.io.imsave(path, mask.astype(np.uint8) * 255, check_contrast=False)


def test_dsb_folders(tmp_path):
    write_image(str(tmp_path / "a" / "images" / "a.png"))
    written = [rect_mask(2, 3, 10, 5), ellipse_mask(30, 20, 6, 4), rect_mask(40, 30, 8, 8)]
    for i, mask in enumerate(written):
        write_mask(str(tmp_path / "a" / "masks" / "m{}.png".format(i)), mask)
    write_image(str(tmp_path / "b" / "images" / "b.png"), 30, 20)    # test set: no masks/

    ds = MaskFolderDataset()
    ds.load_dsb(str(tmp_path))
    ds.prepare()
    assert ds.class_names == ["BG", "nucleus"]
    assert [info["id"] for info in ds.image_info] == ["a", "b"]
    masks, class_ids = ds.load_mask(0)
    np.testing.assert_array_equal(masks, np.stack(written, axis=-1))
    np.testing.assert_array_equal(class_ids, [1, 1, 1])
    masks, class_ids = ds.load_mask(1)
    assert masks.shape == (30, 20, 0) and class_ids.shape == (0,)
    check_load_image_gt(ds, 0)

    subset = MaskFolderDataset()
    subset.load_dsb(str(tmp_path), image_ids=["b"])
    assert [info["id"] for info in subset.image_info] == ["b"]

    write_mask(str(tmp_path / "a" / "masks" / "wrong.png"), np.ones((10, 10), bool))
    ds = MaskFolderDataset()
    ds.load_dsb(str(tmp_path))               # sizes are checked when the masks are read
    with pytest.raises(AnnotationError, match=r"wrong\.png: mask is 10x10"):
        ds.load_mask(0)
    os.makedirs(tmp_path / "c" / "images")
    with pytest.raises(AnnotationError, match=r"c: no image images/c\.png"):
        MaskFolderDataset().load_dsb(str(tmp_path))


def test_label_images(tmp_path):
    write_image(str(tmp_path / "images" / "x.png"))
    labels = np.zeros((H, W), np.uint8)
    labels[2:10, 3:20] = 1
    labels[15:30, 5:12] = 2
    labels[20:35, 30:45] = 5
    os.makedirs(tmp_path / "labels")
    skimage.io.imsave(str(tmp_path / "labels" / "x_label.png"), labels, check_contrast=False)

    ds = MaskFolderDataset()
    ds.load_label_images(str(tmp_path / "images"), str(tmp_path / "labels"),
                         class_name="cell", suffix="_label.png")
    ds.prepare()
    assert ds.class_names == ["BG", "cell"] and ds.image_info[0]["id"] == "x"
    masks, class_ids = ds.load_mask(0)
    np.testing.assert_array_equal(masks, np.stack([labels == v for v in (1, 2, 5)], axis=-1))
    np.testing.assert_array_equal(class_ids, [1, 1, 1])
    check_load_image_gt(ds, 0)

    write_image(str(tmp_path / "images" / "y.png"))
    with pytest.raises(AnnotationError, match=r"images/y\.png: label image .*y_label\.png"):
        MaskFolderDataset().load_label_images(str(tmp_path / "images"),
                                              str(tmp_path / "labels"), suffix="_label.png")
    skimage.io.imsave(str(tmp_path / "labels" / "y_label.png"), labels[:20],
                      check_contrast=False)
    with pytest.raises(AnnotationError, match=r"y_label\.png: label image is 50x20"):
        MaskFolderDataset().load_label_images(str(tmp_path / "images"),
                                              str(tmp_path / "labels"), suffix="_label.png")
