"""Dataset loaders for common annotation formats: COCO json, VIA, labelme and mask folders.

Each loader is a ``Dataset`` subclass: it parses and validates the annotations once, at load
time, storing them in ``image_info``, and ``load_mask`` only rasterizes or reads them. Problems
in the input raise :class:`AnnotationError` naming the file and the annotation.

Shape coordinates (VIA, labelme) are continuous: pixel (row r, column c) covers
[c, c + 1) x [r, r + 1), and it belongs to a shape when its centre (c + 0.5, r + 0.5) does. So an
integer rectangle x, y, width, height covers exactly ``mask[y:y + height, x:x + width]``.

Nothing here imports TensorFlow.
"""

import base64
import binascii
import glob
import io
import json
import math
import numbers
import os
import warnings

import numpy as np
import PIL.Image
import skimage.draw
import skimage.io
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mrcnn.data.dataset import Dataset
from mrcnn.progress import progress_over

# Files that load_label_images takes as images.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")

# Shape coordinates may reach this many image sizes beyond each side of the image. Drawn
# shapes stray a little outside the image, never by whole image sizes; pycocotools rasterizes
# a polygon by walking its outline, so a coordinate of 1e9 would allocate memory without bound.
COORDINATE_MARGIN = 4


class AnnotationError(ValueError):
    """Malformed annotation input; the message names the file, the annotation and the problem."""


############################################################
#  Shared helpers
############################################################

def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:  # ValueError: truncated or not json at all
        raise AnnotationError("{}: cannot read json: {}".format(path, e)) from e


def _looks_like(data):
    """A hint, for error messages, naming the annotation format that parsed json ``data``
    looks like (and the loader that reads it)."""
    if isinstance(data, dict):
        if "_via_img_metadata" in data or (data and all(
                isinstance(v, dict) and "filename" in v for v in data.values())):
            return "it looks like a VIA project or export (ViaDataset.load_via reads those)"
        if "shapes" in data and "imagePath" in data:
            return "it looks like a labelme file (LabelmeDataset.load_labelme reads those)"
        if "images" in data and "categories" in data:
            return "it looks like a COCO json (CocoDataset.load_coco_json reads those)"
    elif isinstance(data, list) and data and all(
            isinstance(d, dict) and "image_id" in d and "score" in d for d in data):
        return "it looks like a COCO results file (detections), not annotations"
    return "it looks like no format that mrcnn.data.formats reads"


def _image_size(image, where):
    """(height, width) of an image file (or file object) from its header.

    skimage decodes the whole image only for the formats that Pillow cannot open.
    """
    try:
        with PIL.Image.open(image) as im:
            return im.height, im.width
    except PIL.UnidentifiedImageError:
        pass
    try:
        return np.asarray(skimage.io.imread(image)).shape[:2]
    except Exception as e:  # skimage raises many types for unreadable files
        raise AnnotationError("{}: cannot read image: {}".format(where, e)) from e


def _existing_image(path, where):
    """(height, width) of the image at ``path``; AnnotationError when it is missing."""
    if not os.path.isfile(path):
        raise AnnotationError("{}: image file {!r} not found".format(where, path))
    return _image_size(path, "{}: {}".format(where, path))


def _stack(masks, class_ids, height, width):
    """[H, W, N] bool and [N] int32, without the empty masks (shapes thinner than a pixel)."""
    keep = [i for i, m in enumerate(masks) if m.any()]
    if not keep:
        return np.zeros([height, width, 0], bool), np.zeros([0], np.int32)
    return (np.stack([masks[i] for i in keep], axis=-1),
            np.array([class_ids[i] for i in keep], np.int32))


class _FileDataset(Dataset):
    """What every loader here shares: images are files, classes are registered by name."""

    def image_reference(self, image_id):
        """The image's file path."""
        return self.image_info[image_id]["path"]

    def _register_classes(self, source, names):
        """Register ``names`` for ``source`` as ids 1, 2, ... in order; returns {name: id}.

        A name registered by an earlier call keeps its id, so loading a second file into the
        same dataset extends the classes instead of clashing with them.
        """
        ids = {c["name"]: c["id"] for c in self.class_info if c["source"] == source}
        for name in names:
            if name not in ids:
                ids[name] = max(ids.values(), default=0) + 1
                self.add_class(source, ids[name], name)
        return ids


