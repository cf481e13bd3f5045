"""Weight files: Matterport's Keras-2 .h5 layout by name, exclude, errors; downloads."""

import urllib.error

import h5py
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn import utils, weights
from tiny import TinyConfig


class NineClasses(TinyConfig):
    NUM_CLASSES = 9


@pytest.fixture(scope="module")
def model():
    return modellib.MaskRCNN("inference", TinyConfig(), "/tmp/unused")


def write_matterport_h5(path, keras_model, rng, skip=(), wrap_model_weights=False):
    """Write a file the way Keras 2 saved Matterport's models, with random values.

    Returns {"<layer>/<var>": array} of what was written.
    """
    written = {}
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if wrap_model_weights else f
        groups = {}
        for owner, layer in weights.weight_owners(keras_model):
            if layer.name in skip:
                continue
            for v in layer.weights:
                key = "{}/{}".format(layer.name, v.name)
                value = rng.normal(size=tuple(v.shape)).astype(np.float32)
                groups.setdefault(owner, []).append((key, value))
                written[key] = value
        # Keras 2 stored these as fixed-length byte-string arrays.
        root.attrs["layer_names"] = np.array([n.encode() for n in groups])
        for owner, items in groups.items():
            g = root.create_group(owner)
            g.attrs["weight_names"] = np.array([(k + ":0").encode() for k, _ in items])
            for k, value in items:
                g.create_dataset(k + ":0", data=value)
    return written


def current(keras_model):
    return {"{}/{}".format(layer.name, v.name): np.asarray(v.numpy())
            for _, layer in weights.weight_owners(keras_model) for v in layer.weights}


@pytest.mark.parametrize("wrapped", [False, True])
def test_matterport_layout_loads_every_tensor_by_name(tmp_path, model, wrapped):
    path = tmp_path / "matterport.h5"
    written = write_matterport_h5(path, model.keras_model, np.random.default_rng(0),
                                  wrap_model_weights=wrapped)
    # rpn_model is one group holding its sublayers' tensors, as in Matterport's file.
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if wrapped else f
        names = [n.decode() for n in root["rpn_model"].attrs["weight_names"]]
        assert "rpn_conv_shared/kernel:0" in names and "rpn_bbox_pred/bias:0" in names
    model.load_weights(str(path), by_name=True)
    loaded = current(model.keras_model)
    assert set(loaded) == set(written)
    for key, value in written.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)


def test_exclude_leaves_excluded_layers_untouched(tmp_path):
    model = modellib.MaskRCNN("inference", NineClasses(), "/tmp/unused")
    source = modellib.MaskRCNN("inference", TinyConfig(), "/tmp/unused")   # 4 classes
    path = tmp_path / "coco_like.h5"
    written = write_matterport_h5(path, source.keras_model, np.random.default_rng(1))
    heads = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"]
    # Without exclude: a clear error naming the layer and both shapes.
    with pytest.raises(ValueError, match=r"layer 'mrcnn_class_logits'.*\(64, 4\).*\(64, 9\)"
                                         r".*exclude="):
        model.load_weights(str(path), by_name=True)
    before = current(model.keras_model)
    model.load_weights(str(path), by_name=True, exclude=heads)
    after = current(model.keras_model)
    for key in after:
        if key.split("/")[0] in heads:
            np.testing.assert_array_equal(after[key], before[key])
        else:
            np.testing.assert_array_equal(after[key], written[key])


def test_partial_file_needs_by_name_and_bad_files_are_named(tmp_path, model):
    path = tmp_path / "partial.h5"
    write_matterport_h5(path, model.keras_model, np.random.default_rng(2), skip={"fpn_p2"})
    with pytest.raises(ValueError, match="no weights for layer 'fpn_p2'.*by_name=True"):
        model.load_weights(str(path))
    model.load_weights(str(path), by_name=True)
    not_h5 = tmp_path / "not_weights.h5"
    not_h5.write_bytes(b"garbage")
    with pytest.raises(OSError, match="not_weights.h5"):
        model.load_weights(str(not_h5))


def test_saved_checkpoint_is_atomic_and_round_trips(tmp_path, model):
    path = tmp_path / "ckpt.h5"
    model.save_weights(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.h5"]   # no temp files left
    saved = current(model.keras_model)
    with h5py.File(path, "r") as f:
        assert "mrcnn_mask" in [n.decode() for n in f.attrs["layer_names"]]
    other = modellib.MaskRCNN("inference", TinyConfig(), "/tmp/unused")
    other.load_weights(str(path))
    for key, value in current(other.keras_model).items():
        np.testing.assert_array_equal(value, saved[key])


def test_download_trained_weights(tmp_path, monkeypatch):
    source = tmp_path / "served.h5"
    source.write_bytes(b"weights-bytes")
    target = tmp_path / "sub" / "mask_rcnn_coco.h5"
    utils.download_trained_weights(str(target), verbose=0, url=source.as_uri())
    assert target.read_bytes() == b"weights-bytes"

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")
    monkeypatch.setattr(utils.urllib.request, "urlopen", offline)
    target2 = tmp_path / "offline" / "mask_rcnn_coco.h5"
    with pytest.raises(utils.DownloadError, match="could not download https://github.com/"
                                                  ".*Temporary failure in name resolution"):
        utils.download_trained_weights(str(target2), verbose=0)
    assert list((tmp_path / "offline").iterdir()) == []     # nothing half-written


@pytest.mark.parametrize("architecture", ["resnet50", "resnet101"])
def test_imagenet_mapping_covers_every_backbone_tensor(architecture):
    class Backbone(TinyConfig):
        BACKBONE = architecture
        COMPUTE_BACKBONE_SHAPE = None
    model = modellib.MaskRCNN("inference", Backbone(), "/tmp/unused")
    source = weights.imagenet_source_model(architecture, weights=None)
    # Give the source distinct values so that a wrong mapping cannot pass by accident.
    rng = np.random.default_rng(3)
    for v in source.weights:
        v.assign(rng.normal(size=tuple(v.shape)).astype(np.float32))
    loaded = set(model.get_imagenet_weights(source=source))
    backbone = {l.name for l in model.get_trainable_layers()
                if l.name == "conv1" or l.name == "bn_conv1" or l.name.startswith(("res", "bn"))}
    assert loaded == backbone
    assert len(backbone) == {"resnet50": 2 + 2 * (16 * 3 + 4), "resnet101": 2 + 2 * (33 * 3 + 4)
                             }[architecture]
    mapping = weights.imagenet_layer_map(architecture)
    for src_name, dst_name in mapping.items():
        src = [np.asarray(v.numpy()) for v in source.get_layer(src_name).weights]
        dst = [np.asarray(v.numpy()) for v in model.keras_model.get_layer(dst_name).weights]
        assert len(src) == len(dst)
        for a, b in zip(src, dst):
            np.testing.assert_array_equal(a, b, err_msg=dst_name)
    assert mapping["conv4_block23_3_bn" if architecture == "resnet101" else
                   "conv4_block6_3_bn"] == ("bn4w_branch2c" if architecture == "resnet101"
                                             else "bn4f_branch2c")
