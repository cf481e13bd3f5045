"""Tiny configs that keep model tests fast on 2 CPU cores (the shapes sample's tiny preset)."""

from samples.shapes.shapes import (TinyShapesConfig, tiny_backbone,  # noqa: F401 (re-exported)
                                   tiny_backbone_shapes)


class TinyConfig(TinyShapesConfig):
    NAME = "tiny"
    # Detection pictures and the collapse check cost a second model per train() call;
    # tests/test_callbacks.py turns them back on.
    TENSORBOARD_IMAGES = False
    CLASS_COLLAPSE_WARNING = False
