"""The one box coder: ``(y1, x1, y2, x2)`` boxes <-> ``(dy, dx, log(dh), log(dw))`` deltas.

The same two functions serve NumPy (``utils.box_refinement`` / ``utils.apply_box_deltas``, the
input pipeline) and the TensorFlow graph (RPN proposals, RoI targets, detections): they only use
slicing, arithmetic and four array functions, taken from ``xp``, the array namespace (``numpy``,
or ``box_ops.TF`` inside the graph). This module does not import TensorFlow.
"""

import math

import numpy as np

# Largest log-scale delta applied: a box can grow at most 1000/16 times in one refinement (as in
# detectron2). Untrained or diverging heads otherwise overflow exp() into inf/NaN boxes, which
# crash crop_and_resize.
MAX_LOG_SCALE = math.log(1000.0 / 16)


def _center_size(boxes):
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * height, boxes[..., 1] + 0.5 * width, height, width


def encode(boxes, target_boxes, xp=np):
    """Deltas ``[..., (dy, dx, log(dh), log(dw))]`` that turn ``boxes`` into ``target_boxes``."""
    center_y, center_x, height, width = _center_size(boxes)
    t_center_y, t_center_x, t_height, t_width = _center_size(target_boxes)
    return xp.stack([(t_center_y - center_y) / height, (t_center_x - center_x) / width,
                     xp.log(t_height / height), xp.log(t_width / width)], axis=-1)


def decode(boxes, deltas, xp=np):
    """Apply ``[..., (dy, dx, log(dh), log(dw))]`` deltas to ``[..., (y1, x1, y2, x2)]`` boxes.

    The log-scale deltas are clamped at MAX_LOG_SCALE so that the result stays finite.
    """
    center_y, center_x, height, width = _center_size(boxes)
    center_y = center_y + deltas[..., 0] * height
    center_x = center_x + deltas[..., 1] * width
    height = height * xp.exp(xp.minimum(deltas[..., 2], MAX_LOG_SCALE))
    width = width * xp.exp(xp.minimum(deltas[..., 3], MAX_LOG_SCALE))
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return xp.stack([y1, x1, y1 + height, x1 + width], axis=-1)


class BoxCoder:
    """Deltas normalized by per-coordinate standard deviations (``RPN_BBOX_STD_DEV``,
    ``BBOX_STD_DEV``): what the RPN and the box head learn to predict."""

    def __init__(self, std_dev=(1.0, 1.0, 1.0, 1.0), xp=np):
        self.std_dev = [float(v) for v in std_dev]
        self.xp = xp

    def encode(self, boxes, target_boxes):
        """Normalized deltas [..., 4] from ``boxes`` to ``target_boxes``."""
        return encode(boxes, target_boxes, self.xp) / np.asarray(self.std_dev, np.float32)

    def decode(self, boxes, deltas):
        """Boxes [..., 4] from ``boxes`` and normalized ``deltas``."""
        return decode(boxes, deltas * np.asarray(self.std_dev, np.float32), self.xp)
