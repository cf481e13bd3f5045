"""Tiny configs that keep model tests fast on 2 CPU cores (the shapes sample's tiny preset)."""

from samples.shapes.shapes import (TinyShapesConfig, tiny_backbone,  # noqa: F401 (re-exported)
                                   tiny_backbone_shapes)


class TinyConfig(TinyShapesConfig):
    NAME = "tiny"
    # Detection pictures and the collapse check cost a second model per train() call;
    # tests/test_callbacks.py turns them back on.
    TENSORBOARD_IMAGES = False
    CLASS_COLLAPSE_WARNING = False


def shift_class_logits(model, bias, kernel_scale=1.0):
    """Add ``bias`` (one value per class) to the classifier's logits and scale its kernel.

    Random heads mostly say background: tests favour a class to have detections to compare
    (or background to have none); a small kernel keeps the scores apart.
    """
    import numpy as np
    logits = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, old_bias = logits.get_weights()
    logits.set_weights([kernel * kernel_scale, old_bias + np.asarray(bias, np.float32)])
    return model


class ExportConfig(TinyConfig):
    """One image per batch and every detection kept: what the export tests compare."""
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0


# First lines of a script run in a subprocess to prove an exported model needs no mrcnn:
# importing mrcnn there fails.
NO_MRCNN_PREAMBLE = """
import importlib.abc, sys

class NoMrcnn(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "mrcnn" or name.startswith("mrcnn."):
            raise ImportError("mrcnn must not be needed to serve the exported model")
sys.meta_path.insert(0, NoMrcnn())
"""
