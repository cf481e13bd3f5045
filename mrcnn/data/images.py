"""The contract of the images the model takes, checked in one place, and the resize rule.

``detect()`` (``molding.mold_inputs``), ``Dataset.load_image`` and training
(``pipeline.load_image_gt``) all pass images through :func:`check_image`, so a wrong image is
the same clear error, naming the image, wherever it enters. :func:`resize_scale` and
:func:`square_padding` are Matterport's resize rule, the one definition that
``utils.resize_image`` (NumPy), the SavedModel signature (TensorFlow ops) and the exported
model's NumPy runner follow. NumPy only (no mrcnn imports), so that every module can use it and
the runner can load it from a file copied next to it.
"""

import warnings

import numpy as np


def check_image(image, where, channels=None, warned=None):
    """Validate an image and bring its values to the 0..255 range; returns the image.

    The contract of every image entering the model (``detect()``, ``Dataset.load_image``,
    training, the exported model's runner): ``[height, width, channels]``, not empty, uint8, or
    another integer type whose values are within 0..255 (taken as they are, whatever the type:
    a uint16 array of 8-bit values is not darkened), or floats within 0..255. Integer images
    with larger values are scaled to 0..255 with a warning, by the 16- or 32-bit range that
    holds their values. Floats whose maximum is at most 1.0 (but not all zero) are rejected,
    since they may be 0..1 images, as are NaN or infinite values.

    where: names the image in messages (e.g. "detect() image 2", "image id 5 ('a.png')").
    channels: the channel count required, or None to accept any.
    warned: a set that remembers the scalings already warned about (e.g. one per dataset, see
    ``Dataset.load_image``): the warning is given the first time its bit depth enters the set.
    None warns for every image.
    Raises ValueError naming ``where``.
    """
    image = np.asarray(image)
    if image.ndim != 3 or (channels is not None and image.shape[-1] != channels):
        raise ValueError("{}: expected an image of shape [height, width, {}], got shape {}"
                         .format(where, channels or "channels", image.shape))
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError("{}: the image is empty (shape {})".format(where, image.shape))
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError("{}: the image holds NaN or infinite values".format(where))
        low, high = float(image.min()), float(image.max())
        # An all-zero image reads the same on either scale; anything else at most 1.0 may be a
        # 0..1 image, which would be seen as nearly black: refuse rather than guess.
        if 0 < high <= 1.0:
            raise ValueError("{}: float image with values in [{:g}, {:g}]: images are 0..255; "
                             "if it is scaled to 0..1, multiply it by 255".format(
                                 where, low, high))
        if low < 0 or high > 255:
            raise ValueError("{}: float image with values in [{:g}, {:g}], outside 0..255 (pass "
                             "the image itself, not a molded or normalized one)".format(
                                 where, low, high))
        return image
    if image.dtype == np.uint8:
        # Always within 0..255: no scan of the values (every training sample and detect()
        # image passes here, often twice: Dataset.load_image and then load_image_gt).
        return image
    if not np.issubdtype(image.dtype, np.integer):
        raise ValueError("{}: images must hold integers or floats, got dtype {}".format(
            where, image.dtype))
    low, high = int(image.min()), int(image.max())
    if low < 0:
        raise ValueError("{}: the image has negative values (min {})".format(where, low))
    # Values within 0..255 are 8-bit values whatever the array's type (a uint16 array of them
    # scaled by 255/65535 would be near-black); larger ones are scaled by the 16- or 32-bit
    # range that holds them (not by their maximum, so that a dark 16-bit image stays dark).
    top = next((t for t in (255, 2 ** 16 - 1, 2 ** 32 - 1) if high <= t), None)
    if top is None:
        raise ValueError("{}: image values up to {} exceed 32 bits".format(where, high))
    if top == 255:
        return image.astype(np.uint8, copy=False)
    bits = int(top).bit_length()
    if warned is None or bits not in warned:
        if warned is not None:
            warned.add(bits)
        warnings.warn("{}: {}-bit image (values up to {}) scaled to 0..255 by 255/{}{}; to "
                      "scale it otherwise, convert it to uint8 before (e.g. "
                      "(image / image.max() * 255).astype(np.uint8) to stretch a dark "
                      "image)".format(where, bits, high, top, "" if warned is None else
                                      " (further {}-bit images of this dataset are scaled the "
                                      "same way without a warning)".format(bits)),
                      stacklevel=2)
    return np.round(image * (255.0 / top)).astype(np.uint8)


