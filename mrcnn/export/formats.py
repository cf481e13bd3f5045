"""Export an inference model as a SavedModel, a TFLite flatbuffer or an ONNX graph.

The SavedModel (``mrcnn.export.serving``) takes an image of any size and does everything in the
graph. TFLite and ONNX get the *fixed-size core* instead, because the resize to the molded size and
the pasting of masks into an image of the caller's size need shapes known only at run time
(TFLite could only run them with Flex ops, which no pip interpreter links):

    inputs:  image   uint8 [IMAGE_MAX_DIM, IMAGE_MAX_DIM, channels], already resized and
                     zero-padded as detect() molds it (the mean pixel is subtracted inside);
             window  float32 [4] (y1, x1, y2, x2) pixels of the real image inside that square,
                     y2/x2 exclusive; [0, 0, IMAGE_MAX_DIM, IMAGE_MAX_DIM] when it fills it.
    outputs: detections float32 [DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)],
                     boxes normalized to the square, best first, zero rows after the last;
             masks   float32 [DETECTION_MAX_INSTANCES, mask_h, mask_w]: each detection's
                     soft mask for its own class, not yet pasted.

``mrcnn.export.runner`` (NumPy only, no TensorFlow or mrcnn) does the resize, runs either file
and returns what ``detect()`` returns. Every op of the core is a TFLite builtin (its graph is
built with ``mrcnn.modeling.portable_ops``' stand-ins for the two that are not), so no SELECT_TF_OPS
are needed. A JSON file ``<path>.json`` next to the model records the preprocessing constants the
runner needs.
"""

import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from mrcnn.modeling import portable_ops, roi_align
from mrcnn.inference import postprocess, molding as transform
from mrcnn.export.serving import export_saved_model, run_one_image

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZE = (None, "dynamic")
ONNX_OPSET = 17
_CATCH_ERRORS = "TF2ONNX_CATCH_ERRORS"
_EXTRA_HINT = ("install the export extra: pip install 'mrcnn-keras[export]' (from a checkout: "
               "pip install '.[export]')")


class CoreGraph(tf.Module):
    """The fixed-size core of an inference model; ``serve`` is the exported function."""

    def __init__(self, mrcnn_model):
        super().__init__()
        config = mrcnn_model.config
        if mrcnn_model.mode != "inference":
            raise ValueError("export an inference-mode model")
        if config.IMAGE_RESIZE_MODE != "square":
            raise ValueError("export supports IMAGE_RESIZE_MODE='square' (a fixed input "
                             "size), got {!r}".format(config.IMAGE_RESIZE_MODE))
        # The stand-ins need crop sizes known when the graph is built: not the adaptive grid.
        roi_align.check_sampling_ratio(config.ROI_ALIGN_SAMPLING_RATIO, "portable")
        # The model's graph rebuilt with the builtin-op stand-ins (its weights shared): the
        # model itself, which detect() runs, keeps TensorFlow's kernels.
        self.keras_model = portable_ops.with_ops(mrcnn_model.keras_model, "portable")
        self.size = int(config.IMAGE_MAX_DIM)
        self.channels = int(config.IMAGE_CHANNEL_COUNT)
        self.num_classes = int(config.NUM_CLASSES)
        self.batch = int(config.BATCH_SIZE)
        # NumPy, made constants inside the trace: tf2onnx would turn captured eager tensors
        # into extra graph inputs.
        self.mean_pixel, self.inverse_std = transform.pixel_stats(config)
        self.anchors = np.asarray(mrcnn_model.get_anchors(config.IMAGE_SHAPE), np.float32)
        self.metadata = {
            "image_size": self.size, "channels": self.channels,
            "min_dim": int(config.IMAGE_MIN_DIM or 0),
            "min_scale": float(config.IMAGE_MIN_SCALE or 0),
            "mask_threshold": float(config.DETECTION_MASK_THRESHOLD),
            "mask_paste": postprocess.paste_mode(config),
            "max_instances": int(config.DETECTION_MAX_INSTANCES),
            "num_classes": self.num_classes,
        }
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec([self.size, self.size, self.channels], tf.uint8, name="image"),
            tf.TensorSpec([4], tf.float32, name="window")])

    def _serve(self, image, window):
        molded = transform.normalize_pixels(tf.cast(image, tf.float32), self.mean_pixel,
                                            self.inverse_std)
        # Only image_shape and window are read by the graph; the other fields are placeholders.
        square = [float(self.size), float(self.size), float(self.channels)]
        fields = {"image_id": 0.0, "original_image_shape": square, "image_shape": square,
                  "window": window, "scale": 1.0}
        detections, masks = run_one_image(self.keras_model, molded, fields, self.anchors,
                                          self.batch, self.num_classes)
        if masks.shape[-1] == 1:    # MASK_CLASS_AGNOSTIC: one channel for every class
            class_masks = masks[..., 0]
        else:
            # A one-hot product, not a batched gather: exact, and builtin in every format.
            pick = tf.one_hot(tf.cast(detections[:, 4], tf.int32), self.num_classes)
            class_masks = tf.reduce_sum(masks * pick[:, tf.newaxis, tf.newaxis, :], axis=-1)
        return {"detections": tf.identity(detections, name="detections"),
                "masks": tf.identity(class_masks, name="masks")}


