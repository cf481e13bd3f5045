"""torchvision's Mask R-CNN weights as mrcnn weights.

    python -m mrcnn.weights.convert torchvision maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth \\
        weights/mask_rcnn_torchvision_coco.h5

The output is an ``.h5`` in Matterport's layout (:mod:`mrcnn.weights.loading`): it loads with
``MaskRCNN.load_weights`` into a model of ``config.TorchvisionMaskRCNNConfig`` (or a subclass,
for a fine-tuned model with other classes) and needs no torch. torch is needed only to read a
``.pth`` (``pip install 'mrcnn-keras[torch]'``, from a checkout ``pip install '.[torch]'``), always with ``torch.load(..., weights_only=True)``;
an ``.npz`` of the state dict's arrays needs nothing.

Layout changes, tensor by tensor (:func:`torchvision_layer_weights`):

- convolution kernels OIHW -> HWIO; transposed convolutions (in, out, kh, kw) -> (kh, kw, out,
  in); linear weights transposed;
- BatchNorm: torchvision's epsilon (1e-5) differs from Keras' (1e-3); the scale absorbs it,
  gamma * sqrt(var + 1e-3) / sqrt(var + 1e-5), so the layer computes the same function;
- the box head's fc6 reads a [C, 7, 7] RoI flattened channels first: it becomes our 7x7
  ``mrcnn_class_conv1`` kernel; fc7 our 1x1 ``mrcnn_class_conv2``; the head's BatchNorm layers
  (torchvision's v1 head has none) are identities;
- the RPN's one objectness logit per anchor becomes our two-class softmax with a background
  logit of 0 (softmax([0, l])[1] = sigmoid(l)); anchors are reordered from torchvision's
  height/width ratios to our width/height RPN_ANCHOR_RATIOS;
- box deltas (dx, dy, dw, dh) -> (dy, dx, log dh, log dw): output channels permuted; the
  weights (10, 10, 5, 5) and (1, 1, 1, 1) are the preset's BBOX_STD_DEV / RPN_BBOX_STD_DEV.

Every tensor of the state dict must be used and every weight of the model set; shapes are
checked before anything is written (the ``.h5`` is written atomically).
"""

import argparse
import math
import os
import re
import sys
import tempfile
import zipfile

import numpy as np

# The architectures the converter knows (each built in mrcnn by its Config, see
# torchvision_config).
ARCHITECTURES = ("maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2")

