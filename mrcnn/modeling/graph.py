"""The Mask R-CNN graph, in named sections: inputs, features (backbone + FPN), RPN, training
heads (RoI sampling, heads, losses) and inference heads (detections, masks).

``MaskRCNN`` calls :func:`build_graph`; the sections are public so that notebooks and users can
build or inspect one stage. :class:`Parts` holds what can be replaced without editing mrcnn.
"""

import keras
from keras import layers as KL

from mrcnn.modeling import heads, losses as losses_lib, precision
from mrcnn.modeling.backbone import fpn_graph, resnet_graph
from mrcnn.config import config_train_bn
from mrcnn.modeling.detection import DetectionLayer
from mrcnn.modeling.layers import ActiveClassIds, DetectionBoxes, LeadingRois, NormBoxes
from mrcnn.modeling.rpn import AnchorLevels, AnchorsLayer, ProposalLayer, build_rpn_model
from mrcnn.modeling.targets import DetectionTargetLayer
from mrcnn.engine.training import TrainingModel


# The inference model's outputs, a dict (batch first): detections [DETECTION_MAX_INSTANCES,
# (y1, x1, y2, x2, class_id, score)] normalized, zero rows after the last; mrcnn_class
# [proposals, NUM_CLASSES] probabilities and mrcnn_bbox [proposals, NUM_CLASSES, 4] deltas of
# the proposals; mrcnn_mask [DETECTION_MAX_INSTANCES, h, w, NUM_CLASSES (1 if class-agnostic)]
# mask probabilities of the detections; rpn_rois [proposals, 4] normalized; rpn_class
# [anchors, 2] and rpn_bbox [anchors, 4] of every anchor.
INFERENCE_OUTPUTS = ("detections", "mrcnn_class", "mrcnn_bbox", "mrcnn_mask", "rpn_rois",
                     "rpn_class", "rpn_bbox")


class Parts:
    """The replaceable parts of the graph (torchvision-style constructor arguments).

    classifier_head: fn(rois, feature_maps, image_meta, config) -> (logits, probs, bbox)
        [default heads.classifier_head]
    mask_head: fn(rois, feature_maps, image_meta, config) -> mask logits [heads.mask_head]
    roi_sampler: a layer (proposals, gt_class_ids, gt_boxes, gt_masks) -> (rois, class ids,
        box deltas, masks) [targets.DetectionTargetLayer from the config]
    losses: {loss name: fn} replacing any of losses.DEFAULT_LOSSES (registered with
        keras.saving.register_keras_serializable if the model's config is to be saved).
    """

    def __init__(self, classifier_head=None, mask_head=None, roi_sampler=None, losses=None):
        unknown = set(losses or {}) - set(losses_lib.DEFAULT_LOSSES)
        if unknown:
            raise ValueError("unknown losses {}; names are {}".format(
                sorted(unknown), list(losses_lib.DEFAULT_LOSSES)))
        self.classifier_head = classifier_head or heads.classifier_head
        self.mask_head = mask_head or heads.mask_head
        self.roi_sampler = roi_sampler
        self.losses = dict(losses_lib.DEFAULT_LOSSES, **(losses or {}))


def check_mode(mode, config):
    """Validate ``config`` and raise ValueError when it cannot build a ``mode`` graph."""
    if mode not in ("training", "inference"):
        raise ValueError("mode must be 'training' or 'inference', got {!r}".format(mode))
    config.validate()
    if mode == "training" and config.IMAGE_RESIZE_MODE not in ("square", "crop"):
        raise ValueError("training needs fixed-size images: IMAGE_RESIZE_MODE 'square' or "
                         "'crop', got {!r}".format(config.IMAGE_RESIZE_MODE))
    if mode == "inference" and config.IMAGE_RESIZE_MODE == "crop":
        raise ValueError("IMAGE_RESIZE_MODE='crop' is for training; use 'square' or "
                         "'pad64' in the inference config")


