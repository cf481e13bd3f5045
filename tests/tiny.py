"""Tiny configs that keep model tests fast on 2 CPU cores (the shapes sample's tiny preset)."""

from mrcnn.config import TorchvisionMaskRCNNConfig
from samples.shapes.shapes import (TinyShapesConfig, tiny_backbone,  # noqa: F401 (re-exported)
                                   tiny_backbone_shapes)


class TinyConfig(TinyShapesConfig):
    NAME = "tiny"
    # Detection pictures and the collapse check cost a second model per train() call;
    # tests/engine/test_callbacks.py turns them back on.
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


def spread_mask_logits(model, scale=20.0):
    """Scale the mask predictor's kernel and bias by ``scale``.

    A random mask head gives logits near 0, so most pasted pixels lie within float noise of
    the 0.5 threshold, and two graphs that compute the same thing (detect() and an export)
    could differ in a pixel by rounding alone. Spread logits cross 0.5 steeply instead.
    """
    layer = model.keras_model.get_layer("mrcnn_mask")
    layer.set_weights([w * scale for w in layer.get_weights()])
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


def torchvision_small_backbone(input_image, stage5=True, train_bn=False):
    """The narrow torchvision-style ResNet of tests/reference/make_torchvision_reference.py:
    2 bottlenecks per stage, inner widths 8, 16, 32, 64."""
    from mrcnn.modeling.backbone import resnet_graph
    return resnet_graph(input_image, "resnet50", train_bn=train_bn, style="torchvision",
                        blocks=(2, 2, 2, 2), widths=(8, 16, 32, 64))


def torchvision_small_shapes(image_shape):
    import numpy as np
    return np.array([[int(np.ceil(image_shape[0] / s)), int(np.ceil(image_shape[1] / s))]
                     for s in (4, 8, 16, 32, 64)])


class TorchvisionSmallConfig(TorchvisionMaskRCNNConfig):
    """TorchvisionMaskRCNNConfig at the sizes of the reference model
    (tests/reference/make_torchvision_reference.py)."""
    NAME = "torchvision_small"
    NUM_CLASSES = 5
    BACKBONE = staticmethod(torchvision_small_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(torchvision_small_shapes)
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 224
    TOP_DOWN_PYRAMID_SIZE = 32
    RPN_CONV_CHANNELS = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    MASK_HEAD_CHANNELS = 32


class TorchvisionSmallV2Config(TorchvisionSmallConfig):
    """The small reference model as maskrcnn_resnet50_fpn_v2 builds its parts."""
    NAME = "torchvision_small_v2"
    FPN_NORM = "batch"
    RPN_CONV_DEPTH = 2
    BOX_HEAD_CONVS = 4
    BOX_HEAD_FCS = 1