############################################################
#  Shapes (VIA, labelme)
############################################################

# A parsed shape is ("polygon", xs, ys) or ("ellipse", cx, cy, rx, ry, theta); rectangles become
# polygons and circles ellipses. theta turns the rx axis from +x towards +y (down), in radians.

def _numbers(values, where, count=None):
    """Finite float array of ``values``; AnnotationError otherwise."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim > 1 or not np.all(np.isfinite(array)) or (
            count is not None and array.size != count):
        raise AnnotationError("{}: expected {} finite numbers, got {!r:.80}".format(
            where, count or "a list of", values))
    return array


def _polygon(xs, ys, where):
    xs, ys = _numbers(xs, where), _numbers(ys, where)
    if xs.shape != ys.shape:
        raise AnnotationError("{}: {} x coordinates but {} y coordinates".format(
            where, xs.size, ys.size))
    if xs.size < 3:
        raise AnnotationError("{}: a polygon needs at least 3 points, got {}".format(
            where, xs.size))
    return ("polygon", xs, ys)


def _rectangle(x, y, width, height, where):
    if width <= 0 or height <= 0:
        raise AnnotationError("{}: rectangle of width {:g} and height {:g}".format(
            where, width, height))
    return _polygon([x, x + width, x + width, x], [y, y, y + height, y + height], where)


def _ellipse(cx, cy, rx, ry, theta, where):
    cx, cy, rx, ry, theta = _numbers([cx, cy, rx, ry, theta], where, count=5)
    if rx <= 0 or ry <= 0:
        raise AnnotationError("{}: radii must be positive, got {:g} and {:g}".format(
            where, rx, ry))
    return ("ellipse", cx, cy, rx, ry, theta)


def _check_extent(shape, height, width, where):
    """AnnotationError when ``shape`` lies entirely outside the image or reaches absurdly far.

    The one rule of every loader (COCO polygons, VIA, labelme): a shape partly outside the
    image is clipped; one entirely outside has no pixel, and is refused rather than dropped
    without a word; coordinates more than COORDINATE_MARGIN image sizes outside it are refused
    (a typo or a corrupt file, and unbounded memory in pycocotools).
    """
    if shape[0] == "polygon":
        xs, ys = shape[1:]
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    else:
        cx, cy, rx, ry, theta = shape[1:]
        half_w = math.hypot(rx * math.cos(theta), ry * math.sin(theta))
        half_h = math.hypot(rx * math.sin(theta), ry * math.cos(theta))
        x0, x1, y0, y1 = cx - half_w, cx + half_w, cy - half_h, cy + half_h
    span = "{} spans x {:g}..{:g}, y {:g}..{:g}".format(shape[0], x0, x1, y0, y1)
    margin_x, margin_y = COORDINATE_MARGIN * width, COORDINATE_MARGIN * height
    if x0 < -margin_x or x1 > width + margin_x or y0 < -margin_y or y1 > height + margin_y:
        raise AnnotationError(
            "{}: {}: coordinates more than {} image sizes outside the {}x{} image".format(
                where, span, COORDINATE_MARGIN, width, height))
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise AnnotationError("{}: {}: entirely outside the {}x{} image".format(
            where, span, width, height))


def _rasterize(shape, height, width):
    """[height, width] bool mask of a parsed shape, clipped to the image."""
    mask = np.zeros([height, width], bool)
    # skimage tests integer points: shift by half a pixel to test pixel centres.
    if shape[0] == "polygon":
        xs, ys = shape[1:]
        rr, cc = skimage.draw.polygon(ys - 0.5, xs - 0.5, shape=(height, width))
    else:
        cx, cy, rx, ry, theta = shape[1:]
        # skimage's rotation turns the other way (it measures from the row axis).
        rr, cc = skimage.draw.ellipse(cy - 0.5, cx - 0.5, ry, rx, shape=(height, width),
                                      rotation=-theta)
    mask[rr, cc] = True
    return mask


class _ShapeDataset(_FileDataset):
    """Images whose ``image_info["instances"]`` is a list of (class id, [shape, ...])."""

    def _add_images(self, source, records, class_names):
        """Register classes and images; records hold instances as (class name, shapes)."""
        if class_names is None:
            class_names = sorted({name for r in records for name, _ in r["instances"]})
        ids = self._register_classes(source, class_names)
        for record in records:
            record["instances"] = [(ids[name], shapes) for name, shapes in record["instances"]]
            self.add_image(source, **record)

    def load_mask(self, image_id):
        """Rasterize the image's shapes: [H, W, N] bool masks and [N] int32 class ids.

        An instance made of several shapes (labelme groups) is their union.
        """
        info = self.image_info[image_id]
        height, width = info["height"], info["width"]
        masks, class_ids = [], []
        for class_id, shapes in info["instances"]:
            masks.append(np.logical_or.reduce([_rasterize(s, height, width) for s in shapes]))
            class_ids.append(self.map_source_class_id("{}.{}".format(info["source"], class_id)))
        return _stack(masks, class_ids, height, width)


############################################################
#  COCO
############################################################

def _rle_string_counts(counts):
    """Run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``, in Python).

    Raises ValueError on a string that ends inside a number.
    """
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    runs, p = [], 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                raise ValueError("the string ends inside a run length")
            c = ord(counts[p]) - 48
            x |= (c & 0x1f) << (5 * k)
            more = c & 0x20
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:    # from the third run on, each is stored relative to the one 2 back
            x += runs[-2]
        runs.append(x)
    return runs


def _check_rle(segmentation, height, width, where):
    """AnnotationError unless the RLE's size is the image's and its runs cover it exactly.

    pycocotools decodes runs that fall short of height x width from uninitialized memory (and
    writes past the mask when they overrun it), so both are refused here.
    """
    if "counts" not in segmentation or list(segmentation.get("size", [])) != [height, width]:
        raise AnnotationError(
            "{}: RLE needs 'counts' and a 'size' equal to the image's [height, width] {}, "
            "got size {}".format(where, [height, width], segmentation.get("size")))
    counts = segmentation["counts"]
    if isinstance(counts, (str, bytes)):
        try:
            runs = _rle_string_counts(counts)
        except (ValueError, UnicodeDecodeError) as e:
            raise AnnotationError("{}: compressed RLE counts are malformed: {}".format(
                where, e)) from None
        kind = "compressed"
    elif isinstance(counts, list) and all(
            isinstance(c, numbers.Real) and not isinstance(c, bool) and float(c).is_integer()
            for c in counts):
        # pycocotools casts the counts to integers, so 12.0 is as good as 12.
        runs, kind = [int(c) for c in counts], "uncompressed"
    else:
        raise AnnotationError("{}: RLE counts must be a list of integers (uncompressed) or a "
                              "string (compressed), got {!r:.80}".format(where, counts))
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise AnnotationError(
            "{}: {} RLE counts add up to {} pixels{}, but the {}x{} image has {}".format(
                where, kind, sum(runs), " with negative runs" if any(r < 0 for r in runs)
                else "", width, height, height * width))


def _check_coco_segmentation(ann, height, width, where):
    """Check an annotation's segmentation before pycocotools sees it (see :func:`_check_rle`,
    :func:`_check_extent`)."""
    segmentation = ann.get("segmentation")
    if isinstance(segmentation, dict):
        _check_rle(segmentation, height, width, where)
        return
    if not (isinstance(segmentation, list) and all(
            isinstance(p, list) and len(p) % 2 == 0 for p in segmentation)):
        raise AnnotationError("{}: segmentation must be a list of polygons [x1, y1, x2, y2, ...] "
                              "or an RLE dict, got {!r:.80}".format(where, segmentation))
    for k, polygon in enumerate(segmentation):
        polygon_where = "{}, polygon {}".format(where, k)
        xy = _numbers(polygon, polygon_where)
        # Fewer than 3 points are dropped when rasterizing (see _coco_mask).
        if xy.size >= 6:
            _check_extent(("polygon", xy[0::2], xy[1::2]), height, width, polygon_where)


def _check_coco_json(data, annotation_file, strict):
    """Check the structure of a parsed COCO json before pycocotools indexes it.

    pycocotools keys images, categories and annotations by id, so one of two entries with the
    same id would vanish, and annotations whose image or category is not defined would be
    dropped: those are refused (the unknown references only when ``strict``; otherwise a
    warning gives their count and first ids).
    """
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or \
            not isinstance(data.get("categories"), list):
        missing = [k for k in ("images", "categories")
                   if not isinstance(data, dict) or not isinstance(data.get(k), list)]
        raise AnnotationError("{}: not a COCO instances json: no {} list; {}".format(
            annotation_file, " or ".join(repr(k) for k in missing), _looks_like(data)))
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise AnnotationError("{}: 'annotations' must be a list, got {}".format(
            annotation_file, type(annotations).__name__))
    ids = {}
    for section, required in (("images", ("id", "file_name")), ("categories", ("id", "name")),
                              ("annotations", ("id", "image_id", "category_id"))):
        seen = ids[section] = {}
        for index, entry in enumerate(data.get(section, [])):
            absent = [k for k in required if not isinstance(entry, dict) or k not in entry]
            if absent:
                raise AnnotationError("{}: {}[{}] has no {}".format(
                    annotation_file, section, index, ", ".join(repr(k) for k in absent)))
            # pycocotools uses them as dict keys.
            unusable = [k for k in required if k.endswith("id") and
                        isinstance(entry[k], (list, dict))]
            if unusable:
                raise AnnotationError("{}: {}[{}] has {} {!r}; ids are integers".format(
                    annotation_file, section, index, unusable[0], entry[unusable[0]]))
            if entry["id"] in seen:
                raise AnnotationError(
                    "{}: {}[{}] and {}[{}] have the same id {!r}; ids must be unique (one "
                    "of them would be dropped)".format(annotation_file, section,
                                                       seen[entry["id"]], section, index,
                                                       entry["id"]))
            seen[entry["id"]] = index
    for field, section in (("image_id", "images"), ("category_id", "categories")):
        unknown = [(ann["id"], ann[field]) for ann in annotations
                   if ann[field] not in ids[section]]
        if unknown:
            message = ("{}: {} annotation(s) whose {} is not defined in {!r} are ignored "
                       "(first: {})".format(
                           annotation_file, len(unknown), field, section, ", ".join(
                               "annotation id {!r} -> {} {!r}".format(a, field, v)
                               for a, v in unknown[:5])))
            if strict:
                raise AnnotationError(message)
            warnings.warn(message, stacklevel=3)


def _coco_mask(segmentation, height, width):
    """[height, width] bool mask of a COCO segmentation (what ``COCO.annToMask`` computes)."""
    if isinstance(segmentation, list):
        # Fewer than 3 points have no area, and pycocotools would read 4 numbers as a box.
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return np.zeros([height, width], bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:  # compressed RLE, counts as str or bytes
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


class CocoDataset(_FileDataset):
    """Instances from a COCO json file (Matterport's ``CocoDataset``, for any COCO-style file)."""

    def load_coco_json(self, annotation_file, image_dir, class_ids=None, class_map=None,
                       source="coco", return_coco=False, strict=False, class_names=None,
                       verbose=0):
        """Load a COCO instances json through ``pycocotools.coco.COCO``.

        class_ids: COCO category ids to keep (default all). With every class, every image is
        loaded, with or without annotations; with a subset, only the images holding at least
        one annotation of it (as Matterport's ``load_coco`` does). Categories are registered
        as ``add_class(source, coco_category_id, name)``, so internal ids are 1..K after
        ``prepare()`` whatever the COCO ids.
        class_map: ``{"source.id": "other_source.other_id"}`` merges, added to
        ``self.class_map`` for ``prepare()``.
        class_names: instead of class_ids, the names of the categories to keep, registered in
        this order (AnnotationError naming the file for a name it does not have, or that two of
        its categories share; ValueError with class_ids too).
        Each ``image_info`` holds path (``image_dir/file_name``), width, height and
        annotations (the COCO annotations of the kept classes, crowds included).
        Returns the ``COCO`` object when ``return_coco``.

        The file is checked first (AnnotationError naming the file and the entry): unique
        image, category and annotation ids; each segmentation's polygon coordinates (finite,
        not entirely outside the image) and RLE runs (covering the image exactly).
        Annotations whose image or category the file does not define are ignored with a
        warning, or raise AnnotationError when ``strict``.
        verbose: 1 shows a Keras progress bar over the images as they are registered.
        """
        if class_ids is not None and class_names is not None:
            raise ValueError("load_coco_json: pass class_ids or class_names, not both")
        data = _read_json(annotation_file)
        _check_coco_json(data, annotation_file, strict)
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
        all_ids = sorted(coco.getCatIds())
        if class_names is not None:
            by_name = {}
            for c in coco.cats.values():
                by_name.setdefault(c["name"], []).append(c["id"])
            unknown = [n for n in class_names if n not in by_name]
            if unknown:
                raise AnnotationError("{}: classes {} are not categories of the file (it has "
                                      "{})".format(annotation_file, unknown, sorted(by_name)))
            shared = {n: sorted(by_name[n]) for n in class_names if len(by_name[n]) > 1}
            if shared:
                raise AnnotationError("{}: categories {} share the name {!r}: the class is "
                                      "ambiguous (merge them, or select by class_ids)".format(
                                          annotation_file, *next(iter(shared.items()))[::-1]))
            by_name = {n: ids[0] for n, ids in by_name.items()}
            class_ids = [by_name[n] for n in class_names]
        if class_ids is None:
            class_ids = all_ids
            image_ids = sorted(coco.imgs)
        else:
            unknown = sorted(set(class_ids) - set(all_ids))
            if unknown:
                raise AnnotationError("{}: category ids {} are not in the file (it has {})".format(
                    annotation_file, unknown, all_ids))
            image_ids = sorted({i for c in class_ids for i in coco.getImgIds(catIds=[c])})
        for c in class_ids:
            self.add_class(source, c, coco.loadCats(c)[0]["name"])
        if class_map:
            self.class_map = {**(self.class_map or {}), **class_map}

        for i in progress_over(image_ids, verbose):
            image = coco.imgs[i]
            where = "{}: image id {}".format(annotation_file, i)
            path = os.path.join(image_dir, image["file_name"])
            if image.get("height") and image.get("width"):
                height, width = image["height"], image["width"]
            else:
                height, width = _existing_image(path, where)
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=[i], catIds=class_ids,
                                                       iscrowd=None))
            for ann in annotations:
                _check_coco_segmentation(ann, height, width, "{}, annotation id {}".format(
                    where, ann.get("id")))
            self.add_image(source, image_id=i, path=path, width=width, height=height,
                           annotations=annotations)
        return coco if return_coco else None

    def load_mask(self, image_id):
        """[H, W, N] bool masks and [N] int32 internal class ids of the image's annotations.

        Crowd annotations (iscrowd=1) get negative class ids (Matterport's convention);
        annotations whose mask is empty are dropped.
        """
        info = self.image_info[image_id]
        height, width = info["height"], info["width"]
        masks, class_ids = [], []
        for ann in info["annotations"]:
            class_id = self.map_source_class_id("{}.{}".format(info["source"],
                                                               ann["category_id"]))
            masks.append(_coco_mask(ann["segmentation"], height, width))
            class_ids.append(-class_id if ann.get("iscrowd") else class_id)
        return _stack(masks, class_ids, height, width)


