"""mrcnn.modeling.portable_ops: the graph ops are chosen when the graph is built (a layer's
``ops``), and the export's portable graph is a rebuilt copy; TensorFlow's functions are never
replaced.

The builtin ops' values against TensorFlow's kernels: tests/export/test_export_formats.py.
"""

import copy

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.modeling import portable_ops
from mrcnn.modeling.detection import DetectionLayer
from mrcnn.modeling.roi_align import PyramidROIAlign

# The functions when this module was imported: nothing may replace them.
TF_IMAGE = {name: getattr(tf.image, name) for name in vars(portable_ops.TF)}


def graph_ops(fn, *specs):
    """Op types of ``fn`` traced on ``specs``."""
    graph = tf.function(fn).get_concrete_function(*specs).graph
    return {op.type for op in graph.get_operations()}


def test_namespaces_hold_tensorflow_and_the_builtin_versions():
    assert set(portable_ops.NAMESPACES) == {"tf", "portable"}
    for name, function in TF_IMAGE.items():
        assert getattr(portable_ops.TF, name) is function
        assert getattr(portable_ops.PORTABLE, name) is not function
    assert portable_ops.PORTABLE.crop_and_resize is portable_ops.crop_and_resize
    assert portable_ops.namespace("portable") is portable_ops.PORTABLE
    with pytest.raises(ValueError, match=r"ops must be one of \['portable', 'tf'\], got 'xla'"):
        portable_ops.namespace("xla")


@pytest.mark.parametrize("make", [
    lambda **kw: PyramidROIAlign([7, 7], name="roi_align_classifier", **kw),
    lambda **kw: DetectionLayer(10, 0.6, 0.4, name="mrcnn_detection", **kw),
])
def test_layers_take_the_ops_choice_and_keep_it_in_their_config(make):
    assert make().ops == "tf"
    layer = make(ops="portable")
    config = layer.get_config()
    assert config["ops"] == "portable"
    assert type(layer).from_config(copy.deepcopy(config)).get_config() == config
    with pytest.raises(ValueError, match="ops must be one of"):
        make(ops="xla")


def test_layers_build_the_ops_they_were_given():
    """The same layer call traces TensorFlow's kernels or builtin ops, by ``ops`` only."""
    maps = [tf.TensorSpec([1, s, s, 2]) for s in (16, 8, 4, 2)]
    roi_specs = [tf.TensorSpec([1, 5, 4]), tf.TensorSpec([1, 19])] + maps
    detection_specs = [tf.TensorSpec([1, 6, 4]), tf.TensorSpec([1, 6, 3]),
                       tf.TensorSpec([1, 6, 3, 4]), tf.TensorSpec([1, 15])]
    for make, specs, kernel in [
            (lambda ops: PyramidROIAlign([3, 3], ops=ops), roi_specs, "CropAndResize"),
            (lambda ops: PyramidROIAlign([3, 3], sampling_ratio=2, ops=ops), roi_specs,
             "CropAndResize"),
            (lambda ops: DetectionLayer(4, 0.1, 0.5, ops=ops), detection_specs,
             "CombinedNonMaxSuppression"),
            (lambda ops: DetectionLayer(4, 0.1, 0.5, multi_label=True, ops=ops),
             detection_specs, "CombinedNonMaxSuppression")]:
        tf_ops = graph_ops(lambda *x, layer=make("tf"): layer(list(x)), *specs)
        portable = graph_ops(lambda *x, layer=make("portable"): layer(list(x)), *specs)
        assert kernel in tf_ops
        assert kernel not in portable
    assert {name: getattr(tf.image, name) for name in TF_IMAGE} == TF_IMAGE


def test_portable_nms_needs_a_static_batch_but_its_namespace_falls_back():
    """Keras' own signature of a saved portable model has a batch of any size: the namespace
    gives TensorFlow's op there (no export reads it); the builtin function refuses it."""
    specs = [tf.TensorSpec([None, 6, 1, 4]), tf.TensorSpec([None, 6, 2])]
    args = dict(max_output_size_per_class=3, max_total_size=3, iou_threshold=0.5,
                score_threshold=1e-9, clip_boxes=False)
    ops = graph_ops(lambda b, s: portable_ops.PORTABLE.combined_non_max_suppression(
        b, s, **args), *specs)
    assert "CombinedNonMaxSuppression" in ops
    with pytest.raises(ValueError, match="static batch"):
        graph_ops(lambda b, s: portable_ops.combined_non_max_suppression(b, s, **args), *specs)


@pytest.fixture(scope="module")
def inference_model():
    """A tiny random model with detections whose scores are apart (tied scores may come out
    of the two NMS in any order), as tests/export/test_export_formats.py's biased_model."""
    import keras
    from tiny import ExportConfig, shift_class_logits

    from mrcnn import model as modellib
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("inference", ExportConfig(), "/tmp/unused")
    shift_class_logits(model, [0, 3, 0, 0], 0.05)
    for layer in (model.keras_model.get_layer("rpn_model").get_layer("rpn_bbox_pred"),
                  model.keras_model.get_layer("mrcnn_bbox_fc")):
        layer.set_weights([w * 0.1 for w in layer.get_weights()])
    return model


def test_with_ops_rebuilds_the_graph_sharing_every_weight(inference_model):
    keras_model = inference_model.keras_model
    portable = portable_ops.with_ops(keras_model, "portable")
    choices = {layer.name: layer.ops for layer in portable.layers if hasattr(layer, "ops")}
    assert choices == {"roi_align_classifier": "portable", "roi_align_mask": "portable",
                       "mrcnn_detection": "portable"}
    # The model itself (detect()'s) keeps TensorFlow's ops.
    assert {layer.ops for layer in keras_model.layers if hasattr(layer, "ops")} == {"tf"}
    assert len(portable.weights) == len(keras_model.weights)
    assert all(a is b for a, b in zip(portable.weights, keras_model.weights))
    assert [t.name for t in portable.inputs] == [t.name for t in keras_model.inputs]
    assert portable_ops.with_ops(portable, "tf").get_layer("mrcnn_detection").ops == "tf"

    # Same outputs on the same inputs (eager: a static batch, so the builtin NMS runs).
    config = inference_model.config
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    molded, metas, windows = inference_model.mold_inputs([image])
    anchors = inference_model.get_anchors(molded[0].shape)[np.newaxis]
    inputs = [tf.constant(molded, tf.float32), tf.constant(metas, tf.float32),
              tf.constant(anchors, tf.float32)]
    expected = keras_model(inputs, training=False)
    got = portable(inputs, training=False)
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name].numpy(), expected[name].numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    detections = expected["detections"]
    assert detections.shape == (1, config.DETECTION_MAX_INSTANCES, 6)
    assert np.count_nonzero(detections[0, :, 5]) > 2      # detections to compare
    assert {name: getattr(tf.image, name) for name in TF_IMAGE} == TF_IMAGE


def test_export_core_is_built_portable_and_replaces_nothing(inference_model):
    from mrcnn.export import formats as export_formats
    core = export_formats.CoreGraph(inference_model)
    ops = {op.type for op in core.serve.get_concrete_function().graph.get_operations()}
    assert not ops & {"CropAndResize", "CombinedNonMaxSuppression"}
    assert "NonMaxSuppressionV5" in ops
    assert {name: getattr(tf.image, name) for name in TF_IMAGE} == TF_IMAGE
    assert core.keras_model is not inference_model.keras_model
    assert inference_model.keras_model.get_layer("mrcnn_detection").ops == "tf"
