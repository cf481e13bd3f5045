"""Write tests/reference/resnet_reference.npz: torchvision's ResNet stem and a strided Bottleneck.

Needs torch and torchvision (not installed by ``make test``; the tests read the committed
file). Run once from the repository root:

    python tests/reference/make_resnet_reference.py

The stem (7x7/2 conv without bias, BatchNorm, ReLU, 3x3/2 max pool with padding 1) and one
``torchvision.models.resnet.Bottleneck`` with stride 2 and a 1x1/2 downsample, narrow (8 -> 4
-> 16 channels), random weights and BatchNorm statistics, in eval mode, on an input whose
sizes stay even through the stem (32x40 -> 8x10 into the block), where PyTorch's symmetric
padding and TensorFlow's "same" padding differ for the max pool and the strided 3x3. BatchNorm eps
is Keras' 1e-3 here so that only the convolutions' layout and padding are compared.
"""

import os

import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "resnet_reference.npz")


def randomize_bn(bn, gen):
    bn.eps = 1e-3
    with torch.no_grad():
        bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(bn.num_features, generator=gen) * 0.1)
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen) * 0.1)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)


def main():
    gen = torch.Generator().manual_seed(25)
    torch.manual_seed(25)
    stem = nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8),
                         nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
    block = Bottleneck(8, 4, stride=2, downsample=nn.Sequential(
        nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16)))
    for module in list(stem.modules()) + list(block.modules()):
        if isinstance(module, nn.BatchNorm2d):
            randomize_bn(module, gen)
    stem.eval()
    block.eval()
    image = torch.randn(1, 3, 32, 40, generator=gen)
    with torch.no_grad():
        c1 = stem(image)
        out = block(c1)
    arrays = {"image": image.numpy().transpose(0, 2, 3, 1),
              "stem_out": c1.numpy().transpose(0, 2, 3, 1),
              "block_out": out.numpy().transpose(0, 2, 3, 1)}
    for prefix, module in (("stem", stem), ("block", block)):
        for name, value in module.state_dict().items():
            arrays["{}.{}".format(prefix, name)] = value.numpy()
    np.savez_compressed(OUT, **arrays)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
