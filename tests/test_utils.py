import numpy as np
import pytest

from mrcnn import utils


def test_extract_bboxes_exclusive_corners_and_empty_mask():
    mask = np.zeros((10, 12, 2), dtype=bool)
    mask[2:5, 3:7, 0] = True
    boxes = utils.extract_bboxes(mask)
    np.testing.assert_array_equal(boxes, [[2, 3, 5, 7], [0, 0, 0, 0]])
    assert boxes.dtype == np.int32


def test_compute_iou_hand_values():
    box = np.array([0, 0, 10, 10])
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 5, 10]])
    iou = utils.compute_iou(box, boxes, 100, utils.box_areas(boxes))
    np.testing.assert_allclose(iou, [1.0, 25 / 175, 0.0, 0.5])


def test_compute_overlaps_matches_pairwise_iou():
    rng = np.random.default_rng(0)
    b1 = np.sort(rng.uniform(0, 50, (7, 4)).reshape(7, 2, 2), axis=1).transpose(0, 2, 1)
    b1 = b1.reshape(7, 4)[:, [0, 2, 1, 3]]
    b2 = b1[::-1] + 3
    overlaps = utils.compute_overlaps(b1, b2)
    assert overlaps.shape == (7, 7)
    for i in range(7):
        np.testing.assert_allclose(
            overlaps[i], utils.compute_iou(b1[i], b2, utils.box_areas(b1[i:i + 1])[0],
                                           utils.box_areas(b2)))
    np.testing.assert_allclose(utils.compute_overlaps([[0, 0, 10, 10]], [[5, 0, 15, 10]]),
                               [[50 / 150]])
    assert utils.compute_overlaps(np.zeros((0, 4)), b2).shape == (0, 7)


def test_compute_overlaps_masks():
    m1 = np.zeros((4, 4, 2))
    m1[:2, :, 0] = 1          # 8 pixels
    m1[:, :, 1] = 1           # 16 pixels
    m2 = np.zeros((4, 4, 1))
    m2[:, :2, 0] = 1          # 8 pixels, 4 shared with m1[..., 0]
    np.testing.assert_allclose(utils.compute_overlaps_masks(m1, m2), [[4 / 12], [8 / 16]])
    assert utils.compute_overlaps_masks(m1, np.zeros((4, 4, 0))).shape == (2, 0)


def test_non_max_suppression():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = np.array([0.8, 0.9, 0.7, 0.1])
    # IoU(box0, box1) = 81 / 119 = 0.68 > 0.5: box1 (higher score) suppresses box0;
    # box3 overlaps box1 by 72 / 118 = 0.61 and goes too.
    np.testing.assert_array_equal(utils.non_max_suppression(boxes, scores, 0.5), [1, 2])
    # At 0.7 box0 survives (0.68), and then suppresses box3 (IoU 90 / 100 = 0.9).
    np.testing.assert_array_equal(utils.non_max_suppression(boxes, scores, 0.7), [1, 0, 2])
    assert utils.non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).size == 0


def test_box_refinement_hand_values_and_round_trip():
    box = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    gt = np.array([[2, 2, 12, 12], [0, 0, 20, 10]], dtype=np.float32)
    deltas = utils.box_refinement(box, gt)
    np.testing.assert_allclose(deltas, [[0.2, 0.2, 0, 0], [0.5, 0, np.log(2), 0]], atol=1e-6)
    np.testing.assert_allclose(utils.apply_box_deltas(box, deltas), gt, atol=1e-4)
    rng = np.random.default_rng(1)
    b = np.concatenate([rng.uniform(0, 50, (20, 2)), rng.uniform(60, 120, (20, 2))], axis=1)
    g = b + rng.uniform(-5, 5, (20, 4))
    np.testing.assert_allclose(utils.apply_box_deltas(b, utils.box_refinement(b, g)), g,
                               atol=1e-3)


def test_norm_denorm_boxes():
    boxes = np.array([[0, 0, 128, 128], [10, 20, 50, 64]])
    norm = utils.norm_boxes(boxes, (128, 128))
    np.testing.assert_allclose(norm[0], [0, 0, 1, 1])
    np.testing.assert_allclose(norm[1], [10 / 127, 20 / 127, 49 / 127, 63 / 127], rtol=1e-6)
    np.testing.assert_array_equal(utils.denorm_boxes(norm, (128, 128)), boxes)


