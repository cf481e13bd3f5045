import numpy as np

from mrcnn.modeling import losses


def ce(logits, label):
    logits = np.asarray(logits, np.float64)
    return -(logits[label] - np.log(np.exp(logits).sum()))


def test_rpn_class_loss_ignores_neutral_anchors():
    match = np.array([[[1], [-1], [0], [1]]], np.int32)
    logits = np.array([[[0., 2.], [1., 0.], [5., -5.], [3., 1.]]], np.float32)
    expected = np.mean([ce([0, 2], 1), ce([1, 0], 0), ce([3, 1], 1)])
    np.testing.assert_allclose(losses.rpn_class_loss(match, logits), expected, rtol=1e-5)


def test_rpn_bbox_loss_smooth_l1_on_positives_per_image():
    match = np.array([[[0], [1], [1]], [[1], [0], [-1]]], np.int32)
    pred = np.zeros((2, 3, 4), np.float32)
    pred[0, 1] = [0.5, 0, 0, 0]
    pred[0, 2] = [2.0, 0, 0, 0]
    pred[1, 0] = [0, 0, 0, -1.0]
    target = np.zeros((2, 4, 4), np.float32)   # positives' targets in anchor order, padded
    target[1, 0] = [0, 0, 0, 1.0]
    # Elementwise smooth L1: 0.125 (|0.5|), 1.5 (|2|), 1.5 (|2| in image 1); 12 elements.
    expected = (0.5 * 0.5 ** 2 + (2 - 0.5) + (2 - 0.5)) / 12
    np.testing.assert_allclose(losses.rpn_bbox_loss(target, match, pred), expected, rtol=1e-6)


def test_mrcnn_class_loss_skips_inactive_predictions_and_padding():
    target = np.array([[1, 0, 0]], np.int32)
    logits = np.array([[[0., 3., 0.], [0., 0., 4.], [1., 0., 0.]]], np.float32)
    active = np.array([[1, 1, 0]], np.float32)     # class 2 is not in this image's source
    rois = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]]], np.float32)
    # RoI 1 predicts inactive class 2 (ignored), RoI 2 is padding (ignored): RoI 0 alone.
    np.testing.assert_allclose(losses.mrcnn_class_loss(target, logits, active, rois),
                               ce([0, 3, 0], 1), rtol=1e-5)


def test_mrcnn_bbox_loss_uses_gt_class_deltas():
    target_ids = np.array([[2, 0]], np.int32)
    target = np.array([[[1., 0., 0., 0.], [0., 0., 0., 0.]]], np.float32)
    pred = np.zeros((1, 2, 3, 4), np.float32)
    pred[0, 0, 1] = [9, 9, 9, 9]      # another class's deltas: must not count
    pred[0, 0, 2] = [1.5, 0, 0, 0]
    np.testing.assert_allclose(losses.mrcnn_bbox_loss(target, target_ids, pred),
                               0.5 * 0.5 ** 2 / 4, rtol=1e-6)


def test_mrcnn_mask_loss_bce_on_gt_channel_of_positives():
    target_ids = np.array([[1, 0]], np.int32)
    target = np.zeros((1, 2, 2, 2), np.float32)
    target[0, 0] = [[1, 0], [1, 1]]
    probs = np.full((1, 2, 2, 2, 2), 0.01, np.float32)
    probs[0, 0, :, :, 1] = [[0.9, 0.2], [0.6, 0.8]]
    logits = np.log(probs / (1 - probs))      # the loss takes the mask head's logits
    y, p = np.array([1, 0, 1, 1.]), np.array([0.9, 0.2, 0.6, 0.8])
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(losses.mrcnn_mask_loss(target, target_ids, logits), expected,
                               rtol=1e-4)
    # From logits the loss stays exact where a sigmoid saturates: logit -40 on a 1 costs 40.
    logits[0, 0, 0, 0, 1] = -40.0
    expected = np.mean([40.0, -np.log(0.8), -np.log(0.6), -np.log(0.8)])
    np.testing.assert_allclose(losses.mrcnn_mask_loss(target, target_ids, logits), expected,
                               rtol=1e-4)


def test_losses_are_zero_without_positives():
    none = np.zeros((1, 2), np.int32)
    assert float(losses.mrcnn_bbox_loss(np.zeros((1, 2, 4)), none,
                                         np.ones((1, 2, 3, 4), np.float32))) == 0
    assert float(losses.mrcnn_mask_loss(np.zeros((1, 2, 2, 2), np.float32), none,
                                        np.full((1, 2, 2, 2, 3), 0.5, np.float32))) == 0
    match = np.zeros((1, 3, 1), np.int32)
    assert float(losses.rpn_bbox_loss(np.zeros((1, 2, 4), np.float32), match,
                                      np.ones((1, 3, 4), np.float32))) == 0
    assert float(losses.rpn_class_loss(match, np.ones((1, 3, 2), np.float32))) == 0
    assert float(losses.mrcnn_class_loss(none, np.ones((1, 2, 3), np.float32),
                                         np.ones((1, 3), np.float32),
                                         np.zeros((1, 2, 4), np.float32))) == 0