############################################################
#  VIA (VGG Image Annotator)
############################################################

def _via_shape(attributes, where):
    """Parse a VIA region's shape_attributes."""
    name = attributes.get("name")
    try:
        if name in ("polygon", "polyline"):  # a polyline is closed, as VIA draws polygons
            return _polygon(attributes["all_points_x"], attributes["all_points_y"], where)
        if name == "rect":
            x, y, width, height = _numbers(
                [attributes[k] for k in ("x", "y", "width", "height")], where, count=4)
            return _rectangle(x, y, width, height, where)
        if name == "circle":
            r = attributes["r"]
            return _ellipse(attributes["cx"], attributes["cy"], r, r, 0, where)
        if name == "ellipse":
            return _ellipse(attributes["cx"], attributes["cy"], attributes["rx"],
                            attributes["ry"], attributes.get("theta", 0), where)
    except KeyError as e:
        raise AnnotationError("{}: {} region without {}".format(where, name, e)) from None
    raise AnnotationError("{}: unsupported region shape {!r} (supported: polygon, polyline, rect, "
                          "circle, ellipse)".format(where, name))


def _via_class(attributes, class_attribute, where):
    """The class name a region's attribute holds: a string, or a checkbox {name: true}."""
    value = attributes.get(class_attribute)
    if isinstance(value, dict):
        ticked = [k for k, v in value.items() if v]
        value = ticked[0] if len(ticked) == 1 else ticked
    if not isinstance(value, str) or not value:
        raise AnnotationError("{}: region attribute {!r} should hold one class name, got "
                              "{!r}".format(where, class_attribute, value))
    return value


