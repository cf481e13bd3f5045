"""``MaskRCNN``: wires the rooms (backbone, RPN, heads, ...) into a Keras graph and runs it.

The model module wires; it computes no boxes itself. Matterport's module-level helpers used by
its notebooks are re-exported here (``load_image_gt``, ``mold_image``, ``compose_image_meta``...).
"""

import warnings

import keras
import numpy as np

from mrcnn.engine import checkpoints, distribute, recipes, training
from mrcnn.export import formats as export_formats
from mrcnn.modeling import anchors, graph
from mrcnn.inference import postprocess, throughput, tiling, molding as transform
from mrcnn.weights import loading as weights
from mrcnn.modeling import losses as losses_lib
from mrcnn.engine.callbacks import training_callbacks
# Matterport API: CHECKPOINT_RE, CheckpointCallback.
from mrcnn.engine.checkpoints import CHECKPOINT_RE, CheckpointCallback  # noqa: F401
from mrcnn.config import config_train_bn
from mrcnn.data.pipeline import data_generator, load_image_gt  # noqa: F401 (Matterport API)
from mrcnn.data.image_meta import compose_image_meta, parse_image_meta  # noqa: F401
from mrcnn.engine.training import LAYER_PRESETS, TrainingModel  # noqa: F401 (Matterport API)
from mrcnn.inference.molding import mold_image, unmold_image  # noqa: F401 (Matterport API)