# Key names of torchvision checkpoints before 0.13 (the published COCO weights use them) ->
# the current ones.
_LEGACY_KEYS = [
    (re.compile(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.(weight|bias)$"),
     r"backbone.fpn.\1_blocks.\2.0.\3"),
    (re.compile(r"^rpn\.head\.conv\.(weight|bias)$"), r"rpn.head.conv.0.0.\1"),
    (re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$"),
     lambda m: "roi_heads.mask_head.{}.0.{}".format(int(m.group(1)) - 1, m.group(2))),
]

# Bookkeeping tensors that hold no weight.
_IGNORED = re.compile(r"\.num_batches_tracked$")

# torchvision's aspect ratios (height / width) in its anchor order.
TORCHVISION_ASPECT_RATIOS = (0.5, 1.0, 2.0)
# torchvision's (x1, y1, x2, y2) boxes and (dx, dy, dw, dh) deltas <-> our (y1, x1, y2, x2) and
# (dy, dx, log dh, log dw): the same swap both ways.
XYXY = [1, 0, 3, 2]


class ConversionError(ValueError):
    """A state dict that does not fit the model, with the tensors named."""


def modern_keys(state_dict):
    """The state dict with pre-0.13 torchvision key names renamed to the current ones."""
    renamed = {}
    for key, value in state_dict.items():
        for pattern, replacement in _LEGACY_KEYS:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed


def read_state_dict(path):
    """{name: float32 array} from a torchvision ``.pth`` (torch, ``weights_only=True``) or
    an ``.npz`` of the same names. A training checkpoint's ``model`` entry is taken."""
    if not os.path.isfile(path):
        raise FileNotFoundError("no state dict file {!r}".format(path))
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: np.asarray(data[k]) for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ConversionError("cannot read {!r} as an .npz state dict: {}".format(
                path, e)) from e
    try:
        import torch
    except ImportError as e:
        raise ImportError("reading a .pth needs torch: pip install 'mrcnn-keras[torch]' (from a "
                          "checkout: '.[torch]'; or torch alone), or save the state dict as "
                          "an .npz of arrays") from e
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # torch raises RuntimeError, EOFError, UnpicklingError...
        raise ConversionError("cannot read {!r} as a torch state dict (truncated or not a "
                              "checkpoint?): {}: {}".format(path, type(e).__name__, e)) from e
    if isinstance(loaded, dict) and "model" in loaded and isinstance(loaded["model"], dict):
        loaded = loaded["model"]
    if not isinstance(loaded, dict):
        raise ConversionError("{!r} holds a {}, not a state dict".format(
            path, type(loaded).__name__))
    skipped = sorted(k for k, v in loaded.items() if not hasattr(v, "detach"))
    if skipped:
        print("{}: entries that are not tensors, not converted: {}".format(
            path, ", ".join(map(str, skipped))))
    # float(): bfloat16 and float16 tensors have no NumPy counterpart or lose nothing.
    return {k: v.detach().cpu().float().numpy() if v.is_floating_point() else
            v.detach().cpu().numpy() for k, v in loaded.items() if hasattr(v, "detach")}


def _hwio(kernel):
    return np.ascontiguousarray(np.transpose(kernel, (2, 3, 1, 0)))


class _Weights:
    """The converted weights by mrcnn layer name: ("plain", arrays), ("bn", (gamma, beta,
    mean, var)) to fold with the layer's epsilon, or ("identity_bn", channels); with the
    source tensor names of each, for messages."""

    def __init__(self, state_dict):
        self.state = state_dict
        self.used = set()
        self.layers = {}

    def take(self, key):
        if key not in self.state:
            raise ConversionError("the state dict has no tensor {!r} (is it torchvision's "
                                  "maskrcnn_resnet50_fpn?)".format(key))
        self.used.add(key)
        return np.asarray(self.state[key], dtype=np.float32)

    def add(self, layer, kind, value, sources):
        self.layers[layer] = (kind, value, list(sources))

    def conv(self, layer, prefix, bias=True):
        """bias: True (the tensor's), False (our layer has none), "zeros" (torchvision's
        convolution before a BatchNorm has none; ours has one, set to 0)."""
        kernel = _hwio(self.take(prefix + ".weight"))
        sources = [prefix + ".weight"]
        arrays = [kernel]
        if bias == "zeros":
            arrays.append(np.zeros((kernel.shape[-1],), np.float32))
        elif bias:
            arrays.append(self.take(prefix + ".bias"))
            sources.append(prefix + ".bias")
        self.add(layer, "plain", arrays, sources)

    def batch_norm(self, layer, prefix):
        names = [prefix + s for s in (".weight", ".bias", ".running_mean", ".running_var")]
        self.add(layer, "bn", [self.take(n) for n in names], names)


def _backbone(w, torch_layers):
    """ResNet body: conv1/bn1 and layer{1..4}.{n} bottlenecks -> Matterport's names."""
    w.conv("conv1", "backbone.body.conv1", bias=False)
    w.batch_norm("bn_conv1", "backbone.body.bn1")
    block_re = re.compile(r"^backbone\.body\.layer(\d)\.(\d+)\.")
    blocks = sorted({(int(m.group(1)), int(m.group(2))) for m in map(block_re.match,
                                                                    torch_layers) if m})
    for stage, index in blocks:
        prefix = "backbone.body.layer{}.{}".format(stage, index)
        name = "{}{}".format(stage + 1, chr(97 + index))
        for k, branch in enumerate("abc", start=1):
            w.conv("res{}_branch2{}".format(name, branch), "{}.conv{}".format(prefix, k),
                   bias=False)
            w.batch_norm("bn{}_branch2{}".format(name, branch), "{}.bn{}".format(prefix, k))
        if prefix + ".downsample.0.weight" in w.state:
            w.conv("res{}_branch1".format(name), prefix + ".downsample.0", bias=False)
            w.batch_norm("bn{}_branch1".format(name), prefix + ".downsample.1")


def _fpn(w, v2):
    """v2: each convolution without a bias, then BatchNorm (``<conv>_bn``)."""
    for i in range(4):
        for layer, block in (("fpn_c{0}p{0}".format(i + 2), "inner_blocks"),
                             ("fpn_p{}".format(i + 2), "layer_blocks")):
            prefix = "backbone.fpn.{}.{}".format(block, i)
            w.conv(layer, prefix + ".0", bias="zeros" if v2 else True)
            if v2:
                w.batch_norm(layer + "_bn", prefix + ".1")


def _anchor_order(anchor_ratios):
    """For each of our anchors (width/height ratio), torchvision's anchor index."""
    order = []
    for ratio in anchor_ratios:
        matches = [j for j, r in enumerate(TORCHVISION_ASPECT_RATIOS)
                   if math.isclose(r, 1.0 / float(ratio), rel_tol=1e-6)]
        if not matches:
            raise ConversionError(
                "RPN_ANCHOR_RATIOS {} are not torchvision's anchors (height/width {} = "
                "width/height [2, 1, 0.5])".format(list(anchor_ratios),
                                                   list(TORCHVISION_ASPECT_RATIOS)))
        order.append(matches[0])
    return order


def _rpn(w, anchor_ratios):
    w.conv("rpn_conv_shared", "rpn.head.conv.0.0")
    depth = 1
    while "rpn.head.conv.{}.0.weight".format(depth) in w.state:   # v2: 2 convolutions
        depth += 1
        w.conv("rpn_conv_shared_{}".format(depth), "rpn.head.conv.{}.0".format(depth - 1))
    logits = w.take("rpn.head.cls_logits.weight")[:, :, 0, 0]      # [A, C]
    logit_bias = w.take("rpn.head.cls_logits.bias")                 # [A]
    deltas = w.take("rpn.head.bbox_pred.weight")[:, :, 0, 0]       # [4A, C]
    delta_bias = w.take("rpn.head.bbox_pred.bias")
    order = _anchor_order(anchor_ratios)
    if logits.shape[0] != len(order):
        raise ConversionError("rpn.head.cls_logits has {} anchors per position, "
                              "RPN_ANCHOR_RATIOS {}".format(logits.shape[0], len(order)))
    channels = logits.shape[1]
    class_kernel = np.zeros((channels, 2 * len(order)), np.float32)
    class_bias = np.zeros((2 * len(order),), np.float32)
    # Per anchor [background, foreground]: a background logit of 0.
    class_kernel[:, 1::2] = logits[order].T
    class_bias[1::2] = logit_bias[order]
    rows = [4 * a + c for a in order for c in XYXY]
    w.add("rpn_class_raw", "plain", [class_kernel[None, None], class_bias],
          ["rpn.head.cls_logits.weight", "rpn.head.cls_logits.bias"])
    w.add("rpn_bbox_pred", "plain", [deltas[rows].T[None, None].copy(), delta_bias[rows]],
          ["rpn.head.bbox_pred.weight", "rpn.head.bbox_pred.bias"])


def _box_head(w, v2):
    """v1: TwoMLPHead (fc6, fc7); v2: FastRCNNConvFCHead (4 x conv + BatchNorm, one linear
    layer, ``box_head.5``)."""
    first = "roi_heads.box_head.5" if v2 else "roi_heads.box_head.fc6"
    if v2:
        for i in range(4):
            prefix = "roi_heads.box_head.{}".format(i)
            w.conv("mrcnn_box_conv{}".format(i + 1), prefix + ".0", bias="zeros")
            w.batch_norm("mrcnn_box_bn{}".format(i + 1), prefix + ".1")
    fc6 = w.take(first + ".weight")                                 # [out, C * P * P]
    channels = w.state["backbone.fpn.layer_blocks.0.0.weight"].shape[0]
    pool = int(round(math.sqrt(fc6.shape[1] / channels)))
    if channels * pool * pool != fc6.shape[1]:
        raise ConversionError("{}.weight {} does not read a [{}, P, P] RoI".format(
            first, fc6.shape, channels))
    # PyTorch flattens [C, P, P] channels first: reshaping restores the kernel's axes.
    kernel = fc6.reshape(fc6.shape[0], channels, pool, pool)
    w.add("mrcnn_class_conv1", "plain", [_hwio(kernel), w.take(first + ".bias")],
          [first + ".weight", first + ".bias"])
    w.add("mrcnn_class_bn1", "identity_bn", fc6.shape[0], [])
    if not v2:
        fc7 = w.take("roi_heads.box_head.fc7.weight")
        w.add("mrcnn_class_conv2", "plain", [fc7.T[None, None].copy(),
                                             w.take("roi_heads.box_head.fc7.bias")],
              ["roi_heads.box_head.fc7.weight", "roi_heads.box_head.fc7.bias"])
        w.add("mrcnn_class_bn2", "identity_bn", fc7.shape[0], [])
    scores = w.take("roi_heads.box_predictor.cls_score.weight")     # [classes, fc]
    w.add("mrcnn_class_logits", "plain",
          [scores.T.copy(), w.take("roi_heads.box_predictor.cls_score.bias")],
          ["roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias"])
    deltas = w.take("roi_heads.box_predictor.bbox_pred.weight")     # [classes * 4, fc]
    bias = w.take("roi_heads.box_predictor.bbox_pred.bias")
    rows = [4 * c + k for c in range(deltas.shape[0] // 4) for k in XYXY]
    w.add("mrcnn_bbox_fc", "plain", [deltas[rows].T.copy(), bias[rows]],
          ["roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias"])


def _mask_head(w, v2):
    """v1: convolutions with a bias, no normalization (identity BatchNorm here); v2:
    convolutions without a bias, then BatchNorm."""
    for i in range(4):
        prefix = "roi_heads.mask_head.{}".format(i)
        w.conv("mrcnn_mask_conv{}".format(i + 1), prefix + ".0", bias="zeros" if v2 else True)
        if v2:
            w.batch_norm("mrcnn_mask_bn{}".format(i + 1), prefix + ".1")
        else:
            w.add("mrcnn_mask_bn{}".format(i + 1), "identity_bn",
                  w.state[prefix + ".0.weight"].shape[0], [])
    deconv = w.take("roi_heads.mask_predictor.conv5_mask.weight")   # [in, out, kh, kw]
    # (in, out, kh, kw) -> Keras' (kh, kw, out, in): the same axis order as a kernel's.
    w.add("mrcnn_mask_deconv", "plain",
          [_hwio(deconv), w.take("roi_heads.mask_predictor.conv5_mask.bias")],
          ["roi_heads.mask_predictor.conv5_mask.weight",
           "roi_heads.mask_predictor.conv5_mask.bias"])
    w.conv("mrcnn_mask", "roi_heads.mask_predictor.mask_fcn_logits")


def architecture_of(state_dict):
    """"maskrcnn_resnet50_fpn" or "maskrcnn_resnet50_fpn_v2" (a 4-conv box head with
    BatchNorm) from a state dict's names; ConversionError for other torchvision detectors."""
    keys = set(state_dict)
    if any(k.startswith("roi_heads.keypoint") for k in keys):
        raise ConversionError("this is a torchvision Keypoint R-CNN, not a Mask R-CNN")
    if not any(k.startswith("roi_heads.mask_") for k in keys):
        raise ConversionError("the state dict has no mask head (roi_heads.mask_head...): a "
                              "Faster R-CNN, not a Mask R-CNN?")
    if not any(k.startswith("backbone.body.") for k in keys):
        raise ConversionError("the state dict has no backbone.body tensors: not a torchvision "
                              "detection model")
    if any(k.startswith("roi_heads.box_head.0.") for k in keys):
        return "maskrcnn_resnet50_fpn_v2"
    return "maskrcnn_resnet50_fpn"


def torchvision_layer_weights(state_dict, anchor_ratios=(2, 1, 0.5)):
    """torchvision Mask R-CNN state dict (v1 or v2, see :func:`architecture_of`) -> {mrcnn
    layer name: (kind, value, sources)}.

    anchor_ratios: the model's RPN_ANCHOR_RATIOS (width/height). kind "plain": value is the
    layer's weight list; "bn": (gamma, beta, mean, var) with torchvision's epsilon; and
    "identity_bn": value is a channel count. Raises ConversionError naming any tensor left
    unused or missing.
    """
    state = modern_keys(state_dict)
    v2 = architecture_of(state) == "maskrcnn_resnet50_fpn_v2"
    w = _Weights(state)
    _backbone(w, state)
    _fpn(w, v2)
    _rpn(w, anchor_ratios)
    _box_head(w, v2)
    _mask_head(w, v2)
    unused = sorted(k for k in state if k not in w.used and not _IGNORED.search(k))
    if unused:
        raise ConversionError("{} tensors of the state dict have no place in mrcnn's Mask "
                              "R-CNN: {}".format(len(unused), ", ".join(unused[:10]) +
                                                 (" ..." if len(unused) > 10 else "")))
    return w.layers


def _layer_arrays(layer, kind, value, torch_eps):
    """The layer's weight list from a converted entry."""
    if kind == "plain":
        return value
    # The heads' BatchNorm layers sit in an RoiDistributed wrapper.
    eps = float(getattr(layer, "layer", layer).epsilon)
    if kind == "identity_bn":
        ones = np.ones((value,), np.float32)
        return [np.full((value,), math.sqrt(1.0 + eps), np.float32), 0 * ones, 0 * ones, ones]
    gamma, beta, mean, var = (np.asarray(v, np.float64) for v in value)
    gamma = gamma * np.sqrt(var + eps) / np.sqrt(var + torch_eps)
    return [a.astype(np.float32) for a in (gamma, beta, mean, var)]


def load_torchvision_state_dict(keras_model, state_dict, anchor_ratios=(2, 1, 0.5),
                                torch_bn_epsilon=1e-5):
    """Set a Keras Mask R-CNN (``MaskRCNN.keras_model``) from a torchvision state dict.

    Every weight of the model must come from the state dict and every tensor must be used;
    all shapes are checked before any weight is set. Raises ConversionError naming them.
    """
    from mrcnn.weights import loading as weights_lib

    converted = torchvision_layer_weights(state_dict, anchor_ratios)
    owners = {layer.name: layer for _, layer in weights_lib.weight_owners(keras_model)}
    missing = sorted(set(owners) - set(converted))
    extra = sorted(set(converted) - set(owners))
    problems = []
    if missing:
        problems.append("the state dict has nothing for the model's layers {}".format(
            ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")))
    if extra:
        problems.append("the model has no layers {}".format(", ".join(
            "{} (from {})".format(name, ", ".join(converted[name][2]) or "no tensor")
            for name in extra[:10]) + (" ..." if len(extra) > 10 else "")))
    values = {}
    for name, (kind, value, sources) in converted.items():
        if name not in owners:
            continue
        layer = owners[name]
        arrays = _layer_arrays(layer, kind, value, torch_bn_epsilon)
        shapes = [tuple(v.shape) for v in layer.weights]
        if [tuple(a.shape) for a in arrays] != shapes:
            problems.append("{} ({}): shapes {} do not fit the layer's {}".format(
                ", ".join(sources) or name, name, [tuple(a.shape) for a in arrays], shapes))
        values[name] = arrays
    if problems:
        raise ConversionError("; ".join(problems))
    for name, arrays in values.items():
        owners[name].set_weights(arrays)
    return sorted(values)


def torchvision_config(arch="maskrcnn_resnet50_fpn"):
    """The Config instance that builds ``arch`` in mrcnn."""
    from mrcnn.config import TorchvisionMaskRCNNConfig, TorchvisionMaskRCNNV2Config

    configs = {"maskrcnn_resnet50_fpn": TorchvisionMaskRCNNConfig,
               "maskrcnn_resnet50_fpn_v2": TorchvisionMaskRCNNV2Config}
    if arch not in configs:
        raise ConversionError("unknown architecture {!r}; known: {}".format(
            arch, ", ".join(ARCHITECTURES)))
    return configs[arch]()


def convert_torchvision(in_path, out_path, arch=None, config=None):
    """Convert a torchvision Mask R-CNN ``.pth`` (or ``.npz``) into an mrcnn ``.h5``.

    arch: what the file must hold (None: either architecture, told by its names); config:
    the Config the weights are for (default ``TorchvisionMaskRCNNConfig`` or ``...V2Config``
    by the architecture; a subclass with NUM_CLASSES of a fine-tuned model). The ``.h5`` is
    written only when every tensor fits. Returns the config.
    """
    from mrcnn import model as modellib

    state_dict = read_state_dict(in_path)
    if config is None:
        try:
            found = architecture_of(modern_keys(state_dict))
        except ConversionError as e:
            raise ConversionError("{}: {}".format(in_path, e)) from None
        if arch is not None and found != arch:
            raise ConversionError("{}: a {} state dict, not {} (--arch)".format(
                in_path, found, arch))
        config = torchvision_config(found)
    with tempfile.TemporaryDirectory() as model_dir:
        model = modellib.MaskRCNN("inference", config, model_dir)
        try:
            load_torchvision_state_dict(model.keras_model, state_dict,
                                        config.RPN_ANCHOR_RATIOS)
        except ConversionError as e:
            raise ConversionError("{}: {}".format(in_path, e)) from None
        model.save_weights(out_path)
    return config


def main(argv=None):
    """``python -m mrcnn.weights.convert torchvision IN OUT [--arch A] [--config module:Class]``."""
    parser = argparse.ArgumentParser(prog="python -m mrcnn.weights.convert",
                                     description="Convert other frameworks' Mask R-CNN "
                                                 "weights into mrcnn .h5 weights.")
    sub = parser.add_subparsers(dest="source", required=True)
    tv = sub.add_parser("torchvision", help="a torchvision Mask R-CNN state dict")
    tv.add_argument("input", help="the .pth (needs torch) or an .npz of its tensors")
    tv.add_argument("output", help="the .h5 to write")
    tv.add_argument("--arch", default=None, choices=ARCHITECTURES,
                    help="the torchvision model the file must hold (default: told by its "
                         "tensor names)")
    tv.add_argument("--config", default=None,
                    help="module:ConfigClass of the model (default: TorchvisionMaskRCNNConfig "
                         "or TorchvisionMaskRCNNV2Config, by the architecture the tensor "
                         "names tell)")
    args = parser.parse_args(argv)
    from mrcnn.config import load_config_class

    try:
        config = load_config_class(args.config)() if args.config else None
        config = convert_torchvision(args.input, args.output, args.arch, config)
    except (ConversionError, FileNotFoundError, ImportError) as e:
        print("error: {}".format(e), file=sys.stderr)
        return 2
    print("wrote {} (load it into {})".format(args.output, type(config).__name__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
