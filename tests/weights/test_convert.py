"""mrcnn.weights.convert: torchvision's Mask R-CNN state dict in mrcnn, checked stage by stage
against torchvision's own forward pass.

The references (tests/reference/torchvision_maskrcnn_reference.npz and ..._v2_reference.npz, made
by tests/reference/make_torchvision_reference.py with torch 2.14 / torchvision 0.29) are small
torchvision ``MaskRCNN`` models (torchvision's modules at 1/8 of the widths, assembled as
``maskrcnn_resnet50_fpn`` and ``maskrcnn_resnet50_fpn_v2`` assemble them) with random weights,
and the outputs of each of their stages on two images. No torch is needed here.
"""

import os

import numpy as np
import pytest

from mrcnn.weights import convert, parity
from mrcnn import utils
from mrcnn import model as modellib
from references import REFERENCE_DIR
from tiny import TorchvisionSmallConfig, TorchvisionSmallV2Config

DATA = REFERENCE_DIR
# The parity tests run on both; the converter's other tests on v1.
VERSIONS = {"v1": ("torchvision_maskrcnn_reference.npz", TorchvisionSmallConfig),
            "v2": ("torchvision_maskrcnn_v2_reference.npz", TorchvisionSmallV2Config)}
XYXY = parity.XYXY


def load_reference(version):
    with np.load(os.path.join(DATA, VERSIONS[version][0])) as data:
        return {k: data[k] for k in data.files}


def states(reference):
    return {k[len("state/"):]: v for k, v in reference.items() if k.startswith("state/")}


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def version(request):
    return request.param


@pytest.fixture(scope="module")
def reference(version):
    return load_reference(version)


def image_reference(reference, i):
    prefix = "image{}/".format(i)
    return {k[len(prefix):]: v for k, v in reference.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def converted(version, reference, tmp_path_factory):
    config = VERSIONS[version][1]()
    model = modellib.MaskRCNN("inference", config, str(tmp_path_factory.mktemp("tv")))
    convert.load_torchvision_state_dict(model.keras_model, states(reference),
                                        config.RPN_ANCHOR_RATIOS)
    return model


@pytest.fixture(scope="module")
def v1_reference():
    return load_reference("v1")


@pytest.fixture(scope="module")
def state_dict(v1_reference):
    """The v1 reference's state dict: what the converter's refusals and files are tested on."""
    return states(v1_reference)


@pytest.fixture(scope="module")
def reports(converted, reference):
    """parity.compare_stages of each reference image."""
    return [parity.compare_stages(
        parity.torchvision_stages(converted, image_reference(reference, i)["image"]),
        image_reference(reference, i)) for i in range(2)]


def test_anchors_are_torchvisions(reports):
    for report in reports:
        assert report["anchors_max_abs"] < 1e-4


def test_feature_maps_and_rpn_head_match(reports):
    for report in reports:
        for stage in parity.FPN_STAGES:
            assert report[stage] < 1e-4, (stage, report[stage])
        assert report["rpn_objectness"] < 1e-4 and report["rpn_deltas"] < 1e-4


def test_proposals_match_one_to_one(reports):
    for report in reports:
        assert report["proposals_matched"] >= 0.99, report
        assert abs(report["proposals"] - report["torchvision_proposals"]) <= \
            0.01 * report["torchvision_proposals"]


def test_box_head_on_matched_proposals(reports):
    # torchvision's deltas carry its weights (10, 10, 5, 5); ours are divided by BBOX_STD_DEV
    # (0.1, 0.1, 0.2, 0.2): the same numbers.
    for report in reports:
        assert report["class_logits"] < 1e-4 and report["box_regression"] < 1e-4, report


def test_detections_and_mask_logits_match(reports):
    for report in reports:
        assert report["detections"] == report["torchvision_detections"] == 100
        assert report["detections_matched"] >= 0.99, report
        assert report["score_max_abs"] < 1e-3 and report["mask_logits"] < 1e-4, report


def test_detect_pastes_masks_as_torchvision(converted, reference):
    """detect() end to end: the same detections, masks pasted as torchvision pastes them."""
    for i in range(2):
        ref = image_reference(reference, i)
        r = converted.detect([ref["image"]])[0]
        theirs = np.unpackbits(ref["masks"], axis=-1,
                               count=ref["image"].shape[1]).astype(bool)  # [n, H, W]
        # detect()'s boxes are rounded to whole pixels (a 3-pixel box may have IoU 0.8).
        iou = utils.compute_overlaps(ref["boxes"][:, XYXY], r["rois"].astype(np.float64))
        # detect() drops boxes of zero area once rounded, as Matterport does (torchvision keeps
        # boxes from 1e-2 pixels): the reference has one, 0.18 pixels high.
        rounded = np.round(ref["boxes"])
        kept = (rounded[:, 2] > rounded[:, 0]) & (rounded[:, 3] > rounded[:, 1])
        assert len(r["class_ids"]) == np.sum(kept)
        ious = []
        for k in np.where(kept)[0]:
            same = (r["class_ids"] == ref["labels"][k]) & \
                (np.abs(r["scores"] - ref["scores"][k]) < 1e-3)
            j = np.argmax(np.where(same, iou[k], -1.0))
            assert same[j] and iou[k, j] > 0.5, "reference detection {} of image {} not " \
                "found".format(k, i)
            ours = r["masks"][..., j]
            union = np.sum(ours | theirs[k])
            ious.append(np.sum(ours & theirs[k]) / union if union else 1.0)
        # MASK_PASTE "torchvision": its paste_masks_in_image, on boxes within 1e-4 pixels.
        assert np.min(ious) > 0.95, sorted(ious)[:5]


def write_npz(path, state):
    np.savez(path, **state)
    return str(path)


def test_converted_h5_loads_and_needs_no_torch(state_dict, v1_reference, tmp_path):
    source = write_npz(tmp_path / "state.npz", state_dict)
    out = tmp_path / "tv.h5"
    assert convert.main(["torchvision", source, str(out), "--config",
                         "tiny:TorchvisionSmallConfig"]) == 0
    direct = modellib.MaskRCNN("inference", TorchvisionSmallConfig(), str(tmp_path))
    convert.load_torchvision_state_dict(direct.keras_model, state_dict)
    model = modellib.MaskRCNN("inference", TorchvisionSmallConfig(), str(tmp_path))
    model.load_weights(str(out))
    for x, y in zip(model.keras_model.weights, direct.keras_model.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)
    image = v1_reference["image1/image"]
    a, b = model.detect([image])[0], direct.detect([image])[0]
    np.testing.assert_array_equal(a["class_ids"], b["class_ids"])
    # Two models of the same weights differ by oneDNN's float rounding (2.5e-6 seen).
    np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-5)


