"""Training scenarios of tests/engine/test_distribute.py, each run in a process of its own.

Devices are fixed when TensorFlow starts, so each scenario needs a fresh process:

    python tests/distribute_scenarios.py compare OUT.npz [--train-bn]
        Splits the CPU into two logical devices, trains the same tiny model from the same
        weights on the same images on one device (GPU_COUNT=1, IMAGES_PER_GPU=2) and under
        MirroredStrategy (GPU_COUNT=2, IMAGES_PER_GPU=1), and saves both runs' losses and
        weights to OUT.npz.
    python tests/distribute_scenarios.py layer_rates OUT.npz
        Two logical CPU devices: a small model under MirroredStrategy whose first layer learns
        at 0 x the learning rate (training.with_layer_learning_rates); saves each weight's
        largest change over one epoch.
    python tests/distribute_scenarios.py worker OUT_DIR MODEL_DIR
        One worker of a MultiWorkerMirroredStrategy run (TF_CONFIG set by the caller): trains
        the tiny model for two steps with ``MaskRCNN.train`` and saves its final weights to
        OUT_DIR/worker<rank>.npz.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402

from tiny import TinyConfig  # noqa: E402

# Weights the compare scenario reports: a backbone conv, the RPN conv, the FPN, a classifier
# head layer and its dense logits, and the first BatchNorm of the classifier head.
COMPARED = ("tiny_conv1/kernel", "rpn_conv_shared/kernel", "fpn_c5p5/kernel",
            "mrcnn_class_conv1/kernel", "mrcnn_class_logits/kernel",
            "mrcnn_class_bn1/moving_mean")


class EqualCountsConfig(TinyConfig):
    """Settings under which every image contributes the same number of rows to each loss, and
    the RoI sampler's subset does not depend on its random draw (see test_distribute)."""
    SEED = 0
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 0
    # One positive and one negative anchor per image (each image has a shape: its best
    # anchor is positive).
    RPN_TRAIN_ANCHORS_PER_IMAGE = 2
    # NMS that suppresses nothing keeps exactly POST_NMS_ROIS_TRAINING proposals per image...
    RPN_NMS_THRESHOLD = 1.0
    POST_NMS_ROIS_TRAINING = 32
    # ...and with no positive fraction the sampler takes every one of them as a negative.
    TRAIN_ROIS_PER_IMAGE = 32
    ROI_POSITIVE_RATIO = 0.0
    TRAIN_BN = False
    # Keras clips each replica's share before summing: clipping is exact only when inactive.
    GRADIENT_CLIP_NORM = None
    OPTIMIZER = "SGD"
    LEARNING_MOMENTUM = 0.9


def variables_by_name(keras_model):
    """{"layer/weight": keras.Variable} with the Keras-generated middle path parts dropped."""
    found = {}
    for v in keras_model.weights:
        parts = v.path.split("/")
        found.setdefault(parts[0] + "/" + parts[-1], v)
    return found


def split_cpu():
    """Two logical CPU devices (before TensorFlow starts its runtime)."""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


