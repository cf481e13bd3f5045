"""The SavedModel of an inference model: a serving signature that runs without mrcnn.

The signature takes one uint8 image of any size, ``[height, width, channels]``, and returns
``boxes`` [N, (y1, x1, y2, x2)] int32 pixels, ``class_ids`` [N] int32, ``scores`` [N] float32 and
``masks`` [height, width, N] bool: what ``MaskRCNN.detect`` returns for one image (N may be 0).
Resizing, molding and anchors are TensorFlow ops inside the graph; unmolding and mask pasting
are :func:`mrcnn.inference.postprocess.unmold_detections`, the ops ``detect()`` runs. An image of
another rank or channel count, or an empty one, is an InvalidArgumentError whose message names the
expected shape. ``python -m mrcnn.export`` is the command line.
"""

import types

import tensorflow as tf

from mrcnn.data import image_meta, images
from mrcnn.inference import postprocess, molding as transform

# images.resize_scale's operations on tensors.
RESIZE_OPS = types.SimpleNamespace(maximum=tf.maximum, minimum=tf.minimum, round=tf.round,
                                   where=tf.where)


class _Serving(tf.Module):
    """Holds the Keras model and constants; ``serve`` is the exported function."""

    def __init__(self, mrcnn_model):
        super().__init__()
        config = mrcnn_model.config
        if config.IMAGE_RESIZE_MODE != "square":
            raise ValueError("export supports IMAGE_RESIZE_MODE='square' (a fixed input "
                             "size), got {!r}".format(config.IMAGE_RESIZE_MODE))
        self.keras_model = mrcnn_model.keras_model
        self.max_dim = int(config.IMAGE_MAX_DIM)
        self.min_dim = float(config.IMAGE_MIN_DIM or 0)
        self.min_scale = float(config.IMAGE_MIN_SCALE or 0)
        self.channels = int(config.IMAGE_CHANNEL_COUNT)
        self.num_classes = int(config.NUM_CLASSES)
        self.batch = int(config.BATCH_SIZE)
        self.mask_threshold = float(config.DETECTION_MASK_THRESHOLD)
        self.paste_mode = postprocess.paste_mode(config)
        self.mean_pixel, self.inverse_std = transform.pixel_stats(config)
        self.anchors = tf.constant(mrcnn_model.get_anchors(config.IMAGE_SHAPE))
        # Any shape: a signature's declared shape is not enforced on callers, and a declared
        # rank lets TensorFlow fold the rank check away, so _check checks the shape at run time.
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec(None, tf.uint8, name="image")])

    def _check(self, image):
        """The image, once it is known to be [height, width, channels] and not empty."""
        shape = tf.shape(image)
        expected = "the image must be uint8 [height, width, {}]; got shape".format(self.channels)
        # Only slices that cannot fail at any rank: the asserts must be what fails.
        good_shape = tf.equal(tf.size(shape), 3) & tf.reduce_all(
            tf.equal(shape[-1:], self.channels))
        checks = [tf.debugging.Assert(good_shape, [expected, shape]),
                  tf.debugging.Assert(tf.reduce_all(shape[:2] > 0),
                                      ["the image is empty: shape", shape])]
        with tf.control_dependencies(checks):
            return tf.ensure_shape(tf.identity(image), [None, None, self.channels])

    def _serve(self, image):
        image = self._check(image)
        shape = tf.shape(image)
        h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        # utils.resize_image's rule (square mode), on tensors.
        scale = images.resize_scale(h, w, self.min_dim, self.max_dim, self.min_scale,
                                    ops=RESIZE_OPS)
        new_h = tf.cast(tf.round(h * scale), tf.int32)
        new_w = tf.cast(tf.round(w * scale), tf.int32)
        pixels = tf.cast(image, tf.float32)
        resized = tf.cond(tf.equal(scale, 1.0), lambda: pixels,
                          lambda: tf.image.resize(pixels, [new_h, new_w]))
        top, bottom, left, right = images.square_padding(new_h, new_w, self.max_dim)
        # Pad with black, then normalize (the padding becomes -mean), as detect() does.
        molded = transform.normalize_pixels(
            tf.pad(resized, [[top, bottom], [left, right], [0, 0]]),
            self.mean_pixel, self.inverse_std)
        molded = tf.ensure_shape(molded, [self.max_dim, self.max_dim, self.channels])
        window = tf.stack([top, left, top + new_h, left + new_w])      # int32 pixels
        fields = {"image_id": 0.0, "original_image_shape": tf.cast(shape, tf.float32),
                  "image_shape": [float(self.max_dim), float(self.max_dim),
                                  float(self.channels)],
                  "window": window, "scale": scale}
        detections, masks = run_one_image(self.keras_model, molded, fields, self.anchors,
                                          self.batch, self.num_classes)
        # detect()'s own post-processing (mrcnn.inference.postprocess), traced into this graph.
        boxes, class_ids, scores, full_masks = postprocess.unmold_detections(
            detections, masks, shape[:2], [self.max_dim, self.max_dim], window,
            self.mask_threshold, self.paste_mode)
        return {"boxes": boxes, "class_ids": class_ids, "scores": scores, "masks": full_masks}


def run_one_image(keras_model, molded, fields, anchors, batch, num_classes):
    """The inference graph on one molded image, inside a traced function (the SavedModel's and
    the fixed-size core's one call of the model).

    molded: [H, W, C] float32; fields: {name: value} of every ``image_meta.FIELDS`` entry, the
    meta vector composed from them in the graph with active_class_ids all zero (as
    ``detect()`` leaves them); anchors: [num_anchors, 4] normalized. The image, its meta and the
    anchors are repeated to the graph's ``batch``. Returns that image's detections
    [DETECTION_MAX_INSTANCES, 6] and mrcnn_mask [DETECTION_MAX_INSTANCES, h, w, classes].
    """
    meta = tf.concat([tf.reshape(tf.cast(fields[name], tf.float32), [length])
                      for name, length in image_meta.FIELDS] + [tf.zeros([num_classes])],
                     axis=0)

    def batched(x):
        return tf.repeat(tf.convert_to_tensor(x)[tf.newaxis], batch, axis=0)
    outputs = keras_model([batched(molded), batched(meta), batched(anchors)], training=False)
    return outputs["detections"][0], outputs["mrcnn_mask"][0]


def export_saved_model(mrcnn_model, path):
    """Write ``mrcnn_model`` (inference mode) as a SavedModel at ``path``; returns ``path``."""
    if mrcnn_model.mode != "inference":
        raise ValueError("export an inference-mode model")
    module = _Serving(mrcnn_model)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path
