"""The TensorFlow unmolding of detect() and the SavedModel (mrcnn.inference.postprocess) against
Matterport's NumPy API (transform.unmold_detections, utils.unmold_mask)."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import model as modellib
from mrcnn.inference import postprocess, molding as transform
from mrcnn import utils
from mrcnn.config import Config
from tiny import TinyConfig, shift_class_logits


def tf_unmold(detections, masks, original_shape, molded_shape, window, threshold=0.5):
    """postprocess.unmold_detections_fn on NumPy inputs, results as NumPy arrays."""
    outputs = postprocess.unmold_detections_fn(
        np.asarray(detections, np.float32), np.asarray(masks, np.float32),
        np.asarray(original_shape[:2], np.int32), np.asarray(molded_shape[:2], np.int32),
        np.asarray(window, np.int32), np.float32(threshold))
    return [t.numpy() for t in outputs]


def assert_same_results(got, expected):
    """Boxes, class ids, scores and masks identical, dtypes and shapes included."""
    for name, a, b in zip(("boxes", "class_ids", "scores", "masks"), got, expected):
        assert a.dtype == b.dtype and a.shape == b.shape, (name, a.dtype, a.shape, b.shape)
        np.testing.assert_array_equal(a, b, err_msg=name)


def soft_masks(rng, shape):
    """Sigmoid outputs: many values near 0 and 1, a band across the threshold."""
    return (1 / (1 + np.exp(-rng.normal(0, 3, shape)))).astype(np.float32)


def random_detections(rng, window, molded_shape, original_shape, rows=12, classes=4):
    """[rows, 6] zero-padded detections inside the window (normalized), as DetectionLayer
    gives; a quarter of them of zero height in original pixels."""
    wy1, wx1, wy2, wx2 = utils.norm_boxes(np.array([window]), molded_shape[:2])[0]
    n = int(rng.integers(0, rows + 1))
    detections = np.zeros((rows, 6), np.float32)
    ys = np.sort(rng.uniform(wy1, wy2, (n, 2)), axis=1)
    xs = np.sort(rng.uniform(wx1, wx2, (n, 2)), axis=1)
    # y2 is exclusive: a box ends one pixel before its start when it is empty.
    ys[: n // 4, 1] = ys[: n // 4, 0] - (wy2 - wy1) / (original_shape[0] - 1)
    detections[:n, [0, 2]], detections[:n, [1, 3]] = ys, xs
    detections[:n, 4] = rng.integers(1, classes, n)
    detections[:n, 5] = rng.uniform(0.05, 1, n)
    return detections


# paste_masks traced, as detect() and the SavedModel run it (graph rewrites included).
paste_masks = tf.function(postprocess.paste_masks, input_signature=[
    tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([None, 4], tf.int32),
    tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32)])


@pytest.mark.parametrize("mask_shape, threshold, values", [
    ((28, 28), 0.5, "sigmoid"), ((14, 20), 0.5, "sigmoid"), ((28, 28), 0.3, "sigmoid"),
    ((28, 28), 0.7, "sigmoid"), ((28, 28), 0.5, "near")])
def test_paste_masks_is_unmold_mask(mask_shape, threshold, values):
    """Box by box the same pixels as utils.unmold_mask, for boxes inside, overhanging, outside
    and inverted, small (upsampling) and large (downsampling). "near": every mask value within
    40 float32 steps of the threshold, where interpolating in float32 (tf.image.resize) flips
    hundreds of these pixels; last-bit changes of the float64 weights are
    test_resize_taps_traced_are_the_eager_ones' to catch."""
    rng = np.random.default_rng(sum(mask_shape))
    height, width = 90, 130
    count = 40
    if values == "near":
        steps = rng.integers(-40, 41, (count,) + mask_shape)
        masks = (threshold + steps * 2.0 ** -26).astype(np.float32)
    else:
        masks = soft_masks(rng, (count,) + mask_shape)
    y1 = rng.integers(-20, height, count)
    x1 = rng.integers(-20, width, count)
    boxes = np.stack([y1, x1, y1 + rng.integers(1, 120, count),
                      x1 + rng.integers(1, 160, count)], axis=1).astype(np.int32)
    boxes[0] = (5, 7, 5, 30)                             # empty
    boxes[1] = (30, 40, 10, 20)                          # inverted
    boxes[2] = (height + 3, 0, height + 20, 10)          # below the image
    boxes[3] = (10, 10, 11, 11)                          # one pixel
    got = paste_masks(masks, boxes, height, width, threshold).numpy()
    expected = np.stack([utils.unmold_mask(m, b, (height, width), threshold)
                         for m, b in zip(masks, boxes)], axis=-1)
    assert got.dtype == bool and got.shape == (height, width, count)
    np.testing.assert_array_equal(got, expected)


