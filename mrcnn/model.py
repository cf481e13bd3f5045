"""``MaskRCNN``: builds the Keras graph from the rooms (backbone, RPN, heads, ...) and runs it.

The model module wires; it computes no boxes itself. Matterport's module-level helpers used by
its notebooks are re-exported here (``load_image_gt``, ``mold_image``, ``compose_image_meta``...).
"""

import datetime
import os
import re

import keras
import numpy as np
import tensorflow as tf
from keras import layers as KL

from mrcnn import losses as losses_lib
from mrcnn import utils, weights
from mrcnn.backbone import BatchNorm, fpn_graph, resnet_graph
from mrcnn.config import LOSS_NAMES
from mrcnn.data import (build_input_pipeline, compose_image_meta, data_generator,  # noqa: F401
                        load_image_gt, mold_image, parse_image_meta, resolve_seed,
                        unmold_image)
from mrcnn.detection import DetectionLayer
from mrcnn.heads import build_fpn_mask_graph, fpn_classifier_graph
from mrcnn.inputs import ActiveClassIds, DetectionBoxes, LeadingRois, NormBoxes
from mrcnn.rpn import AnchorsLayer, ProposalLayer, build_rpn_model
from mrcnn.targets import DetectionTargetLayer

# Presets of train(layers=...): Matterport's regular expressions on layer names.
LAYER_PRESETS = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}

# Checkpoint files: <log_dir>/mask_rcnn_<name>_<epoch:04d>.h5 (Matterport's layout).
CHECKPOINT_RE = re.compile(
    r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]mask\_rcnn\_[\w-]+(\d{4})\.h5$")


