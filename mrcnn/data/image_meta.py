"""The image meta vector: Matterport's 1-D description of how an image was molded.

One field table, :data:`FIELDS`, defines the layout; composing, parsing (NumPy and in the graph),
``Config.IMAGE_META_SIZE`` and the export signature all derive their slices from it. This module
does not import TensorFlow: :func:`split_image_meta` only slices, which works on NumPy arrays and
on tensors alike.
"""

import numpy as np

# (name, length) in order. active_class_ids follows, one value per class (NUM_CLASSES).
FIELDS = (("image_id", 1), ("original_image_shape", 3), ("image_shape", 3), ("window", 4),
          ("scale", 1))
ACTIVE_CLASS_IDS = "active_class_ids"


def _field_slices():
    slices, start = {}, 0
    for name, length in FIELDS:
        slices[name] = start if length == 1 else slice(start, start + length)
        start += length
    return slices, start


# {field: index (one value) or slice}; FIXED_SIZE: the length before active_class_ids.
SLICES, FIXED_SIZE = _field_slices()
SLICES[ACTIVE_CLASS_IDS] = slice(FIXED_SIZE, None)

# dtype of each field once parsed with NumPy.
_DTYPES = {"image_id": np.int32, "original_image_shape": np.int32, "image_shape": np.int32,
           "window": np.int32, "scale": np.float32, ACTIVE_CLASS_IDS: np.int32}


def meta_size(num_classes):
    """Length of the meta vector for ``num_classes`` classes (background included)."""
    return FIXED_SIZE + int(num_classes)


def compose_image_meta(image_id, original_image_shape, image_shape, window, scale,
                       active_class_ids):
    """Pack image attributes into the meta vector.

    image_id: int; original_image_shape / image_shape: [H, W, C] before / after resizing;
    window: (y1, x1, y2, x2) of the real image inside the padded one; scale: resize factor;
    active_class_ids: [NUM_CLASSES] with 1 for the classes of the image's source.
    Returns [meta_size(NUM_CLASSES)] float64.
    """
    values = dict(image_id=image_id, original_image_shape=original_image_shape,
                  image_shape=image_shape, window=window, scale=scale)
    parts = [np.asarray(values[name], dtype=np.float64).reshape(length)
             for name, length in FIELDS]
    parts.append(np.asarray(active_class_ids, dtype=np.float64).reshape(-1))
    return np.concatenate(parts)


def split_image_meta(meta):
    """{field: values} of meta vectors ``[..., meta_size]``, by slicing (NumPy or tensors)."""
    return {name: meta[..., index] for name, index in SLICES.items()}


def parse_image_meta(meta):
    """Unpack NumPy meta vectors ([batch, meta_size] or [meta_size]) into a dict of arrays."""
    return {name: value.astype(_DTYPES[name])
            for name, value in split_image_meta(np.asarray(meta)).items()}