def test_resize_taps_traced_are_the_eager_ones():
    """The weights' float64 bits survive graph optimization (constant folding regroups
    1 - (c - f), which changes last bits and, near the threshold, pixels), for box sides of
    1..800 pixels, clipped or not. Eager ops run as written; the paste tests check those
    against scipy, through utils.unmold_mask."""
    spec = [tf.TensorSpec([None], tf.int32)] * 3 + [tf.TensorSpec([], tf.int32)] * 2
    traced = tf.function(postprocess._resize_taps, input_signature=spec)
    sides = np.tile(np.arange(1, 801, dtype=np.int32), 2)
    start = np.where(np.arange(1600) < 800, 0, -(sides // 7))   # half start before the image
    first = np.maximum(start, 0)
    args = (start, start + sides, first, np.int32(800), np.int32(28))
    for got, expected in zip(traced(*args), postprocess._resize_taps(*args)):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


@pytest.mark.parametrize("mode", ["square", "pad64"])
def test_unmold_detections_is_the_numpy_path(mode):
    """Random detections in the windows of images of many sizes: identical boxes, class ids,
    scores and masks; class-aware (4 channels) and class-agnostic (1 channel) masks."""
    class ModeConfig(Config):
        IMAGE_RESIZE_MODE = mode
        IMAGE_MIN_DIM = 64 if mode == "pad64" else 96
        IMAGE_MAX_DIM = 192
    config = ModeConfig()
    rng = np.random.default_rng(len(mode))
    dropped = 0
    for case in range(12):
        image = np.zeros(tuple(rng.integers(10, 250, 2)) + (3,), np.uint8)
        molded, _, windows = transform.mold_inputs([image], config)
        detections = random_detections(rng, windows[0], molded.shape[1:], image.shape)
        masks = soft_masks(rng, (12, 28, 28, 1 if case % 2 else 4))
        expected = transform.unmold_detections(detections, masks, image.shape,
                                               molded.shape[1:], windows[0])
        got = tf_unmold(detections, masks, image.shape, molded.shape[1:], windows[0])
        assert_same_results(got, expected)
        dropped += int((detections[:, 4] > 0).sum()) - len(expected[0])
    assert dropped > 0


def test_class_agnostic_masks_read_channel_zero_for_every_class():
    detections = np.zeros((4, 6), np.float32)
    detections[:3] = [[0.1, 0.1, 0.5, 0.5, 1, 0.9], [0.2, 0.2, 0.9, 0.9, 2, 0.8],
                      [0.5, 0.1, 0.9, 0.4, 3, 0.7]]
    masks = soft_masks(np.random.default_rng(0), (4, 28, 28, 1))
    got = tf_unmold(detections, masks, (64, 64), (64, 64), (0, 0, 64, 64))
    assert got[1].tolist() == [1, 2, 3]
    for i in range(3):
        np.testing.assert_array_equal(
            got[3][..., i], utils.unmold_mask(masks[i, ..., 0], got[0][i], (64, 64)))
    assert_same_results(got, transform.unmold_detections(detections, masks, (64, 64, 3),
                                                         (64, 64, 3), (0, 0, 64, 64)))


@pytest.mark.parametrize("rows", [0, 5])
def test_no_detections_give_empty_results_of_the_right_types(rows):
    """No rows, or only padding rows: empty arrays with detect()'s dtypes, masks [H, W, 0]."""
    detections = np.zeros((rows, 6), np.float32)
    masks = np.zeros((rows, 28, 28, 4), np.float32)
    got = tf_unmold(detections, masks, (48, 56, 3), (64, 64, 3), (8, 4, 56, 60))
    assert [a.shape for a in got] == [(0, 4), (0,), (0,), (48, 56, 0)]
    assert [a.dtype for a in got] == [np.int32, np.int32, np.float32, bool]
    if rows:
        assert_same_results(got, transform.unmold_detections(
            detections, masks, (48, 56, 3), (64, 64, 3), (8, 4, 56, 60)))


def test_boxes_of_zero_area_are_dropped_with_their_rows():
    detections = np.zeros((4, 6), np.float32)
    detections[0] = [0.5, 0.1, 0.5 - 1 / 63, 0.5, 1, 0.9]   # zero height (y2 exclusive)
    detections[1] = [0.2, 0.2, 0.6, 0.7, 2, 0.8]
    masks = np.ones((4, 28, 28, 3), np.float32)
    boxes, class_ids, scores, full = tf_unmold(detections, masks, (64, 64), (64, 64),
                                               (0, 0, 64, 64))
    assert class_ids.tolist() == [2] and scores.tolist() == [np.float32(0.8)]
    assert full.shape == (64, 64, 1) and full.sum() == np.prod(boxes[0, 2:] - boxes[0, :2])


class BatchConfig(TinyConfig):
    IMAGES_PER_GPU = 2
    DETECTION_MIN_CONFIDENCE = 0.0


@pytest.fixture(scope="module")
def batch_detector():
    """A tiny inference model, 2 images per batch, every detection kept."""
    model = modellib.MaskRCNN("inference", BatchConfig(), "/tmp/unused")
    # Random heads mostly say background; favour class 1 so there is something to compare,
    # with the kernel scaled down so that no random draw outweighs the bias (at full scale one
    # draw left every RoI background in make test).
    shift_class_logits(model, [0, 3, 0, 0], 0.05)
    return model


def numpy_detect(model, images):
    """detect() as it was: the graph, then the NumPy unmolding (MaskRCNN.unmold_detections)."""
    molded, metas, windows = model.mold_inputs(images)
    outputs = model.keras_model.predict_on_batch(
        [molded, metas, model.anchor_cache.batch(molded)])
    detections, mrcnn_mask = outputs["detections"], outputs["mrcnn_mask"]
    return [model.unmold_detections(detections[i], mrcnn_mask[i], image.shape,
                                    molded.shape[1:], windows[i])
            for i, image in enumerate(images)]


def test_detect_matches_the_numpy_unmolding(batch_detector):
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in
              ((48, 64, 3), (64, 40, 3))]
    results = batch_detector.detect(images)
    for result, expected in zip(results, numpy_detect(batch_detector, images)):
        assert len(result["class_ids"]) > 0
        assert_same_results([result[k] for k in ("rois", "class_ids", "scores", "masks")],
                            expected)


def test_batched_detect_retraces_nothing(batch_detector):
    """BATCH_SIZE 2, a fixed molded size: new image sizes and partial batches reuse the traced
    predict function and post-processing function."""
    rng = np.random.default_rng(0)
    batch_detector.detect([rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)] * 2)  # warm
    predict = batch_detector.keras_model.predict_function
    traces = (predict.experimental_get_tracing_count(),
              postprocess.unmold_detections_fn.experimental_get_tracing_count())
    for count, shape in ((2, (64, 64, 3)), (3, (30, 64, 3)), (1, (64, 17, 3)),
                         (4, (41, 53, 3))):
        images = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]
        results = batch_detector.detect(images)
        assert len(results) == count and results[0]["masks"].shape[:2] == shape[:2]
    assert (predict.experimental_get_tracing_count(),
            postprocess.unmold_detections_fn.experimental_get_tracing_count()) == traces