class TrainingModel(keras.Model):
    """The functional training graph plus the loss: weighted sum of the five loss outputs and
    L2 weight decay. Each loss is tracked as a metric, so the progress bar and the history show
    ``rpn_class_loss`` ... ``mrcnn_mask_loss`` and their ``val_`` twins."""

    def __init__(self, inputs, outputs, loss_weights=None, weight_decay=0.0, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.loss_weights = dict(loss_weights or {})
        self.weight_decay = float(weight_decay)
        for name in LOSS_NAMES:
            setattr(self, name + "_tracker", keras.metrics.Mean(name=name))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = tf.constant(0.0)
        for name in LOSS_NAMES:
            value = tf.reduce_mean(y_pred[name])
            getattr(self, name + "_tracker").update_state(value)
            total += self.loss_weights.get(name, 1.0) * value
        if self.weight_decay:
            # Matterport's form: L2 per tensor divided by its size; not on BN gamma/beta.
            reg = [self.weight_decay * tf.reduce_sum(tf.square(w)) / tf.cast(tf.size(w),
                                                                            tf.float32)
                   for w in self.trainable_weights
                   if not w.path.endswith(("gamma", "beta"))]
            if reg:
                total += tf.add_n(reg)
        return total


class MaskRCNN:
    """Mask R-CNN in ``mode`` "training" or "inference".

    The Keras model is ``self.keras_model``. ``model_dir`` receives training logs and
    checkpoints (``<model_dir>/<name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch>.h5``).
    """

    def __init__(self, mode, config, model_dir):
        if mode not in ("training", "inference"):
            raise ValueError("mode must be 'training' or 'inference', got {!r}".format(mode))
        config.validate()
        if mode == "training" and config.IMAGE_RESIZE_MODE not in ("square", "crop"):
            raise ValueError("training needs fixed-size images: IMAGE_RESIZE_MODE 'square' or "
                             "'crop', got {!r}".format(config.IMAGE_RESIZE_MODE))
        if mode == "inference" and config.IMAGE_RESIZE_MODE == "crop":
            raise ValueError("IMAGE_RESIZE_MODE='crop' is for training; use 'square' or "
                             "'pad64' in the inference config")
        if not config.USE_RPN_ROIS:
            raise ValueError("USE_RPN_ROIS=False (training the heads on externally generated "
                             "RoIs) is not supported; the heads train on RPN proposals")
        self.mode = mode
        self.config = config
        self.model_dir = model_dir
        self.epoch = 0
        self.set_log_dir()
        self.keras_model = self.build(mode=mode, config=config)
        self._anchor_cache = {}

    ############################################################
    #  Graph
    ############################################################

    def build(self, mode, config):
        """Build the functional Keras graph for ``mode``."""
        training = mode == "training"
        input_image = keras.Input(shape=[None, None, config.IMAGE_CHANNEL_COUNT],
                                  name="input_image")
        input_image_meta = keras.Input(shape=[config.IMAGE_META_SIZE], name="input_image_meta")
        if training:
            input_rpn_match = keras.Input(shape=[None, 1], name="input_rpn_match",
                                          dtype="int32")
            input_rpn_bbox = keras.Input(shape=[None, 4], name="input_rpn_bbox")
            input_gt_class_ids = keras.Input(shape=[None], name="input_gt_class_ids",
                                             dtype="int32")
            input_gt_boxes = keras.Input(shape=[None, 4], name="input_gt_boxes")
            mask_hw = list(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else \
                [int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])]
            input_gt_masks = keras.Input(shape=mask_hw + [None], name="input_gt_masks",
                                         dtype="bool")
            gt_boxes = NormBoxes(name="norm_gt_boxes")([input_gt_boxes, input_image])
        else:
            input_anchors = keras.Input(shape=[None, 4], name="input_anchors")

        # Backbone and feature pyramid.
        if callable(config.BACKBONE):
            _, C2, C3, C4, C5 = config.BACKBONE(input_image, stage5=True,
                                                train_bn=config.TRAIN_BN)
        else:
            _, C2, C3, C4, C5 = resnet_graph(input_image, config.BACKBONE, stage5=True,
                                             train_bn=config.TRAIN_BN)
        P2, P3, P4, P5, P6 = fpn_graph(C2, C3, C4, C5, config.TOP_DOWN_PYRAMID_SIZE)
        rpn_feature_maps = [P2, P3, P4, P5, P6]
        mrcnn_feature_maps = [P2, P3, P4, P5]

        if training:
            anchors = utils.norm_boxes(utils.get_anchors(config, config.IMAGE_SHAPE),
                                       config.IMAGE_SHAPE[:2])
            anchors = AnchorsLayer(anchors, name="anchors")(input_image)
        else:
            anchors = input_anchors

        # RPN: one shared head over every level, outputs concatenated level by level.
        rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS),
                              config.TOP_DOWN_PYRAMID_SIZE)
        level_outputs = [rpn([p]) for p in rpn_feature_maps]
        rpn_class_logits, rpn_class, rpn_bbox = [
            KL.Concatenate(axis=1, name=n)([o[i] for o in level_outputs])
            for i, n in enumerate(["rpn_class_logits", "rpn_class", "rpn_bbox"])]

        proposal_count = config.POST_NMS_ROIS_TRAINING if training \
            else config.POST_NMS_ROIS_INFERENCE
        rpn_rois = ProposalLayer(proposal_count=proposal_count,
                                 nms_threshold=config.RPN_NMS_THRESHOLD,
                                 pre_nms_limit=config.PRE_NMS_LIMIT,
                                 rpn_bbox_std_dev=config.RPN_BBOX_STD_DEV,
                                 name="ROI")([rpn_class, rpn_bbox, anchors])

        if training:
            rois, target_class_ids, target_bbox, target_mask = \
                DetectionTargetLayer.from_config_object(config, name="proposal_targets")(
                    [rpn_rois, input_gt_class_ids, gt_boxes, input_gt_masks])
            mrcnn_class_logits, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
                rois, mrcnn_feature_maps, input_image_meta, config.POOL_SIZE,
                config.NUM_CLASSES, train_bn=config.TRAIN_BN,
                fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE)
            # The mask loss only sees positive RoIs, which come first: run the mask head on
            # the leading slots that can hold positives, not on all TRAIN_ROIS_PER_IMAGE.
            num_positive = max(1, int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO))
            mask_rois, mask_class_ids, mask_targets = [
                LeadingRois(num_positive, name=name)(t) for name, t in
                [("mask_rois", rois), ("mask_class_ids", target_class_ids),
                 ("mask_targets", target_mask)]]
            mrcnn_mask = build_fpn_mask_graph(mask_rois, mrcnn_feature_maps, input_image_meta,
                                              config.MASK_POOL_SIZE, config.NUM_CLASSES,
                                              train_bn=config.TRAIN_BN,
                                              channels=config.MASK_HEAD_CHANNELS)
            active_class_ids = ActiveClassIds(name="active_class_ids")(input_image_meta)
            loss_inputs = {
                "rpn_class_loss": [input_rpn_match, rpn_class_logits],
                "rpn_bbox_loss": [input_rpn_bbox, input_rpn_match, rpn_bbox],
                "mrcnn_class_loss": [target_class_ids, mrcnn_class_logits, active_class_ids,
                                     rois],
                "mrcnn_bbox_loss": [target_bbox, target_class_ids, mrcnn_bbox],
                "mrcnn_mask_loss": [mask_targets, mask_class_ids, mrcnn_mask],
            }
            outputs = {
                "rpn_class_logits": rpn_class_logits, "rpn_class": rpn_class,
                "rpn_bbox": rpn_bbox, "rpn_rois": rpn_rois, "output_rois": rois,
                "mrcnn_class_logits": mrcnn_class_logits, "mrcnn_class": mrcnn_class,
                "mrcnn_bbox": mrcnn_bbox, "mrcnn_mask": mrcnn_mask,
                "target_class_ids": target_class_ids, "target_bbox": target_bbox,
                "target_mask": target_mask,
            }
            for name, args in loss_inputs.items():
                outputs[name] = losses_lib.LossLayer(name=name)(args)
            inputs = [input_image, input_image_meta, input_rpn_match, input_rpn_bbox,
                      input_gt_class_ids, input_gt_boxes, input_gt_masks]
            l2 = 0.0 if str(config.OPTIMIZER).lower() == "adamw" else config.WEIGHT_DECAY
            return TrainingModel(inputs, outputs, loss_weights=config.LOSS_WEIGHTS,
                                 weight_decay=l2, name="mask_rcnn")

        mrcnn_class_logits, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
            rpn_rois, mrcnn_feature_maps, input_image_meta, config.POOL_SIZE,
            config.NUM_CLASSES, train_bn=config.TRAIN_BN,
            fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE)
        detections = DetectionLayer(config.DETECTION_MAX_INSTANCES,
                                    config.DETECTION_MIN_CONFIDENCE,
                                    config.DETECTION_NMS_THRESHOLD, config.BBOX_STD_DEV,
                                    name="mrcnn_detection")(
            [rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta])
        detection_boxes = DetectionBoxes(name="detection_boxes")(detections)
        mrcnn_mask = build_fpn_mask_graph(detection_boxes, mrcnn_feature_maps,
                                          input_image_meta, config.MASK_POOL_SIZE,
                                          config.NUM_CLASSES, train_bn=config.TRAIN_BN,
                                          channels=config.MASK_HEAD_CHANNELS)
        return keras.Model([input_image, input_image_meta, input_anchors],
                           [detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois,
                            rpn_class, rpn_bbox], name="mask_rcnn")

    ############################################################
    #  Logs, checkpoints, weights
    ############################################################

    def set_log_dir(self, model_path=None):
        """Set ``log_dir``, ``checkpoint_path`` and ``epoch``.

        model_path: a checkpoint of an earlier run: training then continues in that run's
        directory, from the epoch after the checkpoint's.
        """
        self.epoch = 0
        now = datetime.datetime.now()
        name = (self.config.NAME or "mrcnn").lower()
        if model_path:
            m = CHECKPOINT_RE.match(os.path.abspath(model_path))
            if m:
                now = datetime.datetime(*[int(m.group(i)) for i in range(1, 6)])
                self.epoch = int(m.group(6))
        self.log_dir = os.path.join(self.model_dir, "{}{:%Y%m%dT%H%M}".format(name, now))
        self.checkpoint_path = os.path.join(self.log_dir,
                                            "mask_rcnn_{}_{{epoch:04d}}.h5".format(name))

    def find_last(self):
        """Path of the newest checkpoint of the newest run of this config's NAME."""
        name = (self.config.NAME or "mrcnn").lower()
        try:
            dir_names = sorted(d for d in next(os.walk(self.model_dir))[1]
                               if d.startswith(name))
        except StopIteration:
            dir_names = []
        for dir_name in reversed(dir_names):
            directory = os.path.join(self.model_dir, dir_name)
            checkpoints = sorted(f for f in os.listdir(directory)
                                 if f.startswith("mask_rcnn") and f.endswith(".h5"))
            if checkpoints:
                return os.path.join(directory, checkpoints[-1])
        raise FileNotFoundError("no checkpoint of {!r} under {!r}".format(name,
                                                                          self.model_dir))

    def load_weights(self, filepath, by_name=False, exclude=None):
        """Load weights from a Matterport-layout ``.h5`` (ours or Matterport's), or "imagenet".

        by_name: load the layers present in the file, leave the rest; exclude: layer names to
        skip. A checkpoint of a training run also sets the log dir and the epoch to resume at.
        filepath="imagenet" initializes the ResNet backbone from keras.applications' ImageNet
        weights (downloaded by Keras where the network allows).
        """
        if filepath == "imagenet":
            self.get_imagenet_weights()
            return
        weights.load_weights_h5(self.keras_model, filepath, by_name=by_name or bool(exclude),
                                exclude=exclude)
        self.set_log_dir(filepath)

    def get_imagenet_weights(self, source=None):
        """Initialize the backbone from ImageNet (keras.applications ResNet-50/101).

        source: a keras.applications ResNet to copy from (default: Keras downloads it).
        Returns the names of the layers that were set.
        """
        if callable(self.config.BACKBONE):
            raise ValueError("ImageNet weights need BACKBONE 'resnet50' or 'resnet101'")
        return weights.load_imagenet_weights(self.keras_model, self.config.BACKBONE, source)

    def save_weights(self, filepath):
        """Save the weights (atomically) in the Matterport ``.h5`` layout."""
        weights.save_weights_h5(self.keras_model, filepath)

    ############################################################
    #  Training
    ############################################################

    def get_trainable_layers(self):
        """Layers that hold weights (nested models flattened), as Matterport lists them."""
        return [layer for _, layer in weights.weight_owners(self.keras_model)]

    def set_trainable(self, layer_regex, keras_model=None, indent=0, verbose=0):
        """Make layers whose name fully matches ``layer_regex`` trainable, freeze the others.

        BatchNorm layers stay frozen when config.TRAIN_BN is False.
        """
        layer_regex = LAYER_PRESETS.get(layer_regex, layer_regex)
        keras_model = keras_model or self.keras_model
        for layer in keras_model.layers:
            if isinstance(layer, keras.Model):
                if verbose:
                    print("In model: ", layer.name)
                self.set_trainable(layer_regex, keras_model=layer, indent=indent + 4,
                                   verbose=verbose)
                continue
            if not layer.weights:
                continue
            trainable = bool(re.fullmatch(layer_regex, layer.name))
            inner = layer.layer if isinstance(layer, KL.Wrapper) else layer
            if isinstance(inner, BatchNorm) and self.config.TRAIN_BN is False:
                trainable = False
            layer.trainable = trainable
            if trainable and verbose:
                print("{}{:20}   ({})".format(" " * indent, layer.name,
                                              layer.__class__.__name__))

    def compile(self, learning_rate, momentum):
        """Set up the optimizer (config.OPTIMIZER, per-gradient norm clipping); the loss is the
        model's own (see ``TrainingModel``)."""
        name = str(self.config.OPTIMIZER).lower()
        clip = self.config.GRADIENT_CLIP_NORM
        if name == "sgd":
            optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                             clipnorm=clip)
        elif name == "adam":
            optimizer = keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clip)
        else:
            # Decoupled decay replaces the L2 term, which TrainingModel then leaves out.
            optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, clipnorm=clip,
                                               weight_decay=self.config.WEIGHT_DECAY)
        self.keras_model.compile(optimizer=optimizer, jit_compile=False)

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
              augmentation=None, custom_callbacks=None, no_augmentation_sources=None,
              verbose="auto"):
        """Train up to epoch ``epochs`` (cumulative: it continues from ``self.epoch``).

        layers: "heads", "3+", "4+", "5+", "all", or a regular expression on layer names.
        augmentation: an albumentations pipeline or an imgaug augmenter (see mrcnn.data).
        Returns the Keras History.
        """
        if self.mode != "training":
            raise ValueError("create the model in training mode to train it")
        config = self.config
        seed = resolve_seed(config)
        start = self.epoch * config.STEPS_PER_EPOCH * config.BATCH_SIZE
        train_data = build_input_pipeline(train_dataset, config, shuffle=True,
                                          augmentation=augmentation,
                                          no_augmentation_sources=no_augmentation_sources,
                                          seed=seed, start_index=start)
        val_data = None
        if val_dataset is not None and config.VALIDATION_STEPS:
            val_data = build_input_pipeline(val_dataset, config, shuffle=True, seed=seed + 1)

        os.makedirs(self.log_dir, exist_ok=True)
        callbacks = [keras.callbacks.TensorBoard(log_dir=self.log_dir, write_graph=False),
                     CheckpointCallback(self)]
        callbacks += list(custom_callbacks or [])
        self.set_trainable(layers)
        self.compile(learning_rate, config.LEARNING_MOMENTUM)
        history = self.keras_model.fit(
            train_data, initial_epoch=self.epoch, epochs=epochs,
            steps_per_epoch=config.STEPS_PER_EPOCH, callbacks=callbacks,
            validation_data=val_data,
            validation_steps=config.VALIDATION_STEPS if val_data is not None else None,
            shuffle=False,  # the input pipeline shuffles, reproducibly by seed
            verbose=verbose)
        self.epoch = max(self.epoch, epochs)
        return history

    ############################################################
    #  Inference
    ############################################################

    def get_anchors(self, image_shape):
        """Normalized anchors [num_anchors, 4] for a molded image shape (cached)."""
        key = tuple(int(s) for s in image_shape[:2])
        if key not in self._anchor_cache:
            self._anchor_cache[key] = utils.norm_boxes(
                utils.get_anchors(self.config, image_shape), key).astype(np.float32)
        return self._anchor_cache[key]

    def mold_inputs(self, images):
        """Resize, pad and mean-subtract images for the network.

        Returns molded_images [N, h, w, C] float32, image_metas [N, meta_size], and windows
        [N, (y1, x1, y2, x2)]: where each original image lies in its molded version.
        """
        molded_images, image_metas, windows = [], [], []
        config = self.config
        for image in images:
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[-1] != config.IMAGE_CHANNEL_COUNT:
                raise ValueError("detect() expects [height, width, {}] images, got shape "
                                 "{}".format(config.IMAGE_CHANNEL_COUNT, image.shape))
            molded, window, scale, _, _ = utils.resize_image(
                image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
                max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
            image_metas.append(compose_image_meta(0, image.shape, molded.shape, window, scale,
                                                  np.zeros([config.NUM_CLASSES])))
            molded_images.append(mold_image(molded, config))
            windows.append(window)
        shapes = {m.shape for m in molded_images}
        if len(shapes) > 1:
            raise ValueError("images molded to different shapes {}; detect them one at a "
                             "time or use IMAGE_RESIZE_MODE='square'".format(sorted(shapes)))
        return (np.stack(molded_images), np.stack(image_metas).astype(np.float32),
                np.array(windows))

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape,
                          window):
        """One image's raw detections -> boxes, class ids, scores and full-size masks.

        detections: [N, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded;
        mrcnn_mask: [N, h, w, NUM_CLASSES]; window: (y1, x1, y2, x2) pixels in the molded image.
        Returns boxes [n, 4] int32 in original-image pixels, class_ids [n], scores [n], masks
        [H, W, n] bool.
        """
        zero_ix = np.where(detections[:, 4] == 0)[0]
        n = zero_ix[0] if zero_ix.shape[0] > 0 else detections.shape[0]
        boxes = detections[:n, :4]
        class_ids = detections[:n, 4].astype(np.int32)
        scores = detections[:n, 5]
        masks = mrcnn_mask[np.arange(n), :, :, class_ids]
        # Normalized molded-image coords -> normalized window coords -> original pixels.
        wy1, wx1, wy2, wx2 = utils.norm_boxes(np.array([window]), image_shape[:2])[0]
        shift = np.array([wy1, wx1, wy1, wx1])
        scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
        boxes = utils.denorm_boxes((boxes - shift) / scale, original_image_shape[:2])
        keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
        boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], \
            masks[keep]
        full_masks = [utils.unmold_mask(masks[i], boxes[i], original_image_shape,
                                        self.config.DETECTION_MASK_THRESHOLD)
                      for i in range(boxes.shape[0])]
        full_masks = np.stack(full_masks, axis=-1) if full_masks else \
            np.zeros(tuple(original_image_shape[:2]) + (0,), dtype=bool)
        return boxes, class_ids, scores, full_masks

    def detect(self, images, verbose=0):
        """Detect instances in a list of images (any number; batched by BATCH_SIZE).

        Returns one dict per image: rois [N, (y1, x1, y2, x2)], class_ids [N], scores [N],
        masks [H, W, N] bool, in the original image's coordinates.
        """
        if self.mode != "inference":
            raise ValueError("create the model in inference mode to detect")
        results = []
        for start in range(0, len(images), self.config.BATCH_SIZE):
            chunk = [np.asarray(image) for image in images[start:start + self.config.BATCH_SIZE]]
            molded_images, image_metas, windows = self.mold_inputs(chunk)
            results.extend(self._detect_molded(molded_images, image_metas,
                                               [image.shape for image in chunk], windows))
        return results

    def detect_molded(self, molded_images, image_metas, verbose=0):
        """Detect on images already molded and with their metas (as the input pipeline gives).

        Results are in the molded image's coordinates: the whole molded image is the window,
        padding included (as in Matterport).
        """
        molded_images = np.asarray(molded_images, dtype=np.float32)
        image_metas = np.asarray(image_metas, dtype=np.float32)
        shapes = [m.shape for m in molded_images]
        windows = [(0, 0, shape[0], shape[1]) for shape in shapes]
        return self._detect_molded(molded_images, image_metas, shapes, windows)

    def _batch_anchors(self, molded_images):
        """Normalized anchors repeated for each image: [batch, num_anchors, 4]."""
        anchors = self.get_anchors(molded_images[0].shape)
        return np.ascontiguousarray(np.broadcast_to(anchors, (len(molded_images),) +
                                                    anchors.shape))

    def _detect_molded(self, molded_images, image_metas, original_shapes, windows):
        """Run the graph on molded images and unmold each image's detections."""
        count = len(molded_images)
        pad = self.config.BATCH_SIZE - count
        if pad > 0:
            # The graph is fed whole batches; pad with copies and drop their results.
            molded_images = np.concatenate([molded_images, np.repeat(molded_images[:1], pad, 0)])
            image_metas = np.concatenate([image_metas, np.repeat(image_metas[:1], pad, 0)])
        detections, _, _, mrcnn_mask, _, _, _ = self.keras_model.predict_on_batch(
            [molded_images, image_metas, self._batch_anchors(molded_images)])
        results = []
        for i in range(count):
            rois, class_ids, scores, masks = self.unmold_detections(
                detections[i], mrcnn_mask[i], original_shapes[i], molded_images[i].shape,
                windows[i])
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores,
                            "masks": masks})
        return results

    def export(self, path):
        """Write a SavedModel whose serving signature detects on one uint8 image of any size
        (see ``mrcnn.export``); it runs with TensorFlow alone."""
        from mrcnn.export import export_saved_model
        return export_saved_model(self, path)

    def run_graph(self, images, outputs, image_metas=None):
        """Named intermediate tensors of the inference graph for ``images``.

        outputs: list of (name, tensor) pairs, tensors taken from ``self.keras_model`` (e.g.
        ``model.keras_model.get_layer("ROI").output``). Returns an ordered dict name -> array.
        """
        if self.mode != "inference":
            raise ValueError("run_graph works on the inference model")
        probe = keras.Model(self.keras_model.inputs, [t for _, t in outputs])
        molded_images, metas, _ = self.mold_inputs(images)
        if image_metas is not None:
            metas = np.asarray(image_metas, dtype=np.float32)
        values = probe.predict_on_batch([molded_images, metas,
                                         self._batch_anchors(molded_images)])
        if not isinstance(values, (list, tuple)):
            values = [values]
        return dict(zip([name for name, _ in outputs], [np.asarray(v) for v in values]))


class CheckpointCallback(keras.callbacks.Callback):
    """Save the weights at the end of every epoch, atomically, in Matterport's file layout."""

    def __init__(self, mrcnn_model):
        super().__init__()
        self.mrcnn_model = mrcnn_model

    def on_epoch_end(self, epoch, logs=None):
        path = self.mrcnn_model.checkpoint_path.format(epoch=epoch + 1)
        self.mrcnn_model.save_weights(path)
        self.mrcnn_model.epoch = epoch + 1
