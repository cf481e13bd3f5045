"""Training targets: RPN targets for the anchors and ``DetectionTargetLayer`` for the RoIs.

Both match candidates to GT boxes and sample them with :mod:`mrcnn.modeling.matching`, and encode
box targets with :mod:`mrcnn.modeling.box_coder`. The RPN targets are built in the input pipeline (a
TF stage after the NumPy sample builder); the RoI targets inside the training graph.
"""

import keras
import tensorflow as tf
from keras import layers

from mrcnn.modeling import box_ops, matching
from mrcnn.modeling import roi_align as roi_align_lib
from mrcnn.modeling.box_coder import BoxCoder

# A candidate whose IoU with a crowd region reaches this is never a negative (Matterport).
CROWD_IOU = 0.001


def _split_crowd(candidates, gt_class_ids, gt_boxes):
    """(non-crowd mask [G], "touches no crowd region" [N]) for candidates [N, 4]."""
    crowd_boxes = tf.boolean_mask(gt_boxes, gt_class_ids < 0)
    crowd_iou = tf.concat([box_ops.overlaps_graph(candidates, crowd_boxes),
                           tf.zeros([tf.shape(candidates)[0], 1])], axis=1)
    return gt_class_ids > 0, tf.reduce_max(crowd_iou, axis=1) < CROWD_IOU


def rpn_target_params(config):
    """The RPN target settings of a Config, as :func:`rpn_targets_graph` takes them."""
    return {"num_samples": int(config.RPN_TRAIN_ANCHORS_PER_IMAGE),
            "positive_iou": float(config.RPN_POSITIVE_IOU),
            "negative_iou": float(config.RPN_NEGATIVE_IOU),
            "std_dev": [float(v) for v in config.RPN_BBOX_STD_DEV]}