class ViaDataset(_ShapeDataset):
    """Regions drawn with the VGG Image Annotator (VIA 1.x exports, VIA 2.x projects)."""

    def load_via(self, annotation_file, image_dir, class_attribute=None, class_names=None,
                 source="via", verbose=0):
        """Load a VIA 1.x export or VIA 2.x project json; images are in ``image_dir``.

        Region shapes: polygon, polyline (closed), rect, circle, ellipse (theta in radians).
        class_attribute: the region attribute holding the class name (text, dropdown, radio,
        or a checkbox with one box ticked). Without it, every region is of one class, named
        ``class_names[0]`` or "object".
        class_names: the classes, in id order; a region of another class raises
        AnnotationError. Without it, the options that the project's ``_via_attributes`` lists
        for ``class_attribute`` (in their order) when there are some, else the sorted set of
        names found.
        Images without regions are kept. The image size comes from the image file's header
        (VIA does not record it).
        verbose: 1 shows a Keras progress bar over the images as they are registered.
        """
        data = _read_json(annotation_file)
        entries = data.get("_via_img_metadata", data) if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise AnnotationError("{}: not a VIA 1.x export or VIA 2.x project: {}".format(
                annotation_file, _looks_like(data)))
        if class_attribute is None:
            class_names = [class_names[0] if class_names else "object"]
        elif class_names is None:
            options = (data.get("_via_attributes", {}).get("region", {})
                       .get(class_attribute, {}).get("options"))
            class_names = list(options) if options else None

        records, keys = [], {}
        for key, entry in progress_over(list(entries.items()), verbose):
            if not isinstance(entry, dict) or "filename" not in entry:
                raise AnnotationError("{}: entry {!r} has no 'filename': not a VIA 1.x export or "
                                      "VIA 2.x project; {}".format(annotation_file, key,
                                                                  _looks_like(data)))
            # Both entries would load the same file, each with part of the regions (VIA keys
            # entries by filename and size, so such entries disagree about the file).
            if entry["filename"] in keys:
                raise AnnotationError(
                    "{}: entries {!r} and {!r} both name image {!r}: keep one entry per image "
                    "(move the regions of one into the other)".format(
                        annotation_file, keys[entry["filename"]], key, entry["filename"]))
            keys[entry["filename"]] = key
            image_where = "{}: image {!r}".format(annotation_file, entry["filename"])
            path = os.path.join(image_dir, entry["filename"])
            height, width = _existing_image(path, image_where)
            regions = entry.get("regions") or []
            # VIA 1.x keeps regions in a dict keyed "0", "1", ...; VIA 2.x in a list.
            if isinstance(regions, dict):
                regions = list(regions.values())
            instances = []
            for index, region in enumerate(regions):
                where = "{}, region {}".format(image_where, index)
                if class_attribute is None:
                    name = class_names[0]
                else:
                    name = _via_class(region.get("region_attributes") or {}, class_attribute,
                                      where)
                    if class_names is not None and name not in class_names:
                        raise AnnotationError("{}: unknown class {!r} (classes: {})".format(
                            where, name, class_names))
                shape = _via_shape(region.get("shape_attributes") or {}, where)
                _check_extent(shape, height, width, where)
                instances.append((name, [shape]))
            records.append({"image_id": entry["filename"], "path": path, "height": height,
                            "width": width, "instances": instances})
        self._add_images(source, records, class_names)


