import os

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.data import pipeline as data
from mrcnn.modeling.roi_align import PyramidROIAlign, adaptive_grid, roi_align, roi_level
from references import reference_path


def linear_map(size, level, channels=2):
    """Feature map whose value is a known linear function of (y, x, c) and the level."""
    y, x, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(channels), indexing="ij")
    return (3.0 * y + 0.5 * x + 10.0 * c + 1000.0 * level).astype(np.float32)


def expected_pool(box, size, level, pool, channels=2):
    """Bilinear samples of linear_map at crop_and_resize's sampling points (exact: linear)."""
    y1, x1, y2, x2 = box
    ys = y1 * (size - 1) + np.arange(pool) * (y2 - y1) * (size - 1) / (pool - 1)
    xs = x1 * (size - 1) + np.arange(pool) * (x2 - x1) * (size - 1) / (pool - 1)
    yy, xx, cc = np.meshgrid(ys, xs, np.arange(channels), indexing="ij")
    return 3.0 * yy + 0.5 * xx + 10.0 * cc + 1000.0 * level


def test_roi_level_follows_box_size():
    # 512 x 512 image: a 224-pixel box is level 4, 112 -> 3, 56 -> 2, 20 -> 2 (clamped),
    # 300 -> 4 (log2(300/224) = 0.42 rounds down), 512 -> 5 (log2(512/224) = 1.19).
    sides = np.array([224, 112, 56, 20, 300, 512]) / 511.0
    boxes = np.stack([np.zeros(6), np.zeros(6), sides, sides], axis=1)[np.newaxis]
    levels = roi_level(tf.constant(boxes, tf.float32), tf.constant([512, 512]))
    assert levels.numpy().tolist() == [[4, 3, 2, 2, 4, 5]]
    # In a 256 x 256 image even the whole image is level 4: level 5 needs sides > 317 px.
    full = roi_level(tf.constant([[[0., 0., 1., 1.]]]), tf.constant([256, 256]))
    assert full.numpy().tolist() == [[4]]


def test_pyramid_roi_align_samples_the_right_level_bilinearly():
    sizes = {2: 64, 3: 32, 4: 16, 5: 8}
    maps = [np.stack([linear_map(sizes[l], l)] * 2) for l in range(2, 6)]   # batch of 2
    pool = 5
    boxes = np.array([
        [[0.1, 0.2, 0.1 + 56 / 511, 0.2 + 56 / 511],      # level 2 (sides in a 512 image)
         [0.0, 0.0, 224 / 511, 224 / 511],                  # level 4
         [0.5, 0.4, 0.5 + 112 / 511, 0.4 + 112 / 511]],     # level 3
        [[0.3, 0.3, 0.3 + 112 / 511, 0.3 + 112 / 511],      # level 3
         [0.0, 0.0, 1.0, 1.0],                              # level 5
         [0.2, 0.1, 0.2 + 56 / 511, 0.1 + 56 / 511]],       # level 2
    ], dtype=np.float32)
    meta = np.stack([data.compose_image_meta(0, (512, 512, 3), (512, 512, 3), (0, 0, 512, 512),
                                             1, [1, 1])] * 2).astype(np.float32)
    layer = PyramidROIAlign([pool, pool])
    out = layer([tf.constant(boxes), tf.constant(meta)] + [tf.constant(m) for m in maps])
    out = out.numpy()
    assert out.shape == (2, 3, pool, pool, 2)
    levels = [[2, 4, 3], [3, 5, 2]]
    for b in range(2):
        for r in range(3):
            lvl = levels[b][r]
            np.testing.assert_allclose(out[b, r], expected_pool(boxes[b, r], sizes[lvl], lvl,
                                                                pool), rtol=1e-5, atol=1e-3)
    assert PyramidROIAlign.from_config(layer.get_config()).pool_shape == (pool, pool)


# --- the paper's RoIAlign (sampling_ratio > 0) -----------------------------------------------

REFERENCE = reference_path("roi_align_reference.npz")


