"""Where ``detect()``'s time goes: seconds per stage of one image, in one process.

The inference graph is timed as a series of prefixes that share its layers: backbone + FPN
(the P2..P6 maps), then the RPN head, the proposals (``ROI``), the classifier's RoIAlign, the
box/class head, the detection layer, the mask head's RoIAlign and the mask head (the whole
graph). Each prefix is a ``keras.Model`` on the inference model's inputs whose outputs are the
stage's and all earlier ones, run with ``predict_on_batch`` as ``detect()`` runs the whole
graph; a stage's time is its prefix's median minus the previous prefix's median (medians of
``--runs`` calls, one warm-up call each, the prefixes taken in turn). Differences of medians
are noisy for the short stages (a few ms of a 4 s call): read them with the prefix times.
Outside the graph: molding (``mold_inputs``, NumPy), the anchors batch, unmolding and pasting
(``postprocess.unmold_batch``), and ``detect()`` itself, whose time should be the sum. Each
prefix returns the sums of its outputs (computed in the graph), so that host copies of large
maps are not timed; ``graph_with_outputs`` is the whole
graph as ``detect()`` calls it, its outputs copied to NumPy, and ``outputs_copy`` the
difference. ``detect_minus_parts`` is what ``detect()`` spends outside all the parts.

ResNet-50-FPN (or ``--backbone resnet101``) at ``--size`` (1024) with 81 classes, random
weights, DETECTION_MIN_CONFIDENCE 0 so that all 100 detections are kept and pasted (a busy
image), one 1024x768 image (scaled into the square), float32.

    python benchmarks/detect_profile.py [--runs 5] [--size 1024] [--backbone resnet50]
        [--out results.json]
"""

import argparse
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import emit, machine, run_times  # noqa: E402

# (stage, the layers whose outputs end it), in graph order.
STAGES = [
    ("backbone_fpn", ["fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6"]),
    ("rpn_head", ["rpn_class", "rpn_bbox"]),
    ("proposals_nms", ["ROI"]),
    ("roi_align_classifier", ["roi_align_classifier"]),
    ("box_class_head", ["mrcnn_class", "mrcnn_bbox"]),
    ("detection_nms", ["mrcnn_detection"]),
    ("roi_align_mask", ["roi_align_mask"]),
    ("mask_head", ["mrcnn_mask_probs"]),
]


def profile(backbone, size, runs):
    """The per-stage medians (seconds) and detect()'s, as a dict."""
    import keras
    import numpy as np
    import tensorflow as tf

    from mrcnn import model as modellib
    from mrcnn.config import Config
    from mrcnn.inference import postprocess

    class ProfileConfig(Config):
        NAME = "profile"
        BACKBONE = backbone
        NUM_CLASSES = 81
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        DETECTION_MIN_CONFIDENCE = 0.0

    config = ProfileConfig()
    model = modellib.MaskRCNN("inference", config, "/tmp/mrcnn_bench_logs")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size * 3 // 4, size, 3), dtype=np.uint8)
    graph = model.keras_model

    def median(fn):
        return float(np.median(run_times(fn, runs, warmup=1)))

    molded, metas, windows = model.mold_inputs([image])
    anchors = model.anchor_cache.batch(molded)
    inputs = [molded, metas, anchors]
    result = {"mold_inputs": median(lambda: model.mold_inputs([image])),
              "anchors_batch": median(lambda: model.anchor_cache.batch(molded))}

    prefixes, outputs = {}, []
    for stage, layer_names in STAGES:
        # Each output reduced to its sum in the graph: the prefix computes it, but copying
        # P2 (64 MB at 1024x1024) to the host would be timed too.
        outputs += [keras.ops.sum(graph.get_layer(name).output) for name in layer_names]
        prefixes[stage] = keras.Model(graph.inputs, list(outputs))
        prefixes[stage].predict_on_batch(inputs)        # warm-up: tracing
    # Round robin, so that a slow spell of the machine touches every prefix alike.
    times = {stage: [] for stage in prefixes}
    for _ in range(runs):
        for stage, prefix in prefixes.items():
            times[stage] += run_times(lambda p=prefix: p.predict_on_batch(inputs), 1, 0)
    previous, cumulative = 0.0, {}
    for stage in prefixes:
        cumulative[stage] = float(np.median(times[stage]))
        result[stage] = cumulative[stage] - previous
        previous = cumulative[stage]
    graph_outputs = graph.predict_on_batch(inputs)
    # What detect() runs: the whole graph with its named outputs copied to NumPy.
    result["graph_with_outputs"] = median(lambda: graph.predict_on_batch(inputs))
    result["outputs_copy"] = result["graph_with_outputs"] - previous
    result["unmold_paste"] = median(lambda: postprocess.unmold_batch(
        graph_outputs, [image.shape], molded.shape[1:], windows, config))
    result["detect"] = median(lambda: model.detect([image]))
    in_parts = result["mold_inputs"] + result["anchors_batch"] + \
        result["graph_with_outputs"] + result["unmold_paste"]
    result["detect_minus_parts"] = result["detect"] - in_parts
    detections = len(model.detect([image])[0]["class_ids"])
    return {"stages_s": {k: round(v, 4) for k, v in result.items()},
            "graph_prefix_s": {k: round(v, 4) for k, v in cumulative.items()},
            "share_of_detect": {k: round(v / result["detect"], 3) for k, v in result.items()
                                if k not in ("detect", "detect_minus_parts",
                                             "graph_with_outputs")},
            "detections": detections, "tensorflow": tf.__version__}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--backbone", default="resnet50", choices=["resnet50", "resnet101"])
    parser.add_argument("--out")
    args = parser.parse_args()
    results = {"benchmark": "detect_profile", "machine": machine(), "backbone": args.backbone,
               "size": args.size, "runs": args.runs}
    results.update(profile(args.backbone, args.size, args.runs))
    emit(results, args.out)


if __name__ == "__main__":
    main()
