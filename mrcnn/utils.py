"""Matterport's ``utils`` module: NumPy image/mask resizing and the weights download.

Nothing here imports TensorFlow. Conventions (as in Matterport): boxes are ``(y1, x1, y2, x2)`` in
pixels with y2/x2 exclusive; masks are ``[height, width, instances]`` bool arrays. Box math is
defined in :mod:`mrcnn.modeling.boxes`, anchors in :mod:`mrcnn.modeling.anchors` and the AP
family in :mod:`mrcnn.evaluation.metrics`; they are re-exported here so that Matterport scripts
keep working.
"""

import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings

import numpy as np
import scipy.ndimage
import skimage.transform

# Re-exported for Matterport scripts (`from mrcnn.utils import Dataset`, `utils.compute_ap`...).
from mrcnn.modeling.boxes import (  # noqa: F401
    apply_box_deltas, box_areas, box_refinement, compute_iou, compute_overlaps,
    compute_overlaps_masks, denorm_boxes, extract_bboxes, non_max_suppression, norm_boxes,
    trim_zeros)
from mrcnn.data.dataset import Dataset, ImageLoadError  # noqa: F401
from mrcnn.data.images import resize_scale, square_padding
from mrcnn.modeling.anchors import (anchor_strides, compute_backbone_shapes,  # noqa: F401
                                    generate_anchors, generate_pyramid_anchors, get_anchors)
from mrcnn.evaluation.metrics import (compute_ap, compute_ap_range, compute_gt_recall,  # noqa: F401
                                      compute_matches, compute_recall)

COCO_MODEL_URL = ("https://github.com/matterport/Mask_RCNN/releases/download/v2.0/"
                  "mask_rcnn_coco.h5")

# Pretrained weights live in weights/ (see weights/README.md): that of the checkout mrcnn runs
# from (the folder above the package, when it holds setup.py), or of the current folder for an
# installed package; $MRCNN_WEIGHTS_DIR, when set, comes first.
WEIGHTS_DIR_ENV = "MRCNN_WEIGHTS_DIR"
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKOUT_DIR = (_PACKAGE_PARENT if os.path.isfile(os.path.join(_PACKAGE_PARENT, "setup.py"))
                else None)


