"""Molding images for the network (``detect()``'s pre-processing) and unmolding its detections,
in NumPy.

:func:`unmold_detections` is Matterport's NumPy API (``MaskRCNN.unmold_detections``, notebooks);
``detect()`` and the SavedModel compute the same results in TensorFlow with
:func:`mrcnn.inference.postprocess.unmold_detections`.
"""

import numpy as np

from mrcnn.modeling import boxes as box_utils
from mrcnn import utils
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.data.images import check_image


def pixel_stats(config):
    """(MEAN_PIXEL, 1 / PIXEL_STD or None) as float32 arrays: what molding subtracts and
    multiplies by.

    A product with a float32 reciprocal, not a division: graph optimizers turn a division by a
    constant into that product, so NumPy (detect(), training) and the traced graphs (the
    SavedModel, TFLite, ONNX) compute the same bits only if both multiply.
    """
    inverse = None if config.PIXEL_STD is None else \
        (1.0 / np.asarray(config.PIXEL_STD, np.float64)).astype(np.float32)
    return np.asarray(config.MEAN_PIXEL, np.float32), inverse


def normalize_pixels(pixels, mean, inverse_std):
    """(pixels - mean) * inverse_std, or pixels - mean when it is None (Matterport's molding).

    The one normalization of detect(), training and the exported graphs: NumPy arrays or
    float32 tensors, with mean and inverse_std from :func:`pixel_stats`.
    """
    pixels = pixels - mean
    return pixels if inverse_std is None else pixels * inverse_std


def mold_image(images, config):
    """Subtract the mean pixel (and divide by PIXEL_STD); returns float32 (the network's
    input)."""
    return normalize_pixels(images.astype(np.float32), *pixel_stats(config))


def unmold_image(normalized_images, config):
    """Inverse of :func:`mold_image`: add the mean pixel back, as uint8."""
    if config.PIXEL_STD is not None:
        normalized_images = normalized_images * np.asarray(config.PIXEL_STD, np.float32)
    # Round before the cast: float32 molding leaves 117 as 116.99997, which a cast floors.
    return np.clip(np.round(normalized_images + config.MEAN_PIXEL), 0, 255).astype(np.uint8)


def mold_inputs(images, config, first_index=0):
    """Resize, pad and mean-subtract images for the network.

    Images are checked by :func:`mrcnn.data.images.check_image` (messages name ``detect() image
    <i>``, counted from ``first_index``). Returns molded_images [N, h, w, C] float32, image_metas
    [N, meta_size], and windows [N, (y1, x1, y2, x2)]: where each original image lies in its
    molded version.
    """
    molded_images, image_metas, windows = [], [], []
    for i, image in enumerate(images, start=first_index):
        image = check_image(image, "detect() image {}".format(i), config.IMAGE_CHANNEL_COUNT)
        molded, window, scale, _, _ = utils.resize_image(
            image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
            max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
        image_metas.append(compose_image_meta(0, image.shape, molded.shape, window, scale,
                                              np.zeros([config.NUM_CLASSES])))
        molded = mold_image(molded, config)
        if config.IMAGE_RESIZE_MODE == "shortest_edge":
            # torchvision pads the normalized image with 0 (the mean pixel), not with black.
            molded[window[2]:] = 0.0
            molded[:, window[3]:] = 0.0
        molded_images.append(molded)
        windows.append(window)
    shapes = {m.shape for m in molded_images}
    if len(shapes) > 1:
        raise ValueError("images molded to different shapes {}; detect them one at a "
                         "time or use IMAGE_RESIZE_MODE='square'".format(sorted(shapes)))
    return (np.stack(molded_images), np.stack(image_metas).astype(np.float32),
            np.array(windows))


def unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window,
                      mask_threshold=0.5):
    """One image's raw detections -> boxes, class ids, scores and full-size masks.

    detections: [N, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded;
    mrcnn_mask: [N, h, w, NUM_CLASSES] probabilities (or [N, h, w, 1]: class-agnostic);
    image_shape: the molded image's shape; window: (y1, x1, y2, x2) pixels of the original
    image in the molded one.
    Returns boxes [n, 4] int32 in original-image pixels, class_ids [n], scores [n], masks
    [H, W, n] bool. :func:`mrcnn.inference.postprocess.unmold_detections` is the same in TensorFlow.
    """
    zero_ix = np.where(detections[:, 4] == 0)[0]
    n = zero_ix[0] if zero_ix.shape[0] > 0 else detections.shape[0]
    boxes = detections[:n, :4]
    class_ids = detections[:n, 4].astype(np.int32)
    scores = detections[:n, 5]
    # A single channel holds class-agnostic masks.
    channels = class_ids if mrcnn_mask.shape[-1] > 1 else 0
    masks = mrcnn_mask[np.arange(n), :, :, channels]
    # Normalized molded-image coords -> normalized window coords -> original pixels.
    wy1, wx1, wy2, wx2 = box_utils.norm_boxes(np.array([window]), image_shape[:2])[0]
    shift = np.array([wy1, wx1, wy1, wx1])
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    boxes = box_utils.denorm_boxes((boxes - shift) / scale, original_image_shape[:2])
    keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
    boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], masks[keep]
    full_masks = [utils.unmold_mask(masks[i], boxes[i], original_image_shape, mask_threshold)
                  for i in range(boxes.shape[0])]
    full_masks = np.stack(full_masks, axis=-1) if full_masks else \
        np.zeros(tuple(original_image_shape[:2]) + (0,), dtype=bool)
    return boxes, class_ids, scores, full_masks


def pad_batch(arrays, batch_size):
    """``arrays`` (batch first) filled up to ``batch_size`` rows with copies of their first
    row: the inference graph is fed whole batches (the copies' results are dropped)."""
    return [np.concatenate([a, np.repeat(a[:1], batch_size - len(a), 0)])
            if len(a) < batch_size else a for a in arrays]
