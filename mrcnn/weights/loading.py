"""Weight files in Matterport's Keras-2 ``.h5`` layout, read and written with h5py.

Layout: the root (or its ``model_weights`` group) has an attribute ``layer_names``; each layer
group has an attribute ``weight_names`` ("<layer>/<variable>:0") and holds one dataset per name.
A nested model (``rpn_model``) is one group whose weight names carry its sublayers' names. mrcnn
writes its own checkpoints in the same layout, so one loader serves Matterport's
``mask_rcnn_coco.h5`` and our checkpoints. Nothing in a weights file is ever executed.
"""

import os
import tempfile

import h5py
import keras
import numpy as np


def _decode(names):
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names]


def weight_owners(model):
    """(owner_name, layer) for every layer that holds weights, nested models flattened.

    owner_name is the file group the layer's weights live in: its own name, or the nested
    model's name for sublayers of a nested model (e.g. ``rpn_model``).
    """
    owners = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            owners.extend((layer.name, sub) for sub in layer.layers if sub.weights)
        elif layer.weights:
            owners.append((layer.name, layer))
    return owners


def _variable_key(layer_name, variable):
    """"<layer>/<variable>" without the ":0" suffix, as Keras 2 named it."""
    return "{}/{}".format(layer_name, variable.name.split("/")[-1].split(":")[0])


def save_weights_h5(model, filepath):
    """Write the model's weights in Matterport's layout, atomically (temp file + rename)."""
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    groups = {}
    for owner, layer in weight_owners(model):
        groups.setdefault(owner, []).extend(
            (_variable_key(layer.name, v), np.asarray(v.numpy())) for v in layer.weights)
    fd, tmp = tempfile.mkstemp(suffix=".h5.tmp", dir=directory)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = np.array([n.encode("utf8") for n in groups])
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = keras.__version__.encode("utf8")
            for owner, variables in groups.items():
                g = f.create_group(owner)
                g.attrs["weight_names"] = np.array([(k + ":0").encode("utf8")
                                                    for k, _ in variables])
                for key, value in variables:
                    g.create_dataset(key + ":0", data=value)
        os.replace(tmp, filepath)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_weights_h5(filepath):
    """{owner group name: [(weight name without ':0', array), ...]} from a Keras-2 .h5 file."""
    try:
        f = h5py.File(filepath, "r")
    except OSError as e:
        raise OSError("cannot read weights file {!r}: {}".format(filepath, e)) from e
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ValueError("{!r} is not a Keras-2 style weights file (no 'layer_names' "
                             "attribute)".format(filepath))
        groups = {}
        for name in _decode(root.attrs["layer_names"]):
            g = root[name]
            names = _decode(g.attrs.get("weight_names", []))
            groups[name] = [(n.split(":")[0], np.asarray(g[n])) for n in names]
        return groups


def file_num_classes(filepath):
    """NUM_CLASSES of the model a weights file was saved from (the width of its
    ``mrcnn_class_logits`` bias), or None when it has no such layer."""
    try:
        f = h5py.File(filepath, "r")
    except OSError:
        return None      # not an .h5: load_weights_h5 says so
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "mrcnn_class_logits" not in root:
            return None
        group = root["mrcnn_class_logits"]
        names = [n for n in _decode(group.attrs.get("weight_names", [])) if "bias" in n]
        return int(group[names[0]].shape[0]) if names else None


def resnet_depth(layer_names):
    """"resnet50" or "resnet101" from the stage-4 blocks among layer names, else None."""
    blocks = {n[4] for n in layer_names if n.startswith("res4") and n.endswith("_branch2a")}
    return {6: "resnet50", 23: "resnet101"}.get(len(blocks))


