import numpy as np
import pytest
import skimage.io

from mrcnn.data.dataset import Dataset, ImageLoadError
from mrcnn import utils


def make_dataset(tmp_path=None):
    ds = Dataset()
    ds.add_class("coco", 1, "person")
    ds.add_class("coco", 3, "car,automobile")
    ds.add_class("coco", 1, "person")        # duplicates are ignored
    ds.add_class("mine", 7, "balloon")
    ds.add_image("coco", image_id="a", path="a.png", width=4)
    ds.add_image("mine", image_id="b", path="b.png")
    return ds


def test_prepare_builds_maps():
    ds = make_dataset()
    ds.prepare()
    assert ds.num_classes == 4 and ds.class_names == ["BG", "person", "car", "balloon"]
    np.testing.assert_array_equal(ds.image_ids, [0, 1])
    assert ds.num_images == 2
    assert ds.map_source_class_id("coco.3") == 2
    assert ds.map_source_class_id("mine.7") == 3
    assert ds.get_source_class_id(2, "coco") == 3
    with pytest.raises(ValueError):
        ds.get_source_class_id(2, "mine")
    assert ds.source_class_ids == {"": [0], "coco": [0, 1, 2], "mine": [0, 3]}
    assert ds.image_from_source_map["mine.b"] == 1
    assert ds.image_info[0]["width"] == 4
    assert ds.source_image_link(1) == "b.png"
    assert ds.image_reference(0) == ""
    assert utils.Dataset is Dataset


def test_class_map_merges_classes_across_sources():
    ds = make_dataset()
    ds.prepare(class_map={"mine.7": "coco.1"})
    assert ds.class_names == ["BG", "person", "car"]
    assert ds.map_source_class_id("mine.7") == ds.map_source_class_id("coco.1") == 1
    assert ds.source_class_ids["mine"] == [0, 1]
    with pytest.raises(ValueError, match="not a registered class"):
        make_dataset().prepare(class_map={"mine.7": "coco.99"})


def test_source_name_with_dot_is_rejected():
    with pytest.raises(ValueError, match="dot"):
        Dataset().add_class("my.source", 1, "x")


def _dataset_with(path, channel_count=3):
    ds = Dataset(channel_count=channel_count)
    ds.add_class("files", 1, "thing")
    ds.add_image("files", image_id=0, path=str(path))
    ds.prepare()
    return ds


def test_load_image_channels(tmp_path):
    gray = (np.arange(20 * 30).reshape(20, 30) % 256).astype(np.uint8)
    skimage.io.imsave(tmp_path / "gray.png", gray, check_contrast=False)
    image = _dataset_with(tmp_path / "gray.png").load_image(0)
    assert image.shape == (20, 30, 3)
    np.testing.assert_array_equal(image[..., 1], gray)

    rgba = np.zeros((8, 9, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    skimage.io.imsave(tmp_path / "rgba.png", rgba, check_contrast=False)
    image = _dataset_with(tmp_path / "rgba.png").load_image(0)
    assert image.shape == (8, 9, 3) and image[0, 0].tolist() == [200, 0, 0]
    image = _dataset_with(tmp_path / "rgba.png", channel_count=4).load_image(0)
    assert image.shape == (8, 9, 4) and image[0, 0].tolist() == [200, 0, 0, 255]
    image = _dataset_with(tmp_path / "gray.png", channel_count=1).load_image(0)
    assert image.shape == (20, 30, 1)


def test_bad_image_file_names_id_and_path(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageLoadError, match=r"image id 0 .*broken\.jpg"):
        _dataset_with(broken).load_image(0)
    with pytest.raises(ImageLoadError, match=r"image id 0 .*missing\.png"):
        _dataset_with(tmp_path / "missing.png").load_image(0)


def test_default_load_mask_is_empty():
    mask, class_ids = make_dataset().load_mask(0)
    assert mask.shape[-1] == 0 and class_ids.shape == (0,) and class_ids.dtype == np.int32
