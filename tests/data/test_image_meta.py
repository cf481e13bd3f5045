"""The image-meta field table: one layout for NumPy, the graph and the Config."""

import numpy as np
import tensorflow as tf

from mrcnn.modeling import box_ops
from mrcnn.data import image_meta
from mrcnn.config import Config
from mrcnn.modeling.layers import ActiveClassIds


def test_slices_follow_the_field_table():
    assert image_meta.FIXED_SIZE == sum(n for _, n in image_meta.FIELDS) == 12
    meta = image_meta.compose_image_meta(7, (300, 400, 3), (128, 128, 3), (16, 0, 112, 128),
                                         0.32, [1, 0, 1])
    np.testing.assert_allclose(meta, [7, 300, 400, 3, 128, 128, 3, 16, 0, 112, 128, 0.32,
                                      1, 0, 1])
    parsed = image_meta.parse_image_meta(meta)
    assert parsed["image_id"] == 7 and parsed["scale"] == np.float32(0.32)
    np.testing.assert_array_equal(parsed["window"], [16, 0, 112, 128])


def test_graph_parse_config_size_and_layer_agree():
    class Three(Config):
        NUM_CLASSES = 3
    assert Three().IMAGE_META_SIZE == image_meta.meta_size(3) == 15
    metas = np.stack([image_meta.compose_image_meta(i, (5, 6, 3), (64, 64, 3), (1, 2, 3, 4),
                                                    2.0, [1, 1, i % 2]) for i in range(2)])
    in_graph = box_ops.parse_image_meta_graph(tf.constant(metas, tf.float32))
    in_numpy = image_meta.parse_image_meta(metas)
    for name, value in in_numpy.items():
        np.testing.assert_allclose(in_graph[name].numpy(), value, rtol=1e-6, err_msg=name)
    np.testing.assert_array_equal(ActiveClassIds()(metas.astype(np.float32)), [[1, 1, 0],
                                                                               [1, 1, 1]])
    assert ActiveClassIds().compute_output_shape((None, 15)) == (None, 3)
