"""The ResNet backbone (mrcnn.modeling.backbone): torchvision's ResNet style against torchvision's
own modules (tests/reference/resnet_reference.npz, made by
tests/reference/make_resnet_reference.py)."""

import os

import keras
import numpy as np
import pytest

from mrcnn.modeling.backbone import conv_block, stem
from references import reference_path

REFERENCE = reference_path("resnet_reference.npz")


def build(style):
    """The stem (8 filters) and a strided conv block [4, 4, 16], BatchNorm in inference."""
    image = keras.Input([32, 40, 3])
    c1 = stem(image, train_bn=False, style=style, filters=8)
    out = conv_block(c1, 3, [4, 4, 16], stage=2, block="a", strides=(2, 2),
                     use_bias=style == "matterport", train_bn=False, style=style)
    return keras.Model(image, [c1, out])


def load_torch_weights(model, ref):
    """torchvision's state dict onto the Keras layers (OIHW -> HWIO kernels)."""
    def conv(name, key):
        layer = model.get_layer(name)
        kernel = ref[key].transpose(2, 3, 1, 0)
        weights = layer.get_weights()
        layer.set_weights([kernel] + [np.zeros_like(w) for w in weights[1:]])

    def bn(name, key):
        model.get_layer(name).set_weights([ref[key + suffix] for suffix in (
            ".weight", ".bias", ".running_mean", ".running_var")])
    conv("conv1", "stem.0.weight")
    bn("bn_conv1", "stem.1")
    for branch, index in (("2a", 1), ("2b", 2), ("2c", 3)):
        conv("res2a_branch" + branch, "block.conv{}.weight".format(index))
        bn("bn2a_branch" + branch, "block.bn{}".format(index))
    conv("res2a_branch1", "block.downsample.0.weight")
    bn("bn2a_branch1", "block.downsample.1")


def test_torchvision_style_equals_torchvision_resnet():
    ref = np.load(REFERENCE)
    model = build("torchvision")
    assert not model.get_layer("conv1").use_bias
    assert model.get_layer("res2a_branch2b").strides == (2, 2)
    assert model.get_layer("res2a_branch2a").strides == (1, 1)
    load_torch_weights(model, ref)
    c1, out = model.predict_on_batch(ref["image"])
    np.testing.assert_allclose(c1, ref["stem_out"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out, ref["block_out"], rtol=1e-4, atol=1e-4)


def test_symmetric_padding_of_the_strided_3x3_matters():
    # The block's input is 8x10 (even): TensorFlow's "same" padding of the strided 3x3 would
    # pad one pixel at the bottom/right only; replacing the explicit padding by it must fail.
    ref = np.load(REFERENCE)
    assert ref["stem_out"].shape[1:3] == (8, 10)
    model = build("torchvision")
    load_torch_weights(model, ref)
    layer = model.get_layer("res2a_branch2b")
    assert layer.padding == "valid" and model.get_layer("res2a_branch2b_pad") is not None


def test_matterport_style_differs_from_torchvision_resnet():
    # The same weights in Matterport's layout (stride in the 1x1, "same" padding) compute
    # something else on an even-sized input: the switch is needed for torchvision's weights.
    ref = np.load(REFERENCE)
    model = build("matterport")
    load_torch_weights(model, ref)
    c1, out = model.predict_on_batch(ref["image"])
    assert np.abs(c1 - ref["stem_out"]).max() > 1e-2
    assert out.shape == ref["block_out"].shape
    assert np.abs(out - ref["block_out"]).max() > 1e-2


def test_unknown_resnet_style_is_refused():
    from mrcnn.modeling.backbone import resnet_graph
    with pytest.raises(ValueError, match="RESNET_STYLE"):
        resnet_graph(keras.Input([64, 64, 3]), "resnet50", style="caffe")