############################################################
#  labelme
############################################################

def _labelme_shape(shape, where):
    """Parse a labelme shape: polygon, rectangle (2 corners) or circle (centre, rim point)."""
    kind = shape.get("shape_type") or "polygon"  # labelme before 3.0 wrote polygons only
    points = shape.get("points")
    try:
        points = np.asarray(points, dtype=float)
    except (TypeError, ValueError):
        points = None
    if points is None or points.ndim != 2 or points.shape[1] != 2 or not np.all(
            np.isfinite(points)):
        raise AnnotationError("{}: points should be a list of [x, y], got {!r:.80}".format(
            where, shape.get("points")))
    if kind == "polygon":
        return _polygon(points[:, 0], points[:, 1], where)
    if kind in ("rectangle", "circle") and len(points) != 2:
        raise AnnotationError("{}: a {} needs 2 points, got {}".format(where, kind, len(points)))
    if kind == "rectangle":
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        return _rectangle(x0, y0, x1 - x0, y1 - y0, where)
    if kind == "circle":
        (cx, cy), rim = points
        r = math.hypot(*(rim - points[0]))
        return _ellipse(cx, cy, r, r, 0, where)
    raise AnnotationError("{}: unsupported shape_type {!r} (supported: polygon, rectangle, "
                          "circle)".format(where, kind))


