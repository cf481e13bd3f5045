"""``DetectionLayer``: final boxes from the heads' outputs, with per-class NMS."""

import keras
import tensorflow as tf
from keras import layers

from mrcnn.modeling import box_ops, portable_ops


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionLayer(layers.Layer):
    """Refine, filter and de-duplicate the classified RoIs.

    Each RoI takes its most likely class; its box is refined with that class's deltas and
    clipped to the image window; background and RoIs below DETECTION_MIN_CONFIDENCE are dropped;
    NMS runs per class (``tf.image.combined_non_max_suppression``), and the best
    DETECTION_MAX_INSTANCES remain. With ``multi_label`` (Config.DETECTION_MULTI_LABEL) every
    foreground class of a RoI scoring at least DETECTION_MIN_CONFIDENCE is a candidate, with
    its own class's refined box (torchvision, detectron2), so one RoI can give several
    detections. With ``box_decoding`` "torchvision" (Config.BOX_DECODING) the deltas are
    applied in pixels, NMS runs in pixels, zero-padded RoIs are never candidates and boxes
    under 1e-2 pixels are dropped (torchvision's ``postprocess_detections``). ``ops``: "tf"
    (TensorFlow's NMS op) or "portable" (TFLite builtins, for export;
    ``mrcnn.modeling.portable_ops``).

    Inputs: rois [batch, N, 4] normalized; mrcnn_class [batch, N, NUM_CLASSES] probabilities;
    mrcnn_bbox [batch, N, NUM_CLASSES, 4] deltas; image_meta [batch, meta_size].
    Returns: [batch, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)], boxes
    normalized, sorted by score, zero-padded.
    """

    def __init__(self, max_instances, min_confidence, nms_threshold,
                 bbox_std_dev=(0.1, 0.1, 0.2, 0.2), multi_label=False,
                 box_decoding="matterport", ops="tf", **kwargs):
        super().__init__(**kwargs)
        # Per-class NMS with data-dependent counts does not compile with XLA (see PyramidROIAlign).
        self.supports_jit = False
        self.max_instances = int(max_instances)
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.bbox_std_dev = [float(v) for v in bbox_std_dev]
        self.multi_label = bool(multi_label)
        self.box_decoding = box_ops.check_box_decoding(box_decoding)
        self.ops = portable_ops.check_ops(ops)

    def _decode(self, rois, deltas, meta, window):
        """Refined boxes [B, N, (C,) 4] of rois [B, N, (C,) 4] (window: [B, 4] normalized):
        normalized, or in pixels with box_decoding "torchvision"."""
        if self.box_decoding == "torchvision":
            return box_ops.decode_pixel_boxes(rois, deltas, meta["image_shape"][0, :2],
                                              meta["window"])
        window = window[:, tf.newaxis] if len(rois.shape) == 4 else window
        return box_ops.clip_boxes_graph(box_ops.apply_box_deltas_graph(rois, deltas), window)

    def _candidates(self, rois, boxes, scores):
        """box_decoding "torchvision": zero scores for padding RoIs and small boxes."""
        if self.box_decoding != "torchvision":
            return scores
        padding = tf.reduce_all(tf.equal(rois, 0.0), axis=-1)          # [B, N]
        small = box_ops.small_boxes(boxes, 1e-2)                       # [B, N(, C)]
        if len(small.shape) == 3:
            padding = padding[..., tf.newaxis]
        return tf.where(padding | small, 0.0, scores)

    def _multi_label(self, rois, probs, deltas, meta, window):
        """torchvision's and detectron2's rule: every foreground class of every RoI is a
        candidate with its own refined box; those over min_confidence go to per-class NMS.
        Returns (boxes [B, N, C - 1, 4], scores [B, N, C - 1])."""
        std = tf.constant(self.bbox_std_dev, shape=[1, 1, 1, 4])
        class_rois = tf.broadcast_to(rois[:, :, tf.newaxis], tf.shape(deltas[:, :, 1:]))
        boxes = self._decode(class_rois, deltas[:, :, 1:] * std, meta, window)  # [B, N, C-1, 4]
        scores = self._candidates(rois, boxes, probs[:, :, 1:])
        return boxes, tf.where(scores >= self.min_confidence, scores, 0.0)

    def call(self, inputs):
        rois, probs, deltas, image_meta = inputs
        meta = box_ops.parse_image_meta_graph(image_meta)
        window = box_ops.norm_boxes_graph(meta["window"], meta["image_shape"][0, :2])
        if self.multi_label:
            return self._nms(*self._multi_label(rois, probs, deltas, meta, window), meta)
        num_classes = tf.shape(probs)[2]
        class_ids = tf.argmax(probs, axis=2, output_type=tf.int32)       # [B, N]
        scores = tf.reduce_max(probs, axis=2)                             # [B, N]
        class_deltas = tf.gather(deltas, class_ids, batch_dims=2)         # [B, N, 4]
        boxes = self._decode(rois, class_deltas * tf.constant(self.bbox_std_dev, shape=[1, 1, 4]),
                             meta, window)                                # [B, N, 4]
        scores = self._candidates(rois, boxes, scores)

        # Per-class NMS over one score column per foreground class: a RoI scores only in the
        # column of its own class, and only when it clears the confidence threshold.
        keep = (class_ids > 0) & (scores >= self.min_confidence)
        one_hot = tf.one_hot(class_ids - 1, num_classes - 1)             # [B, N, C - 1]
        class_scores = one_hot * tf.where(keep, scores, 0.0)[..., tf.newaxis]
        return self._nms(boxes[:, :, tf.newaxis, :], class_scores, meta)

    def _nms(self, boxes, class_scores, meta):
        """Per-class NMS of boxes [B, N, 1 or C - 1, 4] scored [B, N, C - 1] (0: not a
        candidate) -> the detections [B, max_instances, 6], boxes normalized, zero-padded."""
        nms = portable_ops.namespace(self.ops).combined_non_max_suppression
        nms_boxes, nms_scores, nms_classes, valid = nms(
            boxes, class_scores,
            max_output_size_per_class=self.max_instances, max_total_size=self.max_instances,
            iou_threshold=self.nms_threshold, score_threshold=1e-9, pad_per_class=False,
            clip_boxes=False)
        valid_mask = tf.sequence_mask(valid, self.max_instances, dtype=tf.float32)
        if self.box_decoding == "torchvision":
            nms_boxes = box_ops.norm_boxes_graph(nms_boxes, meta["image_shape"][0, :2])
        detections = tf.concat([nms_boxes, (nms_classes + 1.0)[..., tf.newaxis],
                                nms_scores[..., tf.newaxis]], axis=2)
        return detections * valid_mask[..., tf.newaxis]

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], self.max_instances, 6)

    def get_config(self):
        config = super().get_config()
        config.update(max_instances=self.max_instances, min_confidence=self.min_confidence,
                      nms_threshold=self.nms_threshold, bbox_std_dev=self.bbox_std_dev,
                      multi_label=self.multi_label, box_decoding=self.box_decoding,
                      ops=self.ops)
        return config