def rpn_targets_graph(anchors, gt_class_ids, gt_boxes, params, seed=None):
    """RPN targets for one image (Matterport's rules).

    An anchor is positive when its IoU with a GT box is >= positive_iou (0.7), and every GT box's
    best anchors are positive too (every anchor within ``matching.TIE_TOLERANCE`` of the best
    IoU: float32 rounding must not decide the ties); negative when its best IoU is < negative_iou
    (0.3) and it does not touch a crowd region; otherwise neutral. At most half of num_samples are
    positives and negatives fill the rest.

    anchors: [A, (y1, x1, y2, x2)]; gt_class_ids: [G] (0 = padding, negative = crowd); gt_boxes:
    [G, 4] in the anchors' frame. seed: see :func:`mrcnn.modeling.matching.sample`.
    Returns rpn_match [A] int32 (1, -1, 0) and rpn_bbox [num_samples, (dy, dx, log(dh),
    log(dw))] float32: the positives' deltas in anchor order, divided by std_dev, zero-padded.
    """
    anchors = tf.cast(anchors, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    gt_class_ids = tf.cast(gt_class_ids, tf.int32)
    num_samples = params["num_samples"]
    non_crowd, no_crowd_touch = _split_crowd(anchors, gt_class_ids, gt_boxes)
    gt_boxes = tf.boolean_mask(gt_boxes, non_crowd)
    labels, matches = matching.match(
        box_ops.overlaps_graph(anchors, gt_boxes), params["positive_iou"],
        params["negative_iou"], allow_low_quality=True, negative_allowed=no_crowd_touch)
    positive, negative = matching.sample(labels, num_samples, 0.5, "fill", seed)
    # The RPN box loss pairs targets with positive anchors in anchor order.
    positive = tf.sort(positive)
    num_anchors = tf.shape(anchors)[0]
    rpn_match = tf.scatter_nd(positive[:, tf.newaxis], tf.ones_like(positive), [num_anchors]) - \
        tf.scatter_nd(negative[:, tf.newaxis], tf.ones_like(negative), [num_anchors])
    coder = BoxCoder(params["std_dev"], box_ops.TF)
    deltas = coder.encode(tf.gather(anchors, positive),
                          tf.gather(gt_boxes, tf.gather(matches, positive)))
    rpn_bbox = tf.pad(deltas, [[0, num_samples - tf.shape(deltas)[0]], [0, 0]])
    rpn_bbox.set_shape([num_samples, 4])
    return rpn_match, rpn_bbox


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, params):
    """RoI targets for one image.

    proposals: [num_proposals, 4] normalized, zero-padded; gt_class_ids: [max_gt] int
    (negative = crowd, 0 = padding); gt_boxes: [max_gt, 4] normalized; gt_masks:
    [mask_h, mask_w, max_gt] (full-image or mini masks).

    Positives are proposals with IoU >= roi_positive_iou with a non-crowd GT box, at most
    train_rois_per_image * roi_positive_ratio of them; negatives (IoU below that and not touching
    a crowd box) are taken so that positives make up roi_positive_ratio of the sample, as in
    Matterport. An image without positives (e.g. no objects) gets
    train_rois_per_image * (1 - roi_positive_ratio) negatives so that it still trains the
    classifier on background.

    Returns (each padded to train_rois_per_image rows, positives first):
        rois: [rois, 4] normalized; class_ids: [rois] int32; deltas: [rois, 4] (divided by
        bbox_std_dev); masks: [rois, mask_h, mask_w] in {0, 1}.
    """
    num_rois = params["train_rois_per_image"]
    proposals, _ = box_ops.trim_zeros_graph(proposals, name="trim_proposals")
    gt_boxes, non_zeros = box_ops.trim_zeros_graph(gt_boxes, name="trim_gt_boxes")
    gt_class_ids = tf.cast(tf.boolean_mask(gt_class_ids, non_zeros), tf.int32)
    gt_masks = tf.boolean_mask(tf.transpose(gt_masks, [2, 0, 1]), non_zeros)   # [G, h, w]

    # Crowd boxes only veto negatives; they are no targets.
    non_crowd, no_crowd_touch = _split_crowd(proposals, gt_class_ids, gt_boxes)
    gt_class_ids = tf.boolean_mask(gt_class_ids, non_crowd)
    gt_boxes = tf.boolean_mask(gt_boxes, non_crowd)
    gt_masks = tf.boolean_mask(gt_masks, non_crowd)

    labels, matches = matching.match(
        box_ops.overlaps_graph(proposals, gt_boxes), params["roi_positive_iou"],
        params["roi_positive_iou"], negative_allowed=no_crowd_touch)
    positive, negative = matching.sample(labels, num_rois, params["roi_positive_ratio"],
                                         "ratio")
    positive_rois = tf.gather(proposals, positive)
    negative_rois = tf.gather(proposals, negative)
    assignment = tf.gather(matches, positive)
    roi_gt_boxes = tf.gather(gt_boxes, assignment)
    roi_gt_class_ids = tf.gather(gt_class_ids, assignment)
    coder = BoxCoder(params["bbox_std_dev"], box_ops.TF)
    if params.get("box_decoding", "matterport") == "torchvision":
        # The head's deltas are decoded in pixels (Config.BOX_DECODING): encode them so too.
        image_shape = params["image_shape"]
        deltas = coder.encode(box_ops.pixel_boxes(positive_rois, image_shape),
                              box_ops.pixel_boxes(roi_gt_boxes, image_shape))
    else:
        deltas = coder.encode(positive_rois, roi_gt_boxes)

    # Mask targets: cut each positive RoI out of its GT mask and resize to the mask shape.
    roi_masks = tf.gather(tf.cast(gt_masks, tf.float32), assignment)[..., tf.newaxis]
    if params.get("mask_sampling_ratio", 0) != 0:
        masks = roi_align_mask_targets(roi_masks, positive_rois, roi_gt_boxes, params)
    else:
        masks = _matterport_mask_targets(roi_masks, positive_rois, roi_gt_boxes, params)

    rois = tf.concat([positive_rois, negative_rois], axis=0)
    n_neg = tf.shape(negative_rois)[0]
    pad = tf.maximum(num_rois - tf.shape(rois)[0], 0)
    rois = tf.pad(rois, [(0, pad), (0, 0)])
    roi_gt_class_ids = tf.pad(roi_gt_class_ids, [(0, n_neg + pad)])
    deltas = tf.pad(deltas, [(0, n_neg + pad), (0, 0)])
    masks = tf.pad(masks, [(0, n_neg + pad), (0, 0), (0, 0)])
    return rois, roi_gt_class_ids, deltas, masks


