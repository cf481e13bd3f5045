"""Training data: image meta, molding, ground-truth loading, RPN targets and the tf.data pipeline.

Data flows one way: ``Dataset`` -> :func:`load_image_gt` (resize, augment, boxes, mini masks) ->
:func:`build_input_pipeline` (parallel, deterministic batches of the model's named inputs, with
the RPN targets of :func:`mrcnn.modeling.targets.rpn_targets_graph` added in a TensorFlow stage).
"""

import os
import threading

import numpy as np

from mrcnn.data import repeat_factor
from mrcnn import utils
from mrcnn.data.dataset import scaling_warnings
# compose_image_meta, parse_image_meta: Matterport API.
from mrcnn.data.image_meta import compose_image_meta, parse_image_meta  # noqa: F401
from mrcnn.data.images import check_image
from mrcnn.inference.molding import mold_image, unmold_image  # noqa: F401 (Matterport API)
from mrcnn.modeling.anchors import get_anchors

# Input names of the training graph, in Matterport's order.
INPUT_NAMES = ("input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox",
               "input_gt_class_ids", "input_gt_boxes", "input_gt_masks")

# imgaug augmenters that move pixels; only these are applied to masks (Matterport's list).
IMGAUG_MASK_AUGMENTERS = ("Sequential", "SomeOf", "OneOf", "Sometimes", "Fliplr", "Flipud",
                          "CropAndPad", "Affine", "PiecewiseAffine")


############################################################
#  Augmentation
############################################################

def is_imgaug_augmenter(augmentation):
    """True for objects with imgaug's ``to_deterministic`` interface."""
    return hasattr(augmentation, "to_deterministic")


def augment(augmentation, image, mask, seed):
    """Apply an augmentation to an image and its instance masks, reproducibly for ``seed``.

    augmentation: an albumentations transform (called as ``aug(image=..., masks=...)``) or an
    imgaug-style augmenter (``to_deterministic()``). Masks follow geometric transforms only:
    albumentations never applies pixel-level transforms to masks, and for imgaug only the
    augmenters in ``IMGAUG_MASK_AUGMENTERS`` are activated on them.

    image: [H, W, C] uint8; mask: [H, W, N] bool. Returns (image, mask) with mask bool.
    """
    if is_imgaug_augmenter(augmentation):
        return _augment_imgaug(augmentation, image, mask, seed)
    if not callable(augmentation):
        raise TypeError("augmentation must be an albumentations transform or an imgaug "
                        "augmenter, got {!r}".format(type(augmentation).__name__))
    if hasattr(augmentation, "set_random_seed"):
        augmentation.set_random_seed(seed)
    if mask.shape[-1]:
        out = augmentation(image=image, masks=np.ascontiguousarray(
            np.transpose(mask.astype(np.uint8), (2, 0, 1))))
        masks = np.asarray(out["masks"])
        new_mask = np.transpose(masks, (1, 2, 0)).astype(bool) if masks.size else \
            np.zeros(out["image"].shape[:2] + (0,), dtype=bool)
    else:
        out = augmentation(image=image)
        new_mask = np.zeros(out["image"].shape[:2] + (0,), dtype=bool)
    return out["image"], new_mask


def _augment_imgaug(augmentation, image, mask, seed):
    """imgaug path: one deterministic augmenter for the image and (geometric part) the mask."""
    if hasattr(augmentation, "seed_"):          # imgaug >= 0.4
        augmentation.seed_(seed)
    elif hasattr(augmentation, "reseed"):       # imgaug 0.2.x
        augmentation.reseed(seed)
    try:
        import imgaug  # noqa: F401 -- only needed for the mask hook
        hooks = imgaug.HooksImages(
            activator=lambda images, augmenter, parents, default:
                augmenter.__class__.__name__ in IMGAUG_MASK_AUGMENTERS)
    except ImportError:
        hooks = None
    det = augmentation.to_deterministic()
    image_shape, mask_shape = image.shape, mask.shape
    image = det.augment_image(image)
    mask = det.augment_image(mask.astype(np.uint8), hooks=hooks)
    if image.shape[:2] != image_shape[:2] or mask.shape != mask_shape:
        raise ValueError("augmentation changed the image or mask shape ({} -> {}); only "
                         "shape-preserving augmenters are supported".format(
                             image_shape, image.shape))
    return image, mask.astype(bool)


