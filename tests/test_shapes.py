import numpy as np
import pytest

from samples.shapes import shapes
from samples.shapes.shapes import ShapesConfig, ShapesDataset, make_datasets


def test_shapes_are_deterministic_by_seed():
    a, b, c = ShapesDataset(), ShapesDataset(), ShapesDataset()
    a.load_shapes(5, 128, 128, seed=11)
    b.load_shapes(5, 128, 128, seed=11)
    c.load_shapes(5, 128, 128, seed=12)
    for ds in (a, b, c):
        ds.prepare()
    for i in range(5):
        np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
        np.testing.assert_array_equal(a.load_mask(i)[0], b.load_mask(i)[0])
    assert any(not np.array_equal(a.load_image(i), c.load_image(i)) for i in range(5))


def test_shapes_masks_classes_and_pixels_agree():
    ds = ShapesDataset()
    ds.load_shapes(20, 96, 128, seed=0)
    ds.prepare()
    assert ds.class_names == ["BG", "square", "circle", "triangle"]
    for i in range(20):
        image = ds.load_image(i)
        mask, class_ids = ds.load_mask(i)
        assert image.shape == (96, 128, 3) and mask.shape[:2] == (96, 128)
        assert 1 <= mask.shape[-1] <= 4 and mask.shape[-1] == len(class_ids)
        assert np.all((class_ids >= 1) & (class_ids <= 3))
        # Occlusion handled: instances do not overlap, and each is non-empty.
        assert mask.sum(axis=2).max() <= 1 and np.all(mask.sum(axis=(0, 1)) > 0)
        # Every instance pixel has the colour of the shape drawn on top there (not background).
        bg = np.array(ds.image_info[i]["bg_color"])
        inside = mask.any(axis=2)
        assert np.all(image[~inside] == bg)


def test_shapes_config_and_make_datasets():
    config = ShapesConfig()
    assert config.NUM_CLASSES == 4 and config.BATCH_SIZE == 8
    train, val = make_datasets(config, train_count=6, val_count=3, seed=0)
    assert train.num_images == 6 and val.num_images == 3
    assert not np.array_equal(train.load_image(0), val.load_image(0))


def test_shapes_demo_trains_evaluates_and_draws(tmp_path):
    """`make demo`'s command, tiny: train, then one inference model for the evaluation and the
    picture; the per-epoch pictures of the training callbacks and the validation pass are off
    in the demo."""
    logs, out = tmp_path / "logs", tmp_path / "demo.png"
    summary = shapes.main(["demo", "--preset", "tiny", "--epochs", "2", "--steps", "2",
                           "--train-images", "16", "--images", "3", "--logs", str(logs),
                           "--out", str(out)])
    assert summary["picture"] == str(out) and out.stat().st_size > 10_000
    assert 0.0 <= summary["mAP@0.5"] <= 1.0 and summary["held_out_images"] == 3
    assert summary["total_s"] == pytest.approx(
        summary["train_s"] + summary["evaluate_s"] + summary["detect_s"], abs=0.2)
    assert summary["cpus"] >= 1 and "cpu_model" in summary
    (run_dir,) = [p for p in logs.iterdir() if p.is_dir()]
    assert sorted(p.name for p in run_dir.glob("*.h5")) == [
        "mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_0002.h5"]
    assert shapes.TinyShapesConfig.TENSORBOARD_IMAGES        # on in the preset...
    assert not (run_dir / "images").exists()                  # ...off in the demo
    # No validation pass in the demo (TensorBoard's "validation" run would hold its losses).
    assert shapes.TinyShapesConfig.VALIDATION_STEPS > 0
    assert (run_dir / "train").is_dir() and not (run_dir / "validation").exists()