def _weights_folders():
    """[$MRCNN_WEIGHTS_DIR (when set), weights/ of the checkout or of the current folder]."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    folders = [os.path.abspath(os.path.expanduser(env))] if env else []
    return folders + [os.path.join(CHECKOUT_DIR or os.getcwd(), "weights")]


def weights_dir():
    """The default folder of pretrained weights, where downloads and conversions go:
    ``$MRCNN_WEIGHTS_DIR`` when set, else ``weights/`` of the checkout (of the current folder
    when mrcnn is an installed package)."""
    return _weights_folders()[0]


def find_weights(filename, fallbacks=()):
    """Path of the weights file ``filename`` (e.g. "mask_rcnn_coco.h5"): the first that exists of

    1. ``$MRCNN_WEIGHTS_DIR/filename``, when the variable is set;
    2. ``weights/filename`` of the checkout (of the current folder for an installed package);
    3. ``filename`` in each folder of ``fallbacks``, in order (older homes: the repository
       root, ``--logs``...);

    else the default place, ``weights_dir()/filename``, where it should be downloaded.
    """
    for folder in _weights_folders() + [str(folder) for folder in fallbacks]:
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return os.path.join(weights_dir(), filename)


class DownloadError(OSError):
    """A weights download failed; the message says what to do instead."""


def download_trained_weights(coco_model_path=None, verbose=1, url=COCO_MODEL_URL, timeout=60):
    """Download Matterport's COCO-trained weights (``mask_rcnn_coco.h5``) to a path.

    coco_model_path: where to write; by default ``weights_dir()/mask_rcnn_coco.h5`` (``weights/``
    of the checkout, or ``$MRCNN_WEIGHTS_DIR``). Returns the path written.
    The file is written to a temporary name next to the target and renamed when complete, so
    an interrupted download never leaves a truncated ``.h5``. Without network access it raises
    :class:`DownloadError` with the URL and the reason.
    """
    if coco_model_path is None:
        coco_model_path = os.path.join(weights_dir(), "mask_rcnn_coco.h5")
    if verbose > 0:
        print("Downloading pretrained model to {} ...".format(coco_model_path))
    directory = os.path.dirname(os.path.abspath(coco_model_path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, coco_model_path)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise DownloadError(
            "could not download {} to {}: {}. Download the file by other means and pass its "
            "path to load_weights().".format(url, coco_model_path,
                                             getattr(e, "reason", e))) from e
    if verbose > 0:
        print("... done downloading pretrained model!")
    return coco_model_path


############################################################
#  Images and masks
############################################################

def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True,
           preserve_range=False, anti_aliasing=False, anti_aliasing_sigma=None):
    """``skimage.transform.resize`` with Matterport's defaults (no anti-aliasing)."""
    return skimage.transform.resize(
        image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
        preserve_range=preserve_range, anti_aliasing=anti_aliasing,
        anti_aliasing_sigma=anti_aliasing_sigma)


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square", rng=None):
    """Resize an image keeping its aspect ratio.

    mode:
        none   -- return the image unchanged.
        square -- scale so the short side is ``min_dim`` but the long side at most ``max_dim``,
                  then zero-pad to ``max_dim x max_dim``.
        pad64  -- scale as in square, then pad each side up to a multiple of 64.
        crop   -- scale as in square (without the ``max_dim`` cap), then take a random
                  ``min_dim x min_dim`` crop (``rng``: a ``numpy.random.Generator``).
        shortest_edge -- torchvision's rule (:func:`_resize_shortest_edge`): the short side
                  ``min_dim`` unless the long side would pass ``max_dim``, up or down; padded
                  bottom-right to multiples of 32, which ``mold_inputs`` sets to 0 after
                  normalization, as torchvision batches images. Returns float32.
    min_scale: scale up at least this much even when ``min_dim`` does not require it.

    Returns: image (the input's dtype), window ((y1, x1, y2, x2) of the image inside the padded
    result, y2/x2 exclusive), scale, padding ([(top, bottom), (left, right), (0, 0)]) and crop
    ((y, x, h, w), or None).
    """
    image_dtype = image.dtype
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("resize_image: the image is empty (shape {})".format(image.shape))
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None

    if mode == "none":
        return image, window, scale, padding, crop
    if mode == "shortest_edge":
        return _resize_shortest_edge(image, min_dim, max_dim)
    if mode not in ("square", "pad64", "crop"):
        raise ValueError("Unknown resize mode {!r}".format(mode))

    scale = resize_scale(h, w, min_dim, max_dim, min_scale, cap=mode == "square")
    if scale != 1:
        image = resize(image, (round(h * scale), round(w * scale)), preserve_range=True)

    if mode == "square":
        h, w = image.shape[:2]
        top_pad, bottom_pad, left_pad, right_pad = square_padding(h, w, max_dim)
        padding = [(top_pad, bottom_pad), (left_pad, right_pad), (0, 0)]
        image = np.pad(image, padding, mode="constant", constant_values=0)
        window = (top_pad, left_pad, h + top_pad, w + left_pad)
    elif mode == "pad64":
        h, w = image.shape[:2]
        if min_dim and min_dim % 64 != 0:
            raise ValueError("min_dim must be a multiple of 64 in pad64 mode, got {}".format(
                min_dim))
        top_pad, bottom_pad = _pad_to_64(h)
        left_pad, right_pad = _pad_to_64(w)
        padding = [(top_pad, bottom_pad), (left_pad, right_pad), (0, 0)]
        image = np.pad(image, padding, mode="constant", constant_values=0)
        window = (top_pad, left_pad, h + top_pad, w + left_pad)
    else:  # crop
        h, w = image.shape[:2]
        if h < min_dim or w < min_dim:
            raise ValueError("image of {}x{} is smaller than the {}x{} crop".format(
                h, w, min_dim, min_dim))
        rng = rng if rng is not None else np.random.default_rng()
        y = int(rng.integers(0, h - min_dim + 1))
        x = int(rng.integers(0, w - min_dim + 1))
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        window = (0, 0, min_dim, min_dim)
    return image.astype(image_dtype), window, scale, padding, crop