def compare(out_path, train_bn):
    """The compare scenario (module docstring)."""
    split_cpu()
    import tempfile

    import keras

    from mrcnn import model as modellib
    from samples.shapes.shapes import ShapesDataset

    # One step: the comparison is of one update from the same weights (a second step would
    # start from weights that a swapped proposal at the top-k cut made differ slightly).
    overrides = {"TRAIN_BN": True, "STEPS_PER_EPOCH": 1} if train_bn else \
        {"STEPS_PER_EPOCH": 1}
    one_config = type("One", (EqualCountsConfig,), dict(overrides, GPU_COUNT=1,
                                                        IMAGES_PER_GPU=2))()
    two_config = type("Two", (EqualCountsConfig,), dict(overrides, GPU_COUNT=2,
                                                        IMAGES_PER_GPU=1))()
    dataset = ShapesDataset()
    dataset.load_shapes(8, 64, 64, seed=0)
    dataset.prepare()
    logs = tempfile.mkdtemp()
    # Seeded initial weights: a run that diverges would amplify rounding differences.
    keras.utils.set_random_seed(0)
    one = modellib.MaskRCNN("training", one_config, os.path.join(logs, "one"))
    two = modellib.MaskRCNN("training", two_config, os.path.join(logs, "two"))
    assert one.strategy is None and two.strategy.num_replicas_in_sync == 2
    two.keras_model.set_weights(one.keras_model.get_weights())
    initial = {name: v.numpy() for name, v in variables_by_name(one.keras_model).items()
               if name in COMPARED}
    results = {}
    for label, model in (("one", one), ("two", two)):
        history = model.train(dataset, None, learning_rate=0.001, epochs=1, layers="all",
                              verbose=0)
        for key, values in history.history.items():
            results["{}:loss:{}".format(label, key)] = np.asarray(values)
        for name, v in variables_by_name(model.keras_model).items():
            if name in COMPARED:
                results["{}:weight:{}".format(label, name)] = v.numpy()
    for name in COMPARED:
        results["initial:weight:{}".format(name)] = initial[name]
        # Each device's copy of the mirrored variable: they must agree.
        copies = two.strategy.experimental_local_results(
            variables_by_name(two.keras_model)[name].value)
        results["copies:weight:{}".format(name)] = np.stack([c.numpy() for c in copies])
    np.savez(out_path, **results)


def layer_rates(out_path):
    """The layer_rates scenario (module docstring)."""
    split_cpu()
    import keras
    import tensorflow as tf

    from mrcnn.engine import optimizers
    from mrcnn.engine.training import with_layer_learning_rates
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        inputs = keras.Input([4])
        outputs = keras.layers.Dense(1, name="last")(keras.layers.Dense(4, name="first")(inputs))
        model = keras.Model(inputs, outputs)
        # mrcnn's fused Adam: its update kernel runs on each device's copy of the variables
        # and of Adam's slots.
        optimizer_class = with_layer_learning_rates(optimizers.FusedAdam, 0.0,
                                                    model.get_layer("first").weights)
        model.compile(optimizer=optimizer_class(learning_rate=0.1), loss="mse")
    before = {w.path: w.numpy() for w in model.weights}
    rng = np.random.default_rng(0)
    model.fit(rng.random((8, 4), np.float32), rng.random((8, 1), np.float32), batch_size=4,
              epochs=1, verbose=0)
    np.savez(out_path, **{path.replace("/", ":"): np.abs(w.numpy() - before[w.path]).max()
                          for path, w in ((w.path, w) for w in model.weights)})


def worker(out_dir, model_dir):
    """The multi-worker scenario (module docstring)."""
    from mrcnn.engine import distribute
    from mrcnn import model as modellib
    from samples.shapes.shapes import ShapesDataset

    class WorkerConfig(TinyConfig):
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
        STEPS_PER_EPOCH = 2
        VALIDATION_STEPS = 1

    dataset = ShapesDataset()
    dataset.load_shapes(8, 64, 64, seed=0)
    dataset.prepare()
    model = modellib.MaskRCNN("training", WorkerConfig(), model_dir)
    history = model.train(dataset, dataset, learning_rate=0.02, epochs=1, layers="all",
                          verbose=0)
    rank = distribute.worker_index(model.strategy)
    results = {"weight:{}".format(i): np.asarray(w)
               for i, w in enumerate(model.keras_model.get_weights())}
    results.update({"loss:" + key: np.asarray(values)
                    for key, values in history.history.items()})
    results["replicas"] = np.asarray(model.strategy.num_replicas_in_sync)
    results["chief"] = np.asarray(distribute.is_chief(model.strategy))
    np.savez(os.path.join(out_dir, "worker{}.npz".format(rank)), **results)


if __name__ == "__main__":
    if sys.argv[1] == "compare":
        compare(sys.argv[2], "--train-bn" in sys.argv[3:])
    elif sys.argv[1] == "layer_rates":
        layer_rates(sys.argv[2])
    elif sys.argv[1] == "worker":
        worker(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