class LabelmeDataset(_ShapeDataset):
    """Shapes drawn with labelme, one json file per image."""

    def load_labelme(self, paths, image_dir=None, class_names=None, source="labelme",
                     verbose=0):
        """Load labelme json files: a directory (its ``*.json``, sorted), one file or a list.

        The image is ``imagePath`` relative to the json file's directory, or its file name in
        ``image_dir`` when given. Where the image file is missing, the embedded ``imageData``
        is used when present (it is not decoded otherwise). The image id is the json path; the
        size is read from the image's header, and an ``imageHeight``/``imageWidth`` that
        differs from it raises AnnotationError. Shapes with the same label and
        ``group_id`` form one instance (labelme's convention); others are one instance each.
        class_names: the classes, in id order (another label raises AnnotationError);
        without it, the sorted set of labels found.
        verbose: 1 shows a Keras progress bar over the images as they are registered.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = sorted(glob.glob(os.path.join(paths, "*.json"))) if os.path.isdir(paths) \
                else [paths]
        records = []
        for json_path in progress_over(list(paths), verbose):
            json_path = str(json_path)
            data = _read_json(json_path)
            if not isinstance(data, dict) or "shapes" not in data:
                raise AnnotationError("{}: not a labelme file (no 'shapes'); {}".format(
                    json_path, _looks_like(data)))
            # labelme on Windows writes backslashes.
            image_path = str(data.get("imagePath") or "").replace("\\", "/")
            if image_dir is not None:
                path = os.path.join(image_dir, os.path.basename(image_path))
            else:
                path = os.path.join(os.path.dirname(json_path), image_path)
            record = {"image_id": json_path, "path": path}
            if os.path.isfile(path) or not data.get("imageData"):
                size = _existing_image(path, json_path)
            else:
                try:
                    record["image_bytes"] = base64.b64decode(data["imageData"], validate=True)
                except (binascii.Error, TypeError) as e:
                    raise AnnotationError("{}: image file {!r} not found and imageData is not "
                                          "base64: {}".format(json_path, path, e)) from e
                size = _image_size(io.BytesIO(record["image_bytes"]),
                                   "{}: imageData".format(json_path))
            height, width = record["height"], record["width"] = size
            # Points refer to the image labelme saw; another size means another image.
            stated = (data.get("imageHeight") or height, data.get("imageWidth") or width)
            if stated != (height, width):
                raise AnnotationError("{}: imageHeight x imageWidth is {} x {} but the image is "
                                      "{} x {}".format(json_path, *stated, height, width))

            instances, groups = [], {}
            for index, shape in enumerate(data.get("shapes") or []):
                where = "{}: shape {}".format(json_path, index)
                label = shape.get("label")
                if not isinstance(label, str) or not label:
                    raise AnnotationError("{}: no label".format(where))
                if class_names is not None and label not in class_names:
                    raise AnnotationError("{}: unknown label {!r} (classes: {})".format(
                        where, label, class_names))
                parsed = _labelme_shape(shape, where)
                _check_extent(parsed, height, width, where)
                group = shape.get("group_id")
                if group is None:
                    instances.append((label, [parsed]))
                elif (label, group) in groups:
                    groups[label, group].append(parsed)
                else:
                    groups[label, group] = [parsed]
                    instances.append((label, groups[label, group]))
            record["instances"] = instances
            records.append(record)
        self._add_images(source, records, class_names)

    def load_image(self, image_id):
        """The image file, or the json's embedded imageData where the file is missing."""
        data = self.image_info[image_id].get("image_bytes")
        if data is None:
            return super().load_image(image_id)
        return self._to_channels(np.asarray(skimage.io.imread(io.BytesIO(data))), image_id)


