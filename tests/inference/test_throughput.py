"""``MaskRCNN.detect_iter`` (``mrcnn.inference.throughput``): the same results as ``detect()``, in
input order, from arrays, files and a generator of video frames; failing inputs reported by name."""

import itertools

import numpy as np
import pytest
import skimage.io

from mrcnn import model as modellib
from mrcnn.data.images import read_rgb
from tiny import TinyConfig, shift_class_logits

KEYS = ("rois", "class_ids", "scores", "masks")


class ThroughputConfig(TinyConfig):
    IMAGES_PER_GPU = 3
    DETECTION_MIN_CONFIDENCE = 0.0   # random weights: keep whatever they find


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny inference model with random weights, its classifier favouring class 1 so that
    the compared results are not empty, with a small kernel so that the scores stay apart:
    saturated scores tie, and on some CPUs (an AVX2-only EPYC) the graph's float noise then
    ordered the tied detections differently with another batch."""
    model = modellib.MaskRCNN("inference", ThroughputConfig(),
                              str(tmp_path_factory.mktemp("logs")))
    return shift_class_logits(model, [0, 3, 0, 0], 0.05)


@pytest.fixture(scope="module")
def images(tiny_shapes):
    """Seven images (not a multiple of BATCH_SIZE 3), one of another size (resized)."""
    images = [tiny_shapes.load_image(i) for i in range(6)]
    images.insert(4, np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    return images


@pytest.fixture(scope="module")
def expected(model, images):
    results = model.detect(images)
    assert sum(len(r["class_ids"]) for r in results) > 0
    return results


def assert_same(result, reference):
    for key in KEYS:
        if key == "scores":
            np.testing.assert_allclose(result[key], reference[key], rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(result[key], reference[key])


@pytest.mark.parametrize("batch_size", [None, 2])
def test_arrays_give_detect_results_in_order(model, images, expected, batch_size):
    results = list(model.detect_iter(images, batch_size=batch_size))
    assert [r["index"] for r in results] == list(range(len(images)))
    assert [r["name"] for r in results] == ["image {}".format(i) for i in range(len(images))]
    for result, reference in zip(results, expected):
        assert "error" not in result
        assert_same(result, reference)


def test_file_paths(model, images, expected, tmp_path):
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / "{}.png".format(i)))
        skimage.io.imsave(paths[-1], image, check_contrast=False)
    results = list(model.detect_iter(paths, return_images=True, workers=3))
    assert [r["name"] for r in results] == paths
    for path, result, reference in zip(paths, results, expected):
        np.testing.assert_array_equal(result["image"], read_rgb(path))
        assert_same(result, reference)


def test_generator_of_video_frames_is_read_lazily(model, images, expected):
    read = []

    def frames():
        # An endless stream, as from a camera: detect_iter must read only a bounded window.
        for index in itertools.count():
            read.append(index)
            yield images[index % len(images)]

    stream = model.detect_iter(frames(), prefetch=4)
    results = list(itertools.islice(stream, 5))
    stream.close()
    assert [r["index"] for r in results] == list(range(5))
    for result, reference in zip(results, expected):
        assert_same(result, reference)
    # 5 results (two batches of 3 taken), 4 read ahead in the queue, one in the producer's
    # hand.
    assert len(read) <= 6 + 4 + 1


def test_failing_inputs_are_reported_by_name_and_the_others_go_on(model, images, expected,
                                                                   tmp_path):
    good = str(tmp_path / "good.png")
    skimage.io.imsave(good, images[1], check_contrast=False)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg")
    missing = str(tmp_path / "missing.png")
    inputs = [images[0], missing, good, np.zeros((64, 64), np.uint8), str(corrupt),
              np.full((64, 64, 3), 0.5, np.float32), images[2], images[3]]
    results = list(model.detect_iter(inputs))
    assert [r["index"] for r in results] == list(range(len(inputs)))
    failed = {r["index"]: r["error"] for r in results if "error" in r}
    assert sorted(failed) == [1, 3, 4, 5]
    assert failed[1].startswith(missing + ": cannot read")
    assert failed[3].startswith("image 3: expected an image of shape [height, width, 3]")
    assert failed[4].startswith(str(corrupt) + ": cannot read")
    assert failed[5].startswith("image 5: float image with values in [0.5, 0.5]")
    for index, reference in ((0, expected[0]), (2, expected[1]), (6, expected[2]),
                             (7, expected[3])):
        assert_same(results[index], reference)
    assert all(key not in results[1] for key in KEYS)


def test_arguments_are_checked_before_reading(model):
    with pytest.raises(ValueError, match=r"batch_size must be within 1..BATCH_SIZE \(3\)"):
        model.detect_iter([], batch_size=4)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        model.detect_iter([], workers=0)
    with pytest.raises(TypeError):
        model.detect_iter(42)
    assert list(model.detect_iter([])) == []


def test_an_error_of_the_iterable_itself_is_raised(model, images):
    def frames():
        yield images[0]
        raise OSError("the camera went away")

    results = []
    with pytest.raises(OSError, match="the camera went away"):
        for result in model.detect_iter(frames()):
            results.append(result)
    assert [r["index"] for r in results] == [0]
