"""Data files: a small YAML or JSON file naming an annotated dataset for ``python -m mrcnn``.

::

    format: coco                 # coco | via | labelme | dsb | label-images
    name: cells                  # optional: the run name (default: the file's stem);
                                 #   letters, digits, _ and - only
    train:
      annotations: train.json    # per format, see SPLIT_KEYS
      images: images/train
    val:
      annotations: val.json
      images: images/val
    classes: [cell, debris]      # optional
    config: mypackage.configs:CellConfig   # optional Config subclass, 'module:Class'
    overrides:                   # optional Config attributes
      IMAGE_MAX_DIM: 512
      RPN_ANCHOR_SCALES: [8, 16, 32, 64, 128]

Relative paths are relative to the data file's folder. The file is data: it is parsed with
``yaml.safe_load`` or ``json.load``, never executed; the ``config`` class is imported by name
(``mrcnn.config.load_config_class``). The datasets are the ready loaders of
:mod:`mrcnn.data.formats`. Every mistake is a :class:`DataFileError` naming the file and the key.
"""

import contextlib
import io
import json
import os
import re

from mrcnn.data import formats
from mrcnn.config import Config, load_config_class

FORMATS = ("coco", "via", "labelme", "dsb", "label-images")

# Keys of a split, per format: (required, optional).
SPLIT_KEYS = {
    "coco": (("annotations", "images"), ()),
    "via": (("annotations",), ("images", "class_attribute")),
    "labelme": (("annotations",), ("images",)),
    "dsb": (("images",), ()),
    "label-images": (("images", "labels"), ("suffix",)),
}
# Which split keys name a file, a folder, or either (each is checked to exist).
FILE_KEYS = {"coco": ("annotations",), "via": ("annotations",)}
DIR_KEYS = {"coco": ("images",), "via": ("images",), "labelme": ("images",),
            "dsb": ("images",), "label-images": ("images", "labels")}
EITHER_KEYS = {"labelme": ("annotations",)}   # a folder of json files, or one file

TOP_KEYS = ("format", "name", "train", "val", "classes", "config", "overrides")
# Run names: the characters Matterport's checkpoint names can carry (checkpoints.CHECKPOINT_RE
# parses <name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch>.h5 with [\w-]+, ASCII here).
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
SPLITS = ("train", "val")


class DataFileError(ValueError):
    """A data file that cannot be used: the message names the file and the key."""


class DataFile:
    """A parsed, checked data file (see the module docstring); load splits with :meth:`load`."""

    def __init__(self, path, content):
        """Check ``content`` (the parsed mapping) of the data file at ``path``."""
        self.path = str(path)
        self.folder = os.path.dirname(os.path.abspath(self.path))
        if not isinstance(content, dict):
            self.fail(None, "the file should hold a mapping with the keys {}, got {}".format(
                ", ".join(TOP_KEYS), type(content).__name__))
        unknown = sorted(set(content) - set(TOP_KEYS))
        if unknown:
            self.fail(unknown[0], "unknown key (valid keys: {})".format(", ".join(TOP_KEYS)))
        self.format = content.get("format")
        if self.format not in FORMATS:
            self.fail("format", "unknown format {!r}; one of {}".format(
                self.format, ", ".join(FORMATS)))
        stem = os.path.splitext(os.path.basename(self.path))[0]
        self.name = str(content.get("name") or stem)
        if not NAME_RE.match(self.name):
            # A run name outside [A-Za-z0-9_-] names checkpoints that a resumed run cannot
            # parse (it would restart at epoch 0).
            self.fail("name", "{} {!r}: a run name has letters, digits, '_' and '-' only "
                              "(it names the run's directory and checkpoints){}".format(
                                  "the run name" if content.get("name") else
                                  "the file's stem, the default run name,", self.name,
                                  "" if content.get("name") else "; set 'name:'"))
        self.classes = content.get("classes")
        if self.classes is not None and (
                not isinstance(self.classes, list) or not self.classes or
                not all(isinstance(c, str) and c for c in self.classes) or
                len(set(self.classes)) != len(self.classes)):
            self.fail("classes", "should be a list of distinct class names, got {!r}".format(
                self.classes))
        if self.format in ("dsb", "label-images") and self.classes and len(self.classes) != 1:
            self.fail("classes", "format {} has one class; got {}".format(self.format,
                                                                        self.classes))
        self.config_spec = content.get("config")
        if self.config_spec is not None and not isinstance(self.config_spec, str):
            self.fail("config", "should be 'package.module:ConfigClass', got {!r}".format(
                self.config_spec))
        self.overrides = content.get("overrides") or {}
        if not isinstance(self.overrides, dict):
            self.fail("overrides", "should be a mapping of Config attributes")
        for key in self.overrides:
            check_attribute(key, lambda message: self.fail("overrides." + str(key), message))
        self.splits = {}
        for split in SPLITS:
            if split in content:
                self.splits[split] = self._split(split, content[split])
        if "train" not in self.splits:
            self.fail("train", "missing: the training split is required")

    def fail(self, key, message):
        """Raise DataFileError naming this file and ``key``."""
        raise DataFileError("{}{}: {}".format(
            self.path, "" if key is None else ": " + str(key), message))

    def _split(self, split, entry):
        """The split's entries with paths resolved and checked."""
        required, optional = SPLIT_KEYS[self.format]
        if not isinstance(entry, dict):
            self.fail(split, "should be a mapping with {}".format(", ".join(required)))
        unknown = sorted(set(entry) - set(required) - set(optional))
        if unknown:
            self.fail("{}.{}".format(split, unknown[0]),
                      "unknown key for format {} (valid: {})".format(
                          self.format, ", ".join(required + optional)))
        for key in required:
            if not entry.get(key):
                self.fail("{}.{}".format(split, key),
                          "missing (format {} needs {})".format(self.format,
                                                                ", ".join(required)))
        if self.format == "via" and self.classes and len(self.classes) > 1 and \
                not entry.get("class_attribute"):
            self.fail("{}.class_attribute".format(split),
                      "missing: with several classes, name the region attribute that holds "
                      "each region's class")
        resolved = dict(entry)
        checks = ((FILE_KEYS, os.path.isfile, "file"), (DIR_KEYS, os.path.isdir, "folder"),
                  (EITHER_KEYS, os.path.exists, "file or folder"))
        for keys, exists, kind in checks:
            for key in keys.get(self.format, ()):
                if key not in entry:
                    continue
                resolved[key] = os.path.join(self.folder, str(entry[key]))
                if not exists(resolved[key]):
                    self.fail("{}.{}".format(split, key),
                              "no such {} {!r}".format(kind, resolved[key]))
        return resolved

    def load(self, split, class_names=None, verbose=0):
        """A prepared ``mrcnn.data.formats`` dataset of ``split`` ("train" or "val").

        class_names: the classes in id order (default: ``classes`` of the file, else what the
        loader finds); pass the training set's names to the validation set so that both
        number the classes alike. A loader's AnnotationError is re-raised naming the key.
        verbose: 1 prints what is loaded and shows a progress bar over its images.
        """
        if split not in self.splits:
            self.fail(split, "missing: this command needs the {} split".format(split))
        entry = self.splits[split]
        # A COCO file numbers its own categories: a subset of them keeps only the images that
        # hold one, so only the file's own ``classes`` select; the names are compared below.
        names = self.classes if self.format == "coco" else (class_names or self.classes)
        try:
            if verbose:
                print("Loading {} ({}): {}".format(split, self.format, entry.get("annotations")
                                                   or entry.get("images")))
            dataset = _LOADERS[self.format](entry, names, verbose)
        except (formats.AnnotationError, OSError) as e:
            self.fail(split, "{}".format(e))
        except (ValueError, KeyError, AssertionError) as e:
            # pycocotools and json report a malformed file this way, without its name.
            self.fail(split, "cannot read {} as {}: {}: {}".format(
                entry.get("annotations") or entry.get("images"), self.format,
                type(e).__name__, e))
        dataset.prepare()
        if class_names and dataset.class_names[1:] != list(class_names):
            self.fail(split, "its classes {} differ from the training split's {}".format(
                dataset.class_names[1:], list(class_names)))
        return dataset

    def config_class(self, num_classes, extra_overrides=None):
        """The Config class to run: ``config`` (or ``Config``) with NAME, NUM_CLASSES and the
        overrides (the file's, then ``extra_overrides``, e.g. the command line's) set."""
        base = Config
        if self.config_spec:
            try:
                base = load_config_class(self.config_spec)
            except (ValueError, ImportError) as e:
                self.fail("config", str(e))
        attributes = {"NUM_CLASSES": num_classes}
        if base is Config or base.NAME is None:
            attributes["NAME"] = self.name
        attributes.update(self.overrides)
        attributes.update(extra_overrides or {})
        return type(base.__name__, (base,), attributes)


