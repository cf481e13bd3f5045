import numpy as np

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