def _resize_shortest_edge(image, min_dim, max_dim):
    """resize_image's "shortest_edge" mode (see there); same returns, the image float32.

    As torchvision 0.29's ``GeneralizedRCNNTransform``: sides int(side * scale) in double
    precision; bilinear on floats with the edge pixels repeated (torch's interpolate,
    align_corners=False), not rounded back to integers.
    """
    h, w = image.shape[:2]
    scale = min(min_dim / min(h, w), max_dim / max(h, w))
    new_h, new_w = int(h * scale), int(w * scale)
    resized = image.astype(np.float32)
    if (new_h, new_w) != (h, w):
        resized = resize(resized, (new_h, new_w), mode="edge",
                         preserve_range=True).astype(np.float32)
    padding = [(0, -new_h % 32), (0, -new_w % 32), (0, 0)][:image.ndim]
    resized = np.pad(resized, padding, mode="constant", constant_values=0)
    return resized, (0, 0, new_h, new_w), scale, padding, None


def _pad_to_64(side):
    """(before, after) padding that brings ``side`` up to a multiple of 64."""
    if side % 64 == 0:
        return 0, 0
    total = 64 - side % 64
    return total // 2, total - total // 2


def resize_mask(mask, scale, padding, crop=None):
    """Apply the scale, crop and padding of :func:`resize_image` to a mask.

    mask: [height, width, N]. Returns a bool mask of the resized image's size.
    """
    mask = np.asarray(mask)
    h, w = mask.shape[:2]
    if scale != 1:
        if mask.shape[-1] == 0:
            mask = np.zeros((round(h * scale), round(w * scale), 0), dtype=bool)
        else:
            # Nearest-neighbour zoom keeps the mask binary. scipy warns about its output-shape
            # rounding change since 0.13; the shapes agree with resize_image's round().
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mask = scipy.ndimage.zoom(mask.astype(np.uint8), zoom=[scale, scale, 1],
                                          order=0)
    if crop is not None:
        y, x, ch, cw = crop
        mask = mask[y:y + ch, x:x + cw]
    else:
        mask = np.pad(mask, padding, mode="constant", constant_values=0)
    return mask.astype(bool)


def minimize_mask(bbox, mask, mini_shape):
    """Crop each mask to its box and resize it to ``mini_shape``.

    bbox: [N, (y1, x1, y2, x2)]; mask: [height, width, N]. Returns [mini_h, mini_w, N] bool.
    """
    mini_mask = np.zeros(tuple(mini_shape) + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        m = mask[y1:y2, x1:x2, i].astype(np.float32)
        if m.size == 0:
            raise ValueError("Invalid bounding box with area of zero: {}".format(bbox[i]))
        m = resize(m, mini_shape)
        mini_mask[:, :, i] = np.around(m).astype(bool)
    return mini_mask


def expand_mask(bbox, mini_mask, image_shape):
    """Paste mini masks back into full-image masks (inverse of :func:`minimize_mask`).

    bbox: [N, (y1, x1, y2, x2)]; mini_mask: [mini_h, mini_w, N]; image_shape: (height, width, ...).
    Returns [height, width, N] bool.
    """
    mask = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        h, w = y2 - y1, x2 - x1
        if h <= 0 or w <= 0:
            continue
        m = resize(mini_mask[:, :, i].astype(np.float32), (h, w))
        mask[y1:y2, x1:x2, i] = np.around(m).astype(bool)
    return mask


def unmold_mask(mask, bbox, image_shape, threshold=0.5):
    """Paste a predicted soft mask into a full-image binary mask.

    mask: [mask_h, mask_w] float in [0, 1] (the mask head's output for one instance);
    bbox: (y1, x1, y2, x2) pixel box it covers; image_shape: (height, width, ...).
    Returns [height, width] bool.
    """
    y1, x1, y2, x2 = [int(v) for v in bbox[:4]]
    full_mask = np.zeros(image_shape[:2], dtype=bool)
    if y2 <= y1 or x2 <= x1:
        return full_mask
    # Resize the soft mask first and threshold after, as Matterport does: sharper edges.
    # Edge clamping (not Matterport's zero padding) keeps border pixels from fading.
    # mrcnn.inference.postprocess (detect() and the SavedModel) computes the same pixels in
    # TensorFlow.
    m = resize(np.asarray(mask, dtype=np.float32), (y2 - y1, x2 - x1), mode="edge")
    m = m >= threshold
    # Clip the paste to the image so boxes that overhang the border still work.
    H, W = full_mask.shape
    cy1, cx1, cy2, cx2 = max(y1, 0), max(x1, 0), min(y2, H), min(x2, W)
    if cy2 > cy1 and cx2 > cx1:
        full_mask[cy1:cy2, cx1:cx2] = m[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
    return full_mask