def reference_roi_align(features, boxes, box_indices, output_size, sampling_ratio, aligned,
                        grid=None):
    """RoIAlign written from its definition (Mask R-CNN paper; torchvision's border rules).

    features [B, H, W, C]; boxes [K, (y1, x1, y2, x2)] in map coordinates. Each bin averages
    sampling_ratio^2 bilinear samples at regular points inside it; sampling_ratio -1 (adaptive,
    torchvision's ``sampling_ratio <= 0``) takes ceil(roi side / output side) samples per bin
    side for each box, and a box with a side of 0 has none (its output is 0). A point more than
    one pixel outside the map reads 0; one within a pixel outside reads the border (clamped).
    grid: with -1, [K, (s_y, s_x)] samples per bin side to use instead of the boxes' own.
    """
    _, height, width, channels = features.shape
    out_h, out_w = output_size
    result = np.zeros((len(boxes), out_h, out_w, channels), np.float64)
    offset = 0.5 if aligned else 0.0

    def bilinear(image, y, x):
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return np.zeros(channels)
        y, x = min(max(y, 0.0), height - 1.0), min(max(x, 0.0), width - 1.0)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
        ly, lx = y - y0, x - x0
        return ((1 - ly) * (1 - lx) * image[y0, x0] + (1 - ly) * lx * image[y0, x1] +
                ly * (1 - lx) * image[y1, x0] + ly * lx * image[y1, x1])

    for k, (by1, bx1, by2, bx2) in enumerate(np.asarray(boxes, np.float64)):
        image = features[box_indices[k]].astype(np.float64)
        by1, bx1, by2, bx2 = by1 - offset, bx1 - offset, by2 - offset, bx2 - offset
        bin_h, bin_w = (by2 - by1) / out_h, (bx2 - bx1) / out_w
        if not aligned:
            bin_h, bin_w = max(by2 - by1, 1.0) / out_h, max(bx2 - bx1, 1.0) / out_w
        if sampling_ratio > 0:
            s_y = s_x = sampling_ratio
        elif grid is not None:
            s_y, s_x = (int(v) for v in grid[k])
        else:
            s_y, s_x = int(np.ceil(bin_h)), int(np.ceil(bin_w))
        for i in range(out_h):
            for j in range(out_w):
                total = np.zeros(channels)
                for a in range(s_y):
                    for b in range(s_x):
                        total += bilinear(image, by1 + (i + (a + 0.5) / s_y) * bin_h,
                                          bx1 + (j + (b + 0.5) / s_x) * bin_w)
                result[k, i, j] = total / max(s_y * s_x, 1)
    return result


@pytest.fixture(scope="module")
def torchvision_reference():
    return np.load(REFERENCE)


def _single_case(reference, key):
    """(features [B, H, W, C], boxes [K, (y1, x1, y2, x2)] map coords, indices, size, s,
    aligned, torchvision's output [K, h, w, C]) of one recorded case."""
    _, s, a, size = str(key).split("_")
    features = reference["features"].transpose(0, 2, 3, 1)
    boxes = reference["boxes_xyxy"][:, [1, 0, 3, 2]] * reference["spatial_scale"]
    return (features, boxes, reference["box_indices"], tuple(int(v) for v in size.split("x")),
            int(s[1:]), bool(int(a[1:])), reference[key])


def test_reference_roi_align_equals_torchvision(torchvision_reference):
    # The loop reference above and torchvision.ops.roi_align agree: both follow the definition.
    for key in torchvision_reference["single_cases"][::5]:   # ratios 1, 2, 3 and -1
        features, boxes, indices, size, s, aligned, expected = _single_case(
            torchvision_reference, key)
        got = reference_roi_align(features, boxes, indices, size, s, aligned)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=str(key))


def test_roi_align_equals_torchvision(torchvision_reference):
    # 68 boxes per case (random, smaller than a cell, touching the border, partly and entirely
    # outside, zero size), sampling ratios 1-3 and -1 (adaptive: 1-5 samples per bin side
    # here), aligned or not, three output sizes.
    cases = torchvision_reference["single_cases"]
    assert len(cases) == 24 and sum("_s-1_" in str(key) for key in cases) == 6
    for key in cases:
        features, boxes, indices, size, s, aligned, expected = _single_case(
            torchvision_reference, key)
        got = roi_align(features, boxes, indices, size, s, aligned).numpy()
        assert got.shape == expected.shape
        # float32 coordinates: the box normalization for crop_and_resize costs ~1e-6 pixels.
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=str(key))