def test_old_torchvision_key_names(state_dict):
    """Checkpoints of torchvision < 0.13 (its published COCO weights) use other names."""
    old = {}
    for key, value in state_dict.items():
        key = key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        for kind in ("inner", "layer"):
            for i in range(4):
                key = key.replace("backbone.fpn.{}_blocks.{}.0.".format(kind, i),
                                  "backbone.fpn.{}_blocks.{}.".format(kind, i))
        for i in range(4):
            key = key.replace("roi_heads.mask_head.{}.0.".format(i),
                              "roi_heads.mask_head.mask_fcn{}.".format(i + 1))
        old[key] = value
    assert "roi_heads.mask_head.mask_fcn1.weight" in old
    new = convert.torchvision_layer_weights(state_dict)
    renamed = convert.torchvision_layer_weights(old)
    assert sorted(new) == sorted(renamed)
    for name, (kind, value, _) in new.items():
        if kind != "identity_bn":
            for a, b in zip(value, renamed[name][1]):
                np.testing.assert_array_equal(a, b)


def refuse(state, tmp_path, *words, config=True):
    """Convert ``state`` through the command line: it fails, names ``words``, writes nothing."""
    source = write_npz(tmp_path / "bad.npz", state)
    out = tmp_path / "out.h5"
    with pytest.raises(convert.ConversionError) as e:
        convert.convert_torchvision(source, str(out), config=TorchvisionSmallConfig())
    for word in words:
        assert word in str(e.value)
    assert not out.exists()
    return str(e.value)


def test_refuses_missing_and_unused_tensors(state_dict, tmp_path):
    missing = dict(state_dict)
    del missing["roi_heads.box_head.fc7.weight"]
    refuse(missing, tmp_path, "roi_heads.box_head.fc7.weight", "bad.npz")
    extra = dict(state_dict, **{"roi_heads.extra_head.weight": np.zeros(3, np.float32)})
    refuse(extra, tmp_path, "roi_heads.extra_head.weight")