def check_attribute(name, fail):
    """Call ``fail(message)`` unless ``name`` is an upper-case Config attribute."""
    if not (isinstance(name, str) and name.isupper() and hasattr(Config, name)):
        fail("not a Config attribute")


def read(path):
    """The :class:`DataFile` at ``path`` (.yaml, .yml or .json)."""
    path = str(path)
    if not os.path.isfile(path):
        raise DataFileError("{}: no such data file".format(path))
    extension = os.path.splitext(path)[1].lower()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        if extension == ".json":
            content = json.loads(text)
        elif extension in (".yaml", ".yml"):
            import yaml
            content = yaml.safe_load(text)
        else:
            raise DataFileError("{}: a data file is .yaml, .yml or .json".format(path))
    except DataFileError:
        raise
    except Exception as e:  # the parsers' own errors (json.JSONDecodeError, yaml.YAMLError)
        raise DataFileError("{}: not valid {}: {}".format(path, extension[1:].upper(), e)) from e
    return DataFile(path, content)


def _load_coco(entry, names, verbose):
    dataset = formats.CocoDataset()
    # Classes are registered in the order of the file's names. pycocotools prints as it
    # indexes the file ("creating index..."): shown with the progress bar, else silenced.
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        dataset.load_coco_json(entry["annotations"], entry["images"], class_names=names or None,
                               verbose=verbose)
    return dataset


def _load_via(entry, names, verbose):
    dataset = formats.ViaDataset()
    image_dir = entry.get("images") or os.path.dirname(entry["annotations"])
    dataset.load_via(entry["annotations"], image_dir, class_attribute=entry.get("class_attribute"),
                     class_names=names, verbose=verbose)
    return dataset


def _load_labelme(entry, names, verbose):
    dataset = formats.LabelmeDataset()
    dataset.load_labelme(entry["annotations"], image_dir=entry.get("images"), class_names=names,
                         verbose=verbose)
    return dataset


def _load_dsb(entry, names, verbose):
    dataset = formats.MaskFolderDataset()
    dataset.load_dsb(entry["images"], class_name=names[0] if names else "object",
                     source="dsb", verbose=verbose)
    return dataset


def _load_label_images(entry, names, verbose):
    dataset = formats.MaskFolderDataset()
    dataset.load_label_images(entry["images"], entry["labels"],
                              class_name=names[0] if names else "object",
                              suffix=entry.get("suffix", ".png"), verbose=verbose)
    return dataset


_LOADERS = {"coco": _load_coco, "via": _load_via, "labelme": _load_labelme, "dsb": _load_dsb,
            "label-images": _load_label_images}
