"""Region proposal network: the shared RPN head, anchors in the graph, and ``ProposalLayer``."""

import keras
import tensorflow as tf
from keras import layers

from mrcnn.modeling import anchors as anchors_lib
from mrcnn.modeling import box_ops
from mrcnn.modeling.boxes import norm_boxes


def build_rpn_model(anchor_stride, anchors_per_location, depth, compute_dtype=None,
                    channels=512, convs=1):
    """The RPN head as a nested model ``rpn_model`` shared by every pyramid level.

    compute_dtype: a mixed dtype policy for the shared 3x3 convolution (Config.MIXED_PRECISION);
    the class and box outputs are float32 whatever it is. channels: width of the shared 3x3
    convolution (Config.RPN_CONV_CHANNELS; Matterport's 512); convs: how many such 3x3
    convolutions (Config.RPN_CONV_DEPTH; torchvision's v2 head has 2), the first
    ``rpn_conv_shared``, the next ``rpn_conv_shared_2``...
    Input: a feature map [batch, height, width, depth].
    Outputs:
        rpn_class_logits: [batch, H * W * anchors_per_location, 2] (BG/FG logits)
        rpn_probs: [batch, H * W * anchors_per_location, 2] softmax of the logits
        rpn_bbox: [batch, H * W * anchors_per_location, (dy, dx, log(dh), log(dw))]
    """
    feature_map = keras.Input(shape=[None, None, depth], name="input_rpn_feature_map")
    shared = layers.Conv2D(channels, (3, 3), padding="same", activation="relu",
                           strides=anchor_stride, name="rpn_conv_shared",
                           dtype=compute_dtype)(feature_map)
    for i in range(2, convs + 1):
        shared = layers.Conv2D(channels, (3, 3), padding="same", activation="relu",
                               name="rpn_conv_shared_{}".format(i), dtype=compute_dtype)(shared)
    x = layers.Conv2D(2 * anchors_per_location, (1, 1), padding="valid", activation="linear",
                      name="rpn_class_raw")(shared)
    rpn_class_logits = layers.Reshape((-1, 2), name="rpn_class_logits_flat")(x)
    rpn_probs = layers.Activation("softmax", name="rpn_class_xxx")(rpn_class_logits)
    x = layers.Conv2D(anchors_per_location * 4, (1, 1), padding="valid", activation="linear",
                      name="rpn_bbox_pred")(shared)
    rpn_bbox = layers.Reshape((-1, 4), name="rpn_bbox_flat")(x)
    return keras.Model([feature_map], [rpn_class_logits, rpn_probs, rpn_bbox], name="rpn_model")


@keras.saving.register_keras_serializable(package="mrcnn")
class AnchorsLayer(layers.Layer):
    """Constant normalized anchors [num_anchors, 4], tiled to the batch of its input.

    Used in training, where every image has the configured IMAGE_SHAPE (inference takes the
    anchors as an input instead, so that images of any padded size work). The layer keeps the
    anchor parameters, not the anchors, so its config stays small.

    scales, ratios, feature_strides, anchor_stride, rounded: as in
    ``anchors.generate_pyramid_anchors``; feature_shapes: [[height, width], ...] of each pyramid
    level; image_shape: (height, width).
    """

    def __init__(self, scales, ratios, feature_shapes, feature_strides, anchor_stride,
                 image_shape, rounded=False, **kwargs):
        super().__init__(**kwargs)
        self.params = {
            "scales": [float(v) for v in scales], "ratios": [float(v) for v in ratios],
            "feature_shapes": [[int(v) for v in s] for s in feature_shapes],
            # One stride per level, or (stride_y, stride_x) (RPN_ANCHOR_STYLE "torchvision").
            "feature_strides": [[int(v) for v in s] if isinstance(s, (list, tuple)) else int(s)
                                for s in feature_strides],
            "anchor_stride": int(anchor_stride),
            "image_shape": [int(v) for v in image_shape[:2]],
            "rounded": bool(rounded),
        }
        self.anchors = norm_boxes(anchors_lib.pyramid_anchors(
            self.params["scales"], self.params["ratios"], self.params["feature_shapes"],
            self.params["feature_strides"], self.params["anchor_stride"],
            self.params["rounded"]), self.params["image_shape"])

    @classmethod
    def from_config_object(cls, config, **kwargs):
        """The training anchors of an ``mrcnn.config.Config``."""
        shapes = anchors_lib.compute_backbone_shapes(config, config.IMAGE_SHAPE)
        return cls(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes,
                   anchors_lib.anchor_strides(config, config.IMAGE_SHAPE, shapes),
                   config.RPN_ANCHOR_STRIDE, config.IMAGE_SHAPE,
                   rounded=config.RPN_ANCHOR_STYLE == "torchvision", **kwargs)

    def call(self, image):
        batch = tf.shape(image)[0]
        anchors = tf.constant(self.anchors)
        return tf.tile(anchors[tf.newaxis], [batch, 1, 1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.anchors.shape

    def get_config(self):
        config = super().get_config()
        config.update(self.params)
        return config


@keras.saving.register_keras_serializable(package="mrcnn")
class AnchorLevels(layers.Layer):
    """The pyramid level index (0, 1, ...) of every anchor: [batch, num_anchors] int32.

    Input: the RPN's per-level outputs [batch, anchors of the level, ...], in the order the
    anchors are concatenated (P2 first), so that per-level proposals know which anchors belong
    together for any image size.
    """

    def call(self, level_outputs):
        # zeros_like keeps each level's static anchor count (tf.fill would lose it), which
        # lets the exported graph fold the NMS loop's shape checks (tf2onnx needs that).
        return tf.concat([tf.zeros_like(o[..., 0], dtype=tf.int32) + level
                          for level, o in enumerate(level_outputs)], axis=1)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], None)


