"""Where detect()'s gap to its own SavedModel comes from, in one process (issue 28, item 2).

Four ways to run the same model on the same 1024x1024 image, interleaved call by call (one
warm-up call each, then ``--runs`` rounds; medians reported):

- ``detect``: ``model.detect([image])`` (NumPy molding, ``predict_on_batch``, every graph output
  copied to NumPy, then the traced unmolding);
- ``fused``: the same molding, then one ``tf.function`` of the Keras model that returns only
  ``detections`` and ``mrcnn_mask`` as tensors to the same unmolding (no host copy of the other
  outputs);
- ``signature_in_process``: the SavedModel's serving function (``mrcnn.export.serving``),
  traced in this process and not saved: the whole detection in one graph;
- ``savedmodel``: that signature exported and loaded back with ``tf.saved_model.load``.

``fused`` and ``detect`` give identical results (checked). Default Config, ResNet-50-FPN, 81
classes, random weights, DETECTION_MIN_CONFIDENCE 0 (100 detections pasted), float32.

    python benchmarks/detect_vs_savedmodel.py [--runs 5] [--out results.json]
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from _report import emit, machine  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds of calls")
    parser.add_argument("--size", type=int, default=1024, help="IMAGE_MAX_DIM (square)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    import tensorflow as tf
    from mrcnn import model as modellib
    from mrcnn.config import Config
    from mrcnn.export.serving import _Serving
    from mrcnn.inference import postprocess

    class BenchConfig(Config):
        NAME = "bench"
        NUM_CLASSES = 81
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = args.size
        IMAGE_MAX_DIM = args.size
        DETECTION_MIN_CONFIDENCE = 0.0

    model = modellib.MaskRCNN("inference", BenchConfig(), "/tmp/mrcnn_bench_logs")
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), np.uint8)
    keras_model = model.keras_model

    @tf.function(reduce_retracing=True)
    def infer(images, metas, anchors):
        outputs = keras_model([images, metas, anchors], training=False)
        return {"detections": outputs["detections"], "mrcnn_mask": outputs["mrcnn_mask"]}

    def fused():
        molded, metas, windows = model.mold_inputs([image])
        outputs = infer(tf.constant(molded), tf.constant(metas),
                        tf.constant(model.anchor_cache.batch(molded)))
        return postprocess.unmold_batch(outputs, [image.shape], molded.shape[1:], windows,
                                        model.config)

    tensor = tf.constant(image)
    in_process = _Serving(model).serve
    with tempfile.TemporaryDirectory() as tmp:
        model.export(os.path.join(tmp, "saved"))
        loaded = tf.saved_model.load(os.path.join(tmp, "saved")).signatures["serving_default"]
        ways = {"detect": lambda: model.detect([image]), "fused": fused,
                "signature_in_process": lambda: in_process(tensor),
                "savedmodel": lambda: loaded(image=tensor)}
        a, b = model.detect([image])[0], fused()[0]
        same = all(np.array_equal(a[k], b[k]) for k in a)
        for way in ways.values():
            way()
        times = {name: [] for name in ways}
        for _ in range(args.runs):
            for name, way in ways.items():
                start = time.perf_counter()
                way()
                times[name].append(round(time.perf_counter() - start, 3))
    medians = {name: round(float(np.median(t)), 3) for name, t in times.items()}
    emit({"machine": machine(), "image": list(image.shape), "runs": args.runs,
          "tensorflow": tf.__version__, "fused_equals_detect": same,
          "seconds_per_image": medians, "all_runs_s": times,
          "ratio_to_savedmodel": {name: round(m / medians["savedmodel"], 3)
                                  for name, m in medians.items()}}, args.out)


if __name__ == "__main__":
    main()