############################################################
#  Ground truth
############################################################

def load_image_gt(dataset, config, image_id, augmentation=None, use_mini_mask=None, rng=None):
    """Load and prepare one image's ground truth.

    Resizes the image and masks per ``config``, applies ``augmentation`` (after resizing, as
    Matterport does), drops instances that vanished, computes boxes from masks and, with
    ``use_mini_mask`` (default ``config.USE_MINI_MASK``), shrinks masks to MINI_MASK_SHAPE.
    Images without instances are valid: they yield empty class ids, boxes and masks. The image
    is checked by :func:`mrcnn.data.images.check_image` (0..255 values; 16-bit ones are scaled).

    rng: ``numpy.random.Generator`` for the crop position and augmentation seed.

    Returns:
        image: [height, width, C] uint8 (not molded).
        image_meta: [IMAGE_META_SIZE] (see :func:`compose_image_meta`).
        class_ids: [N] int32 (negative ids mark crowd regions).
        bbox: [N, (y1, x1, y2, x2)] int32.
        mask: [height, width, N] bool, or [MINI_MASK_SHAPE, N] with mini masks.
    """
    use_mini_mask = config.USE_MINI_MASK if use_mini_mask is None else use_mini_mask
    rng = rng if rng is not None else np.random.default_rng()
    if dataset.num_classes != config.NUM_CLASSES:
        raise ValueError("dataset has {} classes (background included) but config.NUM_CLASSES "
                         "is {}".format(dataset.num_classes, config.NUM_CLASSES))

    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    mask = np.asarray(mask)
    class_ids = np.asarray(class_ids, dtype=np.int32).reshape(-1)
    image = _check_gt(dataset, config, image_id, image, mask, class_ids)
    if mask.shape[-1] == 0:
        mask = np.zeros(image.shape[:2] + (0,), dtype=bool)

    original_shape = image.shape
    image, window, scale, padding, crop = utils.resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE, rng=rng)
    mask = utils.resize_mask(mask, scale, padding, crop)
    if config.IMAGE_SCALE_RANGE:
        factor = float(rng.uniform(*config.IMAGE_SCALE_RANGE))
        image, mask, window = scale_in_canvas(image, mask, window, factor, rng)
        scale *= factor

    if augmentation is not None:
        image, mask = augment(augmentation, image, mask, int(rng.integers(0, 2 ** 31 - 1)))

    # Instances can vanish after cropping or augmentation; drop them.
    keep = np.sum(mask, axis=(0, 1)) > 0
    mask = mask[:, :, keep]
    class_ids = class_ids[keep]
    bbox = utils.extract_bboxes(mask)

    # Classes of this image's source are "active": the class loss ignores the others.
    active_class_ids = np.zeros([dataset.num_classes], dtype=np.int32)
    source_class_ids = dataset.source_class_ids[dataset.image_info[image_id]["source"]]
    active_class_ids[source_class_ids] = 1

    if use_mini_mask:
        mask = utils.minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)

    image_meta = compose_image_meta(image_id, original_shape, image.shape, window, scale,
                                    active_class_ids)
    return image, image_meta, class_ids, bbox, mask


