"""The ``Dataset`` base class that users subclass for their own data (Matterport's API)."""

import logging

import numpy as np

from mrcnn.data.images import ImageLoadError, check_image, read_image, to_channels  # noqa: F401

logger = logging.getLogger(__name__)


def scaling_warnings(dataset):
    """The set of ``check_image`` scalings already warned about for ``dataset``, kept on it, so
    that a dataset of 16-bit images warns once, not at every image of every epoch."""
    try:
        return vars(dataset).setdefault("_scaling_warnings", set())
    except TypeError:   # an object without a __dict__: warn every time
        return None


class Dataset:
    """Base class for datasets.

    Subclass it, register classes with :meth:`add_class` and images with :meth:`add_image`, and
    override :meth:`load_mask` (and :meth:`load_image` when images are not files that
    ``skimage.io`` reads). Call :meth:`prepare` before use::

        class ShapesDataset(Dataset):
            def load_shapes(self, count):
                self.add_class("shapes", 1, "square")
                ...
                self.add_image("shapes", image_id=i, path=None, ...)

            def load_mask(self, image_id):
                ...
                return masks, class_ids   # [height, width, N] bool, [N] int32

    Class ids are internal (0 = "BG", then 1, 2, ... in the order added) and map to the ids of
    each source through ``"source.id"`` keys.

    channel_count: channels :meth:`load_image` returns; 3 (RGB, the default) converts grayscale
    to RGB and drops alpha; other values keep up to that many channels (match
    ``config.IMAGE_CHANNEL_COUNT``).
    """

    def __init__(self, class_map=None, channel_count=3):
        self._image_ids = []
        self.image_info = []
        # Background is always class 0.
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}
        self.class_map = class_map
        self.channel_count = channel_count

    def add_class(self, source, class_id, class_name):
        """Register class ``class_id`` of ``source`` (added once even if called again)."""
        if "." in source:
            raise ValueError("Source name cannot contain a dot: {!r}".format(source))
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        """Register an image; extra keyword arguments are stored in its ``image_info`` entry."""
        image_info = {"id": image_id, "source": source, "path": path}
        image_info.update(kwargs)
        self.image_info.append(image_info)

    def image_reference(self, image_id):
        """A link or description of the image for debugging; override to return one."""
        return ""

    def prepare(self, class_map=None):
        """Build the internal lookup tables; call after adding classes and images.

        class_map: optional ``{"source.id": "other_source.other_id"}`` to merge classes of
        different sources into one internal class (the key's class takes the target's id).
        Raises ValueError naming the image when an image's source has no registered class.
        """
        class_map = class_map if class_map is not None else (self.class_map or {})

        def clean_name(name):
            """First part of a comma-separated object name."""
            return ",".join(name.split(",")[:1])

        def key(info):
            return "{}.{}".format(info["source"], info["id"])

        for merged, target in class_map.items():
            if not any(key(info) == target for info in self.class_info):
                raise ValueError("class_map target {!r} (for {!r}) is not a registered class"
                                 .format(target, merged))
        # Merged classes are dropped from the internal list and map to their target's id.
        kept = [info for info in self.class_info if key(info) not in class_map]
        merged_away = [info for info in self.class_info if key(info) in class_map]
        self.class_info = kept
        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)

        self.class_from_source_map = {key(info): i for info, i in
                                      zip(self.class_info, self.class_ids)}
        for info in merged_away:
            self.class_from_source_map[key(info)] = self.class_from_source_map[
                class_map[key(info)]]
        self.image_from_source_map = {key(info): i for info, i in
                                      zip(self.image_info, self._image_ids)}

        # Sorted so that the order does not depend on hash randomisation.
        sources = {i["source"] for i in self.class_info} | {i["source"] for i in merged_away}
        self.sources = sorted(sources)
        self.source_class_ids = {}
        for source in self.sources:
            # Background (0) is active in every source.
            ids = {0}
            ids.update(i for i, info in enumerate(self.class_info) if info["source"] == source)
            ids.update(self.class_from_source_map[key(info)] for info in merged_away
                       if info["source"] == source)
            self.source_class_ids[source] = sorted(ids)
        # Training looks up the classes of each image's source: one without any cannot train.
        for i, info in enumerate(self.image_info):
            if info["source"] not in self.source_class_ids:
                raise ValueError("image {} (id {!r}, source {!r}): no class is registered for "
                                 "its source; call add_class({!r}, ...) (sources with classes: "
                                 "{})".format(i, info["id"], info["source"], info["source"],
                                              [s for s in self.sources if s]))

    def map_source_class_id(self, source_class_id):
        """Internal class id of a ``"source.id"`` string, e.g. ``"coco.12"`` -> 23."""
        return self.class_from_source_map[source_class_id]

    def get_source_class_id(self, class_id, source):
        """The source's own id of internal class ``class_id``."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError("class {} belongs to source {!r}, not {!r}".format(
                class_id, info["source"], source))
        return info["id"]

    @property
    def image_ids(self):
        """Internal image ids 0..num_images-1 (after :meth:`prepare`)."""
        return self._image_ids

    def source_image_link(self, image_id):
        """Path or URL of the image, from its ``image_info`` entry."""
        return self.image_info[image_id]["path"]

    def load_image(self, image_id):
        """Load an image as a [height, width, channel_count] uint8 array.

        Grayscale becomes RGB and alpha is dropped when ``channel_count`` is 3. A file that is
        missing or unreadable raises :class:`ImageLoadError` naming the image id and path.
        Values are checked by :func:`mrcnn.data.images.check_image`: a 16-bit file is scaled to
        0..255 with a warning (once per dataset), NaN is a ValueError.
        """
        path = self.image_info[image_id]["path"]
        image = read_image(path, self.channel_count, "image id {} ({})".format(
            image_id, self.image_reference(image_id) or "no reference"))
        return check_image(image, "image id {} ({!r})".format(image_id, path),
                           warned=scaling_warnings(self))

    def _to_channels(self, image, image_id):
        """Bring a loaded image to ``channel_count`` channels (see ``images.to_channels``)."""
        return to_channels(image, self.channel_count, "image id {}: {!r}".format(
            image_id, self.image_info[image_id]["path"]))

    def load_mask(self, image_id):
        """Instance masks of an image; override it.

        Returns masks [height, width, N] bool and class_ids [N] int32. The base class returns no
        instances (and warns), so an image without objects is a valid training sample.
        """
        logger.warning("You are using the default load_mask(); define your own in a subclass.")
        mask = np.empty([0, 0, 0])
        class_ids = np.empty([0], np.int32)
        return mask, class_ids


def image_class_ids(dataset):
    """[num_images] arrays of each image's instance class ids (crowd regions count for their
    class; positions as in ``dataset.image_ids``), read through ``load_mask``: what class
    statistics (balanced weights, repeat factors) are computed from."""
    out = []
    for image_id in dataset.image_ids:
        _, class_ids = dataset.load_mask(image_id)
        ids = np.abs(np.asarray(class_ids, dtype=np.int64)).reshape(-1)
        out.append(ids[ids > 0])
    return out


class ClassAgnosticDataset(Dataset):
    """Any prepared dataset seen as one class (``class_name``): instance segmentation without
    class labels. Images and masks are the wrapped dataset's; every instance gets class 1
    (crowd regions keep a negative id). Pair it with ``Config.NUM_CLASSES = 2`` and
    ``MASK_CLASS_AGNOSTIC = True``."""

    def __init__(self, dataset, class_name="object"):
        super().__init__(channel_count=dataset.channel_count)
        self.dataset = dataset
        self.add_class("agnostic", 1, class_name)
        for image_id in dataset.image_ids:
            self.add_image("agnostic", image_id=int(image_id), path=dataset.image_info[
                image_id].get("path"))
        self.prepare()

    def load_image(self, image_id):
        return self.dataset.load_image(self.image_info[image_id]["id"])

    def load_mask(self, image_id):
        masks, class_ids = self.dataset.load_mask(self.image_info[image_id]["id"])
        return masks, np.sign(np.asarray(class_ids)).astype(np.int32)

    def image_reference(self, image_id):
        return self.dataset.image_reference(self.image_info[image_id]["id"])