############################################################
#  Mask folders
############################################################

def _read_pixels(path):
    """The pixel values of an image file; palette images give their indices, not colours."""
    with PIL.Image.open(path) as im:
        return np.asarray(im)


class MaskFolderDataset(_FileDataset):
    """Instances stored as images: one PNG per instance (DSB 2018) or one label image per image."""

    def load_dsb(self, dataset_dir, image_ids=None, class_name="nucleus", source="nucleus",
                 verbose=0):
        """Kaggle Data Science Bowl 2018 layout: ``<id>/images/<id>.png``, ``<id>/masks/*.png``.

        Each mask file is one instance (nonzero = inside). image_ids: the folders to load
        (default every sub-folder of ``dataset_dir``, sorted). Folders without ``masks/``
        (the test set) have no instances. Mask sizes are checked when ``load_mask`` reads
        them, so that loading stays a directory listing.
        verbose: 1 shows a Keras progress bar over the images as they are registered.
        """
        if image_ids is None:
            image_ids = sorted(d for d in os.listdir(dataset_dir)
                               if os.path.isdir(os.path.join(dataset_dir, d)))
        class_id = self._register_classes(source, [class_name])[class_name]
        for image_id in progress_over(list(image_ids), verbose):
            folder = os.path.join(dataset_dir, image_id)
            path = os.path.join(folder, "images", image_id + ".png")
            if not os.path.isfile(path):
                raise AnnotationError("{}: no image images/{}.png".format(folder, image_id))
            height, width = _image_size(path, path)
            self.add_image(source, image_id=image_id, path=path, height=height, width=width,
                           kind="dsb", class_id=class_id,
                           mask_paths=sorted(glob.glob(os.path.join(folder, "masks", "*.png"))))

    def load_label_images(self, image_dir, label_dir, class_name="object", source="labels",
                          suffix=".png", verbose=0):
        """One label image per image (``label_dir/<image stem><suffix>``) of instance ids.

        Each distinct nonzero pixel value is one instance of ``class_name``; 0 is background.
        Images are the files of ``image_dir`` with an extension in ``IMAGE_EXTENSIONS``.
        verbose: 1 shows a Keras progress bar over the images as they are registered.
        """
        class_id = self._register_classes(source, [class_name])[class_name]
        filenames = [f for f in sorted(os.listdir(image_dir))
                     if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
        for filename in progress_over(filenames, verbose):
            stem = os.path.splitext(filename)[0]
            path = os.path.join(image_dir, filename)
            label_path = os.path.join(label_dir, stem + suffix)
            if not os.path.isfile(label_path):
                raise AnnotationError("{}: label image {} not found".format(path, label_path))
            height, width = _image_size(path, path)
            with PIL.Image.open(label_path) as label:
                if (label.height, label.width) != (height, width) or len(label.getbands()) != 1:
                    raise AnnotationError(
                        "{}: label image is {}x{} with {} channels, but {} is {}x{}; labels "
                        "need one channel".format(label_path, label.width, label.height,
                                                  len(label.getbands()), path, width, height))
            self.add_image(source, image_id=stem, path=path, height=height, width=width,
                           kind="labels", class_id=class_id, label_path=label_path)

    def load_mask(self, image_id):
        """[H, W, N] bool masks and [N] int32 class ids, read from the mask or label files."""
        info = self.image_info[image_id]
        height, width = info["height"], info["width"]
        if info["kind"] == "dsb":
            masks = []
            for mask_path in info["mask_paths"]:
                mask = _read_pixels(mask_path)
                if mask.ndim == 3:  # colour masks: drop alpha, any colour channel counts
                    mask = mask[..., :3 if mask.shape[-1] >= 3 else 1].any(axis=-1)
                if mask.shape != (height, width):
                    raise AnnotationError("{}: mask is {}x{} but the image {} is {}x{}".format(
                        mask_path, mask.shape[1], mask.shape[0], info["path"], width, height))
                masks.append(mask != 0)
        else:
            labels = _read_pixels(info["label_path"])
            masks = [labels == value for value in np.unique(labels) if value != 0]
        class_id = self.map_source_class_id("{}.{}".format(info["source"], info["class_id"]))
        return _stack(masks, [class_id] * len(masks), height, width)