def scale_in_canvas(image, mask, window, factor, rng):
    """Multi-scale training: rescale a molded image's content (its ``window``) by ``factor``
    inside the same canvas, masks following. A smaller content is placed at a random position
    on the zero canvas, a larger one randomly cropped to it.

    image: [H, W, C]; mask: [H, W, N] bool. Returns (image, mask, window).
    """
    y1, x1, y2, x2 = window
    content = image[y1:y2, x1:x2]
    h, w = content.shape[:2]
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    content = utils.resize(content, size, preserve_range=True).astype(image.dtype)
    content_mask = utils.resize_mask(mask[y1:y2, x1:x2], factor, [(0, 0)] * 3)[:size[0],
                                                                            :size[1]]
    canvas = np.zeros_like(image)
    canvas_mask = np.zeros(image.shape[:2] + (mask.shape[-1],), dtype=bool)
    # Per axis: a random crop start in the content, or a random place on the canvas.
    starts = []
    for side, canvas_side in zip(content.shape[:2], image.shape[:2]):
        shift = int(rng.integers(0, abs(side - canvas_side) + 1))
        starts.append((shift, 0) if side > canvas_side else (0, shift))
    (cy, ty), (cx, tx) = starts
    ch, cw = min(size[0], image.shape[0]), min(size[1], image.shape[1])
    canvas[ty:ty + ch, tx:tx + cw] = content[cy:cy + ch, cx:cx + cw]
    canvas_mask[ty:ty + ch, tx:tx + cw] = content_mask[cy:cy + ch, cx:cx + cw]
    return canvas, canvas_mask, (ty, tx, ty + ch, tx + cw)


def horizontal_flip(p=0.5):
    """The standard recipe's augmentation: an albumentations horizontal flip (masks follow)."""
    import albumentations as A
    return A.HorizontalFlip(p=p)


def with_horizontal_flip(augmentation=None):
    """``augmentation`` preceded by :func:`horizontal_flip` (Config.HORIZONTAL_FLIP)."""
    if augmentation is None:
        return horizontal_flip()
    if is_imgaug_augmenter(augmentation):
        raise ValueError("HORIZONTAL_FLIP composes with albumentations transforms; add "
                         "imgaug's Fliplr(0.5) to your imgaug augmenter instead")
    import albumentations as A
    return A.Compose([horizontal_flip(), augmentation])


def _check_gt(dataset, config, image_id, image, mask, class_ids):
    """The image checked by ``check_image`` (0..255); raise ValueError naming the image when
    its image or masks are malformed."""
    where = "image id {} ({})".format(
        image_id, dataset.image_reference(image_id) or dataset.image_info[image_id].get("path"))
    image = check_image(image, where, config.IMAGE_CHANNEL_COUNT,
                        warned=scaling_warnings(dataset))
    n = mask.shape[-1] if mask.ndim == 3 else None
    if n is None:
        raise ValueError("{}: load_mask returned a mask of shape {}; expected [height, width, "
                         "instances]".format(where, mask.shape))
    if n and mask.shape[:2] != image.shape[:2]:
        raise ValueError("{}: mask shape {} does not match image shape {}".format(
            where, mask.shape, image.shape))
    if class_ids.shape[0] != n:
        raise ValueError("{}: load_mask returned {} masks but {} class ids".format(
            where, n, class_ids.shape[0]))
    if n and (class_ids.max() >= config.NUM_CLASSES or np.any(class_ids == 0)):
        raise ValueError("{}: class ids {} must be in 1..{} (negative for crowd regions)".format(
            where, class_ids.tolist(), config.NUM_CLASSES - 1))
    # An id outside the classes of the image's source is another source's class: a load_mask
    # that returns ids not mapped through the dataset's class map (e.g. Matterport's
    # hard-coded ``np.ones`` after other classes took id 1, or a merged-away class) would
    # train those instances as that other class.
    source = dataset.image_info[image_id].get("source")
    active = getattr(dataset, "source_class_ids", {}).get(source)
    if n and active is not None:
        foreign = sorted(set(np.abs(class_ids).tolist()) - set(active))
        if foreign:
            names = getattr(dataset, "class_names", None)
            raise ValueError(
                "{}: load_mask returned class ids {} that are not classes of the image's source "
                "{!r} (its classes: {}); they would be trained as {}. Map source ids with "
                "dataset.map_source_class_id('{}.<id>') (it applies the class map)".format(
                    where, foreign, source, [i for i in active if i],
                    ", ".join("{!r}".format(names[i]) if names and i < len(names) else str(i)
                              for i in foreign), source))
    return image


