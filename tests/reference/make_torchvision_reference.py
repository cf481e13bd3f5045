"""Make tests/reference/torchvision_maskrcnn_reference.npz and
torchvision_maskrcnn_v2_reference.npz: small torchvision Mask R-CNNs' state dicts and the outputs of
each of their stages, for tests/weights/test_convert.py.

Needs torch and torchvision (never installed by ``make test``); run once by a developer:

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch torchvision numpy
    /tmp/tv/bin/python tests/reference/make_torchvision_reference.py

The models have torchvision's module structure (``ResNet`` of ``Bottleneck`` blocks,
``BackboneWithFPN``, ``RPNHead``, ``RoIHeads`` with ``TwoMLPHead``, ``MaskRCNNHeads``,
``MaskRCNNPredictor``; for v2 as ``maskrcnn_resnet50_fpn_v2`` builds them: BatchNorm in the FPN
and the mask head, a 2-conv ``RPNHead``, a ``FastRCNNConvFCHead`` of 4 convolutions and one
linear layer) at 1/8 of the widths and 2 blocks per stage, with seeded random
weights and BatchNorm statistics (so that the BatchNorm conversion matters). Weights are
drawn with a spread that makes scores differ clearly: torchvision's own initialisation
gives near-equal RPN and class scores, whose order no other implementation can reproduce.
Two images (128x192 and 160x128) keep their size under min_size 128 / max_size 224 and need no
padding, so no resize enters the comparison.
"""

import os
import sys

import numpy as np
import torch
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import (FastRCNNConvFCHead, FastRCNNPredictor,
                                                      TwoMLPHead)
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.resnet import Bottleneck, ResNet

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = {"v1": os.path.join(HERE, "torchvision_maskrcnn_reference.npz"),
       "v2": os.path.join(HERE, "torchvision_maskrcnn_v2_reference.npz"),
       "resize": os.path.join(HERE, "torchvision_resize_reference.npz")}
# Image sizes whose resize to (800, 1333) torchvision's transform is recorded for.
RESIZE_SHAPES = [(480, 640), (427, 640), (640, 480), (333, 500), (375, 500), (1000, 3000),
                 (200, 596), (612, 612), (500, 333), (81, 1000), (799, 1201), (1333, 800)]

# The small architecture (tests/weights/test_convert.py builds the same in mrcnn).
WIDTHS = (8, 16, 32, 64)          # inner width of stages 2..5 (outputs are 4x)
BLOCKS = (2, 2, 2, 2)
FPN_CHANNELS = 32
BOX_FC = 64
MASK_CHANNELS = 32
NUM_CLASSES = 5
MIN_SIZE, MAX_SIZE = 128, 224
IMAGE_SHAPES = [(128, 192), (160, 128)]


