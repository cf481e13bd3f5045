"""ResNet-50/101 backbone and the feature pyramid (FPN), with Matterport's layer names.

Layer names match Matterport's so that its ``.h5`` weights load by name: ``conv1``, ``bn_conv1``,
``res{stage}{block}_branch2a|2b|2c``, ``res{stage}a_branch1``, ``bn...``, ``fpn_c5p5``...``fpn_p5``.
"""

from keras import layers

from mrcnn.config import RESNET_STYLES
from mrcnn.modeling.layers import normalization

# Identity blocks in stage 4 after the conv block: b..f for ResNet-50, b..w for ResNet-101.
STAGE4_IDENTITY_BLOCKS = {"resnet50": 5, "resnet101": 22}

# Config.RESNET_STYLE: "matterport" (Keras' ResNet: the stride in the first 1x1 of a block,
# TensorFlow's "same" padding, convolutions with a bias) or "torchvision" (ResNet v1.5: the
# stride in the 3x3, PyTorch's symmetric padding of the strided 3x3 and of the stem's max pool,
# convolutions without a bias). Layer names are the same in both.


def _conv(x, filters, kernel_size, strides, name, use_bias, symmetric):
    """A convolution with "same" output size; ``symmetric`` pads (k - 1) / 2 on every side as
    PyTorch does, where TensorFlow's "same" pads a strided convolution of an even input one
    pixel more at the bottom and right than at the top and left (so the two differ)."""
    if symmetric and max(strides) > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D((kernel_size - 1) // 2, name=name + "_pad")(x)
        return layers.Conv2D(filters, (kernel_size, kernel_size), strides=strides,
                             padding="valid", name=name, use_bias=use_bias)(x)
    return layers.Conv2D(filters, (kernel_size, kernel_size), strides=strides, padding="same",
                         name=name, use_bias=use_bias)(x)


def _bottleneck(input_tensor, kernel_size, filters, stage, block, strides, use_bias, train_bn,
                norm, zero_init, style="matterport"):
    """The main path of a ResNet block: 1x1 -> kxk -> 1x1, each normalized; the stride in the
    first 1x1 (style "matterport") or in the kxk ("torchvision", see RESNET_STYLES).

    zero_init: the last normalization's scale starts at 0, so that the block starts as the
    identity of its shortcut (Goyal et al. 2017; torchvision's ``zero_init_residual``)."""
    f1, f2, f3 = filters
    conv_name = "res{}{}_branch".format(stage, block)
    bn_name = "bn{}{}_branch".format(stage, block)
    torchvision = style == "torchvision"
    x = layers.Conv2D(f1, (1, 1), strides=(1, 1) if torchvision else strides,
                      name=conv_name + "2a", use_bias=use_bias)(input_tensor)
    x = normalization(norm, train_bn, bn_name + "2a")(x)
    x = layers.Activation("relu")(x)
    x = _conv(x, f2, kernel_size, strides if torchvision else (1, 1), conv_name + "2b",
              use_bias, torchvision)
    x = normalization(norm, train_bn, bn_name + "2b")(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(f3, (1, 1), name=conv_name + "2c", use_bias=use_bias)(x)
    return normalization(norm, train_bn, bn_name + "2c", zero_gamma=zero_init)(x)


def identity_block(input_tensor, kernel_size, filters, stage, block, use_bias=True,
                   train_bn=True, norm="batch", zero_init=False, style="matterport"):
    """ResNet block without a conv on the shortcut: main path plus the input."""
    x = _bottleneck(input_tensor, kernel_size, filters, stage, block, (1, 1), use_bias,
                    train_bn, norm, zero_init, style)
    x = layers.Add()([x, input_tensor])
    return layers.Activation("relu", name="res{}{}_out".format(stage, block))(x)


def conv_block(input_tensor, kernel_size, filters, stage, block, strides=(2, 2), use_bias=True,
               train_bn=True, norm="batch", zero_init=False, style="matterport"):
    """ResNet block with a strided 1x1 conv on the shortcut (first block of a stage)."""
    x = _bottleneck(input_tensor, kernel_size, filters, stage, block, strides, use_bias,
                    train_bn, norm, zero_init, style)
    shortcut = layers.Conv2D(filters[2], (1, 1), strides=strides,
                             name="res{}{}_branch1".format(stage, block),
                             use_bias=use_bias)(input_tensor)
    shortcut = normalization(norm, train_bn, "bn{}{}_branch1".format(stage, block))(shortcut)
    x = layers.Add()([x, shortcut])
    return layers.Activation("relu", name="res{}{}_out".format(stage, block))(x)


def stem(input_image, train_bn=True, norm="batch", style="matterport", filters=64):
    """Stage 1: 7x7/2 convolution, normalization, ReLU, 3x3/2 max pool: [B, H, W, C] ->
    [B, H/4, W/4, filters]."""
    torchvision = style == "torchvision"
    x = layers.ZeroPadding2D((3, 3))(input_image)
    x = layers.Conv2D(filters, (7, 7), strides=(2, 2), name="conv1",
                      use_bias=not torchvision)(x)
    x = normalization(norm, train_bn, "bn_conv1")(x)
    x = layers.Activation("relu")(x)
    if torchvision:
        # PyTorch pads the max pool by one on every side; after the ReLU zeros act as its
        # -inf padding.
        x = layers.ZeroPadding2D((1, 1), name="pool1_pad")(x)
        return layers.MaxPooling2D((3, 3), strides=(2, 2), padding="valid")(x)
    return layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)


def resnet_graph(input_image, architecture, train_bn=True, norm="batch", zero_init=False,
                 style="matterport", blocks=None, widths=(64, 128, 256, 512)):
    """ResNet feature maps [C1, C2, C3, C4, C5] at strides 2, 4, 8, 16, 32.

    architecture: "resnet50" or "resnet101"; norm: Config.NORM (see layers.normalization);
    zero_init: Config.ZERO_INIT_RESIDUAL (each block's last normalization starts at scale 0);
    style: Config.RESNET_STYLE (see RESNET_STYLES). blocks: bottlenecks per stage 2..5 (default
    the architecture's: 3, 4, 6 or 23, 3); widths: each stage's inner width (the output is 4x;
    the stem has widths[0] channels). Smaller ones build the narrow networks that tests compare
    with torchvision's ``Bottleneck`` ResNets; layer names stay Matterport's.
    (Matterport's ``stage5=False`` is gone: the FPN always needs C5.)
    """
    if architecture not in STAGE4_IDENTITY_BLOCKS:
        raise ValueError("architecture must be resnet50 or resnet101, got {!r}".format(
            architecture))
    if style not in RESNET_STYLES:
        raise ValueError("RESNET_STYLE must be one of {}, got {!r}".format(RESNET_STYLES,
                                                                         style))
    blocks = blocks or (3, 4, STAGE4_IDENTITY_BLOCKS[architecture] + 1, 3)
    kw = {"train_bn": train_bn, "norm": norm, "zero_init": zero_init, "style": style,
          "use_bias": style != "torchvision"}
    C1 = x = stem(input_image, train_bn, norm, style, filters=widths[0])
    outputs = [C1]
    for stage, (count, width) in enumerate(zip(blocks, widths), start=2):
        filters = [width, width, 4 * width]
        # Stage 2 follows the max pool: its first block does not subsample.
        x = conv_block(x, 3, filters, stage=stage, block="a",
                       strides=(1, 1) if stage == 2 else (2, 2), **kw)
        for i in range(count - 1):
            # Blocks b, c, ... (b..w in ResNet-101's stage 4).
            x = identity_block(x, 3, filters, stage=stage, block=chr(98 + i), **kw)
        outputs.append(x)
    return outputs


def fpn_graph(C2, C3, C4, C5, pyramid_size, norm="batch", fpn_norm=None, train_bn=False):
    """Feature pyramid [P2, P3, P4, P5, P6], each with ``pyramid_size`` channels.

    Top-down: P5 = 1x1(C5); P4 = up(P5) + 1x1(C4); ... then a 3x3 conv on each; P6 subsamples P5
    (it only feeds the RPN's largest anchors). norm: Config.NORM; fpn_norm: Config.FPN_NORM,
    the normalization after every conv: None follows norm (GroupNorm, ``<conv name>_gn``, with
    NORM "group", as detectron2's GN FPN; none otherwise, as Matterport's FPN), "batch" is
    BatchNorm (``<conv name>_bn``, torchvision's v2 FPN; train_bn as TRAIN_BN), "group".
    """
    fpn_norm = fpn_norm or ("group" if norm == "group" else None)

    def conv(x, kernel, name):
        x = layers.Conv2D(pyramid_size, kernel, padding="same", name=name)(x)
        if fpn_norm is None:
            return x
        suffix = "_gn" if fpn_norm == "group" else "_bn"
        return normalization(fpn_norm, None if fpn_norm == "group" else train_bn,
                             name + suffix)(x)

    P5 = conv(C5, (1, 1), "fpn_c5p5")
    P4 = layers.Add(name="fpn_p4add")([
        layers.UpSampling2D(size=(2, 2), name="fpn_p5upsampled")(P5), conv(C4, (1, 1), "fpn_c4p4")])
    P3 = layers.Add(name="fpn_p3add")([
        layers.UpSampling2D(size=(2, 2), name="fpn_p4upsampled")(P4), conv(C3, (1, 1), "fpn_c3p3")])
    P2 = layers.Add(name="fpn_p2add")([
        layers.UpSampling2D(size=(2, 2), name="fpn_p3upsampled")(P3), conv(C2, (1, 1), "fpn_c2p2")])
    P2, P3, P4, P5 = [conv(p, (3, 3), "fpn_p{}".format(i)) for i, p in
                      zip(range(2, 6), (P2, P3, P4, P5))]
    P6 = layers.MaxPooling2D(pool_size=(1, 1), strides=2, name="fpn_p6")(P5)
    return [P2, P3, P4, P5, P6]