def test_refuses_other_architectures(state_dict, tmp_path):
    faster = {k: v for k, v in state_dict.items() if "mask_" not in k}
    refuse(faster, tmp_path, "Faster R-CNN")
    v2 = states(load_reference("v2"))
    # A v2 state dict into a v1 model: the layers one has and the other lacks are named.
    refuse(v2, tmp_path, "fpn_c2p2_bn", "mrcnn_class_conv2")
    with pytest.raises(convert.ConversionError, match="maskrcnn_resnet50_fpn_v2 state dict"):
        convert.convert_torchvision(write_npz(tmp_path / "v2.npz", v2), str(tmp_path / "x.h5"),
                                    arch="maskrcnn_resnet50_fpn")
    wider = dict(state_dict)
    wider["roi_heads.box_head.fc7.weight"] = np.zeros((128, 64), np.float32)
    wider["roi_heads.box_head.fc7.bias"] = np.zeros((128,), np.float32)
    refuse(wider, tmp_path, "roi_heads.box_head.fc7.weight", "mrcnn_class_conv2")
    deeper = dict(state_dict)
    for key in [k for k in state_dict if k.startswith("backbone.body.layer3.1.")]:
        deeper[key.replace("layer3.1.", "layer3.2.")] = state_dict[key]
    refuse(deeper, tmp_path, "res4c_branch2a")


def test_refuses_truncated_file(state_dict, tmp_path):
    source = write_npz(tmp_path / "state.npz", state_dict)
    with open(source, "rb") as f:
        data = f.read()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(convert.ConversionError, match="cut.npz"):
        convert.read_state_dict(str(cut))


def test_pth_without_torch_says_what_to_install(tmp_path):
    try:
        import torch  # noqa: F401
        pytest.skip("torch is installed here")
    except ImportError:
        pass
    path = tmp_path / "model.pth"
    path.write_bytes(b"\x80\x02")
    with pytest.raises(ImportError, match=r"pip install .mrcnn-keras\[torch\]."):
        convert.read_state_dict(str(path))
    assert convert.main(["torchvision", str(path), str(tmp_path / "x.h5")]) == 2


def test_architectures_and_their_configs(state_dict):
    assert convert.architecture_of(state_dict) == "maskrcnn_resnet50_fpn"
    assert convert.architecture_of(states(load_reference("v2"))) == "maskrcnn_resnet50_fpn_v2"
    assert convert.torchvision_config("maskrcnn_resnet50_fpn_v2").BOX_HEAD_CONVS == 4
    with pytest.raises(convert.ConversionError, match="unknown architecture"):
        convert.torchvision_config("keypointrcnn_resnet50_fpn")


def test_published_checkpoint_key_names():
    """The names of torchvision's published maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth (before
    torchvision 0.13) map to the current ones."""
    old = ["rpn.head.conv.weight", "backbone.fpn.inner_blocks.0.weight",
           "backbone.fpn.layer_blocks.3.bias", "roi_heads.mask_head.mask_fcn1.weight",
           "roi_heads.mask_head.mask_fcn4.bias", "backbone.body.layer1.0.conv1.weight"]
    assert list(convert.modern_keys(dict.fromkeys(old))) == [
        "rpn.head.conv.0.0.weight", "backbone.fpn.inner_blocks.0.0.weight",
        "backbone.fpn.layer_blocks.3.0.bias", "roi_heads.mask_head.0.0.weight",
        "roi_heads.mask_head.3.0.bias", "backbone.body.layer1.0.conv1.weight"]


class _FakeTensor:
    """What read_state_dict uses of a torch tensor."""

    def __init__(self, value, floating=True):
        self.value = np.asarray(value)
        self.floating = floating

    def detach(self):
        return self

    def cpu(self):
        return self

    def float(self):
        return _FakeTensor(self.value.astype(np.float32))

    def is_floating_point(self):
        return self.floating

    def numpy(self):
        return self.value


def test_pth_is_read_with_weights_only(tmp_path, monkeypatch):
    """torch.load always gets weights_only=True (a .pth may hold pickled code otherwise); a
    training checkpoint's "model" entry is taken; entries that are not tensors are named."""
    import sys
    import types
    calls = []

    def load(path, **kwargs):
        calls.append(kwargs)
        return {"model": {"a.weight": _FakeTensor(np.ones((2, 2), np.float16)),
                          "a.count": _FakeTensor(np.array(3), floating=False),
                          "note": "text"}}

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=load))
    path = tmp_path / "model.pth"
    path.write_bytes(b"not read by the fake")
    state = convert.read_state_dict(str(path))
    assert calls == [{"map_location": "cpu", "weights_only": True}]
    assert state["a.weight"].dtype == np.float32 and state["a.count"] == 3
    assert "note" not in state