def test_resize_image_square():
    image = np.full((100, 200, 3), 7, dtype=np.uint8)
    out, window, scale, padding, crop = utils.resize_image(image, min_dim=50, max_dim=128,
                                                           mode="square")
    # min_dim asks for no upscaling; the long side 200 must shrink to 128.
    assert scale == pytest.approx(0.64)
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    assert window == (32, 0, 96, 128)
    assert padding == [(32, 32), (0, 0), (0, 0)] and crop is None
    assert np.all(out[32:96] == 7) and np.all(out[:32] == 0) and np.all(out[96:] == 0)


def test_resize_image_upscale_min_dim_and_min_scale():
    image = np.zeros((50, 60, 3), dtype=np.uint8)
    out, window, scale, _, _ = utils.resize_image(image, min_dim=100, max_dim=256)
    assert scale == 2 and out.shape == (256, 256, 3) and window == (78, 68, 178, 188)
    out, window, scale, _, _ = utils.resize_image(image, max_dim=256, min_scale=3)
    assert scale == 3 and window == (53, 38, 203, 218)


def test_resize_image_pad64_none_and_crop():
    image = np.arange(100 * 200 * 3, dtype=np.int64).reshape(100, 200, 3) % 251
    image = image.astype(np.uint8)
    out, window, scale, padding, _ = utils.resize_image(image, mode="pad64")
    assert out.shape == (128, 256, 3) and scale == 1
    assert padding == [(14, 14), (28, 28), (0, 0)] and window == (14, 28, 114, 228)
    np.testing.assert_array_equal(out[14:114, 28:228], image)

    out, window, scale, padding, crop = utils.resize_image(image, mode="none")
    assert out is image and window == (0, 0, 100, 200) and scale == 1

    out, window, scale, padding, crop = utils.resize_image(
        image, min_dim=64, mode="crop", rng=np.random.default_rng(3))
    y, x, h, w = crop
    assert (h, w) == (64, 64) and out.shape == (64, 64, 3) and window == (0, 0, 64, 64)
    np.testing.assert_array_equal(out, image[y:y + 64, x:x + 64])


def test_resize_mask_follows_resize_image():
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    mask = np.zeros((100, 200, 1), dtype=bool)
    mask[10:30, 50:150, 0] = True
    _, window, scale, padding, crop = utils.resize_image(image, min_dim=50, max_dim=128)
    out = utils.resize_mask(mask, scale, padding, crop)
    assert out.shape == (128, 128, 1) and out.dtype == bool
    # 10..30 x 0.64 + 32 top padding -> rows 38.4..51.2; 50..150 x 0.64 -> cols 32..96.
    box = utils.extract_bboxes(out)[0]
    np.testing.assert_allclose(box, [38, 32, 51, 96], atol=1)
    empty = utils.resize_mask(np.zeros((100, 200, 0), bool), scale, padding)
    assert empty.shape == (128, 128, 0)


def test_mini_mask_round_trip():
    mask = np.zeros((64, 64, 2), dtype=bool)
    mask[5:25, 10:50, 0] = True                                 # a rectangle: exact round trip
    yy, xx = np.mgrid[:64, :64]
    mask[:, :, 1] = (yy - 40) ** 2 + (xx - 30) ** 2 < 15 ** 2   # a disk: close round trip
    boxes = utils.extract_bboxes(mask)
    mini = utils.minimize_mask(boxes, mask, (56, 56))
    assert mini.shape == (56, 56, 2) and mini[:, :, 0].all()
    back = utils.expand_mask(boxes, mini, (64, 64))
    np.testing.assert_array_equal(back[:, :, 0], mask[:, :, 0])
    assert utils.compute_overlaps_masks(back[:, :, 1:], mask[:, :, 1:])[0, 0] > 0.95
    with pytest.raises(ValueError, match="area of zero"):
        utils.minimize_mask(np.array([[3, 3, 3, 8]]), mask[:, :, :1], (56, 56))


def test_unmold_mask_pastes_threshold_box():
    soft = np.zeros((28, 28), dtype=np.float32)
    soft[:, :14] = 0.9    # left half of the box
    full = utils.unmold_mask(soft, (10, 20, 30, 60), (64, 80, 3))
    assert full.shape == (64, 80) and full.dtype == bool
    assert full.sum() == 20 * 20
    assert full[10:30, 20:40].all() and not full[:, 40:].any()
    # A box that overhangs the image is clipped rather than crashing.
    edge = utils.unmold_mask(np.ones((28, 28)), (50, 70, 70, 90), (64, 80))
    assert edge.sum() == 14 * 10


def test_matterport_anchor_names_are_the_anchors_module():
    # Matterport scripts call utils.generate_pyramid_anchors & co.; one implementation serves.
    from mrcnn.modeling import anchors
    for name in ("generate_anchors", "generate_pyramid_anchors", "compute_backbone_shapes",
                 "get_anchors", "anchor_strides"):
        assert getattr(utils, name) is getattr(anchors, name)