def numpy_pixel_boxes(boxes, window, molded_shape, original_shape):
    """transform.unmold_detections' box arithmetic alone."""
    wy1, wx1, wy2, wx2 = utils.norm_boxes(np.array([window]), molded_shape[:2])[0]
    shift = np.array([wy1, wx1, wy1, wx1])
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    return utils.denorm_boxes((boxes - shift) / scale, original_shape[:2])


def test_pixel_boxes_are_exact_when_the_molded_shape_is_a_graph_constant():
    """In the SavedModel the molded shape is a constant of the graph, where TensorFlow would
    turn a division by it into a multiplication by its inverse (other last bits, other
    rounded pixels); 100,000 boxes per window round as in NumPy."""
    to_pixels = tf.function(lambda boxes, window, original: postprocess.to_pixel_boxes(
        boxes, window, [512, 512], original))
    rng = np.random.default_rng(3)
    for original in ((384, 512), (512, 301), (97, 512)):
        scale = 512 / max(original)
        h, w = round(original[0] * scale), round(original[1] * scale)
        window = ((512 - h) // 2, (512 - w) // 2, (512 - h) // 2 + h, (512 - w) // 2 + w)
        boxes = rng.uniform(0, 1, (100000, 4)).astype(np.float32)
        expected = numpy_pixel_boxes(boxes, window, (512, 512), original)
        got = to_pixels(boxes, np.array(window, np.int32), np.array(original, np.int32))
        np.testing.assert_array_equal(got.numpy(), expected)


# --- pasting masks with the paper's RoIAlign geometry (ROI_ALIGN_SAMPLING_RATIO > 0) ---------

def ellipse_mask(height, width, cy, cx, ry, rx):
    y, x = np.mgrid[:height, :width]
    return ((y + 0.5 - cy) / ry) ** 2 + ((x + 0.5 - cx) / rx) ** 2 <= 1


@pytest.mark.parametrize("mode", ["aligned", "unaligned"])
@pytest.mark.parametrize("use_mini_mask", [False, True])
def test_a_perfect_mask_pastes_back_onto_its_gt(mode, use_mini_mask):
    # The 28x28 target of a GT mask, cut with the RoIAlign sampling, pasted back into the GT
    # box with the matching geometry, covers the GT mask: IoU > 0.97 for boxes of 10-400 px.
    # (Matterport's crop-and-resize then resize-into-the-box gives 0.92-0.94 at 57-400 px.)
    from mrcnn.modeling import boxes as box_utils
    from mrcnn.modeling import targets
    height = width = 480
    params = {"mask_shape": [28, 28], "use_mini_mask": use_mini_mask,
              "image_shape": [height, width], "mask_sampling_ratio": 2,
              "mask_aligned": mode == "aligned"}
    for side in (10, 13, 25, 57, 120, 250, 400):
        gt = ellipse_mask(height, width, 240.3, 233.7, side / 2, side / 2.6)
        box = utils.extract_bboxes(gt[..., np.newaxis])
        normalized = box_utils.norm_boxes(box, (height, width)).astype(np.float32)
        source = utils.minimize_mask(box, gt[..., np.newaxis], (56, 56)) if use_mini_mask \
            else gt[..., np.newaxis]
        target = targets.roi_align_mask_targets(
            tf.constant(source[np.newaxis], tf.float32), normalized,
            normalized, params)
        pasted = postprocess.paste_masks(target, box.astype(np.float64), height, width, 0.5,
                                         mode).numpy()[..., 0]
        iou = (pasted & gt).sum() / (pasted | gt).sum()
        assert iou > 0.97, (side, iou)


@pytest.mark.parametrize("mode", ["aligned", "unaligned"])
def test_roi_paste_equals_the_numpy_runner_and_clips_to_the_image(mode):
    # The standalone NumPy runner (mrcnn.export.runner) pastes as detect() does; boxes that
    # overhang the image, tiny and empty boxes included.
    from mrcnn.export.runner import paste_mask_roi
    rng = np.random.default_rng(5)
    height, width = 50, 70
    boxes = np.array([[5.3, 7.8, 30.1, 44.6], [-6.0, 50.2, 20.0, 80.5], [10.0, 10.0, 11.2, 10.7],
                      [40.0, 3.0, 40.0, 9.0], [0.0, 0.0, 50.0, 70.0]], np.float64)
    masks = soft_masks(rng, (len(boxes), 28, 28))
    got = postprocess.paste_masks(masks, boxes, height, width, 0.5, mode).numpy()
    assert got.shape == (height, width, len(boxes))
    assert not got[..., 3].any()                       # an empty box pastes nothing
    mismatches = 0
    for i, box in enumerate(boxes):
        expected = paste_mask_roi(masks[i], box, height, width, 0.5, mode == "aligned")
        mismatches += np.count_nonzero(got[..., i] != expected)
    # Both are float64 bilinear sums, in a different order: at most a pixel on the threshold.
    assert mismatches <= 1, mismatches


def test_paste_mode_follows_the_config():
    class Aligned(Config):
        ROI_ALIGN_SAMPLING_RATIO = 2

    class Unaligned(Aligned):
        ROI_ALIGN_ALIGNED = False
    assert postprocess.paste_mode(Config()) == "resize"
    assert postprocess.paste_mode(Aligned()) == "aligned"
    assert postprocess.paste_mode(Unaligned()) == "unaligned"
    with pytest.raises(ValueError, match="mode"):
        postprocess.paste_masks(np.zeros((0, 28, 28), np.float32), np.zeros((0, 4)), 8, 8,
                                0.5, "nearest")


@pytest.mark.parametrize("mode", ["aligned", "unaligned"])
def test_a_perfect_mask_of_a_resized_image_pastes_back_onto_its_gt(mode):
    # The target is cut in the molded (resized, padded) image, as training cuts it; detect()'s
    # unmolding pastes it into the original image through the resize the molding applied.
    # Matterport's corner-aligned box mapping (to_pixel_boxes) would be off by up to a pixel.
    from mrcnn.modeling import boxes as box_utils
    from mrcnn.modeling import targets
    from mrcnn.export.runner import ExportedModel

    class Molding(Config):
        IMAGE_MIN_DIM = 512
        IMAGE_MAX_DIM = 512
        ROI_ALIGN_SAMPLING_RATIO = 2
        ROI_ALIGN_ALIGNED = mode == "aligned"
    config = Molding()
    height, width = 150, 200                       # scaled by 2.56 into a 384x512 window
    runner = ExportedModel.__new__(ExportedModel)  # only its NumPy unmolding is used
    runner.path, runner.size = "model", 512
    runner.metadata = {"mask_threshold": 0.5, "mask_paste": mode}
    for side in (12, 30, 90):
        gt = ellipse_mask(height, width, 70.3, 96.6, side / 2, side / 2.6)
        image = np.zeros((height, width, 3), np.uint8)
        _, _, windows = transform.mold_inputs([image], config)
        window = windows[0]
        scale = (window[2] - window[0]) / height
        molded_mask = utils.resize_mask(gt[..., np.newaxis], scale,
                                        [(window[0], 512 - window[2]),
                                         (window[1], 512 - window[3]), (0, 0)])
        box = utils.extract_bboxes(molded_mask)
        normalized = box_utils.norm_boxes(box, (512, 512)).astype(np.float32)
        params = {"mask_shape": [28, 28], "use_mini_mask": False, "image_shape": [512, 512],
                  "mask_sampling_ratio": 2, "mask_aligned": mode == "aligned"}
        target = targets.roi_align_mask_targets(
            tf.constant(molded_mask[np.newaxis], tf.float32), normalized, normalized,
            params).numpy()
        detections = np.zeros((4, 6), np.float32)
        detections[0, :4], detections[0, 4:] = normalized[0], [1, 0.9]
        masks = np.zeros((4, 28, 28, 2), np.float32)
        masks[0, ..., 1] = target[0]
        _, _, _, pasted = postprocess.UNMOLD_FNS[postprocess.paste_mode(config)](
            detections, masks, np.array([height, width], np.int32),
            np.array([512, 512], np.int32), np.asarray(window, np.int32), np.float32(0.5))
        pasted = pasted.numpy()[..., 0]
        iou = (pasted & gt).sum() / (pasted | gt).sum()
        assert iou > 0.97, (side, iou)
        served = runner.unmold(detections, masks[..., 1], (height, width), window)["masks"]
        assert np.count_nonzero(served[..., 0] != pasted) <= 1
