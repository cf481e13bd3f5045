"""Tiny configs that keep model tests fast on 2 CPU cores (the shapes sample's tiny preset)."""

from samples.shapes.shapes import (TinyShapesConfig, tiny_backbone,  # noqa: F401 (re-exported)
                                   tiny_backbone_shapes)


class TinyConfig(TinyShapesConfig):
    NAME = "tiny"
    # Detection pictures and the collapse check cost a second model per train() call;
    # tests/test_callbacks.py turns them back on.
    TENSORBOARD_IMAGES = False
    CLASS_COLLAPSE_WARNING = False


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