class MaskRCNN:
    """Mask R-CNN in ``mode`` "training" or "inference"; the Keras model is ``keras_model``.

    ``model_dir`` receives training logs and checkpoints
    (``<model_dir>/<name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch>.h5``). ``classifier_head``,
    ``mask_head``, ``roi_sampler`` and ``losses`` replace the default parts without editing
    mrcnn (see ``mrcnn.modeling.graph.Parts``).

    A training model on several devices (GPU_COUNT > 1, or several workers in TF_CONFIG; see
    ``Config.DISTRIBUTE``) is built and trained under the ``tf.distribute`` strategy
    ``strategy`` (None: one device, and always in inference).
    """

    def __init__(self, mode, config, model_dir, classifier_head=None, mask_head=None,
                 roi_sampler=None, losses=None):
        graph.check_mode(mode, config)
        self.mode = mode
        self.config = config
        self.model_dir = model_dir
        self.parts = graph.Parts(classifier_head, mask_head, roi_sampler, losses)
        self.anchor_cache = anchors.AnchorCache(config)
        self.set_log_dir()
        # The strategy must exist before the model: its variables are created mirrored.
        self.strategy = distribute.create_strategy(config) if mode == "training" else None
        with distribute.scope(self.strategy):
            self.keras_model = self.build(mode=mode, config=config)

    ############################################################
    #  Graph
    ############################################################

    def build(self, mode, config):
        """Build the functional Keras graph for ``mode`` (see ``mrcnn.modeling.graph``)."""
        return graph.build_graph(mode, config, self.parts)

    ############################################################
    #  Logs, checkpoints, weights
    ############################################################

    def set_log_dir(self, model_path=None):
        """Set ``log_dir``, ``checkpoint_path`` and ``epoch`` (a new run, or the run of the
        checkpoint ``model_path``, continued from the epoch after it).

        A new run's directory is provisional until ``train()`` starts: it then claims a
        directory of its own (``_2``... when another run of the same minute has the name).
        """
        self.log_dir, self.checkpoint_path, self.epoch = checkpoints.run_paths(
            self.model_dir, checkpoints.run_name(self.config), model_path)
        # Epochs are counted from 1: a positive epoch means model_path is a run's checkpoint.
        self._run_dir_claimed = self.epoch > 0

    def find_last(self):
        """Path of the newest checkpoint of the newest run of this config's NAME."""
        return checkpoints.find_last(self.model_dir, checkpoints.run_name(self.config))

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
        # A class-agnostic mask head has one channel: class-aware mask weights do not fit.
        skip = ("mrcnn_mask",) if self.config.MASK_CLASS_AGNOSTIC else ()
        weights.load_weights_h5(self.keras_model, filepath, by_name=by_name or bool(exclude),
                                exclude=exclude, skip_mismatch=skip)
        differences = recipes.graph_differences(self.config, filepath)
        if differences:
            warnings.warn("{}: its run (run_config.json beside it) trained another graph than "
                          "this config builds ({}); build the config with "
                          "mrcnn.engine.recipes.with_run_settings(ConfigClass, "
                          "recipes.read_run_settings(path)) to detect as it was trained".format(
                              filepath, "; ".join(differences)), stacklevel=2)
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
        """Train the layers whose name fully matches ``layer_regex`` (or a LAYER_PRESETS key),
        freeze the others; BatchNorm stays frozen when TRAIN_BN is False (or NORM is
        "frozen_batch"). Returns the number of trainable layers."""
        return training.set_trainable(keras_model or self.keras_model, layer_regex,
                                      config_train_bn(self.config), indent, verbose)

    def compile(self, learning_rate, momentum, total_steps=None):
        """Set up the optimizer (config.OPTIMIZER, the learning-rate schedule over
        ``total_steps``) and the L2 weight decay; the loss is the model's own (see
        ``training.TrainingModel``)."""
        # Under a strategy, the optimizer's and Keras' loss tracker's variables are mirrored
        # like the model's.
        with distribute.scope(self.strategy):
            optimizer, self.keras_model.weight_decay = training.build_optimizer(
                self.config, learning_rate, momentum, total_steps, self.keras_model)
            self.keras_model.compile(optimizer=optimizer, jit_compile=False)

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
              augmentation=None, custom_callbacks=None, no_augmentation_sources=None,
              verbose="auto"):
        """Train up to epoch ``epochs`` (cumulative: it continues from ``self.epoch``).

        layers: "heads", "3+", "4+", "5+", "all", or a regular expression on layer names.
        augmentation: an albumentations pipeline or an imgaug augmenter (see mrcnn.data.pipeline).
        A learning rate that is not positive, ``layers`` that match no layer with weights, and
        ``epochs`` not beyond ``self.epoch`` are ValueErrors raised before anything is written.
        A new run claims its directory (see :meth:`set_log_dir`) when training starts.
        Returns the Keras History.
        """
        if self.mode != "training":
            raise ValueError("create the model in training mode to train it")
        config = self.config
        training.check_train_arguments(learning_rate, epochs, self.epoch, self.log_dir)
        if self.set_trainable(layers) == 0:
            training.raise_no_trainable_layer(layers, config, self.get_trainable_layers())
        train_data, val_data = training.input_pipelines(
            config, self.strategy, train_dataset, val_dataset, self.epoch, augmentation,
            no_augmentation_sources)
        with distribute.worker_log_dir(self.strategy) as worker_dir:     # None on the chief
            self.log_dir, self.checkpoint_path = checkpoints.training_paths(
                self.model_dir, checkpoints.run_name(config), self.log_dir,
                self._run_dir_claimed, worker_dir)
            self._run_dir_claimed |= worker_dir is None
            callbacks = training_callbacks(self, val_dataset, lambda: MaskRCNN(
                "inference", config.for_inference(), self.model_dir, **vars(self.parts))
            ) if worker_dir is None else []
            callbacks += list(custom_callbacks or [])
            # CLASS_WEIGHTS "balanced" reaches the class loss from the training set.
            self.keras_model.set_loss_options(
                losses_lib.default_loss_options(config, train_dataset))
            self.compile(learning_rate, config.LEARNING_MOMENTUM,
                         (epochs - self.epoch) * config.STEPS_PER_EPOCH)
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
        return self.anchor_cache.get(image_shape)

    def mold_inputs(self, images, first_index=0):
        """Check, resize, pad and mean-subtract images (see ``transform.mold_inputs``)."""
        return transform.mold_inputs(images, self.config, first_index)

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape,
                          window):
        """One image's raw detections -> original-image results, in NumPy (Matterport's API;
        see ``transform``). ``detect()`` computes the same in TensorFlow (``postprocess``) with
        Matterport's paste (ROI_ALIGN_SAMPLING_RATIO 0); with the paper's RoIAlign it pastes
        with that geometry instead, which this function does not."""
        return transform.unmold_detections(detections, mrcnn_mask, original_image_shape,
                                           image_shape, window,
                                           self.config.DETECTION_MASK_THRESHOLD)

    def detect(self, images, verbose=0, tile=None, overlap=None):
        """Detect instances in a list of images (any number; batched by BATCH_SIZE).

        Returns one dict per image: rois [N, (y1, x1, y2, x2)], class_ids [N], scores [N],
        masks [H, W, N] bool, in the original image's coordinates. verbose: print the images'
        and molded batches' shapes, as Matterport does.
        Images are 0..255 (see ``images.check_image``): 0..1 floats, NaN and wrong shapes are
        errors naming the image's index; 16-bit images are scaled with a warning.
        tile: detect on each image in overlapping full-resolution tiles instead of resizing
        it to IMAGE_MAX_DIM (``True``: tiles of IMAGE_MAX_DIM pixels; a number: that side),
        detections merged across tile borders (``mrcnn.inference.tiling``); overlap: pixels
        neighbouring tiles share (default a quarter of the tile; above the largest object's
        side). For large images with small objects.
        """
        if self.mode != "inference":
            raise ValueError("create the model in inference mode to detect")
        tiled = tile is not None and tile is not False
        if overlap is not None and not tiled:
            raise ValueError("overlap applies to tiled detection only: pass tile=True or a "
                             "tile side")
        if tiled:
            if tile is not True and (isinstance(tile, bool) or int(tile) != tile or tile < 1):
                raise ValueError("tile must be True or a whole number of pixels, got {!r}"
                                 .format(tile))
            side = None if tile is True else int(tile)
            return [tiling.detect_tiled(self, np.asarray(image), tile=side, overlap=overlap)
                    for image in images]
        results = []
        for start in range(0, len(images), self.config.BATCH_SIZE):
            chunk = [np.asarray(image) for image in images[start:start + self.config.BATCH_SIZE]]
            molded_images, image_metas, windows = self.mold_inputs(chunk, first_index=start)
            if verbose:
                print("Processing {} images: {}; molded {}".format(
                    len(chunk), [image.shape for image in chunk], molded_images.shape))
            results.extend(self._detect_molded(molded_images, image_metas,
                                               [image.shape for image in chunk], windows))
        return results

    def detect_iter(self, inputs, batch_size=None, workers=2, prefetch=None,
                    return_images=False):
        """Detect on an iterable of images, image file paths or video frames, pipelined.

        Yields one result per input, in input order: ``detect()``'s dict plus ``index`` (the
        input's position) and ``name`` (the path, or ``"image <index>"``). While a batch is in
        the graph, ``workers`` threads read (``images.read_rgb``) and mold the next inputs, at
        most ``prefetch`` (default 2 x batch_size + workers) ahead, so an endless generator of
        frames is fine. batch_size: images per graph call, 1..BATCH_SIZE (default BATCH_SIZE;
        fewer give each result sooner). An input that cannot be read or is not a valid image
        yields ``{"index", "name", "error"}``, the error naming it, and the others go on.
        return_images: also give each result its ``image`` as read (what the masks cover).
        See ``mrcnn.inference.throughput``.
        """
        return throughput.detect_iter(self, inputs, batch_size=batch_size, workers=workers,
                                      prefetch=prefetch, return_images=return_images)

    def detect_molded(self, molded_images, image_metas, verbose=0):
        """Detect on images already molded and with their metas (as the input pipeline gives).

        Results are in the molded image's coordinates: the whole molded image is the window,
        padding included (as in Matterport).
        """
        molded_images = np.asarray(molded_images, dtype=np.float32)
        image_metas = np.asarray(image_metas, dtype=np.float32)
        if verbose:
            print("Processing {} molded images of shape {}".format(len(molded_images),
                                                                   molded_images.shape[1:]))
        shapes = [m.shape for m in molded_images]
        windows = [(0, 0, shape[0], shape[1]) for shape in shapes]
        return self._detect_molded(molded_images, image_metas, shapes, windows)

    def _detect_molded(self, molded_images, image_metas, original_shapes, windows):
        """Run the graph on molded images and unmold each image's detections (in TensorFlow,
        see ``mrcnn.inference.postprocess``)."""
        molded_images, image_metas = transform.pad_batch([molded_images, image_metas],
                                                         self.config.BATCH_SIZE)
        outputs = self.keras_model.predict_on_batch(
            [molded_images, image_metas, self.anchor_cache.batch(molded_images)])
        return postprocess.unmold_batch(outputs, original_shapes, molded_images.shape[1:],
                                        windows, self.config)

    def export(self, path, format="savedmodel", quantize=None):
        """Write the model for serving without mrcnn; returns ``path``.

        format: "savedmodel" (default): a SavedModel whose signature detects on one uint8 image
        of any size (see ``mrcnn.export.serving``). "tflite" or "onnx": the fixed-size core
        (IMAGE_MAX_DIM square input, builtin ops only) plus ``<path>.json``, run with
        ``mrcnn.export.runner`` (see ``mrcnn.export.formats``; ONNX needs the ``export`` extra).
        quantize: "dynamic" for dynamic-range quantized TFLite weights.
        """
        return export_formats.export(self, path, format=format, quantize=quantize)

    def run_graph(self, images, outputs, image_metas=None):
        """Named intermediate tensors of the inference graph for ``images``.

        outputs: list of (name, tensor) pairs, tensors taken from ``self.keras_model`` (e.g.
        ``model.keras_model.get_layer("ROI").output``). Returns an ordered dict name -> array.
        """
        if self.mode != "inference":
            raise ValueError("run_graph works on the inference model")
        probe = keras.Model(self.keras_model.inputs, dict(outputs))
        molded_images, metas, _ = self.mold_inputs(images)
        if image_metas is not None:
            metas = np.asarray(image_metas, dtype=np.float32)
        values = probe.predict_on_batch([molded_images, metas,
                                         self.anchor_cache.batch(molded_images)])
        return {name: np.asarray(values[name]) for name, _ in outputs}