def _matterport_mask_targets(roi_masks, rois, roi_gt_boxes, params):
    """Matterport's mask targets [R, mask_h, mask_w] in {0, 1}: crop_and_resize of each GT
    mask [R, h, w, 1] over its RoI [R, 4] (normalized), rounded."""
    boxes = rois
    if params["use_mini_mask"]:
        # Mini masks cover their GT box: express the RoI in that box's coordinates.
        y1, x1, y2, x2 = tf.split(rois, 4, axis=1)
        gy1, gx1, gy2, gx2 = tf.split(roi_gt_boxes, 4, axis=1)
        gh = gy2 - gy1
        gw = gx2 - gx1
        boxes = tf.concat([(y1 - gy1) / gh, (x1 - gx1) / gw, (y2 - gy1) / gh,
                           (x2 - gx1) / gw], axis=1)
    box_ids = tf.range(tf.shape(roi_masks)[0])
    masks = tf.image.crop_and_resize(roi_masks, boxes, box_ids, params["mask_shape"])
    return tf.round(tf.squeeze(masks, axis=3))


def roi_align_mask_targets(roi_masks, rois, roi_gt_boxes, params):
    """Mask targets [R, mask_h, mask_w] in {0, 1} sampled as the paper's RoIAlign samples the
    features (``params["mask_sampling_ratio"]`` > 0 or -1 for the adaptive grid,
    ``params["mask_aligned"]``), then thresholded at 0.5 as detectron2 does (torchvision trains on
    the soft values).

    roi_masks: [R, h, w, 1] the GT mask of each RoI (full image, or a mini mask covering its GT
    box); rois, roi_gt_boxes: [R, 4] normalized in the image of ``params["image_shape"]``.
    Each target cell averages the GT mask over the same points RoIAlign reads for that cell, so
    the mask head learns what its features see. The mask is 0 outside its box ("zero" border).
    """
    image_shape = params["image_shape"]
    aligned = params["mask_aligned"]
    boxes = roi_align_lib.pixel_boxes(rois, image_shape)             # [R, 4] image pixels
    grid = None
    if params["use_mini_mask"] and params["mask_sampling_ratio"] == roi_align_lib.ADAPTIVE:
        # The adaptive grid follows the RoI's size in image pixels (as on a full-size mask,
        # torchvision's and detectron2's targets), not in the mini mask's cells.
        side = boxes[:, 2:] - boxes[:, :2]
        if not aligned:
            side = tf.maximum(side, 1.0)
        grid = roi_align_lib.adaptive_grid(side[:, 0], side[:, 1], params["mask_shape"])
    if params["use_mini_mask"]:
        if not aligned:
            # Unaligned sampling reads image-pixel index coordinates (half a pixel off the
            # pixel centres) with sides of at least one pixel: the same points as an aligned
            # sampling of this box, which the mini mask's frame below keeps.
            side = tf.maximum(boxes[:, 2:] - boxes[:, :2], 1.0)
            boxes = tf.concat([boxes[:, :2], boxes[:, :2] + side], axis=1) + 0.5
        # A mini mask stretches its GT box over its cells: continuous pixel y maps to
        # (y - gy1) * mini_h / gh (what minimize_mask's resize does).
        gt = roi_align_lib.pixel_boxes(roi_gt_boxes, image_shape)
        origin = tf.concat([gt[:, :2], gt[:, :2]], axis=1)
        mini = tf.cast(tf.shape(roi_masks)[1:3], tf.float32)
        scale = tf.concat([mini, mini], axis=0) / tf.concat(
            [gt[:, 2:] - gt[:, :2]] * 2, axis=1)
        boxes = (boxes - origin) * scale
        aligned = True
    sampled = roi_align_lib.roi_align(roi_masks, boxes, tf.range(tf.shape(roi_masks)[0]),
                                      params["mask_shape"], params["mask_sampling_ratio"],
                                      aligned, border="zero", grid=grid)
    return tf.cast(sampled[..., 0] >= 0.5, tf.float32)


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionTargetLayer(layers.Layer):
    """Sample RoIs and build their targets for a batch (see ``detection_targets_graph``).

    This is the default RoI sampler of ``MaskRCNN`` (its ``roi_sampler`` argument takes any layer
    with the same inputs and outputs).

    Inputs: proposals [batch, N, 4] normalized; gt_class_ids [batch, MAX_GT_INSTANCES];
    gt_boxes [batch, MAX_GT_INSTANCES, 4] normalized; gt_masks [batch, h, w, MAX_GT_INSTANCES].
    Returns: rois [batch, TRAIN_ROIS_PER_IMAGE, 4], target_class_ids [batch, TRAIN_ROIS_PER_IMAGE],
    target_bbox [batch, TRAIN_ROIS_PER_IMAGE, 4], target_mask [batch, TRAIN_ROIS_PER_IMAGE,
    MASK_SHAPE[0], MASK_SHAPE[1]].
    """

    def __init__(self, train_rois_per_image, roi_positive_ratio, bbox_std_dev, mask_shape,
                 use_mini_mask, roi_positive_iou=0.5, mask_sampling_ratio=0, mask_aligned=True,
                 image_shape=None, box_decoding="matterport", **kwargs):
        super().__init__(**kwargs)
        # Data-dependent shapes (boolean masks over the RoIs) and crop_and_resize (the mask
        # targets) do not compile with XLA (see PyramidROIAlign).
        self.supports_jit = False
        self.params = {
            "train_rois_per_image": int(train_rois_per_image),
            "roi_positive_ratio": float(roi_positive_ratio),
            "bbox_std_dev": [float(v) for v in bbox_std_dev],
            "mask_shape": [int(v) for v in mask_shape],
            "use_mini_mask": bool(use_mini_mask),
            "roi_positive_iou": float(roi_positive_iou),
            # The paper's RoIAlign geometry for the mask targets (see roi_align_mask_targets);
            # it needs the (fixed) training image size to place boxes in pixels.
            "mask_sampling_ratio": int(mask_sampling_ratio),
            "mask_aligned": bool(mask_aligned),
            "image_shape": None if image_shape is None else [int(v) for v in image_shape[:2]],
            "box_decoding": box_ops.check_box_decoding(box_decoding),
        }
        if self.params["mask_sampling_ratio"] != 0 and self.params["image_shape"] is None:
            raise ValueError("mask_sampling_ratio != 0 needs the training image_shape")
        if box_decoding == "torchvision" and self.params["image_shape"] is None:
            raise ValueError("box_decoding 'torchvision' needs the training image_shape")

    @classmethod
    def from_config_object(cls, config, **kwargs):
        """Build from an ``mrcnn.config.Config``."""
        return cls(config.TRAIN_ROIS_PER_IMAGE, config.ROI_POSITIVE_RATIO, config.BBOX_STD_DEV,
                   config.MASK_SHAPE, config.USE_MINI_MASK, config.ROI_POSITIVE_IOU,
                   config.ROI_ALIGN_SAMPLING_RATIO, config.ROI_ALIGN_ALIGNED,
                   config.IMAGE_SHAPE[:2], box_decoding=config.BOX_DECODING, **kwargs)

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