def adapt_conv1_kernel(kernel, channels):
    """An RGB ``conv1`` kernel [h, w, 3, filters] for an input of ``channels`` channels.

    The rule keeps the response to a gray image the same: whatever the channel count, an
    image whose channels are all equal gives the RGB model's output on that gray image.
    1 channel: the sum of the RGB kernels. N > 3: the RGB kernels for the first three
    channels and their mean for the others, all scaled by 3 / N (RGB-D, multispectral).
    2 channels: the mean kernel, scaled by 3 / 2, for both.
    """
    kernel = np.asarray(kernel)
    if kernel.shape[2] != 3:
        raise ValueError("conv1 adaptation starts from an RGB kernel, got {} input channels"
                         .format(kernel.shape[2]))
    mean = kernel.mean(axis=2, keepdims=True)
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    if channels == 2:
        return np.concatenate([mean, mean], axis=2) * 1.5
    extra = [mean] * (channels - 3)
    return np.concatenate([kernel] + extra, axis=2) * (3.0 / channels)


def _fit_value(layer, variable, key, value, filepath):
    """The stored ``value`` for ``variable``, adapted to the model, or a ValueError.

    conv1's kernel is adapted from RGB when the model's input has another channel count.
    """
    shape = tuple(variable.shape)
    if tuple(value.shape) == shape:
        return value
    if layer.name == "conv1" and value.ndim == 4 and value.shape[2] == 3 and \
            value.shape[:2] + value.shape[3:] == shape[:2] + shape[3:]:
        return adapt_conv1_kernel(value, shape[2]).astype(value.dtype)
    raise ValueError(
        "layer {!r}: weight {!r} has shape {} in {!r} but {} in the model. If the number of "
        "classes differs, pass exclude=[\"mrcnn_class_logits\", \"mrcnn_bbox_fc\", "
        "\"mrcnn_bbox\", \"mrcnn_mask\"]".format(layer.name, key, tuple(value.shape),
                                                  filepath, shape))


def load_weights_h5(model, filepath, by_name=False, exclude=None, skip_mismatch=()):
    """Assign the weights in ``filepath`` to the model's layers of the same name.

    by_name: False requires every weight layer of the model to be in the file; True loads the
        layers found and leaves the others as they are (Matterport's ``by_name=True``).
    exclude: layer names to skip (e.g. the class-specific heads when NUM_CLASSES differs).
    A file of another ResNet depth (ResNet-101 weights for a ResNet-50 model) is refused.
    conv1 is adapted from RGB when the model takes another number of channels (see
    :func:`adapt_conv1_kernel`; exclude=["conv1"] skips it instead).
    skip_mismatch: layer names that are left as they are (and reported) when their tensors do
        not fit, instead of raising (e.g. a class-aware mrcnn_mask in a class-agnostic model).
    Every tensor is checked before any is assigned: an error leaves the model unchanged.
    Raises ValueError naming the layer and both shapes when a tensor does not fit.
    Returns the list of layer names that were loaded.
    """
    exclude = set(exclude or ())
    groups = read_weights_h5(filepath)
    owners = weight_owners(model)
    ours = resnet_depth([layer.name for _, layer in owners])
    theirs = resnet_depth([n.split("/")[0] for items in groups.values() for n, _ in items])
    if ours and theirs and ours != theirs:
        raise ValueError("{!r} holds {} backbone weights but the model's BACKBONE is {}; "
                         "set BACKBONE = {!r} in the config".format(filepath, theirs, ours,
                                                                   theirs))
    assignments, loaded = [], []
    for owner, layer in owners:
        if layer.name in exclude or owner in exclude:
            continue
        if owner not in groups:
            if by_name:
                continue
            raise ValueError("{!r} has no weights for layer {!r}; use by_name=True to load "
                             "a partial file".format(filepath, layer.name))
        stored = dict(groups[owner])
        layer_assignments = []
        for v in layer.weights:
            key = _variable_key(layer.name, v)
            if key not in stored:
                raise ValueError("layer {!r}: {!r} has no tensor {!r} (it has {})".format(
                    layer.name, filepath, key, sorted(stored)))
            try:
                layer_assignments.append((v, _fit_value(layer, v, key, stored[key], filepath)))
            except ValueError as e:
                if layer.name not in skip_mismatch:
                    raise
                print("Skipping layer {!r}, which does not fit: {}".format(layer.name, e))
                break
        else:
            assignments.extend(layer_assignments)
            loaded.append(layer.name)
    for v, value in assignments:
        v.assign(value)
    return loaded