def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config, rng=None):
    """RPN training targets for one image, as NumPy arrays (Matterport's function).

    The rules are those of :func:`mrcnn.modeling.targets.rpn_targets_graph`, which this runs eagerly
    (the input pipeline runs the same function inside tf.data); ``rng`` seeds the subsampling.

    anchors: [num_anchors, (y1, x1, y2, x2)]; gt_class_ids: [N]; gt_boxes: [N, (y1, x1, y2, x2)].
    Returns:
        rpn_match: [num_anchors] int32, 1 positive, -1 negative, 0 neutral.
        rpn_bbox: [RPN_TRAIN_ANCHORS_PER_IMAGE, (dy, dx, log(dh), log(dw))] float32, the deltas
            of the positive anchors (in anchor order) divided by RPN_BBOX_STD_DEV, zero-padded.
    """
    from mrcnn.modeling import targets
    rng = rng if rng is not None else np.random.default_rng()
    rpn_match, rpn_bbox = targets.rpn_targets_graph(
        np.asarray(anchors, np.float32), np.asarray(gt_class_ids, np.int32).reshape(-1),
        np.asarray(gt_boxes, np.float32).reshape(-1, 4), targets.rpn_target_params(config),
        seed=rng.integers(0, 2 ** 31 - 1, size=2))
    return rpn_match.numpy(), rpn_bbox.numpy()


############################################################
#  Input pipeline
############################################################