class ImageLoadError(IOError):
    """An image file could not be read; the message names the image (id and path)."""


def to_channels(image, channels, where):
    """A loaded [H, W] or [H, W, C] image with ``channels`` channels: for 3, gray (with or
    without alpha) becomes RGB and alpha is dropped; otherwise extra channels are dropped and
    too few are an ImageLoadError naming ``where``."""
    if image.ndim == 2:
        image = image[..., np.newaxis]
    have = image.shape[-1]
    if channels == 3:
        if have in (1, 2):      # gray, gray + alpha
            import skimage.color
            image = skimage.color.gray2rgb(image[..., 0])
        elif have >= 4:
            image = image[..., :3]
    elif have > channels:
        image = image[..., :channels]
    elif have < channels:
        raise ImageLoadError("{} has {} channels, channel_count is {}".format(
            where, have, channels))
    return image


def read_image(path, channels=3, where=None):
    """An image file as a [height, width, channels] array (see :func:`to_channels`); its values
    are for :func:`check_image` to check. A missing or unreadable file, or one that is not a
    2-D image, raises ImageLoadError naming ``where`` (default: the path)."""
    import skimage.io
    where = where or repr(path)
    try:
        image = np.asarray(skimage.io.imread(path))
    except Exception as e:  # skimage raises many types: FileNotFoundError, ValueError, ...
        raise ImageLoadError("{}: cannot read {!r}: {}".format(where, path, e)) from e
    if image.ndim not in (2, 3) or image.size == 0:
        raise ImageLoadError("{}: {!r} is not a 2-D image (array shape {})".format(
            where, path, image.shape))
    return to_channels(image, channels, "{}: {!r}".format(where, path))


def read_rgb(path):
    """An image file as [H, W, 3] RGB (gray expanded, alpha dropped), as Matterport's samples
    read the images they detect on; ImageLoadError names the file."""
    return read_image(path, 3)


class _PythonOps:
    """The operations :func:`resize_scale` needs, on Python numbers."""
    maximum = staticmethod(max)
    minimum = staticmethod(min)
    round = staticmethod(round)

    @staticmethod
    def where(condition, if_true, if_false):
        return if_true if condition else if_false


def resize_scale(height, width, min_dim, max_dim, min_scale, cap=True, ops=_PythonOps):
    """Matterport's resize scale: the short side to ``min_dim`` (never scaled down for it), at
    least ``min_scale``, and with ``cap`` (square mode) the long side at most ``max_dim``.

    height, width: the image's size, Python numbers or (with ``ops`` a namespace of TensorFlow's
    ``maximum``, ``minimum``, ``round`` and ``where``, as the SavedModel passes) float32
    tensors; min_dim, max_dim, min_scale: the Config's numbers (0 or None: no constraint).
    The new size is ``round(height * scale)``, ``round(width * scale)`` (halves to even).
    """
    scale = 1.0
    if min_dim:
        scale = ops.maximum(1.0, min_dim / ops.minimum(height, width))
    if min_scale:
        scale = ops.maximum(scale, min_scale)
    if cap and max_dim:
        long_side = ops.maximum(height, width)
        scale = ops.where(ops.round(long_side * scale) > max_dim, max_dim / long_side, scale)
    return scale


def square_padding(height, width, size):
    """(top, bottom, left, right) zero padding that centres a resized ``height x width`` image
    in a ``size x size`` square (the extra row or column at the bottom/right). Integers or
    int32 tensors."""
    top, left = (size - height) // 2, (size - width) // 2
    return top, size - height - top, left, size - width - left
