"""Run an exported ``.tflite`` or ``.onnx`` Mask R-CNN with NumPy and the format's runtime only.

This module imports neither TensorFlow (unless asked to, below) nor the rest of mrcnn, except
``mrcnn/data/images.py`` (NumPy only: the image checks and the resize rule shared with
``detect()``): copy this file and that one next to the model to deploy it. It does the steps
the fixed-size core (``mrcnn.export.formats``) leaves to the caller, as ``detect()`` does them:

1. scale the image (short side to IMAGE_MIN_DIM, long side at most IMAGE_MAX_DIM; bilinear,
   as ``skimage.transform.resize``) and zero-pad it to the square, centred;
2. run the model on the square and the window;
3. map the boxes back to the original image and paste each 28x28 soft mask into its box
   (bilinear, edge-clamped; or where the paper's RoIAlign took it, for models with
   ROI_ALIGN_SAMPLING_RATIO > 0; or as torchvision pastes, with MASK_PASTE "torchvision"),
   thresholded at DETECTION_MASK_THRESHOLD.

    model = ExportedModel("shapes.tflite")      # reads shapes.tflite.json
    result = model.detect(image)                # boxes, class_ids, scores, masks

Runtimes: ONNX Runtime for ``.onnx``; for ``.tflite`` LiteRT (``ai_edge_litert``), or
``tf.lite.Interpreter`` with ``runtime="tensorflow"``.
"""

import importlib.util
import json
import os

import numpy as np

# The metadata keys the runner reads (mrcnn.export.formats writes them).
METADATA_KEYS = ("image_size", "channels", "min_dim", "min_scale", "mask_threshold")