# Blocks per stage of keras.applications' ResNets (stages 2..5).
RESNET_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


def imagenet_layer_map(architecture):
    """{keras.applications layer name: mrcnn (Matterport) layer name} for a ResNet.

    keras.applications names blocks ``conv{stage}_block{n}_{k}_conv`` / ``_bn`` with k = 0 for
    the shortcut and 1..3 for the main path; Matterport names them ``res{stage}{letter}_branch1``
    and ``res{stage}{letter}_branch2a..c`` (``bn...`` for BatchNorm), letters a, b, c, ...
    """
    if architecture not in RESNET_BLOCKS:
        raise ValueError("ImageNet weights exist for resnet50 and resnet101, not {!r}".format(
            architecture))
    mapping = {"conv1_conv": "conv1", "conv1_bn": "bn_conv1"}
    for stage, blocks in zip(range(2, 6), RESNET_BLOCKS[architecture]):
        for n in range(1, blocks + 1):
            letter = chr(ord("a") + n - 1)
            for k, branch in ((0, "1"), (1, "2a"), (2, "2b"), (3, "2c")):
                if k == 0 and n > 1:
                    continue  # only the first block of a stage has a shortcut conv
                src = "conv{}_block{}_{}".format(stage, n, k)
                mapping[src + "_conv"] = "res{}{}_branch{}".format(stage, letter, branch)
                mapping[src + "_bn"] = "bn{}{}_branch{}".format(stage, letter, branch)
    return mapping


def imagenet_weights_file(architecture):
    """The name of keras.applications' ImageNet file of a ResNet without its top, e.g.
    ``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``."""
    return "{}_weights_tf_dim_ordering_tf_kernels_notop.h5".format(architecture)


def imagenet_source_model(architecture, weights="imagenet"):
    """The keras.applications ResNet (no top) whose weights initialize the backbone.

    weights="imagenet" reads Keras' file (:func:`imagenet_weights_file`) from ``weights/`` or
    ``$MRCNN_WEIGHTS_DIR`` when it is there (``utils.find_weights``), else lets Keras take it from
    its cache (``~/.keras/models``) or download it (where the network allows); None gives the
    randomly initialized model (used by the tests to check the mapping).
    """
    from mrcnn import utils

    build = {"resnet50": keras.applications.ResNet50,
             "resnet101": keras.applications.ResNet101}[architecture]
    if weights == "imagenet":
        local = utils.find_weights(imagenet_weights_file(architecture))
        if os.path.isfile(local):
            weights = local
    return build(weights=weights, include_top=False, input_shape=(None, None, 3))


def load_imagenet_weights(model, architecture, source=None):
    """Copy ImageNet ResNet weights onto the backbone layers of ``model``.

    source: a keras.applications ResNet to copy from (default: downloaded by Keras). Every
    backbone layer must receive its tensors; shapes are checked before anything is assigned,
    and conv1 is adapted when the model does not take RGB (:func:`adapt_conv1_kernel`).
    Returns the mrcnn layer names that were set.
    """
    source = source if source is not None else imagenet_source_model(architecture)
    ours = {layer.name: layer for _, layer in weight_owners(model)}
    assignments, loaded = [], []
    for src_name, dst_name in imagenet_layer_map(architecture).items():
        src = source.get_layer(src_name)
        if dst_name not in ours:
            raise ValueError("the model has no layer {!r} for ImageNet layer {!r}; is its "
                             "BACKBONE {!r}?".format(dst_name, src_name, architecture))
        dst = ours[dst_name]
        for v, value in zip(dst.weights, src.weights):
            assignments.append((v, _fit_value(dst, v, v.name, np.asarray(value.numpy()),
                                              "ImageNet " + architecture)))
        loaded.append(dst_name)
    for v, value in assignments:
        v.assign(value)
    return loaded