def small_resnet():
    """torchvision's ResNet, its stages rebuilt narrower with its own ``_make_layer``."""
    net = ResNet(Bottleneck, [1, 1, 1, 1])
    net.inplanes = WIDTHS[0]
    net.conv1 = nn.Conv2d(3, WIDTHS[0], kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(WIDTHS[0])
    net.layer1 = net._make_layer(Bottleneck, WIDTHS[0], BLOCKS[0])
    net.layer2 = net._make_layer(Bottleneck, WIDTHS[1], BLOCKS[1], stride=2)
    net.layer3 = net._make_layer(Bottleneck, WIDTHS[2], BLOCKS[2], stride=2)
    net.layer4 = net._make_layer(Bottleneck, WIDTHS[3], BLOCKS[3], stride=2)
    return net


def build_model(version="v1"):
    """The small model, as maskrcnn_resnet50_fpn ("v1") or maskrcnn_resnet50_fpn_v2 ("v2")
    assembles its parts."""
    v2 = version == "v2"
    norm = {"norm_layer": nn.BatchNorm2d} if v2 else {}
    backbone = BackboneWithFPN(
        small_resnet(), return_layers={"layer1": "0", "layer2": "1", "layer3": "2",
                                       "layer4": "3"},
        in_channels_list=[4 * w for w in WIDTHS], out_channels=FPN_CHANNELS, **norm)
    box_head = FastRCNNConvFCHead((FPN_CHANNELS, 7, 7), [FPN_CHANNELS] * 4, [BOX_FC], **norm) \
        if v2 else TwoMLPHead(FPN_CHANNELS * 7 * 7, BOX_FC)
    return MaskRCNN(
        backbone, num_classes=None, min_size=MIN_SIZE, max_size=MAX_SIZE,
        rpn_head=RPNHead(FPN_CHANNELS, 3, conv_depth=2 if v2 else 1), box_head=box_head,
        box_predictor=FastRCNNPredictor(BOX_FC, NUM_CLASSES),
        mask_head=MaskRCNNHeads(FPN_CHANNELS, [MASK_CHANNELS] * 4, 1, **norm),
        mask_predictor=MaskRCNNPredictor(MASK_CHANNELS, MASK_CHANNELS, NUM_CLASSES))


# Weight spread relative to He's: the scores wide apart, the box deltas moderate.
GAINS = {"rpn.head.cls_logits": 0.03, "rpn.head.bbox_pred": 0.006,
         "box_predictor.cls_score": 0.04, "box_predictor.bbox_pred": 0.015}


def randomize(model, generator):
    """Seeded weights: He-scaled convolutions and linears, biases and BatchNorm statistics
    far from the identity (GAINS: the RPN's and the box predictor's scores are spread wider
    so that their order is well defined, the RPN's deltas kept small)."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = module.weight
            fan_in = weight[0].numel() if not isinstance(module, nn.ConvTranspose2d) else \
                weight.shape[0] * weight[0, 0].numel()
            gain = next((g for key, g in GAINS.items() if key in name), 1.0)
            weight.data = torch.randn(weight.shape, generator=generator) * (
                gain * (2.0 / fan_in) ** 0.5)
            if module.bias is not None:
                module.bias.data = 0.1 * torch.randn(module.bias.shape, generator=generator)
        elif isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.weight.data = 0.5 + torch.rand(c, generator=generator)
            module.bias.data = 0.2 * torch.randn(c, generator=generator)
            module.running_mean.data = 0.2 * torch.randn(c, generator=generator)
            module.running_var.data = 0.5 + 1.5 * torch.rand(c, generator=generator)


def smooth_image(shape, rng):
    """A uint8 RGB image of blurred noise (features of natural images are smooth too)."""
    coarse = rng.uniform(0, 255, size=(shape[0] // 8 + 2, shape[1] // 8 + 2, 3))
    ys = np.linspace(0, coarse.shape[0] - 1.001, shape[0])
    xs = np.linspace(0, coarse.shape[1] - 1.001, shape[1])
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = (coarse[y0][:, x0] * (1 - fy) * (1 - fx) + coarse[y0 + 1][:, x0] * fy * (1 - fx) +
           coarse[y0][:, x0 + 1] * (1 - fy) * fx + coarse[y0 + 1][:, x0 + 1] * fy * fx)
    noise = rng.normal(0, 12, size=img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy().astype(np.float32)


@torch.no_grad()
def stages(model, image, exact_size=True):
    """Every stage's output for one uint8 image [H, W, 3], by name. exact_size: check that
    torchvision neither resizes nor pads it (benchmarks/torchvision_parity.py lets it pad)."""
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    images, _ = model.transform([x])
    assert images.image_sizes[0] == image.shape[:2], "no resize"
    assert not exact_size or tuple(images.tensors.shape[-2:]) == image.shape[:2], "no padding"
    features = model.backbone(images.tensors)
    feats = list(features.values())
    objectness, deltas = model.rpn.head(feats)
    anchors = model.rpn.anchor_generator(images, feats)[0]
    # [levels of (1, A, H, W)] -> [sum(H * W * A)] in (level, y, x, anchor) order.
    objectness = torch.cat([o.permute(0, 2, 3, 1).reshape(-1) for o in objectness])
    deltas = torch.cat([d.permute(0, 2, 3, 1).reshape(-1, 4) for d in deltas])
    proposals, _ = model.rpn(images, features)
    box_features = model.roi_heads.box_roi_pool(features, proposals, images.image_sizes)
    class_logits, box_regression = model.roi_heads.box_predictor(
        model.roi_heads.box_head(box_features))
    detections, _ = model.roi_heads(features, proposals, images.image_sizes)
    det = detections[0]
    mask_features = model.roi_heads.mask_roi_pool(features, [det["boxes"]],
                                                  images.image_sizes)
    mask_logits = model.roi_heads.mask_predictor(model.roi_heads.mask_head(mask_features))
    label_logits = mask_logits[torch.arange(len(det["labels"])), det["labels"]]
    final = model.transform.postprocess(detections, images.image_sizes, [image.shape[:2]])[0]
    # The end-to-end forward gives the same detections as the stages above.
    whole = model([x])[0]
    assert torch.equal(whole["boxes"], final["boxes"]) and \
        torch.equal(whole["labels"], final["labels"])
    print("  std of rpn objectness {:.3f}, deltas {:.3f}; class logits {:.3f}, deltas {:.3f}"
          .format(objectness.std().item(), deltas.std().item(), class_logits.std().item(),
                  box_regression.std().item()))
    out = {"fpn_{}".format(k): nhwc(v) for k, v in features.items()}
    out.update(
        rpn_objectness=objectness.numpy(), rpn_deltas=deltas.numpy(),
        anchors=anchors.numpy(), proposals=proposals[0].numpy(),
        class_logits=class_logits.numpy(), box_regression=box_regression.numpy(),
        boxes=final["boxes"].numpy(), labels=final["labels"].numpy().astype(np.int32),
        scores=final["scores"].numpy(), mask_logits=label_logits.numpy(),
        masks=np.packbits(final["masks"][:, 0].numpy() > 0.5, axis=-1))
    return out


def make(version):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(2026)
    model = build_model(version)
    randomize(model, generator)
    model.eval()
    rng = np.random.default_rng(7)
    arrays = {"torch_version": np.array(torch.__version__),
              "torchvision_version": np.array(torchvision.__version__)}
    for key, value in model.state_dict().items():
        arrays["state/" + key] = value.numpy()
    for i, shape in enumerate(IMAGE_SHAPES):
        image = smooth_image(shape, rng)
        arrays["image{}/image".format(i)] = image
        for name, value in stages(model, image).items():
            arrays["image{}/{}".format(i, name)] = value
        print("image {} {}: {} proposals, {} detections".format(
            i, shape, len(arrays["image{}/proposals".format(i)]),
            len(arrays["image{}/labels".format(i)])))
    np.savez_compressed(OUT[version], **arrays)
    print("wrote", OUT[version], os.path.getsize(OUT[version]), "bytes")


def make_resize():
    """torchvision's resize (``GeneralizedRCNNTransform``'s, before its normalization, which
    commutes with it): the output sizes for RESIZE_SHAPES at (800, 1333), and two resized
    smooth images at (128, 224), one scaled up and one down."""
    from torchvision.models.detection.transform import _resize_image_and_masks

    arrays = {"shapes": np.array(RESIZE_SHAPES)}
    sizes = []
    for h, w in RESIZE_SHAPES:
        out, _ = _resize_image_and_masks(torch.zeros(3, h, w), 800.0, 1333.0)
        sizes.append(out.shape[-2:])
    arrays["sizes"] = np.array(sizes)
    rng = np.random.default_rng(11)
    for name, shape in (("up", (60, 90)), ("down", (300, 500))):
        image = smooth_image(shape, rng)
        x = torch.from_numpy(image).permute(2, 0, 1).float()
        out, _ = _resize_image_and_masks(x, float(MIN_SIZE), float(MAX_SIZE))
        arrays[name + "/image"] = image
        arrays[name + "/resized"] = out.permute(1, 2, 0).numpy()
    np.savez_compressed(OUT["resize"], **arrays)
    print("wrote", OUT["resize"], os.path.getsize(OUT["resize"]), "bytes")


if __name__ == "__main__":
    for name in sys.argv[1:] or OUT:
        make_resize() if name == "resize" else make(name)