def build_graph(mode, config, parts=None):
    """The functional Keras graph for ``mode`` ("training" or "inference"), section by section.

    parts: the swappable parts (default ``Parts()``).
    """
    parts = parts or Parts()
    inputs = build_inputs(config, mode == "training")
    rpn_feature_maps, mrcnn_feature_maps = build_features(inputs["input_image"], config)
    anchors = AnchorsLayer.from_config_object(config, name="anchors")(
        inputs["input_image"]) if mode == "training" else inputs["input_anchors"]
    rpn = build_rpn(rpn_feature_maps, anchors, config, mode == "training",
                    inputs["input_image_meta"])
    if mode == "training":
        return build_training_heads(inputs, rpn, mrcnn_feature_maps, config, parts)
    return build_inference_heads(inputs, rpn, mrcnn_feature_maps, config, parts)


def build_inputs(config, training):
    """{name: keras.Input}: the image and its meta, plus the GT (training) or the anchors."""
    inputs = {
        "input_image": keras.Input([None, None, config.IMAGE_CHANNEL_COUNT],
                                   name="input_image"),
        "input_image_meta": keras.Input([config.IMAGE_META_SIZE], name="input_image_meta")}
    if not training:
        inputs["input_anchors"] = keras.Input([None, 4], name="input_anchors")
        return inputs
    mask_hw = list(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else \
        [int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])]
    for name, shape, dtype in [("input_rpn_match", [None, 1], "int32"),
                               ("input_rpn_bbox", [None, 4], "float32"),
                               ("input_gt_class_ids", [None], "int32"),
                               ("input_gt_boxes", [None, 4], "float32"),
                               ("input_gt_masks", mask_hw + [None], "bool")]:
        inputs[name] = keras.Input(shape, name=name, dtype=dtype)
    return inputs


def build_features(input_image, config):
    """Backbone and feature pyramid: ([P2..P6] for the RPN, [P2..P5] for the heads)."""
    train_bn = config_train_bn(config)
    # The whole feature extractor computes in MIXED_PRECISION's type (see mrcnn.modeling.precision).
    with precision.compute_scope(config.MIXED_PRECISION):
        if callable(config.BACKBONE):
            _, C2, C3, C4, C5 = config.BACKBONE(input_image, stage5=True, train_bn=train_bn)
        else:
            _, C2, C3, C4, C5 = resnet_graph(input_image, config.BACKBONE, train_bn=train_bn,
                                             norm=config.NORM,
                                             zero_init=config.ZERO_INIT_RESIDUAL,
                                             style=config.RESNET_STYLE)
        P2, P3, P4, P5, P6 = fpn_graph(C2, C3, C4, C5, config.TOP_DOWN_PYRAMID_SIZE,
                                       config.NORM, config.FPN_NORM, train_bn)
    return [P2, P3, P4, P5, P6], [P2, P3, P4, P5]


def build_rpn(feature_maps, anchors, config, training, image_meta=None):
    """One shared RPN head over every level, then proposals. Returns a dict of tensors.

    image_meta: the meta input, which BOX_DECODING "torchvision" needs (image size, window).
    """
    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS),
                          config.TOP_DOWN_PYRAMID_SIZE, compute_dtype=config.MIXED_PRECISION,
                          channels=config.RPN_CONV_CHANNELS, convs=config.RPN_CONV_DEPTH)
    level_outputs = [rpn([p]) for p in feature_maps]
    out = {name: KL.Concatenate(axis=1, name=name)([o[i] for o in level_outputs])
           for i, name in enumerate(["rpn_class_logits", "rpn_class", "rpn_bbox"])}
    proposal_inputs = [out["rpn_class"], out["rpn_bbox"], anchors]
    if config.RPN_PROPOSALS_PER_LEVEL:
        proposal_inputs.append(AnchorLevels(name="anchor_levels")(
            [o[0] for o in level_outputs]))
    if config.BOX_DECODING == "torchvision":
        proposal_inputs.append(image_meta)
    out["rpn_rois"] = ProposalLayer(
        proposal_count=config.POST_NMS_ROIS_TRAINING if training
        else config.POST_NMS_ROIS_INFERENCE,
        nms_threshold=config.RPN_NMS_THRESHOLD, pre_nms_limit=config.PRE_NMS_LIMIT,
        rpn_bbox_std_dev=config.RPN_BBOX_STD_DEV,
        num_levels=len(feature_maps) if config.RPN_PROPOSALS_PER_LEVEL else 0,
        box_decoding=config.BOX_DECODING, name="ROI")(
            proposal_inputs)
    return out


