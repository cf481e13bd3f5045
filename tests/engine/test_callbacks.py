"""TensorBoard detection pictures written by train()."""

import glob
import os

import numpy as np
import tensorflow as tf

from mrcnn.engine import callbacks
from mrcnn import model as modellib
from samples.shapes.shapes import ShapesDataset
from tiny import TinyConfig


class PicturesConfig(TinyConfig):
    STEPS_PER_EPOCH = 1
    TENSORBOARD_IMAGES = True
    TENSORBOARD_IMAGE_COUNT = 2


def image_summaries(directory):
    """[(tag, step, height, width)] of the image summaries in a log directory's event files."""
    found = []
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    tensor = tf.make_ndarray(value.tensor)      # [width, height, png...]
                    found.append((value.tag, event.step, int(tensor[1]), int(tensor[0])))
    return found


def test_training_writes_ground_truth_vs_detection_pictures(tmp_path, tiny_shapes):
    val = ShapesDataset()
    val.load_shapes(3, 64, 64, seed=9)
    val.prepare()
    model = modellib.MaskRCNN("training", PicturesConfig(), str(tmp_path))
    model.train(tiny_shapes, val, learning_rate=0.01, epochs=2, layers="all", verbose=0)
    found = image_summaries(os.path.join(model.log_dir, "images"))
    tags = sorted({tag for tag, *_ in found})
    assert tags == ["detections/image_0", "detections/image_1"]
    assert sorted(step for _, step, *_ in found) == [1, 1, 2, 2]
    assert all(h > 100 and w > 2 * h * 0.8 for _, _, h, w in found)   # two panels side by side


def test_pictures_can_be_turned_off(tmp_path, tiny_shapes):
    class Off(PicturesConfig):
        TENSORBOARD_IMAGES = False
    model = modellib.MaskRCNN("training", Off(), str(tmp_path))
    model.train(tiny_shapes, tiny_shapes, learning_rate=0.01, epochs=1, layers="all", verbose=0)
    assert not os.path.exists(os.path.join(model.log_dir, "images"))


def test_inference_config_of_a_crop_training_config():
    class Crop(TinyConfig):
        IMAGE_RESIZE_MODE = "crop"
        IMAGE_MIN_DIM = 64
    config = callbacks.inference_config(Crop(), 3)
    assert config.IMAGE_RESIZE_MODE == "pad64" and config.BATCH_SIZE == 3
    assert Crop().IMAGE_RESIZE_MODE == "crop"                 # the original is untouched
    np.testing.assert_array_equal(config.IMAGE_SHAPE, [64, 64, 3])


def test_collapse_warning_is_printed_during_training(tiny_shapes, capsys, tmp_path):
    import keras

    class Collapsed:
        """Stands in for the inference model: finds every object, all as class 1."""
        keras_model = keras.Sequential([])

        def detect(self, images):
            results = []
            for i in range(len(images)):
                masks, _ = tiny_shapes.load_mask(i)
                n = masks.shape[-1]
                results.append({"masks": masks, "class_ids": np.ones(n, np.int32),
                                "scores": np.linspace(0.9, 0.5, n),
                                "rois": np.zeros((n, 4), np.int32)})
            return results
    callback = callbacks.DetectionImagesCallback(
        Collapsed, Collapsed.keras_model, tiny_shapes, str(tmp_path), count=8, pictures=False)
    callback.on_epoch_end(0)
    truth = np.concatenate([tiny_shapes.load_mask(i)[1] for i in range(8)])
    assert len(set(truth.tolist())) > 1 and np.mean(truth == 1) < 0.8
    assert len(callback.warnings) == 1 and callback.warnings[0][0] == 1
    assert "100% of predictions are 'square'" in capsys.readouterr().out
