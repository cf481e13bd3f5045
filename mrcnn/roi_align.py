"""``PyramidROIAlign``: RoIAlign over the FPN levels, on ``tf.image.crop_and_resize``."""

import keras
import tensorflow as tf
from keras import layers

from mrcnn import box_ops


def roi_level(boxes, image_shape):
    """FPN level (2..5) of each box, from its size relative to a 224x224 ImageNet crop.

    boxes: [batch, num_boxes, (y1, x1, y2, x2)] normalized; image_shape: [height, width] of the
    molded image. level = 4 + log2(sqrt(area) / (224 / sqrt(image_area))), clamped to 2..5.
    Returns [batch, num_boxes] int32.
    """
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    h = y2 - y1
    w = x2 - x1
    image_area = tf.cast(image_shape[0] * image_shape[1], tf.float32)
    # log2 of a zero-size (padding) box is -inf; it lands on level 2 and is never used.
    level = tf.math.log(tf.sqrt(h * w) / (224.0 / tf.sqrt(image_area))) / tf.math.log(2.0)
    level = 4 + tf.cast(tf.round(level), tf.int32)
    return tf.minimum(5, tf.maximum(2, level))


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(layers.Layer):
    """Crop and resize each box from the pyramid level that matches its size.

    Inputs:
        boxes: [batch, num_boxes, (y1, x1, y2, x2)] normalized
        image_meta: [batch, meta_size] (the image shape is read from it)
        feature_maps: P2, P3, P4, P5, each [batch, height, width, channels]
    Returns: [batch, num_boxes, pool_height, pool_width, channels], bilinear samples.
    """

    def __init__(self, pool_shape, **kwargs):
        super().__init__(**kwargs)
        # tf.image.crop_and_resize has no XLA kernel: Keras' jit_compile="auto" (XLA on GPUs)
        # must not compile a model holding this layer.
        self.supports_jit = False
        self.pool_shape = tuple(int(v) for v in pool_shape)

    def call(self, inputs):
        boxes, image_meta = inputs[0], inputs[1]
        feature_maps = inputs[2:]
        image_shape = tf.cast(box_ops.parse_image_meta_graph(image_meta)["image_shape"][0],
                              tf.int32)
        levels = roi_level(boxes, image_shape)                        # [B, N]
        pooled, positions = [], []
        num_boxes = tf.shape(boxes)[1]
        for i, level in enumerate(range(2, 6)):
            ix = tf.where(tf.equal(levels, level))                     # [K, (batch, box)]
            level_boxes = tf.stop_gradient(tf.gather_nd(boxes, ix))
            box_indices = tf.stop_gradient(tf.cast(ix[:, 0], tf.int32))
            pooled.append(tf.image.crop_and_resize(feature_maps[i], level_boxes, box_indices,
                                                   self.pool_shape, method="bilinear"))
            positions.append(tf.cast(ix[:, 0], tf.int32) * num_boxes + tf.cast(ix[:, 1],
                                                                               tf.int32))
        pooled = tf.concat(pooled, axis=0)
        # Every box went to exactly one level: sorting by flat position restores the order.
        order = tf.argsort(tf.concat(positions, axis=0))
        pooled = tf.gather(pooled, order)
        shape = tf.concat([tf.shape(boxes)[:2], tf.shape(pooled)[1:]], axis=0)
        return tf.reshape(pooled, shape)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0][:2] + self.pool_shape + (input_shapes[2][-1],)

    def get_config(self):
        config = super().get_config()
        config["pool_shape"] = list(self.pool_shape)
        return config