def _image_contract():
    """``mrcnn/data/images.py``: the image contract of ``MaskRCNN.detect`` (``check_image``)
    and the resize rule (``resize_scale``, ``square_padding``).

    Imported from the package when this module is ``mrcnn.export.runner``; otherwise (the
    file copied next to the model, or loaded by path from mrcnn's source tree) from
    ``images.py`` beside this file or at ``../data/images.py``, loaded by path so that neither
    mrcnn nor TensorFlow is imported (images.py is NumPy only).
    """
    if __package__:
        from ..data import images
        return images
    here = os.path.dirname(os.path.abspath(__file__))
    beside = os.path.join(here, "images.py")
    path = next((p for p in (beside, os.path.join(here, "..", "data", "images.py"))
                 if os.path.isfile(p)), None)
    if path is None:
        raise ImportError("{}: not found; runner.py needs mrcnn's images.py (the image "
                          "checks and resize rule it shares with detect()) copied next to "
                          "it".format(beside))
    spec = importlib.util.spec_from_file_location("_mrcnn_image_contract", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_IMAGES = _image_contract()
check_image = _IMAGES.check_image


def _load_metadata(path):
    """The export's ``<path>.json``; errors name the model or metadata file and the problem."""
    if not os.path.isfile(path):
        raise FileNotFoundError("{}: the exported model file is missing".format(path))
    meta_path = path + ".json"
    if not os.path.isfile(meta_path):
        raise FileNotFoundError("{}: the model's metadata (written by the export next to the "
                                "model) is missing".format(meta_path))
    try:
        with open(meta_path) as f:
            metadata = json.load(f)
    except ValueError as e:   # truncated or not json
        raise ValueError("{}: cannot read the model's metadata: {}".format(meta_path, e)) from e
    missing = [k for k in METADATA_KEYS if not isinstance(metadata, dict) or k not in metadata]
    if missing:
        raise ValueError("{}: the model's metadata lacks {} (export the model again with "
                         "mrcnn.export.command)".format(
                             meta_path, ", ".join(repr(k) for k in missing)))
    return metadata


def _tap_weights(points, in_size, edge):
    """[len(points), in_size] linear-interpolation weights reading a side of ``in_size`` cells
    at ``points`` (cell units, cell i centred at i). edge=True clamps to the border cell
    (tf.image.resize, skimage mode='edge'); edge=False treats cells outside as 0 (skimage
    mode='constant', cval=0)."""
    low = np.floor(points)
    frac = points - low
    low = low.astype(np.int64)
    weights = np.zeros((len(points), in_size), np.float64)
    rows = np.arange(len(points))
    for index, weight in ((low, 1.0 - frac), (low + 1, frac)):
        if edge:
            np.add.at(weights, (rows, np.clip(index, 0, in_size - 1)), weight)
        else:
            inside = (index >= 0) & (index < in_size)
            np.add.at(weights, (rows[inside], index[inside]), weight[inside])
    return weights


def _linear_weights(in_size, out_size, edge):
    """[out_size, in_size] weights of half-pixel linear resampling along one axis (see
    :func:`_tap_weights` for ``edge``)."""
    points = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    return _tap_weights(points, in_size, edge)


def resize_image(image, height, width):
    """Bilinear resize of a uint8 [h, w, C] image, as detect() resizes (no anti-aliasing,
    zeros outside, clipped to the input's range, truncated to uint8)."""
    wy = _linear_weights(image.shape[0], height, edge=False)
    wx = _linear_weights(image.shape[1], width, edge=False)
    resized = np.einsum("yh,hwc,xw->yxc", wy, image.astype(np.float64), wx)
    resized = np.clip(resized, image.min(), image.max())
    return resized.astype(image.dtype)


def paste_mask(mask, box, height, width, threshold):
    """A soft mask [h, w] resized into ``box`` (y1, x1, y2, x2) of a [height, width] bool
    image, thresholded; the part outside the image is dropped."""
    y1, x1, y2, x2 = (int(v) for v in box)
    full = np.zeros((height, width), bool)
    if y2 <= y1 or x2 <= x1:
        return full
    wy = _linear_weights(mask.shape[0], y2 - y1, edge=True).astype(np.float32)
    wx = _linear_weights(mask.shape[1], x2 - x1, edge=True).astype(np.float32)
    resized = wy @ mask.astype(np.float32) @ wx.T >= threshold
    cy1, cx1, cy2, cx2 = max(y1, 0), max(x1, 0), min(y2, height), min(x2, width)
    if cy2 > cy1 and cx2 > cx1:
        full[cy1:cy2, cx1:cx2] = resized[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
    return full


def _roi_weights(start, end, cells, first, length, aligned, scale):
    """[length, cells] bilinear weights by which pixels first..first+length-1 of a side read a
    mask of ``cells`` cells taken by the paper's RoIAlign over (start, end) (continuous pixels
    of this image, ``scale`` molded pixels each); cells outside the mask read 0. The same
    taps as mrcnn.inference.postprocess' "aligned"/"unaligned" paste (``_roi_taps``)."""
    size, offset = end - start, 0.5
    if not aligned:
        size, offset = max(size, 1.0 / scale), 0.5 - 0.5 / scale
    coord = (first + np.arange(length, dtype=np.float64) + offset - start) * cells / size - 0.5
    return _tap_weights(coord, cells, edge=False)


def torchvision_paste_box(box, cells):
    """torchvision's ``paste_masks_in_image`` geometry for a mask of ``cells`` cells a side
    given a border of one zero cell (mrcnn.inference.postprocess.torchvision_paste_boxes):
    ``box`` (continuous pixels) grown by (cells + 2) / cells about its centre, truncated
    toward zero, its end included. Returns (y1, x1, y2, x2) int, y2/x2 exclusive."""
    y1, x1, y2, x2 = (float(v) for v in box)
    grow = (cells + 2.0) / cells
    cy, cx = (y1 + y2) * 0.5, (x1 + x2) * 0.5
    hh, hw = (y2 - y1) * 0.5 * grow, (x2 - x1) * 0.5 * grow
    gy1, gx1, gy2, gx2 = (int(v) for v in (cy - hh, cx - hw, cy + hh, cx + hw))  # toward 0
    return gy1, gx1, max(gy2 + 1, gy1 + 1), max(gx2 + 1, gx1 + 1)


def paste_mask_roi(mask, box, height, width, threshold, aligned, scale=(1.0, 1.0)):
    """A soft mask [h, w] pasted where RoIAlign took it over ``box`` (continuous pixels y1,
    x1, y2, x2) into a [height, width] bool image, over the box grown by one cell; scale: (y,
    x) molded pixels per pixel of this image."""
    full = np.zeros((height, width), bool)
    y1, x1, y2, x2 = (float(v) for v in box)
    if y2 <= y1 or x2 <= x1:
        return full
    sy, sx = (float(v) for v in scale)
    # The mask reaches a cell beyond the box (and an unaligned one a molded pixel more).
    grow_y = (y2 - y1) / mask.shape[0] + 1.0 + 1.0 / sy
    grow_x = (x2 - x1) / mask.shape[1] + 1.0 + 1.0 / sx
    top = min(max(int(np.floor(y1 - grow_y)), 0), height)
    left = min(max(int(np.floor(x1 - grow_x)), 0), width)
    bottom = min(max(int(np.ceil(y2 + grow_y)), top), height)
    right = min(max(int(np.ceil(x2 + grow_x)), left), width)
    if bottom > top and right > left:
        wy = _roi_weights(y1, y2, mask.shape[0], top, bottom - top, aligned, sy)
        wx = _roi_weights(x1, x2, mask.shape[1], left, right - left, aligned, sx)
        value = wy @ mask.astype(np.float64) @ wx.T
        full[top:bottom, left:right] = value.astype(np.float32) >= threshold
    return full


class ExportedModel:
    """An exported model and its metadata; :meth:`detect` is ``MaskRCNN.detect`` for one image.

    runtime: None (ONNX Runtime for .onnx, LiteRT for .tflite), "litert", "tensorflow"
    (``tf.lite.Interpreter``) or "onnxruntime". num_threads: the runtime's CPU threads
    (None: its default).
    """

    def __init__(self, path, runtime=None, num_threads=None):
        self.path = path
        self.metadata = _load_metadata(path)
        self.size = int(self.metadata["image_size"])
        if runtime is None:
            runtime = "onnxruntime" if path.endswith(".onnx") else "litert"
        self.runtime = runtime
        if runtime == "onnxruntime":
            self._run = self._onnx_runner(num_threads)
        elif runtime in ("litert", "tensorflow"):
            self._run = self._tflite_runner(runtime, num_threads)
        else:
            raise ValueError("unknown runtime {!r}".format(runtime))

    def _onnx_runner(self, num_threads):
        import onnxruntime
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        session = onnxruntime.InferenceSession(self.path, options,
                                               providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]

        def run(image, window):
            values = session.run(None, {"image": image, "window": window})
            return dict(zip(names, values))
        return run

    def _tflite_runner(self, runtime, num_threads):
        if runtime == "litert":
            from ai_edge_litert.interpreter import Interpreter
        else:
            import tensorflow as tf
            Interpreter = tf.lite.Interpreter
        interpreter = Interpreter(model_path=self.path, num_threads=num_threads)
        runner = interpreter.get_signature_runner("serving_default")
        self._interpreter = interpreter     # the runner does not keep it alive
        return lambda image, window: runner(image=image, window=window)

    def run(self, image, window=None):
        """The raw outputs for a square uint8 image [IMAGE_MAX_DIM, IMAGE_MAX_DIM, C] that
        is already molded (see ``mrcnn.export.formats``): {"detections", "masks"}."""
        if window is None:
            window = (0, 0, self.size, self.size)
        outputs = self._run(np.ascontiguousarray(image, np.uint8),
                            np.asarray(window, np.float32))
        return {name: np.asarray(outputs[name]) for name in ("detections", "masks")}

    def mold(self, image, where=None):
        """Resize and pad as detect() does: (square image, window (y1, x1, y2, x2)).

        The image is checked as ``MaskRCNN.detect`` checks it (``check_image``: 0..1 floats,
        NaN and wrong shapes are ValueErrors naming ``where``, 16-bit values are scaled to
        0..255 with a warning); floats are rounded to uint8, the exported core's input type.
        """
        image = check_image(image, where or "{}: image".format(self.path),
                            self.metadata["channels"])
        if image.dtype != np.uint8:
            image = np.round(image).astype(np.uint8)
        h, w = image.shape[:2]
        scale = _IMAGES.resize_scale(h, w, self.metadata["min_dim"], self.size,
                                     self.metadata["min_scale"])
        if scale != 1:
            image = resize_image(image, round(h * scale), round(w * scale))
        h, w = image.shape[:2]
        top, _, left, _ = _IMAGES.square_padding(h, w, self.size)
        square = np.zeros((self.size, self.size, image.shape[2]), np.uint8)
        square[top:top + h, left:left + w] = image
        return square, (top, left, top + h, left + w)

    def detect(self, image):
        """Detections on one uint8 image [height, width, C] of any size, in its pixels:
        {"boxes" [N, 4] int32, "class_ids" [N] int32, "scores" [N] float32, "masks" [H, W, N]
        bool}, as ``MaskRCNN.detect`` (whose "rois" are "boxes" here) and the SavedModel."""
        where = "{}: detect() image".format(self.path)
        # Checked before reading its shape, so that a 1-D array is a clear error too.
        image = check_image(image, where, self.metadata["channels"])
        height, width = image.shape[:2]
        square, window = self.mold(image, where)
        outputs = self.run(square, window)
        return self.unmold(outputs["detections"], outputs["masks"], (height, width), window)

    def unmold(self, detections, masks, image_shape, window):
        """Raw outputs -> detections in the original image's pixels (see :meth:`detect`)."""
        height, width = image_shape[:2]
        empty = np.nonzero(detections[:, 4] == 0)[0]
        n = empty[0] if len(empty) else len(detections)
        boxes = detections[:n, :4].astype(np.float32)
        class_ids = detections[:n, 4].astype(np.int32)
        scores = detections[:n, 5].astype(np.float32)
        # Normalized square coordinates -> normalized window -> original pixels (y2/x2
        # exclusive), with detect()'s float32 / float64 steps so the roundings agree.
        side = np.float32(self.size - 1)
        wy1, wx1, wy2, wx2 = (np.asarray(window, np.float32) -
                              np.array([0, 0, 1, 1], np.float32)) / side
        shift = np.array([wy1, wx1, wy1, wx1], np.float32)
        scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1], np.float32)
        normalized = ((boxes - shift) / scale).astype(np.float64)
        boxes = np.around(normalized * np.array([height - 1, width - 1, height - 1, width - 1],
                                                np.float64) +
                          np.array([0, 0, 1, 1], np.float64)).astype(np.int32)
        keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
        boxes, class_ids, scores = boxes[keep], class_ids[keep], scores[keep]
        soft = masks[:n][keep]
        threshold = self.metadata["mask_threshold"]
        # How detect() pastes for the model's config (mrcnn.inference.postprocess.paste_mode); files
        # exported before the RoIAlign switches have no key and paste as Matterport.
        mode = self.metadata.get("mask_paste", "resize")
        if mode not in ("resize", "aligned", "unaligned", "torchvision"):
            raise ValueError("{}.json: unknown mask_paste {!r}".format(self.path, mode))
        if mode == "resize":
            full = [paste_mask(soft[i], boxes[i], height, width, threshold)
                    for i in range(len(boxes))]
        else:
            # Through the resize the molding applied (postprocess.resized_pixel_boxes): molded
            # y = window_y1 + y * scale.
            wy1, wx1, wy2, wx2 = (float(v) for v in window)
            scale = ((wy2 - wy1) / height, (wx2 - wx1) / width)
            molded = detections[:n, :4][keep].astype(np.float64) * (self.size - 1) + \
                np.array([0, 0, 1, 1], np.float64)
            exact = (molded - [wy1, wx1, wy1, wx1]) / [scale[0], scale[1], scale[0], scale[1]]
            if mode == "torchvision":
                # The mask with a border of zero cells, resized into its grown box.
                full = [paste_mask(np.pad(soft[i], 1), torchvision_paste_box(
                    exact[i], soft.shape[2]), height, width, threshold)
                    for i in range(len(boxes))]
            else:
                full = [paste_mask_roi(soft[i], exact[i], height, width, threshold,
                                       mode == "aligned", scale) for i in range(len(boxes))]
        full = np.stack(full, axis=-1) if full else np.zeros((height, width, 0), bool)
        return {"boxes": boxes, "class_ids": class_ids, "scores": scores, "masks": full}
