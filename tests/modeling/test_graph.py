"""The graph's swappable parts, its sections' invariants and the package's import layering."""

import ast
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.data import pipeline as data
from mrcnn.modeling import graph
from mrcnn.engine import training
from mrcnn import model as modellib
from mrcnn.modeling.targets import DetectionTargetLayer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@keras.saving.register_keras_serializable(package="mrcnn_tests")
def constant_mask_loss(target_masks, target_class_ids, pred_masks):
    """A replacement mask loss: 0.5 whatever the inputs."""
    return tf.constant(0.5) + 0.0 * tf.reduce_sum(pred_masks)


def test_parts_replace_heads_sampler_and_losses(tiny_config, tiny_shapes):
    calls = []

    def mask_head(rois, feature_maps, image_meta, config):
        calls.append(config.MASK_POOL_SIZE)
        from mrcnn.modeling.heads import mask_head as default
        return default(rois, feature_maps, image_meta, config)

    sampler = DetectionTargetLayer.from_config_object(tiny_config, name="my_sampler")
    model = modellib.MaskRCNN("training", tiny_config, "/tmp/unused", mask_head=mask_head,
                              roi_sampler=sampler, losses={"mrcnn_mask_loss": constant_mask_loss})
    assert calls == [tiny_config.MASK_POOL_SIZE]
    assert model.keras_model.get_layer("my_sampler") is sampler
    batch = next(iter(data.build_input_pipeline(tiny_shapes, tiny_config, seed=0)))
    out = model.keras_model(batch, training=True)
    assert float(out["mrcnn_mask_loss"]) == 0.5
    # The layer's config names the registered replacement.
    config = model.keras_model.get_layer("mrcnn_mask_loss").get_config()
    assert "constant_mask_loss" in str(config["fn"])
    with pytest.raises(ValueError, match="unknown losses"):
        graph.Parts(losses={"mask_loss": constant_mask_loss})


def test_training_model_config_round_trips(tiny_config):
    model = modellib.MaskRCNN("training", tiny_config, "/tmp/unused")
    config = model.keras_model.get_config()
    assert config["loss_weights"] == dict(tiny_config.LOSS_WEIGHTS)
    clone = training.TrainingModel.from_config(config)
    assert clone.loss_weights == model.keras_model.loss_weights
    assert [w.shape for w in clone.weights] == [w.shape for w in model.keras_model.weights]
    # The anchors layer stores its parameters, not the anchors.
    anchors_config = model.keras_model.get_layer("anchors").get_config()
    assert len(str(anchors_config)) < 1000
    np.testing.assert_allclose(clone.get_layer("anchors").anchors,
                               model.keras_model.get_layer("anchors").anchors)


def test_graph_building_ignores_the_optimizer_and_compile_sets_weight_decay(tiny_config):
    class AdamW(type(tiny_config)):
        OPTIMIZER = "adamw"
    model = modellib.MaskRCNN("training", AdamW(), "/tmp/unused")
    assert model.keras_model.weight_decay == 0.0        # nothing chosen before compile
    model.compile(0.01, 0.9)
    assert model.keras_model.weight_decay == 0.0        # AdamW decays the weights itself
    assert isinstance(model.keras_model.optimizer, keras.optimizers.AdamW)
    sgd = modellib.MaskRCNN("training", tiny_config, "/tmp/unused")
    sgd.compile(0.01, 0.9)
    assert sgd.keras_model.weight_decay == tiny_config.WEIGHT_DECAY


def _imports(path):
    """mrcnn modules imported anywhere in a file (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mrcnn"):
            if node.module == "mrcnn":
                found.update("mrcnn." + a.name for a in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mrcnn."))
    return found


def test_no_module_imports_one_that_imports_it_back():
    package = os.path.join(ROOT, "mrcnn")
    modules = {"mrcnn." + f[:-3]: _imports(os.path.join(package, f))
               for f in os.listdir(package) if f.endswith(".py") and f != "__init__.py"}

    def reaches(start, target, seen):
        for m in modules.get(start, ()):
            if m == target or (m not in seen and reaches(m, target, seen | {m})):
                return True
        return False

    cycles = [m for m in modules if reaches(m, m, {m})]
    assert cycles == []
