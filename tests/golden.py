"""The golden check of the refactor: a seeded tiny model's losses and detections on fixed inputs.

``python tests/golden.py record`` wrote ``tests/reference/golden_tiny.npz`` with the code before the
refactor of issue 8; ``tests/test_golden.py`` recomputes the same numbers with today's code.

Randomness is taken out of the comparison: weights come from a NumPy generator keyed by each
weight's file name (``<layer>/<variable>``, the contract that does not change), the training
inputs are stored arrays, and the config makes RPN anchor sampling and RoI sampling exhaustive
(every candidate is taken), so that a different random stream in the samplers cannot change the
losses.
"""

import os
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

from tiny import TinyConfig  # noqa: E402

GOLDEN_PATH = os.path.join(HERE, "reference", "golden_tiny.npz")
INPUT_NAMES = ("input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox",
               "input_gt_class_ids", "input_gt_boxes", "input_gt_masks")
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
              "mrcnn_mask_loss")


class GoldenConfig(TinyConfig):
    NAME = "golden"
    # 64x64 images have 1023 anchors: 2048 sampled anchors take every positive and negative.
    RPN_TRAIN_ANCHORS_PER_IMAGE = 2048
    # At most 50 proposals and a positive ratio of 1/50: int(P / ratio) - P >= 50 - P for any
    # P >= 1 positives, and 1000 * (1 - ratio) >= 50 without positives, so every negative is
    # taken; every positive is taken while P <= 20 (checked by the test).
    POST_NMS_ROIS_TRAINING = 50
    TRAIN_ROIS_PER_IMAGE = 1000
    ROI_POSITIVE_RATIO = 0.02
    DETECTION_MIN_CONFIDENCE = 0.0
    # The mask head sees the first 20 RoI slots, negatives among them in a random order: batch
    # statistics would depend on that order, the moving ones do not.
    TRAIN_BN = False
    # Object-sized anchors at every level (the shapes are 40 pixels wide).
    RPN_ANCHOR_SCALES = (32, 36, 40, 44, 48)


class GoldenInferenceConfig(GoldenConfig):
    IMAGES_PER_GPU = 2


OUTPUT_LAYERS = ("rpn_bbox_pred", "rpn_class_raw", "mrcnn_class_logits", "mrcnn_bbox_fc",
                 "mrcnn_mask")


def weight_key(layer_name, variable):
    return "{}/{}".format(layer_name, variable.name.split("/")[-1].split(":")[0])


def set_deterministic_weights(keras_model):
    """Give every weight a value drawn from a generator seeded by its file name."""
    from mrcnn.weights import loading as weights
    for _, layer in weights.weight_owners(keras_model):
        for v in layer.weights:
            key = weight_key(layer.name, v)
            rng = np.random.default_rng(zlib.crc32(key.encode()))
            shape = tuple(v.shape)
            name = key.rsplit("/", 1)[1]
            if name in ("gamma", "moving_variance"):
                value = 1.0 + 0.1 * rng.uniform(-1, 1, shape)
            elif name in ("beta", "moving_mean", "bias"):
                value = 0.1 * rng.standard_normal(shape)
            else:
                fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
                # Small output layers: proposals near the anchors, and no saturated softmax or
                # sigmoid (where clipped and unclipped cross-entropies would differ).
                gain = 0.01 if layer.name in OUTPUT_LAYERS else 1.0
                value = rng.standard_normal(shape) * np.sqrt(1.0 / fan_in) * gain
            v.assign(value.astype(np.float32))


def shapes_dataset():
    from samples.shapes.shapes import ShapesDataset
    ds = ShapesDataset()
    ds.load_shapes(4, 64, 64, seed=11)
    ds.prepare()
    return ds


def compute(inputs=None):
    """(inputs, losses, detections) of today's code; ``inputs`` default: built by the pipeline."""
    import tensorflow as tf
    from mrcnn.data import pipeline as data
    from mrcnn import model as modellib

    dataset = shapes_dataset()
    config = GoldenConfig()
    if inputs is None:
        batch = next(iter(data.build_input_pipeline(dataset, config, seed=3)))
        inputs = {name: batch[name].numpy() for name in INPUT_NAMES}
    model = modellib.MaskRCNN("training", config, "/tmp/unused")
    set_deterministic_weights(model.keras_model)
    outputs = model.keras_model({k: tf.constant(v) for k, v in inputs.items()}, training=True)
    losses = {name: float(tf.reduce_mean(outputs[name])) for name in LOSS_NAMES}
    positives = int(np.sum(outputs["target_class_ids"].numpy() > 0, axis=1).max())

    infer = modellib.MaskRCNN("inference", GoldenInferenceConfig(), "/tmp/unused")
    set_deterministic_weights(infer.keras_model)
    images = [dataset.load_image(i) for i in range(2)]
    images.append(np.ascontiguousarray(dataset.load_image(2)[4:52]))   # padded when molded
    detections = {}
    for i, r in enumerate(infer.detect(images)):
        for key in ("rois", "class_ids", "scores", "masks"):
            detections["det{}_{}".format(i, key)] = r[key]
    return inputs, losses, detections, positives


def record():
    inputs, losses, detections, positives = compute()
    payload = {"in_" + k: v for k, v in inputs.items()}
    payload.update({"loss_" + k: np.float64(v) for k, v in losses.items()})
    payload.update(detections)
    payload["max_positives"] = np.int64(positives)
    np.savez_compressed(GOLDEN_PATH, **payload)
    print("recorded", GOLDEN_PATH, losses, "max positives", positives,
          {k: v.shape for k, v in detections.items() if k.endswith("class_ids")})


if __name__ == "__main__" and sys.argv[1:] == ["record"]:
    record()