class SampleBuilder:
    """Builds the k-th training sample of a run; a pure function of (seed, k).

    The image order is a permutation per epoch drawn from ``(seed, epoch)``, and all of a
    sample's randomness (crop, augmentation, anchor subsampling, GT subsampling) from
    ``(seed, k)``. Samples can therefore be built in parallel threads in any order and still
    come out the same for the same seed. ``name`` (e.g. "train", "validation") names the
    dataset in errors.
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None,
                 no_augmentation_sources=None, seed=0, name="training",
                 repeat_factor_threshold=None):
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.no_augmentation_sources = set(no_augmentation_sources or ())
        self.seed = int(seed)
        self.num_images = len(dataset.image_ids)
        if self.num_images == 0:
            raise ValueError("the {} dataset has no images; did you call prepare()?".format(
                name))
        # Repeat-factor sampling (LVIS): epochs repeat images of rare classes, so their
        # lengths vary; _epoch_starts[e] is the index of epoch e's first sample.
        self.repeat_factors = None
        if repeat_factor_threshold:
            self.repeat_factors = repeat_factor.repeat_factors(dataset, repeat_factor_threshold)
        self._orders = {}
        self._epoch_starts = [0]
        self._order_lock = threading.Lock()
        # Augmenters hold their random state; seeding and calling them must not interleave.
        self._augment_lock = threading.Lock()

    def epoch_order(self, epoch):
        """Positions (in ``dataset.image_ids``) of the images of one epoch, in order."""
        order = self._orders.get(epoch)
        if order is None:
            rng = np.random.default_rng([self.seed, 0, epoch])
            if self.repeat_factors is not None:
                order = repeat_factor.epoch_order(self.repeat_factors, rng)
            elif self.shuffle:
                order = rng.permutation(self.num_images)
            else:
                order = np.arange(self.num_images)
            if len(self._orders) > 4:
                self._orders.clear()
            self._orders[epoch] = order
        return order

    def image_id(self, k):
        """Image id of the k-th sample."""
        k = int(k)
        if self.repeat_factors is None:
            epoch, position = divmod(k, self.num_images)
        else:
            with self._order_lock:
                starts = self._epoch_starts
                while starts[-1] <= k:
                    starts.append(starts[-1] + len(self.epoch_order(len(starts) - 1)))
                epoch = int(np.searchsorted(starts, k, side="right")) - 1
                position = k - starts[epoch]
        return self.dataset.image_ids[self.epoch_order(epoch)[position]]

    def __call__(self, k):
        """The k-th sample's NumPy part, not batched: a tuple in ``BUILDER_NAMES`` order.

        The RPN targets are added by the pipeline's TensorFlow stage (see
        :func:`build_input_pipeline`).
        """
        config = self.config
        rng = np.random.default_rng([self.seed, 1, int(k)])
        image_id = self.image_id(k)
        source = self.dataset.image_info[image_id]["source"]
        augmentation = self.augmentation
        if source in self.no_augmentation_sources:
            augmentation = None
        if augmentation is not None:
            with self._augment_lock:
                image, image_meta, class_ids, boxes, masks = load_image_gt(
                    self.dataset, config, image_id, augmentation=augmentation, rng=rng)
        else:
            image, image_meta, class_ids, boxes, masks = load_image_gt(
                self.dataset, config, image_id, rng=rng)

        # Keep at most MAX_GT_INSTANCES (a random subset), then zero-pad to that many.
        max_gt = config.MAX_GT_INSTANCES
        if class_ids.shape[0] > max_gt:
            ids = np.sort(rng.choice(np.arange(class_ids.shape[0]), max_gt, replace=False))
            class_ids, boxes, masks = class_ids[ids], boxes[ids], masks[:, :, ids]
        n = class_ids.shape[0]
        gt_class_ids = np.zeros([max_gt], dtype=np.int32)
        gt_boxes = np.zeros([max_gt, 4], dtype=np.int32)
        gt_masks = np.zeros(masks.shape[:2] + (max_gt,), dtype=bool)
        gt_class_ids[:n] = class_ids
        gt_boxes[:n] = boxes
        gt_masks[:, :, :n] = masks

        return (mold_image(image, config), image_meta.astype(np.float32), gt_class_ids,
                gt_boxes, gt_masks)


# Batches the input pipeline prepares ahead of the training step.
PREFETCH_BATCHES = 2

# Outputs of SampleBuilder, in order.
BUILDER_NAMES = ("input_image", "input_image_meta", "input_gt_class_ids", "input_gt_boxes",
                 "input_gt_masks")


def resolve_seed(config):
    """config.SEED, or a fresh random seed when it is None."""
    if config.SEED is not None:
        return int(config.SEED)
    return int(np.random.SeedSequence().entropy % (2 ** 31))


def builder_signature(config, image_shape=None):
    """{name: (dtype, shape)} of one unbatched SampleBuilder output, in ``BUILDER_NAMES`` order.

    image_shape: the fixed image shape, or None for a variable size (modes none and pad64).
    """
    import tensorflow as tf
    h, w = (None, None) if image_shape is None else (int(image_shape[0]), int(image_shape[1]))
    mask_hw = tuple(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else (h, w)
    max_gt = config.MAX_GT_INSTANCES
    return {
        "input_image": (tf.float32, (h, w, config.IMAGE_CHANNEL_COUNT)),
        "input_image_meta": (tf.float32, (config.IMAGE_META_SIZE,)),
        "input_gt_class_ids": (tf.int32, (max_gt,)),
        "input_gt_boxes": (tf.int32, (max_gt, 4)),
        "input_gt_masks": (tf.bool, mask_hw + (max_gt,)),
    }


def build_input_pipeline(dataset, config, shuffle=True, augmentation=None,
                         no_augmentation_sources=None, batch_size=None, seed=None,
                         repeat=True, start_index=0, num_parallel_calls=None,
                         prefetch=True, name="training", repeat_factor_threshold=None,
                         tf_data_autotune=False):
    """A ``tf.data.Dataset`` of training batches for ``keras.Model.fit``.

    Each element is a dict keyed by ``INPUT_NAMES`` (Matterport's input layer names) with
    ``batch_size`` (default ``config.BATCH_SIZE``) images. Samples are prepared in parallel
    threads (``num_parallel_calls``, default one per usable CPU core) and delivered in a fixed
    order, so the stream is the same for the same ``seed`` however many threads run.

    repeat: cycle over the data forever (epochs of shuffled images) or stop after one pass.
    start_index: index of the first sample (to resume a run where it stopped).
    name: the dataset's role ("train", "validation"), named in errors.
    repeat_factor_threshold: repeat-factor sampling of rare classes (see mrcnn.data.repeat_factor);
    None samples every image once per epoch.
    tf_data_autotune: let tf.data tune the map calls and the prefetch (AUTOTUNE; the pipeline
    before issue 11, kept for benchmarks/input_pipeline.py and epoch_timeline.py); see
    :func:`_pipeline_options` for why it is off.
    """
    import tensorflow as tf

    from mrcnn.modeling import targets
    batch_size = batch_size or config.BATCH_SIZE
    seed = resolve_seed(config) if seed is None else seed
    builder = SampleBuilder(dataset, config, shuffle=shuffle, augmentation=augmentation,
                            no_augmentation_sources=no_augmentation_sources, seed=seed,
                            name=name, repeat_factor_threshold=repeat_factor_threshold)
    fixed = config.IMAGE_RESIZE_MODE in ("square", "crop")
    if not fixed and batch_size > 1:
        raise ValueError("IMAGE_RESIZE_MODE={!r} gives images of different sizes, which cannot "
                         "be batched; use a batch size of 1 (IMAGES_PER_GPU=1) or the 'square' "
                         "mode".format(config.IMAGE_RESIZE_MODE))
    signature = builder_signature(config, config.IMAGE_SHAPE if fixed else None)
    rpn_params = targets.rpn_target_params(config)
    # Pixel anchors: one constant for fixed-size images, computed per image otherwise.
    fixed_anchors = tf.constant(get_anchors(config, config.IMAGE_SHAPE), tf.float32) \
        if fixed else None

    def image_anchors(image_shape):
        return get_anchors(config, image_shape).astype(np.float32)

    def load(k):
        outputs = tf.numpy_function(builder, [k], [dtype for dtype, _ in signature.values()],
                                    stateful=False)
        sample = {}
        for name, tensor in zip(BUILDER_NAMES, outputs):
            tensor.set_shape(signature[name][1])
            sample[name] = tensor
        anchors = fixed_anchors
        if anchors is None:
            anchors = tf.numpy_function(image_anchors, [tf.shape(sample["input_image"])],
                                        tf.float32, stateful=False)
            anchors.set_shape([None, 4])
        # RPN targets in TensorFlow, seeded by (seed, k) so that the stream is reproducible.
        rpn_match, rpn_bbox = targets.rpn_targets_graph(
            anchors, sample["input_gt_class_ids"], sample["input_gt_boxes"], rpn_params,
            seed=tf.stack([tf.constant(seed, tf.int64), k]))
        sample["input_rpn_match"] = rpn_match[:, tf.newaxis]
        sample["input_rpn_bbox"] = rpn_bbox
        return {name: sample[name] for name in INPUT_NAMES}

    stop = None if repeat else start_index + builder.num_images
    ds = tf.data.Dataset.range(start_index, stop if stop is not None else np.iinfo(np.int64).max)
    auto = tf.data.AUTOTUNE if tf_data_autotune else None
    ds = ds.map(load, num_parallel_calls=num_parallel_calls or auto or default_parallel_calls(),
                deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat)
    if prefetch:
        ds = ds.prefetch(auto or PREFETCH_BATCHES)
    return ds.with_options(_pipeline_options(tf_data_autotune))


def _pipeline_options(tf_data_autotune):
    """Deterministic order; tf.data's autotuning only when asked for.

    No autotuning by default: with it, deleting an iterator could wait, idle, for seconds for
    tf.data's autotuning thread, and Keras deletes the validation iterator at every epoch's
    evaluation and the training iterator when fit() returns (docs/benchmarks/history.md,
    "Issue 11, third pass": stalls of 7-11 s at many epoch ends of the demo's training). One
    map call per core and two batches prefetched gave the same throughput as autotuning
    (benchmarks/input_pipeline.py), and a training step consumes far less than either.
    """
    import tensorflow as tf
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = tf_data_autotune
    return options


def default_parallel_calls():
    """Parallel sample-building calls of the input pipeline: the CPU cores this process may
    use (its affinity mask, not the machine's count, so that containers get what they have)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def data_generator(dataset, config, shuffle=True, augmentation=None, batch_size=None, seed=None,
                   no_augmentation_sources=None):
    """Matterport-style generator of ``(inputs, [])`` NumPy batches, for notebooks.

    Iterates over :func:`build_input_pipeline`; ``inputs`` is the list of arrays in
    ``INPUT_NAMES`` order.
    """
    ds = build_input_pipeline(dataset, config, shuffle=shuffle, augmentation=augmentation,
                              no_augmentation_sources=no_augmentation_sources,
                              batch_size=batch_size, seed=seed)
    for batch in ds.as_numpy_iterator():
        yield [batch[name] for name in INPUT_NAMES], []
