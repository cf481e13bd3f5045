"""``DetectionTargetLayer``: samples RoIs for the heads and builds their class, box and mask targets.

(RPN targets are built in NumPy by ``mrcnn.data.build_rpn_targets``, in the input pipeline.)
"""

import keras
import tensorflow as tf
from keras import layers

from mrcnn import box_ops


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, params):
    """Targets for one image.

    proposals: [num_proposals, 4] normalized, zero-padded; gt_class_ids: [max_gt] int
    (negative = crowd, 0 = padding); gt_boxes: [max_gt, 4] normalized; gt_masks:
    [mask_h, mask_w, max_gt] (full-image or mini masks).

    Positives are proposals with IoU >= ROI_POSITIVE_IOU with a non-crowd GT box, at most
    TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO of them; negatives (IoU below that and not touching
    a crowd box) are taken so that positives make up ROI_POSITIVE_RATIO of the sample, as in
    Matterport. An image without positives (e.g. no objects) gets
    TRAIN_ROIS_PER_IMAGE * (1 - ROI_POSITIVE_RATIO) negatives so that it still trains the
    classifier on background.

    Returns (each padded to TRAIN_ROIS_PER_IMAGE rows, positives first):
        rois: [rois, 4] normalized; class_ids: [rois] int32; deltas: [rois, 4] (divided by
        BBOX_STD_DEV); masks: [rois, MASK_SHAPE[0], MASK_SHAPE[1]] in {0, 1}.
    """
    num_rois = params["train_rois_per_image"]
    ratio = params["roi_positive_ratio"]
    proposals, _ = box_ops.trim_zeros_graph(proposals, name="trim_proposals")
    gt_boxes, non_zeros = box_ops.trim_zeros_graph(gt_boxes, name="trim_gt_boxes")
    gt_class_ids = tf.boolean_mask(gt_class_ids, non_zeros)
    gt_masks = tf.transpose(tf.boolean_mask(tf.transpose(gt_masks, [2, 0, 1]), non_zeros),
                            [1, 2, 0])

    # Crowd boxes only veto negatives; they are no targets.
    crowd_boxes = tf.gather(gt_boxes, tf.where(gt_class_ids < 0)[:, 0])
    non_crowd = tf.where(gt_class_ids > 0)[:, 0]
    gt_class_ids = tf.gather(gt_class_ids, non_crowd)
    gt_boxes = tf.gather(gt_boxes, non_crowd)
    gt_masks = tf.gather(gt_masks, non_crowd, axis=2)
    # A zero "dummy" GT keeps argmax defined when the image has no objects; its IoU is 0, so
    # no RoI is ever assigned to it.
    gt_boxes = tf.concat([gt_boxes, tf.zeros([1, 4], gt_boxes.dtype)], axis=0)
    gt_class_ids = tf.concat([gt_class_ids, tf.zeros([1], gt_class_ids.dtype)], axis=0)
    gt_masks = tf.concat([tf.cast(gt_masks, tf.float32),
                          tf.zeros(tf.concat([tf.shape(gt_masks)[:2], [1]], 0))], axis=2)

    overlaps = box_ops.overlaps_graph(proposals, gt_boxes)              # [P, G + 1]
    crowd_iou_max = tf.reduce_max(
        tf.concat([box_ops.overlaps_graph(proposals, crowd_boxes),
                   tf.zeros([tf.shape(proposals)[0], 1])], axis=1), axis=1)
    roi_iou_max = tf.reduce_max(overlaps, axis=1)
    positive_indices = tf.where(roi_iou_max >= params["roi_positive_iou"])[:, 0]
    negative_indices = tf.where((roi_iou_max < params["roi_positive_iou"]) &
                                (crowd_iou_max < 0.001))[:, 0]

    positive_indices = tf.random.shuffle(positive_indices)[:int(num_rois * ratio)]
    positive_count = tf.shape(positive_indices)[0]
    negative_count = tf.where(
        positive_count > 0,
        tf.cast(tf.cast(positive_count, tf.float32) / ratio, tf.int32) - positive_count,
        num_rois - int(num_rois * ratio))
    negative_indices = tf.random.shuffle(negative_indices)[:negative_count]
    positive_rois = tf.gather(proposals, positive_indices)
    negative_rois = tf.gather(proposals, negative_indices)

    assignment = tf.argmax(tf.gather(overlaps, positive_indices), axis=1)
    roi_gt_boxes = tf.gather(gt_boxes, assignment)
    roi_gt_class_ids = tf.cast(tf.gather(gt_class_ids, assignment), tf.int32)
    deltas = box_ops.box_refinement_graph(positive_rois, roi_gt_boxes)
    deltas = deltas / tf.constant(params["bbox_std_dev"], tf.float32)

    # Mask targets: cut each positive RoI out of its GT mask and resize to MASK_SHAPE.
    roi_masks = tf.gather(tf.transpose(gt_masks, [2, 0, 1])[..., tf.newaxis], assignment)
    boxes = positive_rois
    if params["use_mini_mask"]:
        # Mini masks cover their GT box: express the RoI in that box's coordinates.
        y1, x1, y2, x2 = tf.split(positive_rois, 4, axis=1)
        gy1, gx1, gy2, gx2 = tf.split(roi_gt_boxes, 4, axis=1)
        gh = gy2 - gy1
        gw = gx2 - gx1
        boxes = tf.concat([(y1 - gy1) / gh, (x1 - gx1) / gw, (y2 - gy1) / gh,
                           (x2 - gx1) / gw], axis=1)
    box_ids = tf.range(tf.shape(roi_masks)[0])
    masks = tf.image.crop_and_resize(roi_masks, boxes, box_ids, params["mask_shape"])
    masks = tf.round(tf.squeeze(masks, axis=3))

    rois = tf.concat([positive_rois, negative_rois], axis=0)
    n_neg = tf.shape(negative_rois)[0]
    pad = tf.maximum(num_rois - tf.shape(rois)[0], 0)
    rois = tf.pad(rois, [(0, pad), (0, 0)])
    roi_gt_class_ids = tf.pad(roi_gt_class_ids, [(0, n_neg + pad)])
    deltas = tf.pad(deltas, [(0, n_neg + pad), (0, 0)])
    masks = tf.pad(masks, [(0, n_neg + pad), (0, 0), (0, 0)])
    return rois, roi_gt_class_ids, deltas, masks


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionTargetLayer(layers.Layer):
    """Sample RoIs and build their targets for a batch (see ``detection_targets_graph``).

    Inputs: proposals [batch, N, 4] normalized; gt_class_ids [batch, MAX_GT_INSTANCES];
    gt_boxes [batch, MAX_GT_INSTANCES, 4] normalized; gt_masks [batch, h, w, MAX_GT_INSTANCES].
    Returns: rois [batch, TRAIN_ROIS_PER_IMAGE, 4], target_class_ids [batch, TRAIN_ROIS_PER_IMAGE],
    target_bbox [batch, TRAIN_ROIS_PER_IMAGE, 4], target_mask [batch, TRAIN_ROIS_PER_IMAGE,
    MASK_SHAPE[0], MASK_SHAPE[1]].
    """

    def __init__(self, train_rois_per_image, roi_positive_ratio, bbox_std_dev, mask_shape,
                 use_mini_mask, roi_positive_iou=0.5, **kwargs):
        super().__init__(**kwargs)
        self.params = {
            "train_rois_per_image": int(train_rois_per_image),
            "roi_positive_ratio": float(roi_positive_ratio),
            "bbox_std_dev": [float(v) for v in bbox_std_dev],
            "mask_shape": [int(v) for v in mask_shape],
            "use_mini_mask": bool(use_mini_mask),
            "roi_positive_iou": float(roi_positive_iou),
        }

    @classmethod
    def from_config_object(cls, config, **kwargs):
        """Build from an ``mrcnn.config.Config``."""
        return cls(config.TRAIN_ROIS_PER_IMAGE, config.ROI_POSITIVE_RATIO, config.BBOX_STD_DEV,
                   config.MASK_SHAPE, config.USE_MINI_MASK, config.ROI_POSITIVE_IOU, **kwargs)

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        n = self.params["train_rois_per_image"]
        mh, mw = self.params["mask_shape"]
        outputs = tf.map_fn(
            lambda args: detection_targets_graph(*args, self.params),
            (proposals, gt_class_ids, gt_boxes, gt_masks),
            fn_output_signature=(tf.TensorSpec([n, 4], tf.float32),
                                 tf.TensorSpec([n], tf.int32),
                                 tf.TensorSpec([n, 4], tf.float32),
                                 tf.TensorSpec([n, mh, mw], tf.float32)))
        # Targets are constants for the losses.
        return [tf.stop_gradient(o) for o in outputs]

    def compute_output_shape(self, input_shapes):
        b = input_shapes[0][0]
        n = self.params["train_rois_per_image"]
        return [(b, n, 4), (b, n), (b, n, 4), (b, n) + tuple(self.params["mask_shape"])]

    def get_config(self):
        config = super().get_config()
        config.update(self.params)
        return config