def require(module, purpose):
    """Import ``module`` or fail with how to install the export extra."""
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError("{} needs the '{}' package ({}); {}".format(
            purpose, module, e, _EXTRA_HINT)) from e


def write_metadata(path, metadata):
    """The runner's constants as ``<path>.json``."""
    with open(path + ".json", "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
        f.write("\n")


def save_core_saved_model(mrcnn_model, path):
    """The fixed-size core as a SavedModel at ``path`` (the TFLite converter's input);
    returns the CoreGraph."""
    core = CoreGraph(mrcnn_model)
    tf.saved_model.save(core, path, signatures={
        "serving_default": core.serve.get_concrete_function()})
    return core


def export_tflite(mrcnn_model, path, quantize=None):
    """Write the fixed-size core as a TFLite flatbuffer (builtin ops only) at ``path``.

    quantize: None (float32) or "dynamic" (int8 weights, float activations: dynamic-range
    post-training quantization). Returns ``path``.
    """
    if quantize not in QUANTIZE:
        raise ValueError("quantize must be one of {}, got {!r}".format(QUANTIZE, quantize))
    with tempfile.TemporaryDirectory() as tmp:
        core = save_core_saved_model(mrcnn_model, tmp)
        saved = tf.saved_model.load(tmp)
        # The loaded signature, not from_saved_model(tmp): from_saved_model leaves the Keras 3
        # weights as resource variables that nothing initializes (the model computes NaN);
        # from_concrete_functions with the loaded object folds them into constants.
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [saved.signatures["serving_default"]], saved)
        # Builtins only: a model that needed Flex ops would not run in LiteRT's interpreter, so
        # a new unsupported op should fail here, loudly, rather than at deployment.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        flatbuffer = converter.convert()
    with open(path, "wb") as f:
        f.write(flatbuffer)
    write_metadata(path, dict(core.metadata, format="tflite", quantize=quantize))
    return path


def export_onnx(mrcnn_model, path, opset=ONNX_OPSET):
    """Write the fixed-size core as an ONNX model at ``path`` (needs tf2onnx); returns it."""
    require("tf2onnx", "ONNX export")
    import tf2onnx.convert
    core = CoreGraph(mrcnn_model)

    def convert():
        tf2onnx.convert.from_function(
            core.serve, input_signature=core.serve.input_signature, opset=opset,
            output_path=path)

    # tf2onnx deep-copies the whole graph before each of its optimizer passes, so that a pass
    # that fails can be skipped: a tiny model's export took 44 s with the copies and 32 s
    # without them on a 2-core AVX2 EPYC, the same graph and outputs. Its
    # TF2ONNX_CATCH_ERRORS environment switch (set: no copies) turns that off unless the user
    # set it; should a pass then fail, the conversion runs again the careful way.
    if _CATCH_ERRORS in os.environ:
        convert()
    else:
        os.environ[_CATCH_ERRORS] = "FALSE"
        try:
            convert()
        except Exception:    # noqa: BLE001 (a failing pass: the careful conversion decides)
            os.environ.pop(_CATCH_ERRORS, None)
            convert()
        finally:
            os.environ.pop(_CATCH_ERRORS, None)
    write_metadata(path, dict(core.metadata, format="onnx", opset=opset))
    return path


def export(mrcnn_model, path, format="savedmodel", quantize=None):
    """Write ``mrcnn_model`` in ``format`` (one of :data:`FORMATS`) at ``path``; returns it."""
    if format not in FORMATS:
        raise ValueError("format must be one of {}, got {!r}".format(FORMATS, format))
    if quantize is not None and format != "tflite":
        raise ValueError("quantize={!r} applies to format='tflite' only".format(quantize))
    if format == "savedmodel":
        return export_saved_model(mrcnn_model, path)
    if format == "tflite":
        return export_tflite(mrcnn_model, path, quantize=quantize)
    return export_onnx(mrcnn_model, path)