def test_dice_and_bce_plus_dice_against_hand_computed_values():
    target_ids = np.array([[1, 2, 0]], np.int32)
    target = np.zeros((1, 3, 2, 2), np.float32)
    target[0, 0] = [[1, 1], [0, 0]]
    target[0, 1] = [[0, 1], [0, 1]]
    probs = np.full((1, 3, 2, 2, 3), 0.5, np.float32)
    probs[0, 0, :, :, 1] = [[0.9, 0.6], [0.2, 0.1]]
    probs[0, 1, :, :, 2] = [[0.3, 0.8], [0.4, 0.7]]
    logits = np.log(probs / (1 - probs))

    def dice(p, y):
        return 1 - (2 * np.sum(p * y) + 1) / (np.sum(p) + np.sum(y) + 1)

    expected_dice = np.mean([dice(probs[0, 0, :, :, 1], target[0, 0]),
                             dice(probs[0, 1, :, :, 2], target[0, 1])])
    # 1 - (2 * 1.5 + 1) / (1.8 + 2 + 1) = 0.1667 and 1 - (2 * 1.5 + 1) / (2.2 + 2 + 1) = 0.2308
    np.testing.assert_allclose(expected_dice, np.mean([1 - 4 / 4.8, 1 - 4 / 5.2]), rtol=1e-6)
    np.testing.assert_allclose(losses.mrcnn_mask_loss(target, target_ids, logits, "dice"),
                               expected_dice, rtol=1e-5)
    bce = float(losses.mrcnn_mask_loss(target, target_ids, logits, "bce"))
    np.testing.assert_allclose(losses.mrcnn_mask_loss(target, target_ids, logits, "bce+dice"),
                               bce + expected_dice, rtol=1e-5)
    # Class-agnostic masks: one channel read for every class.
    np.testing.assert_allclose(
        losses.mrcnn_mask_loss(target, target_ids, logits[..., 1:2], "dice"),
        np.mean([dice(probs[0, 0, :, :, 1], target[0, 0]),
                 dice(probs[0, 1, :, :, 1], target[0, 1])]), rtol=1e-5)


def test_class_weights_give_a_weighted_mean_cross_entropy():
    target_ids = np.array([[0, 1, 2, 2]], np.int32)
    logits = np.array([[[2.0, 0.5, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 0.3], [1.0, 0.0, 2.5]]],
                      np.float32)
    active = np.ones((1, 3), np.float32)
    rois = np.ones((1, 4, 4), np.float32)
    weights = np.array([0.5, 1.0, 4.0], np.float32)
    log_probs = logits[0] - np.log(np.sum(np.exp(logits[0]), axis=1, keepdims=True))
    ce = -log_probs[np.arange(4), target_ids[0]]
    w = weights[target_ids[0]]
    np.testing.assert_allclose(
        losses.mrcnn_class_loss(target_ids, logits, active, rois, class_weights=weights),
        np.sum(w * ce) / np.sum(w), rtol=1e-5)
    np.testing.assert_allclose(losses.mrcnn_class_loss(target_ids, logits, active, rois),
                               np.mean(ce), rtol=1e-5)


class Counts:
    """A dataset of two images: class 1 has 8 instances, class 2 has 3 (a crowd region
    counted), class 3 none."""
    num_classes = 4
    image_ids = [0, 1]
    per_image = [np.array([1, 1, 1, 2]), np.array([1, 1, 1, 1, 1, 2, -2])]

    def load_mask(self, image_id):
        return None, self.per_image[image_id]


BALANCED = [1.0, 11 / (2 * 8), 11 / (2 * 3), 1.0]


def test_balanced_class_weights_from_instance_counts():
    np.testing.assert_allclose(losses.balanced_class_weights(Counts()), BALANCED)


def test_class_weights_reach_the_loss_through_its_options():
    class Options:
        NUM_CLASSES = 4
        MASK_LOSS = "dice"
        CLASS_WEIGHTS = "balanced"
    # Without the training set (when the graph is built): ones; with it, balanced weights.
    assert losses.default_loss_options(Options()) == {
        "mrcnn_mask_loss": {"loss_type": "dice"},
        "mrcnn_class_loss": {"class_weights": [1.0] * 4}}
    options = losses.default_loss_options(Options(), Counts())
    np.testing.assert_allclose(options["mrcnn_class_loss"]["class_weights"], BALANCED)
    layer = losses.LossLayer(losses.mrcnn_class_loss, {"class_weights": [1.0] * 4},
                             name="mrcnn_class_loss")
    layer.set_options(**options["mrcnn_class_loss"])
    np.testing.assert_allclose(layer.class_weights.numpy(), BALANCED, rtol=1e-6)
    # An option fixed in the graph, and a loss given no class weights, are left as they are.
    mask = losses.LossLayer(losses.mrcnn_mask_loss, {"loss_type": "dice"})
    mask.set_options(loss_type="bce")
    assert mask.fn_kwargs == {"loss_type": "dice"}
    plain = losses.LossLayer(losses.mrcnn_class_loss)
    plain.set_options(**options["mrcnn_class_loss"])
    assert plain.class_weights is None and plain.fn_kwargs == {}