def test_roi_align_equals_the_definition_on_other_inputs():
    rng = np.random.default_rng(3)
    features = rng.uniform(-1, 1, (1, 9, 6, 3)).astype(np.float32)
    boxes = np.array([[0.2, 0.3, 0.6, 0.9], [-0.7, -0.4, 3.0, 2.5], [4.0, 1.0, 9.5, 6.8],
                      [8.6, 5.2, 9.9, 7.0], [2.0, 2.0, 2.3, 2.2]], np.float32)
    indices = np.zeros(len(boxes), np.int32)
    for s in (1, 2, 4):
        for aligned in (True, False):
            got = roi_align(features, boxes, indices, (4, 2), s, aligned).numpy()
            expected = reference_roi_align(features, boxes, indices, (4, 2), s, aligned)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_adaptive_roi_align_equals_the_definition():
    # sampling_ratio -1: a grid per box, ceil(side / output side) (1 to 14 samples per bin side
    # here, different in y and x), boxes smaller than a cell, across the border, of zero size,
    # inverted.
    rng = np.random.default_rng(5)
    features = rng.uniform(-1, 1, (2, 23, 19, 3)).astype(np.float32)
    boxes = np.array([[0.2, 0.3, 0.6, 0.9], [-0.7, -0.4, 21.0, 8.5], [4.0, 1.0, 9.5, 18.8],
                      [8.6, 5.2, 22.9, 7.0], [2.0, 2.0, 2.3, 2.2], [3.0, 3.0, 3.0, 7.0],
                      [1.0, 2.0, 17.0, 14.0], [-3.0, -2.0, 30.0, 25.0],
                      [6.0, 5.0, 2.0, 9.0]], np.float32)
    indices = np.array([0, 1, 0, 1, 0, 1, 1, 0, 1], np.int32)
    for size in ((4, 2), (3, 3)):
        for aligned in (True, False):
            got = roi_align(features, boxes, indices, size, -1, aligned).numpy()
            expected = reference_roi_align(features, boxes, indices, size, -1, aligned)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5,
                                       err_msg="{} aligned={}".format(size, aligned))
    # A box of zero height or an inverted one (aligned) has no samples: 0, as torchvision
    # returns.
    for k in (5, 8):
        assert np.all(roi_align(features, boxes[k:k + 1], indices[k:k + 1], (4, 2), -1,
                                True).numpy() == 0)
    # A side that is an exact multiple of the output side, as it comes back from normalized
    # float32 coordinates (a 7-pixel box of a 1333-pixel image read back as 7.000122, 14 as
    # 14.000061): that multiple, not one sample more per side.
    # A side above 0 but within the tolerance of it (a tiny aligned box) still takes one
    # sample, as torchvision's ceil does; an inverted side none.
    grid = adaptive_grid(tf.constant([7.000122, 14.000061, 7.01, 3e-4]),
                         tf.constant([7.0, 6.9, 0.0, -0.5]), (7, 7))
    np.testing.assert_array_equal(grid[0], [1, 2, 2, 1])
    np.testing.assert_array_equal(grid[1], [1, 1, 0, 0])
    # With every box on one grid, the adaptive ratio is that fixed ratio.
    same = np.array([[1.0, 1.0, 9.0, 5.0], [10.0, 2.0, 17.5, 5.5]], np.float32)
    np.testing.assert_allclose(roi_align(features, same, [0, 1], (4, 2), -1).numpy(),
                               roi_align(features, same, [0, 1], (4, 2), 2).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_adaptive_roi_align_with_no_boxes_and_in_a_graph():
    features = tf.ones((1, 8, 8, 4))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def pooled(boxes):
        return roi_align(features, boxes, tf.zeros(tf.shape(boxes)[:1], tf.int32), (3, 3), -1)

    assert pooled(tf.zeros((0, 4))).shape == (0, 3, 3, 4)
    # The static channel count survives the loop (the heads' layers may need it).
    assert pooled.get_concrete_function().output_shapes.as_list() == [None, 3, 3, 4]
    np.testing.assert_allclose(pooled(tf.constant([[1.0, 1.0, 7.0, 4.0]])).numpy(), 1.0,
                               atol=1e-6)


def test_adaptive_sampling_refuses_the_portable_ops():
    with pytest.raises(ValueError, match="ROI_ALIGN_SAMPLING_RATIO -1"):
        PyramidROIAlign([7, 7], sampling_ratio=-1, ops="portable")
    with pytest.raises(ValueError, match="ROI_ALIGN_SAMPLING_RATIO must be"):
        PyramidROIAlign([7, 7], sampling_ratio=-2)
    assert PyramidROIAlign.from_config(
        PyramidROIAlign([7, 7], sampling_ratio=-1).get_config()).sampling_ratio == -1


@pytest.mark.parametrize("ratio", [2, -1])
def test_roi_align_gradient_reaches_the_features(ratio):
    # RoIAlign is linear in the features, so <d out.R / d features, V> = roi_align(V).R exactly.
    # ratio -1: through the adaptive grid's while loop (grids 2 x 2 and 2 x 1 here).
    rng = np.random.default_rng(4)
    features = tf.constant(rng.standard_normal((2, 8, 8, 2)), tf.float32)
    other = tf.constant(rng.standard_normal((2, 8, 8, 2)), tf.float32)
    boxes = tf.constant([[1.0, 1.5, 6.0, 7.0], [-0.5, 0.0, 3.0, 2.0]], tf.float32)
    indices = tf.constant([0, 1], tf.int32)
    weights = tf.constant(rng.standard_normal((2, 3, 3, 2)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(features)
        value = tf.reduce_sum(roi_align(features, boxes, indices, (3, 3), ratio, True) *
                              weights)
    grad = tape.gradient(value, features)
    assert float(tf.reduce_sum(tf.abs(grad))) > 0
    directional = float(tf.reduce_sum(grad * other))
    expected = float(tf.reduce_sum(roi_align(other, boxes, indices, (3, 3), ratio, True) *
                                   weights))
    assert directional == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_pyramid_roi_align_equals_torchvision_multiscale(torchvision_reference):
    # torchvision's MultiScaleRoIAlign (its Mask R-CNN box head: LevelMapper, 7x7, sampling
    # ratio 2, aligned False) on P2..P5 of a 256x320 image, boxes of 1-400 pixels.
    ref = torchvision_reference
    height, width = (int(v) for v in ref["pyramid_image_shape"])
    pixels = ref["pyramid_boxes_xyxy"][:, [1, 0, 3, 2]].astype(np.float64)
    boxes = ((pixels - [0, 0, 1, 1]) / [height - 1, width - 1, height - 1, width - 1])
    meta = data.compose_image_meta(0, (height, width, 3), (height, width, 3),
                                   (0, 0, height, width), 1, [1, 1])[np.newaxis]
    layer = PyramidROIAlign([7, 7], sampling_ratio=2, aligned=False,
                            level_mapping="torchvision")
    out = layer([tf.constant(boxes[np.newaxis], tf.float32), tf.constant(meta, tf.float32)] +
                [tf.constant(ref["pyramid_p{}".format(i)]) for i in range(2, 6)]).numpy()[0]
    # The boxes pass through normalized float32 coordinates (pixels up to 320): 2.6e-5 here. A
    # box on the wrong level would differ by O(1).
    np.testing.assert_allclose(out, ref["pyramid_pooled"], rtol=1e-4, atol=1e-4)
    config = PyramidROIAlign.from_config(layer.get_config())
    assert (config.sampling_ratio, config.aligned, config.level_mapping) == (2, False,
                                                                           "torchvision")
    # The same pooler with torchvision's adaptive sampling ratio (its default, -1).
    layer = PyramidROIAlign([7, 7], sampling_ratio=-1, aligned=False,
                            level_mapping="torchvision")
    out = layer([tf.constant(boxes[np.newaxis], tf.float32), tf.constant(meta, tf.float32)] +
                [tf.constant(ref["pyramid_p{}".format(i)]) for i in range(2, 6)]).numpy()[0]
    np.testing.assert_allclose(out, ref["pyramid_pooled_adaptive"], rtol=1e-4, atol=1e-4)


def test_torchvision_level_mapping_floors_pixel_sizes():
    # floor(4 + log2(side / 224) + 1e-6): 224 -> 4, 223 -> 3, 448 -> 5, 112 -> 3, 111 -> 2;
    # Matterport's rounding puts 300 on 4 and 160 on 4 (log2(160/224) = -0.49).
    height = width = 512
    sides = np.array([224, 223, 448, 112, 111, 300, 160], np.float64)
    pixels = np.stack([np.zeros(7), np.zeros(7), sides, sides], axis=1)
    boxes = (pixels - [0, 0, 1, 1]) / [height - 1, width - 1, height - 1, width - 1]
    levels = roi_level(tf.constant(boxes[np.newaxis], tf.float32), tf.constant([512, 512]),
                       "torchvision")
    assert levels.numpy().tolist() == [[4, 3, 5, 3, 2, 4, 3]]
    with pytest.raises(ValueError, match="ROI_LEVEL_MAPPING"):
        roi_level(tf.constant(boxes[np.newaxis], tf.float32), tf.constant([512, 512]), "round")
