import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import skimage.io  # noqa: E402

from mrcnn import utils, visualize  # noqa: E402


@pytest.fixture
def scene():
    image = np.full((64, 80, 3), 100, dtype=np.uint8)
    masks = np.zeros((64, 80, 2), dtype=bool)
    masks[5:20, 10:30, 0] = True
    masks[30:60, 40:75, 1] = True
    boxes = utils.extract_bboxes(masks)
    return image, masks, boxes, np.array([1, 2]), ["BG", "cat", "dog"]


def test_random_colors():
    colors = visualize.random_colors(6, seed=1)
    assert len(colors) == 6 and len(set(colors)) == 6
    assert all(0 <= c <= 1 for rgb in colors for c in rgb)
    assert colors == visualize.random_colors(6, seed=1)
    assert max(max(c) for c in visualize.random_colors(4, bright=False)) == pytest.approx(0.7)


def test_apply_mask_blends_only_inside():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    mask = np.array([[1, 0], [0, 0]])
    out = visualize.apply_mask(image, mask, (1.0, 0.0, 0.5), alpha=0.5)
    assert out[0, 0].tolist() == [177, 50, 113]     # 100*.5 + .5*255*c
    assert out[1, 1].tolist() == [100, 100, 100]
    assert image[0, 0].tolist() == [100, 100, 100]  # input untouched


def test_draw_box_outline():
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    visualize.draw_box(image, (2, 3, 6, 8), (255, 0, 0))
    outline = image[..., 0] > 0
    assert outline[2, 3:8].all() and outline[5, 3:8].all()
    assert outline[2:6, 3].all() and outline[2:6, 7].all()
    assert outline.sum() == 2 * 5 + 2 * 2 and not outline[3:5, 4:7].any()


def test_display_instances_saves_picture_with_masks(tmp_path, scene):
    image, masks, boxes, class_ids, names = scene
    path = tmp_path / "instances.png"
    fig = visualize.display_instances(image, boxes, masks, class_ids, names,
                                      scores=np.array([0.9, 0.75]), save_path=str(path))
    assert path.stat().st_size > 1000
    picture = skimage.io.imread(path)
    assert picture.ndim == 3 and picture.shape[0] > 100
    ax = fig.axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["cat 0.900", "dog 0.750"]
    # Two dashed boxes plus one outline polygon per mask.
    assert len(ax.patches) == 4
    shown = ax.images[0].get_array()
    assert not np.array_equal(shown[10, 20], image[10, 20])   # mask colour blended in
    np.testing.assert_array_equal(shown[0, 0], image[0, 0])


def test_display_instances_into_given_axes_and_empty(scene):
    image, masks, boxes, class_ids, names = scene
    fig, ax = plt.subplots()
    out = visualize.display_instances(image, np.zeros((0, 4)), np.zeros((64, 80, 0)),
                                      np.zeros(0), names, ax=ax)
    assert out is fig and "no instances" in ax.get_title()
    with pytest.raises(ValueError, match="2 boxes but 1 masks"):
        visualize.display_instances(image, boxes, masks[..., :1], class_ids, names, ax=ax)
    plt.close(fig)


def test_display_differences_captions_score_and_iou(tmp_path, scene):
    image, masks, boxes, class_ids, names = scene
    pred_masks = masks.copy()
    pred_masks[5:20, 10:20, 0] = False  # half of the cat: IoU 0.5
    path = tmp_path / "diff.png"
    fig = visualize.display_differences(image, boxes, class_ids, masks, boxes, class_ids,
                                        np.array([0.6, 0.95]), pred_masks, names,
                                        save_path=str(path))
    assert path.exists()
    captions = sorted(t.get_text() for t in fig.axes[0].texts if t.get_text())
    assert captions == ["0.60 / 0.50", "0.95 / 1.00"]


def test_other_plots_save_files(tmp_path, scene):
    image, masks, boxes, class_ids, names = scene
    visualize.display_images([image, image[..., 0]], titles=["a", "b"],
                             save_path=str(tmp_path / "grid.png"))
    visualize.display_top_masks(image, masks, class_ids, names,
                                save_path=str(tmp_path / "top.png"))
    visualize.plot_precision_recall(0.75, np.array([1, 1, 0.5]), np.array([0, 0.5, 1]),
                                    save_path=str(tmp_path / "pr.png"))
    overlaps = utils.compute_overlaps_masks(masks, masks)
    visualize.plot_overlaps(class_ids, class_ids, [0.9, 0.8], overlaps, names,
                            save_path=str(tmp_path / "overlaps.png"))
    visualize.draw_boxes(image, boxes=boxes, refined_boxes=boxes + 2, masks=masks,
                         captions=["a", "b"], visibilities=[2, 1],
                         save_path=str(tmp_path / "boxes.png"))
    soft = np.ones((2, 28, 28), dtype=np.float32)
    visualize.draw_rois(image, boxes, boxes + 1, soft, np.array([1, 0]), names,
                        save_path=str(tmp_path / "rois.png"))
    for name in ("grid", "top", "pr", "overlaps", "boxes", "rois"):
        assert (tmp_path / (name + ".png")).stat().st_size > 1000, name


def test_display_table_and_weight_stats(capsys):
    html = visualize.display_table([["a", "<b>"], [1, 2.5]])
    assert html == ("<table><tr><td>a</td><td>&lt;b&gt;</td></tr>"
                    "<tr><td>1</td><td>2.5</td></tr></table>")
    assert "a  <b>" in capsys.readouterr().out

    import keras
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, name="fc", kernel_initializer="zeros")(inputs)
    model = keras.Model(inputs, outputs)
    table = visualize.display_weight_stats(model)
    assert table[0] == ["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]
    assert len(table) == 3
    kernel_row = [r for r in table if "kernel" in r[0]][0]
    assert kernel_row[0].endswith(" *") and kernel_row[1] == "(4, 3)"   # all-zero kernel flagged


def test_compute_matches_never_matches_one_gt_twice():
    gt = np.zeros((10, 10, 1), dtype=bool)
    gt[2:8, 2:8, 0] = True
    preds = np.repeat(gt, 3, axis=2)
    gt_box = utils.extract_bboxes(gt)
    pred_box = utils.extract_bboxes(preds)
    gt_match, pred_match, overlaps = utils.compute_matches(
        gt_box, [1], gt, pred_box, [1, 1, 1], [0.5, 0.9, 0.7], preds)
    assert gt_match.tolist() == [0] and pred_match.tolist() == [0, -1, -1]
    np.testing.assert_allclose(overlaps, [[1], [1], [1]])
    # A different class never matches.
    gt_match, pred_match, _ = utils.compute_matches(gt_box, [1], gt, pred_box[:1], [2], [0.9],
                                                    preds[..., :1])
    assert gt_match.tolist() == [-1] and pred_match.tolist() == [-1]


def test_plot_confusion_matrix(tmp_path):
    matrix = np.array([[0, 2, 1], [1, 5, 0], [0, 3, 4]])
    fig = visualize.plot_confusion_matrix(matrix, ["BG", "cat", "dog"],
                                          save_path=str(tmp_path / "cm.png"))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [str(v) for v in matrix.flatten()]
    assert (tmp_path / "cm.png").stat().st_size > 1000
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(shown[1], [1 / 6, 5 / 6, 0])