def build_training_heads(inputs, rpn, feature_maps, config, parts):
    """RoI sampling, both heads on the sampled RoIs, and the five losses."""
    meta = inputs["input_image_meta"]
    gt_boxes = NormBoxes(name="norm_gt_boxes")([inputs["input_gt_boxes"],
                                               inputs["input_image"]])
    sampler = parts.roi_sampler or DetectionTargetLayer.from_config_object(
        config, name="proposal_targets")
    rois, target_class_ids, target_bbox, target_mask = sampler(
        [rpn["rpn_rois"], inputs["input_gt_class_ids"], gt_boxes, inputs["input_gt_masks"]])
    class_logits, class_probs, bbox = parts.classifier_head(rois, feature_maps, meta, config)
    # The mask loss only sees positive RoIs, which come first: run the mask head on the
    # leading slots that can hold positives, not on all TRAIN_ROIS_PER_IMAGE.
    num_positive = max(1, int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO))
    mask_rois, mask_class_ids, mask_targets = [
        LeadingRois(num_positive, name=name)(t) for name, t in
        [("mask_rois", rois), ("mask_class_ids", target_class_ids),
         ("mask_targets", target_mask)]]
    mask_logits = parts.mask_head(mask_rois, feature_maps, meta, config)
    active_class_ids = ActiveClassIds(name="active_class_ids")(meta)
    outputs = dict(rpn, output_rois=rois, mrcnn_class_logits=class_logits,
                   mrcnn_class=class_probs, mrcnn_bbox=bbox, mrcnn_mask=mask_logits,
                   target_class_ids=target_class_ids, target_bbox=target_bbox,
                   target_mask=target_mask)
    loss_inputs = {
        "rpn_class_loss": [inputs["input_rpn_match"], rpn["rpn_class_logits"]],
        "rpn_bbox_loss": [inputs["input_rpn_bbox"], inputs["input_rpn_match"],
                          rpn["rpn_bbox"]],
        "mrcnn_class_loss": [target_class_ids, class_logits, active_class_ids, rois],
        "mrcnn_bbox_loss": [target_bbox, target_class_ids, bbox],
        "mrcnn_mask_loss": [mask_targets, mask_class_ids, mask_logits],
    }
    options = losses_lib.default_loss_options(config)
    for name, args in loss_inputs.items():
        # The config's options (MASK_LOSS, CLASS_WEIGHTS) go to the default functions only.
        fn = parts.losses[name]
        fn_kwargs = options.get(name) if fn is losses_lib.DEFAULT_LOSSES[name] else None
        outputs[name] = losses_lib.LossLayer(fn, fn_kwargs, name=name)(args)
    return TrainingModel(list(inputs.values()), outputs, loss_weights=config.LOSS_WEIGHTS,
                         name="mask_rcnn")


def build_inference_heads(inputs, rpn, feature_maps, config, parts):
    """Classify the proposals, keep the detections, and run the mask head on them.

    The model's outputs are a dict, read by name (see :data:`INFERENCE_OUTPUTS`).
    """
    meta = inputs["input_image_meta"]
    _, class_probs, bbox = parts.classifier_head(rpn["rpn_rois"], feature_maps, meta, config)
    detections = DetectionLayer(config.DETECTION_MAX_INSTANCES,
                                config.DETECTION_MIN_CONFIDENCE,
                                config.DETECTION_NMS_THRESHOLD, config.BBOX_STD_DEV,
                                multi_label=config.DETECTION_MULTI_LABEL,
                                box_decoding=config.BOX_DECODING,
                                name="mrcnn_detection")(
        [rpn["rpn_rois"], class_probs, bbox, meta])
    detection_boxes = DetectionBoxes(name="detection_boxes")(detections)
    masks = heads.mask_probabilities(parts.mask_head(detection_boxes, feature_maps, meta,
                                                    config))
    outputs = {"detections": detections, "mrcnn_class": class_probs, "mrcnn_bbox": bbox,
               "mrcnn_mask": masks, "rpn_rois": rpn["rpn_rois"], "rpn_class": rpn["rpn_class"],
               "rpn_bbox": rpn["rpn_bbox"]}
    return keras.Model(list(inputs.values()), {name: outputs[name] for name in INFERENCE_OUTPUTS},
                       name="mask_rcnn")
