"""Anchors: the one generator of the pyramid's anchor boxes, cached by image shape.

Every user asks here: the training graph (``rpn.AnchorsLayer``), the input pipeline's RPN
targets (``mrcnn.data.pipeline``), ``detect()`` and the exports (``MaskRCNN.get_anchors``, an
:class:`AnchorCache` of normalized anchors), the dataset report and the parity checks.
Matterport's names (``utils.generate_anchors``, ``utils.generate_pyramid_anchors``,
``utils.compute_backbone_shapes``, ``utils.get_anchors``) are re-exported by ``mrcnn.utils``.
Boxes are ``(y1, x1, y2, x2)`` pixels unless said otherwise.
"""

import collections
import functools

import numpy as np

from mrcnn.modeling.boxes import norm_boxes


def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride, rounded=False):
    """Anchors of one pyramid level.

    scales: anchor sides in pixels (e.g. [32, 64, 128]); ratios: width/height ratios
    (e.g. [0.5, 1, 2]); shape: [height, width] of the feature map; feature_stride: its stride in
    pixels, one number or (stride_y, stride_x); anchor_stride: place anchors at every
    ``anchor_stride``-th feature cell; rounded: round the half sides to whole pixels, as
    torchvision's ``AnchorGenerator`` does (Config.RPN_ANCHOR_STYLE "torchvision").

    Returns [N, (y1, x1, y2, x2)] float pixel boxes, ordered by position (row-major) and then by
    (ratio, scale) within a position, as Matterport orders them.
    """
    stride_y, stride_x = np.broadcast_to(np.asarray(feature_stride), (2,))
    scales, ratios = np.meshgrid(np.array(scales), np.array(ratios))
    scales = scales.flatten()
    ratios = ratios.flatten()
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)

    shifts_y = np.arange(0, shape[0], anchor_stride) * stride_y
    shifts_x = np.arange(0, shape[1], anchor_stride) * stride_x
    shifts_x, shifts_y = np.meshgrid(shifts_x, shifts_y)

    box_widths, box_centers_x = np.meshgrid(widths, shifts_x)
    box_heights, box_centers_y = np.meshgrid(heights, shifts_y)
    box_centers = np.stack([box_centers_y, box_centers_x], axis=2).reshape([-1, 2])
    half_sizes = 0.5 * np.stack([box_heights, box_widths], axis=2).reshape([-1, 2])
    if rounded:
        half_sizes = np.round(half_sizes)
    return np.concatenate([box_centers - half_sizes, box_centers + half_sizes], axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride,
                             rounded=False):
    """Anchors of every pyramid level, concatenated level by level (P2 first).

    scales[i] is the anchor side at level i; feature_strides[i] one number or (y, x);
    rounded: see :func:`generate_anchors`. Returns [N, (y1, x1, y2, x2)] float pixel boxes.
    """
    anchors = [generate_anchors(scales[i], ratios, feature_shapes[i], feature_strides[i],
                                anchor_stride, rounded)
               for i in range(len(scales))]
    return np.concatenate(anchors, axis=0)


def anchor_strides(config, image_shape, feature_shapes):
    """The anchor stride of each level: BACKBONE_STRIDES, or with RPN_ANCHOR_STYLE
    "torchvision" its (image side // map side) per axis, as torchvision computes it (P6 of an
    800-pixel side has 13 rows, so its rows are 61 pixels apart, not 64)."""
    if config.RPN_ANCHOR_STYLE != "torchvision":
        return tuple(int(s) for s in config.BACKBONE_STRIDES)
    return tuple((int(image_shape[0]) // int(h), int(image_shape[1]) // int(w))
                 for h, w in feature_shapes)


def compute_backbone_shapes(config, image_shape):
    """[[height, width], ...] of each backbone level (one per BACKBONE_STRIDES entry)."""
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(image_shape)
    return np.array([[int(np.ceil(image_shape[0] / stride)),
                      int(np.ceil(image_shape[1] / stride))]
                     for stride in config.BACKBONE_STRIDES])


def _hashable(value):
    """Nested lists/arrays of numbers as nested tuples of Python numbers (a cache key)."""
    value = np.asarray(value).tolist() if isinstance(value, np.ndarray) else value
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


@functools.lru_cache(maxsize=16)
def _cached_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride,
                            rounded):
    anchors = generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides,
                                       anchor_stride, rounded)
    anchors.setflags(write=False)   # shared between callers
    return anchors


def pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride,
                    rounded=False):
    """:func:`generate_pyramid_anchors`, cached for the 16 most recent arguments (computing
    them is not free, and in pad64 mode every image size is a new shape). Read-only."""
    return _cached_pyramid_anchors(_hashable(scales), _hashable(ratios),
                                   _hashable(feature_shapes), _hashable(feature_strides),
                                   int(anchor_stride), bool(rounded))


def get_anchors(config, image_shape):
    """Pixel anchors [N, (y1, x1, y2, x2)] for an image shape under ``config``.

    Cached (:func:`pyramid_anchors`); the array is read-only.
    """
    shapes = [[int(v) for v in s] for s in compute_backbone_shapes(config, image_shape)]
    return pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes,
                           anchor_strides(config, image_shape, shapes),
                           config.RPN_ANCHOR_STRIDE, config.RPN_ANCHOR_STYLE == "torchvision")


class AnchorCache:
    """Normalized anchors per molded image shape, for the inference graph's anchor input.

    Bounded (least recently used first out): in pad64 mode every image size is a new shape.
    """

    def __init__(self, config, max_entries=8):
        self.config = config
        self.max_entries = int(max_entries)
        self._entries = collections.OrderedDict()

    def get(self, image_shape):
        """Normalized anchors [num_anchors, 4] float32 for a molded image shape."""
        key = tuple(int(s) for s in image_shape[:2])
        if key in self._entries:
            self._entries.move_to_end(key)
        else:
            self._entries[key] = norm_boxes(
                get_anchors(self.config, image_shape), key).astype(np.float32)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return self._entries[key]

    def batch(self, molded_images):
        """Anchors repeated for each image: [batch, num_anchors, 4]."""
        anchors = self.get(molded_images[0].shape)
        return np.ascontiguousarray(np.broadcast_to(anchors, (len(molded_images),) +
                                                    anchors.shape))

    def __len__(self):
        return len(self._entries)
