import numpy as np
import tensorflow as tf

from mrcnn import data
from mrcnn.roi_align import PyramidROIAlign, roi_level


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