def test_trim_zeros():
    x = np.array([[1, 2], [0, 3], [0, 0], [0, 0]])
    np.testing.assert_array_equal(utils.trim_zeros(x), [[1, 2], [0, 3]])


def _instances(boxes, shape=(32, 32)):
    masks = np.zeros(shape + (len(boxes),), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return np.array(boxes).reshape(-1, 4), masks


def test_compute_ap_hand_cases():
    gt_boxes, gt_masks = _instances([(0, 0, 10, 10), (15, 15, 30, 30)])
    gt_ids = np.array([1, 2])
    # Perfect prediction.
    ap, *_ = utils.compute_ap(gt_boxes, gt_ids, gt_masks, gt_boxes, gt_ids, [0.9, 0.8],
                              gt_masks)
    assert ap == 1.0
    # Nothing predicted.
    ap, *_ = utils.compute_ap(gt_boxes, gt_ids, gt_masks, np.zeros((0, 4)), np.zeros(0),
                              np.zeros(0), np.zeros((32, 32, 0)))
    assert ap == 0.0
    # Half right: the best-scored prediction is a miss, the second finds one of two objects.
    pred_boxes, pred_masks = _instances([(0, 20, 5, 25), (0, 0, 10, 10)])
    ap, precisions, recalls, _ = utils.compute_ap(gt_boxes, gt_ids, gt_masks, pred_boxes,
                                                  [1, 1], [0.9, 0.6], pred_masks)
    # Curve: recall 0.5 reached at precision 1/2 -> AP = 0.5 * 0.5.
    assert ap == pytest.approx(0.25)
    # A duplicate of a found object is a false positive, after the true positive.
    pred_boxes, pred_masks = _instances([(0, 0, 10, 10), (0, 0, 10, 10), (15, 15, 30, 30)])
    ap, *_ = utils.compute_ap(gt_boxes, gt_ids, gt_masks, pred_boxes, [1, 1, 2],
                              [0.9, 0.8, 0.7], pred_masks)
    # Precisions 1, 1/2, 2/3 at recalls 1/2, 1/2, 1 -> interpolated 1 and 2/3 -> 0.5 + 1/3.
    assert ap == pytest.approx(0.5 + 1 / 3)


def test_compute_ap_range_and_recall():
    gt_boxes, gt_masks = _instances([(0, 0, 10, 10)])
    # A prediction of IoU 0.8 (10x8 inside 10x10): a hit at thresholds 0.5..0.8, a miss above.
    pred_boxes, pred_masks = _instances([(0, 0, 10, 8)])
    ap = utils.compute_ap_range(gt_boxes, [1], gt_masks, pred_boxes, [1], [0.9], pred_masks,
                                verbose=0)
    assert ap == pytest.approx(7 / 10)   # thresholds .50 .55 ... .80 hit: 7 of 10
    recall, ids = utils.compute_recall(np.array([[0, 0, 10, 8], [20, 20, 30, 30]]),
                                       np.array([[0, 0, 10, 10], [40, 40, 50, 50]]), 0.5)
    assert recall == 0.5 and ids.tolist() == [0]


def test_shortest_edge_resize_is_torchvisions():
    """IMAGE_RESIZE_MODE "shortest_edge" against torchvision 0.29's GeneralizedRCNNTransform
    resize (tests/reference/make_torchvision_reference.py resize): the same sizes for 12 shapes at
    (800, 1333), the same pixels scaled up and down, padding to multiples of 32."""
    from references import reference_path
    reference = np.load(reference_path("torchvision_resize_reference.npz"))
    for (h, w), (new_h, new_w) in zip(reference["shapes"], reference["sizes"]):
        image, window, _, padding, _ = utils.resize_image(np.zeros((h, w, 3), np.uint8), 800,
                                                          1333, mode="shortest_edge")
        assert window == (0, 0, new_h, new_w), (h, w)
        assert image.shape[0] % 32 == 0 and image.shape[1] % 32 == 0
        assert padding[0] == (0, image.shape[0] - new_h)
    for name in ("up", "down"):
        image, window, _, _, _ = utils.resize_image(reference[name + "/image"], 128, 224,
                                                    mode="shortest_edge")
        assert image.dtype == np.float32
        np.testing.assert_allclose(image[:window[2], :window[3]],
                                   reference[name + "/resized"], atol=2e-3)
        assert not image[window[2]:].any() and not image[:, window[3]:].any()
