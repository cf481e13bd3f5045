import numpy as np
import tensorflow as tf

from mrcnn import utils
from mrcnn.modeling.rpn import ProposalLayer, build_rpn_model


def test_rpn_model_layers_and_shapes():
    rpn = build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=8)
    assert rpn.name == "rpn_model"
    names = [l.name for l in rpn.layers if l.weights]
    assert names == ["rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred"]
    assert rpn.get_layer("rpn_conv_shared").filters == 512
    logits, probs, bbox = rpn([np.zeros((2, 4, 5, 8), np.float32)])
    assert logits.shape == (2, 4 * 5 * 3, 2) and bbox.shape == (2, 60, 4)
    np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, rtol=1e-5)


def test_rpn_conv_channels_sets_the_shared_convolution_width():
    from mrcnn import model as modellib
    from tiny import TinyConfig

    narrow = build_rpn_model(anchor_stride=1, anchors_per_location=3, depth=8, channels=16)
    assert narrow.get_layer("rpn_conv_shared").kernel.shape == (3, 3, 8, 16)
    assert narrow.get_layer("rpn_class_raw").kernel.shape == (1, 1, 16, 6)

    class Narrow(TinyConfig):
        RPN_CONV_CHANNELS = 24
    model = modellib.MaskRCNN("inference", Narrow(), "/nonexistent")
    shared = model.keras_model.get_layer("rpn_model").get_layer("rpn_conv_shared")
    assert shared.kernel.shape[-1] == 24


def test_proposals_sorted_clipped_and_nms():
    anchors = np.array([[0.1, 0.1, 0.3, 0.3],
                        [0.11, 0.11, 0.31, 0.31],    # IoU ~0.83 with anchor 0
                        [0.5, 0.5, 0.7, 0.7],
                        [0.9, 0.9, 1.2, 1.2],        # sticks out: clipped to 1.0
                        [0.0, 0.5, 0.2, 0.7]], dtype=np.float32)
    fg = np.array([0.6, 0.9, 0.3, 0.8, 0.1], dtype=np.float32)
    probs = np.stack([1 - fg, fg], axis=-1)[np.newaxis]
    deltas = np.zeros((1, 5, 4), np.float32)
    deltas[0, 2] = [1.0, 0.0, 0.0, 0.0]   # /std: dy = 0.1 -> shift by 0.1 * height (0.02)
    layer = ProposalLayer(proposal_count=4, nms_threshold=0.7, pre_nms_limit=5)
    out = layer([tf.constant(probs), tf.constant(deltas), tf.constant(anchors[np.newaxis])])
    out = out.numpy()[0]
    expected = [anchors[1], [0.9, 0.9, 1.0, 1.0], [0.52, 0.5, 0.72, 0.7], anchors[4]]
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # With pre_nms_limit 2 only the two best anchors compete; NMS leaves one and pads zeros.
    layer = ProposalLayer(proposal_count=3, nms_threshold=0.7, pre_nms_limit=2)
    out = layer([tf.constant(probs), tf.constant(deltas), tf.constant(anchors[np.newaxis])])
    np.testing.assert_allclose(out.numpy()[0], [anchors[1], [0.9, 0.9, 1.0, 1.0], [0] * 4],
                               atol=1e-6)
    config = ProposalLayer.from_config(layer.get_config()).get_config()
    assert config["proposal_count"] == 3 and config["pre_nms_limit"] == 2


def test_proposals_match_numpy_reference_on_random_input():
    rng = np.random.default_rng(0)
    anchors = utils.generate_anchors([16], [0.5, 1, 2], (8, 8), 8, 1)
    anchors = utils.norm_boxes(anchors, (64, 64))
    n = anchors.shape[0]
    fg = rng.uniform(size=n).astype(np.float32)
    deltas = rng.normal(0, 1, (n, 4)).astype(np.float32)
    layer = ProposalLayer(proposal_count=20, nms_threshold=0.5, pre_nms_limit=100)
    out = layer([tf.constant(np.stack([1 - fg, fg], -1)[None]), tf.constant(deltas[None]),
                 tf.constant(anchors[None].astype(np.float32))]).numpy()[0]
    # Reference: top 100, refine, clip, greedy NMS.
    top = np.argsort(-fg, kind="stable")[:100]
    boxes = utils.apply_box_deltas(anchors[top], deltas[top] * [0.1, 0.1, 0.2, 0.2])
    boxes = np.clip(boxes, 0, 1)
    keep = utils.non_max_suppression(boxes, fg[top], 0.5)[:20]
    np.testing.assert_allclose(out[:len(keep)], boxes[keep], atol=1e-5)
    assert np.all(out[len(keep):] == 0)


def test_per_level_proposals_match_numpy_reference():
    # torchvision's rule (RegionProposalNetwork.filter_proposals, detectron2's
    # find_top_rpn_proposals): per level, its best anchors, refined, clipped, NMS within the
    # level; then the best proposal_count of all levels by score.
    from mrcnn.modeling.rpn import AnchorLevels
    rng = np.random.default_rng(1)
    shapes = [(8, 8), (4, 4), (2, 2)]
    per_level = [utils.generate_anchors([s], [0.5, 1, 2], shape, stride, 1)
                 for s, shape, stride in zip([16, 32, 64], shapes, [8, 16, 32])]
    counts = [len(a) for a in per_level]
    anchors = utils.norm_boxes(np.concatenate(per_level), (64, 64)).astype(np.float32)
    n = len(anchors)
    fg = rng.uniform(size=n).astype(np.float32)
    deltas = rng.normal(0, 1, (n, 4)).astype(np.float32)
    levels = AnchorLevels()([tf.zeros([2, c, 2]) for c in counts]).numpy()
    assert levels.shape == (2, n) and levels[0].tolist() == sum(
        ([i] * c for i, c in enumerate(counts)), [])
    layer = ProposalLayer(proposal_count=25, nms_threshold=0.5, pre_nms_limit=40,
                          num_levels=3)
    probs = np.stack([1 - fg, fg], -1)[None].repeat(2, 0)
    out = layer([tf.constant(probs), tf.constant(deltas[None].repeat(2, 0)),
                 tf.constant(anchors[None].repeat(2, 0)), tf.constant(levels)]).numpy()
    candidates = []
    start = 0
    for count in counts:
        ix = start + np.argsort(-fg[start:start + count], kind="stable")[:40]
        boxes = np.clip(utils.apply_box_deltas(anchors[ix], deltas[ix] * [0.1, 0.1, 0.2, 0.2]),
                        0, 1)
        keep = utils.non_max_suppression(boxes, fg[ix], 0.5)[:25]
        candidates += [(fg[ix[k]], boxes[k]) for k in keep]
        start += count
    candidates.sort(key=lambda c: -c[0])
    expected = np.array([box for _, box in candidates[:25]])
    assert len(candidates) > 25              # some levels' proposals are cut
    for b in range(2):
        np.testing.assert_allclose(out[b], expected, atol=1e-5)
    config = ProposalLayer.from_config(layer.get_config())
    assert config.num_levels == 3
