"""The contract of the images the model takes, checked in one place.

``detect()`` (``transform.mold_inputs``), ``Dataset.load_image`` and training
(``data.load_image_gt``) all pass images through :func:`check_image`, so a wrong image is the
same clear error, naming the image, wherever it enters. NumPy only (no mrcnn imports), so that
every module can use it.
"""

import warnings

import numpy as np


def check_image(image, where, channels=None):
    """Validate an image and bring its values to the 0..255 range; returns the image.

    The contract of every image entering the model (``detect()``, ``Dataset.load_image``,
    training): ``[height, width, channels]``, not empty, uint8, or another integer type within
    0..255, or floats within 0..255. Integer images with larger values (16- or 32-bit) are
    scaled to 0..255 with a warning: uint16/uint32 by their type's range, other integer types by
    the 16- or 32-bit range that holds their values. Floats whose maximum is at most 1.0 (but
    not all zero) are rejected, since they may be 0..1 images, as are NaN or infinite values.

    where: names the image in messages (e.g. "detect() image 2", "image id 5 ('a.png')").
    channels: the channel count required, or None to accept any.
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
    if image.dtype in (np.uint16, np.uint32):
        top = np.iinfo(image.dtype).max     # a dark 16-bit image stays dark
    else:
        top = next((t for t in (255, 2 ** 16 - 1, 2 ** 32 - 1) if high <= t), None)
        if top is None:
            raise ValueError("{}: image values up to {} exceed 32 bits".format(where, high))
    if top == 255:
        return image.astype(np.uint8, copy=False)
    warnings.warn("{}: {}-bit image (values up to {}) scaled to 0..255 by 255/{}".format(
        where, int(top).bit_length(), high, top), stacklevel=2)
    return np.round(image * (255.0 / top)).astype(np.uint8)