@keras.saving.register_keras_serializable(package="mrcnn")
class ProposalLayer(layers.Layer):
    """Turns anchor scores and deltas into proposals.

    Matterport's (default): keeps the ``pre_nms_limit`` best anchors, applies their deltas,
    clips to the image, and runs NMS (``tf.image.non_max_suppression_padded``, batched).
    ``num_levels`` > 0 (Config.RPN_PROPOSALS_PER_LEVEL; torchvision's and detectron2's): the
    same per pyramid level (its ``pre_nms_limit`` best anchors, its own NMS), then the
    ``proposal_count`` best of all levels' survivors.

    Inputs:
        rpn_probs: [batch, num_anchors, (bg prob, fg prob)]
        rpn_bbox: [batch, num_anchors, (dy, dx, log(dh), log(dw))]
        anchors: [batch, num_anchors, (y1, x1, y2, x2)] normalized
        (per level) anchor_levels: [batch, num_anchors] int32 level of each anchor
            (``AnchorLevels``)
        (box_decoding "torchvision") image_meta: [batch, meta_size], last
    box_decoding (Config.BOX_DECODING): "torchvision" decodes the deltas in pixels, clips to the
    image window and drops proposals under 1e-3 pixels (torchvision's ``filter_proposals``).
    Returns:
        proposals: [batch, proposal_count, (y1, x1, y2, x2)] normalized, best first, zero-padded.
    """

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit=6000,
                 rpn_bbox_std_dev=(0.1, 0.1, 0.2, 0.2), num_levels=0,
                 box_decoding="matterport", **kwargs):
        super().__init__(**kwargs)
        # NMS and top-k with data-dependent counts do not compile with XLA (see PyramidROIAlign).
        self.supports_jit = False
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in rpn_bbox_std_dev]
        self.num_levels = int(num_levels)
        self.box_decoding = box_ops.check_box_decoding(box_decoding)

    def _best_boxes(self, scores, deltas, anchors, meta):
        """Top-k anchors by score, decoded and clipped.

        scores: [B, A] or [B, levels, A] (one row per level); deltas, anchors: [B, A, 4].
        Returns (boxes [..., k, 4], scores [..., k]), scores sorted, except that with
        box_decoding "torchvision" (``meta``: the parsed image meta) the boxes are in pixels
        and those under 1e-3 pixels score -1.
        """
        k = tf.minimum(self.pre_nms_limit, tf.shape(anchors)[1])
        scores, ix = tf.math.top_k(scores, k, sorted=True)             # [B, (L,) k]
        deltas = tf.gather(deltas, ix, batch_dims=1)
        anchors = tf.gather(anchors, ix, batch_dims=1)
        if self.box_decoding == "torchvision":
            boxes = box_ops.decode_pixel_boxes(anchors, deltas, meta["image_shape"][0, :2],
                                               meta["window"])
            scores = tf.where(box_ops.small_boxes(boxes, 1e-3), -1.0, scores)
            # NMS in pixels, as torchvision (IoU differs in normalized coordinates, whose
            # y2 is shifted by a pixel).
            return tf.stop_gradient(boxes), tf.stop_gradient(scores)
        boxes = box_ops.apply_box_deltas_graph(anchors, deltas)        # [B, (L,) k, 4]
        boxes = box_ops.clip_boxes_graph(boxes, tf.constant([0., 0., 1., 1.]))
        # Proposals are generated for training the heads, not back-propagated through.
        return tf.stop_gradient(boxes), tf.stop_gradient(scores)

    def _nms(self, boxes, scores):
        """Batched NMS over the leading axes: (kept boxes [..., count, 4], their scores
        [..., count], valid [...])."""
        # "torchvision": boxes scoring -1 (too small, another level's) are never kept, and
        # they break the score order.
        torchvision = self.box_decoding == "torchvision"
        selected, valid = tf.image.non_max_suppression_padded(
            boxes, scores, self.proposal_count, iou_threshold=self.nms_threshold,
            score_threshold=-0.5 if torchvision else float("-inf"),
            pad_to_max_output_size=True, sorted_input=not torchvision)
        batch_dims = len(selected.shape) - 1
        return (tf.gather(boxes, selected, batch_dims=batch_dims),
                tf.gather(scores, selected, batch_dims=batch_dims), valid)

    @staticmethod
    def _normalized(proposals, meta):
        """Pixel proposals (box_decoding "torchvision") -> normalized; others unchanged."""
        if meta is None:
            return proposals
        return box_ops.norm_boxes_graph(proposals, meta["image_shape"][0, :2])

    def call(self, inputs):
        rpn_probs, rpn_bbox, anchors = inputs[:3]
        meta = box_ops.parse_image_meta_graph(inputs[-1]) \
            if self.box_decoding == "torchvision" else None
        scores = rpn_probs[:, :, 1]                                    # [B, A]
        deltas = rpn_bbox * tf.constant(self.rpn_bbox_std_dev, shape=[1, 1, 4])
        if not self.num_levels:
            proposals, _, valid = self._nms(*self._best_boxes(scores, deltas, anchors, meta))
            keep = tf.sequence_mask(valid, self.proposal_count, dtype=proposals.dtype)
            return self._normalized(proposals, meta) * keep[..., tf.newaxis]
        # One row of scores per level, other levels' anchors at -1: below every probability,
        # so a level's top-k takes them last (a level may have fewer than k anchors) and,
        # coming after the level's own in the sorted input, they suppress none of them; their
        # picks are dropped below. One top-k and one NMS batched over (image, level).
        levels = inputs[3]                                             # [B, A]
        mine = tf.equal(levels[:, tf.newaxis], tf.range(self.num_levels)[:, tf.newaxis])
        level_scores = tf.where(mine, scores[:, tf.newaxis], -1.0)     # [B, L, A]
        boxes, kept, valid = self._nms(*self._best_boxes(level_scores, deltas, anchors, meta))
        kept = tf.where(tf.sequence_mask(valid, self.proposal_count) & (kept >= 0.0), kept,
                        -1.0)                                          # [B, L, count]
        count = self.num_levels * self.proposal_count
        scores, order = tf.math.top_k(tf.reshape(kept, [-1, count]), self.proposal_count)
        proposals = tf.gather(tf.reshape(boxes, [-1, count, 4]), order, batch_dims=1)
        return self._normalized(proposals, meta) * tf.cast(scores >= 0.0,
                                                           proposals.dtype)[..., tf.newaxis]

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], self.proposal_count, 4)

    def get_config(self):
        config = super().get_config()
        config.update(proposal_count=self.proposal_count, nms_threshold=self.nms_threshold,
                      pre_nms_limit=self.pre_nms_limit, rpn_bbox_std_dev=self.rpn_bbox_std_dev,
                      num_levels=self.num_levels, box_decoding=self.box_decoding)
        return config
