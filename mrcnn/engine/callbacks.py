"""Keras callbacks of ``MaskRCNN.train``: logs and checkpoints, and detection pictures in
TensorBoard."""

import io
import os

import keras
import tensorflow as tf

from mrcnn.modeling import boxes as box_utils
from mrcnn.evaluation import evaluate
from mrcnn.weights import loading as weights
from mrcnn.engine.checkpoints import CheckpointCallback


def training_callbacks(mrcnn_model, val_dataset, make_inference_model):
    """The callbacks of ``mrcnn_model.train()`` on the chief: TensorBoard logs and checkpoints
    (``checkpoints.CheckpointCallback``) in its ``log_dir``, then :func:`detection_callbacks`.
    make_inference_model: () -> inference MaskRCNN."""
    return [keras.callbacks.TensorBoard(log_dir=mrcnn_model.log_dir, write_graph=False),
            CheckpointCallback(mrcnn_model)] + detection_callbacks(
        mrcnn_model.config, mrcnn_model.keras_model, val_dataset, mrcnn_model.log_dir,
        make_inference_model)


def detection_callbacks(config, keras_model, val_dataset, log_dir, make_inference_model):
    """[DetectionImagesCallback] when the config asks for pictures or the collapse warning and
    there is a validation set, else []. make_inference_model: () -> inference MaskRCNN."""
    if not (config.TENSORBOARD_IMAGES or config.CLASS_COLLAPSE_WARNING) or val_dataset is None:
        return []
    return [DetectionImagesCallback(make_inference_model, keras_model, val_dataset, log_dir,
                                    config.TENSORBOARD_IMAGE_COUNT, config.TENSORBOARD_IMAGES,
                                    config.CLASS_COLLAPSE_WARNING)]


def inference_config(config, images_per_batch=1):
    """A copy of a training config for detection: ``config.for_inference()`` with
    ``images_per_batch`` images per batch (see ``Config.for_inference``)."""
    return config.for_inference(IMAGES_PER_GPU=images_per_batch)


def render_ground_truth_and_detections(image, gt_masks, gt_class_ids, result, class_names,
                                       dpi=72):
    """A two-panel picture (ground truth | detections) as a PNG byte string."""
    import matplotlib.pyplot as plt

    from mrcnn import visualize
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.3))
    visualize.display_instances(image, box_utils.extract_bboxes(gt_masks), gt_masks,
                                gt_class_ids, class_names, ax=axes[0], title="ground truth")
    visualize.display_instances(image, result["rois"], result["masks"], result["class_ids"],
                                class_names, result["scores"], ax=axes[1], title="detections")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


class DetectionImagesCallback(keras.callbacks.Callback):
    """At each epoch end, detect on a few fixed images with the current weights; write
    pictures of ground truth vs detections to TensorBoard (run ``images`` of the log dir) and
    print the evaluation's one-class-collapse warning when the detections call for it.

    build_inference_model: a function returning an inference-mode ``MaskRCNN`` (built once, at
    the first epoch end); training_model: the Keras model whose weights are copied into it by
    layer name; dataset: where the images come from (its first ``count`` images); pictures /
    check_collapse: what to do with the detections.
    """

    def __init__(self, build_inference_model, training_model, dataset, log_dir, count=4,
                 pictures=True, check_collapse=True):
        super().__init__()
        self.pictures = pictures
        self.check_collapse = check_collapse
        self.warnings = []
        self.build_inference_model = build_inference_model
        self.training_model = training_model
        self.dataset = dataset
        self.image_ids = list(dataset.image_ids[:count])
        self.log_dir = os.path.join(log_dir, "images")
        self._detector = self._writer = self._pairs = None
        self._ground_truth = None

    def _setup(self):
        self._detector = self.build_inference_model()
        source = {layer.name: layer for _, layer in weights.weight_owners(self.training_model)}
        self._pairs = [(layer, source[layer.name])
                       for _, layer in weights.weight_owners(self._detector.keras_model)]
        self._writer = tf.summary.create_file_writer(self.log_dir)
        self._ground_truth = [(self.dataset.load_image(i),) + tuple(self.dataset.load_mask(i))
                              for i in self.image_ids]

    def on_epoch_end(self, epoch, logs=None):
        if not self.image_ids:
            return
        if self._detector is None:
            self._setup()
        for target, source in self._pairs:
            target.set_weights(source.get_weights())
        results = self._detector.detect([image for image, _, _ in self._ground_truth])
        if self.check_collapse:
            matrix = evaluate.confusion_matrix(self.dataset, self.image_ids, results)
            warning = evaluate.collapse_warning(matrix, self.dataset.class_names)
            if warning:
                self.warnings.append((epoch + 1, warning))
                print("\nEpoch {}: WARNING on {} validation images: {}".format(
                    epoch + 1, len(self.image_ids), warning))
        if self.pictures:
            self._write_pictures(epoch, results)

    def _write_pictures(self, epoch, results):
        with self._writer.as_default():
            for k, ((image, masks, class_ids), result) in enumerate(
                    zip(self._ground_truth, results)):
                png = render_ground_truth_and_detections(image, masks, class_ids, result,
                                                         self.dataset.class_names)
                tf.summary.image("detections/image_{}".format(self.image_ids[k]),
                                 tf.image.decode_png(png)[tf.newaxis], step=epoch + 1)
        self._writer.flush()
