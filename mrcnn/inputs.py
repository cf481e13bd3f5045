"""Small layers that adapt the model's inputs for the graph."""

import keras
import tensorflow as tf
from keras import layers

from mrcnn import box_ops


@keras.saving.register_keras_serializable(package="mrcnn")
class NormBoxes(layers.Layer):
    """Pixel GT boxes [batch, N, 4] -> normalized, using the image tensor's height and width."""

    def call(self, inputs):
        boxes, image = inputs
        return box_ops.norm_boxes_graph(boxes, tf.shape(image)[1:3])

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@keras.saving.register_keras_serializable(package="mrcnn")
class ActiveClassIds(layers.Layer):
    """The active_class_ids field [batch, NUM_CLASSES] of the image meta."""

    def call(self, image_meta):
        return box_ops.parse_image_meta_graph(image_meta)["active_class_ids"]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] - 12)


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionBoxes(layers.Layer):
    """The (y1, x1, y2, x2) part of DetectionLayer's output: [batch, N, 4]."""

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)


@keras.saving.register_keras_serializable(package="mrcnn")
class LeadingRois(layers.Layer):
    """The first ``count`` RoIs of each image: [batch, rois, ...] -> [batch, count, ...].

    DetectionTargetLayer puts the positive RoIs first, and at most
    int(TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO) of them, so this slice holds every positive.
    Only positives enter the mask loss, so the mask head is run on this slice alone in training.
    """

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)

    def call(self, tensor):
        return tensor[:, :self.count]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.count) + tuple(input_shape[2:])

    def get_config(self):
        config = super().get_config()
        config["count"] = self.count
        return config
