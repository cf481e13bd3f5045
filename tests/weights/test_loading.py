"""Weight files: Matterport's Keras-2 .h5 layout by name, exclude, errors; downloads; weights/."""

import os
import shutil
import subprocess
import urllib.error
import warnings

import h5py
import keras
import numpy as np
import pytest

from mrcnn import model as modellib
from mrcnn import utils
from mrcnn.weights import loading as weights
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


def test_loading_a_checkpoint_whose_run_trained_another_graph_warns(tmp_path, model):
    # A from-scratch run recorded the paper's RoIAlign: its weights load into Matterport's
    # (RoIAlign has no weights), so only run_config.json can tell, and load_weights says so.
    from mrcnn.engine import recipes
    path = str(tmp_path / "mask_rcnn_tiny_0001.h5")
    model.save_weights(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.load_weights(path)            # no run_config.json: nothing to compare
    recipes.write_run_settings(str(tmp_path), {"recipe": recipes.SCRATCH, "attributes": {
        "ROI_ALIGN_SAMPLING_RATIO": 2, "ROI_ALIGN_ALIGNED": True, "LEARNING_RATE": 0.5}})
    with pytest.warns(UserWarning, match=r"ROI_ALIGN_SAMPLING_RATIO: run 2, config 0") as got:
        model.load_weights(path)
    assert "LEARNING_RATE" not in str(got[0].message)     # the run's business, not the graph's
    rebuilt = recipes.with_run_settings(TinyConfig, recipes.read_run_settings(path))()
    assert rebuilt.ROI_ALIGN_SAMPLING_RATIO == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        modellib.MaskRCNN("inference", rebuilt, "/tmp/unused").load_weights(path)
    # A record that cannot be read checks nothing: said, not passed over.
    (tmp_path / recipes.RUN_SETTINGS).write_text("{not json")
    with pytest.warns(UserWarning, match=r"run_config\.json unreadable"):
        model.load_weights(path)


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


def conv1_model(channels, filters=8):
    """A stand-in with Matterport's first layer: conv1 (7x7, stride 2) on `channels` inputs."""
    x = keras.Input((None, None, channels))
    return keras.Model(x, keras.layers.Conv2D(filters, 7, strides=2, name="conv1")(x))


def test_rgb_conv1_adapts_to_one_and_four_channels(tmp_path):
    rgb = conv1_model(3)
    rgb.get_layer("conv1").set_weights([np.random.default_rng(5).normal(
        size=(7, 7, 3, 8)).astype(np.float32), np.arange(8, dtype=np.float32)])
    path = str(tmp_path / "rgb.h5")
    weights.save_weights_h5(rgb, path)
    kernel, bias = rgb.get_layer("conv1").get_weights()

    gray = conv1_model(1)
    weights.load_weights_h5(gray, path)
    np.testing.assert_allclose(gray.get_layer("conv1").get_weights()[0],
                               kernel.sum(axis=2, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(gray.get_layer("conv1").get_weights()[1], bias)
    # The summed kernel on a gray image = the RGB kernel on that image repeated 3 times.
    image = np.random.default_rng(6).uniform(0, 255, (1, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(gray(image), rgb(np.repeat(image, 3, axis=-1)), rtol=1e-4,
                               atol=1e-2)

    rgbd = conv1_model(4)
    weights.load_weights_h5(rgbd, path)
    adapted = rgbd.get_layer("conv1").get_weights()[0]
    np.testing.assert_allclose(adapted[:, :, :3], kernel * 0.75, rtol=1e-6)
    np.testing.assert_allclose(adapted[:, :, 3], kernel.mean(axis=2) * 0.75, rtol=1e-5)
    np.testing.assert_allclose(rgbd(np.repeat(image, 4, axis=-1)),
                               rgb(np.repeat(image, 3, axis=-1)), rtol=1e-4, atol=1e-2)
    # exclude still skips conv1 altogether.
    before = rgbd.get_layer("conv1").get_weights()[0].copy()
    weights.load_weights_h5(rgbd, path, exclude=["conv1"])
    np.testing.assert_array_equal(rgbd.get_layer("conv1").get_weights()[0], before)


def resnet_names_model(blocks):
    """A stand-in whose layer names are a ResNet's stage 4 with `blocks` blocks."""
    x = keras.Input((4,))
    outputs = [keras.layers.Dense(2, name="res4{}_branch2a".format(chr(97 + i)))(x)
               for i in range(blocks)]
    return keras.Model(x, outputs)


def test_a_resnet101_file_is_refused_by_a_resnet50_model(tmp_path):
    path = str(tmp_path / "r101.h5")
    weights.save_weights_h5(resnet_names_model(23), path)
    r50 = resnet_names_model(6)
    for by_name in (False, True):
        with pytest.raises(ValueError, match="resnet101 backbone weights but the model's "
                                             "BACKBONE is resnet50"):
            weights.load_weights_h5(r50, path, by_name=by_name)


def test_a_failed_load_changes_nothing(tmp_path, model):
    path = tmp_path / "late_mismatch.h5"
    write_matterport_h5(path, model.keras_model, np.random.default_rng(7))
    with h5py.File(path, "r+") as f:       # the last head gets a tensor of the wrong shape
        name = "mrcnn_mask/kernel:0"
        group = f["mrcnn_mask"]
        shape = group[name].shape
        del group[name]
        group.create_dataset(name, data=np.zeros(shape[:-1] + (shape[-1] + 1,), np.float32))
    before = current(model.keras_model)
    with pytest.raises(ValueError, match="layer 'mrcnn_mask'"):
        model.load_weights(str(path))
    after = current(model.keras_model)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


def test_imagenet_weights_adapt_conv1_for_four_channels():
    class RGBD(TinyConfig):
        BACKBONE = "resnet50"
        COMPUTE_BACKBONE_SHAPE = None
        IMAGE_CHANNEL_COUNT = 4
        MEAN_PIXEL = np.array([123.7, 116.8, 103.9, 100.0])
    model = modellib.MaskRCNN("inference", RGBD(), "/tmp/unused")
    source = weights.imagenet_source_model("resnet50", weights=None)
    loaded = model.get_imagenet_weights(source=source)
    assert "conv1" in loaded
    kernel = np.asarray(source.get_layer("conv1_conv").weights[0].numpy())
    np.testing.assert_allclose(model.keras_model.get_layer("conv1").get_weights()[0],
                               weights.adapt_conv1_kernel(kernel, 4), rtol=1e-6)


############################################################
#  weights/: where pretrained files are looked for and downloaded to
############################################################

@pytest.fixture
def weights_places(tmp_path, monkeypatch):
    """(the $MRCNN_WEIGHTS_DIR to set, the checkout, an older home), all under tmp_path; the
    variable unset and mrcnn's checkout moved to tmp_path/checkout."""
    monkeypatch.delenv(utils.WEIGHTS_DIR_ENV, raising=False)
    checkout = tmp_path / "checkout"
    monkeypatch.setattr(utils, "CHECKOUT_DIR", str(checkout))
    return tmp_path / "env", checkout, tmp_path / "old"


def _put(folder, name="mask_rcnn_coco.h5"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"weights-bytes")
    return str(folder / name)


def test_checkout_is_the_folder_above_the_package():
    root = os.path.dirname(os.path.dirname(os.path.abspath(utils.__file__)))
    assert utils.CHECKOUT_DIR == root          # the tests run from a checkout
    assert os.path.isfile(os.path.join(root, "weights", "README.md"))


def test_find_weights_looks_in_env_then_weights_then_older_homes(weights_places, tmp_path,
                                                                  monkeypatch):
    env, checkout, old = weights_places
    name = "mask_rcnn_coco.h5"
    # No copy anywhere: the default place, weights/ of the checkout.
    assert utils.weights_dir() == str(checkout / "weights")
    assert utils.find_weights(name, fallbacks=[old]) == str(checkout / "weights" / name)
    # A copy in an older home is used while weights/ has none; fallbacks go in order.
    other = tmp_path / "other"
    in_other = _put(other)
    assert utils.find_weights(name, fallbacks=[old, other]) == in_other
    in_old = _put(old)
    assert utils.find_weights(name, fallbacks=[old, other]) == in_old
    assert utils.find_weights(name, fallbacks=(str(other), old)) == in_other
    # weights/ of the checkout comes before them.
    in_checkout = _put(checkout / "weights")
    assert utils.find_weights(name, fallbacks=[old]) == in_checkout
    # $MRCNN_WEIGHTS_DIR comes first, and becomes the default place.
    monkeypatch.setenv(utils.WEIGHTS_DIR_ENV, str(env))
    assert utils.weights_dir() == str(env)
    assert utils.find_weights(name, fallbacks=[old]) == in_checkout   # no copy there yet
    in_env = _put(env)
    assert utils.find_weights(name, fallbacks=[old]) == in_env
    assert utils.find_weights("absent.h5", fallbacks=[old]) == str(env / "absent.h5")
    # A folder is not a weights file.
    (checkout / "weights" / "dir.h5").mkdir()
    assert utils.find_weights("dir.h5") == str(env / "dir.h5")


def test_installed_package_uses_weights_of_the_current_folder(weights_places, tmp_path,
                                                             monkeypatch):
    monkeypatch.setattr(utils, "CHECKOUT_DIR", None)
    monkeypatch.chdir(tmp_path)
    assert utils.weights_dir() == str(tmp_path / "weights")
    in_cwd = _put(tmp_path / "weights")
    assert utils.find_weights("mask_rcnn_coco.h5") == in_cwd


def test_download_trained_weights_goes_to_the_weights_dir(weights_places, tmp_path,
                                                          monkeypatch):
    env, checkout, _ = weights_places
    source = tmp_path / "served.h5"
    source.write_bytes(b"weights-bytes")
    path = utils.download_trained_weights(verbose=0, url=source.as_uri())
    assert path == str(checkout / "weights" / "mask_rcnn_coco.h5")
    assert os.listdir(checkout / "weights") == ["mask_rcnn_coco.h5"]
    monkeypatch.setenv(utils.WEIGHTS_DIR_ENV, str(env))
    path = utils.download_trained_weights(verbose=0, url=source.as_uri())
    assert path == str(env / "mask_rcnn_coco.h5")
    assert open(path, "rb").read() == b"weights-bytes"
    # Matterport's call, with a path, writes there.
    mine = tmp_path / "mine" / "coco.h5"
    assert utils.download_trained_weights(str(mine), verbose=0,
                                          url=source.as_uri()) == str(mine)
    assert mine.read_bytes() == b"weights-bytes"


def test_imagenet_file_is_read_from_the_weights_dir(weights_places, monkeypatch):
    _, checkout, _ = weights_places
    asked = []
    monkeypatch.setattr(keras.applications, "ResNet101",
                        lambda weights, **kwargs: asked.append(weights))
    weights.imagenet_source_model("resnet101")
    assert asked[-1] == "imagenet"              # not in weights/: Keras' cache or download
    name = weights.imagenet_weights_file("resnet101")
    assert name == "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5"
    local = _put(checkout / "weights", name)
    weights.imagenet_source_model("resnet101")
    assert asked[-1] == local
    weights.imagenet_source_model("resnet101", weights=None)
    assert asked[-1] is None


def test_weight_files_in_weights_are_ignored_by_git():
    root = utils.CHECKOUT_DIR
    if not os.path.exists(os.path.join(root, ".git")) or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    check = subprocess.run(["git", "-C", root, "check-ignore", "weights/mask_rcnn_coco.h5",
                            "weights/model.pth", "weights/README.md"],
                           capture_output=True, text=True)
    assert check.stdout.split() == ["weights/mask_rcnn_coco.h5", "weights/model.pth"]
