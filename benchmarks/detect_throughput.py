"""Images per second over a folder of JPEGs: sequential ``detect()`` vs ``detect_iter``.

Writes ``--images`` generated JPEGs of ``--size`` (default 1024x768, width x height) to a
temporary folder, builds Mask R-CNN with ResNet-50-FPN (default Config, 81 classes as for COCO,
random weights, DETECTION_MIN_CONFIDENCE 0 so that every detection's mask is pasted: a busy
image; IMAGES_PER_GPU ``--images-per-gpu``, default 1 as ``python -m mrcnn detect``), then
times, alternating ``--runs`` times in the same process:

- sequential: for each BATCH_SIZE files, ``read_rgb`` them then ``model.detect(images)``
  (what a script looping over a folder does);
- detect_iter: ``model.detect_iter(paths)``, which reads and molds the next files in
  ``--workers`` threads while the graph runs.

Both are warmed up first (graph tracing) and their results are dropped as they come (the
pasted masks of 100 detections are 75 MiB an image). Prints JSON (``_report.machine()``).
``--tiny`` uses the shapes sample's tiny preset instead: a smoke run of the script, not a
measurement.

    python benchmarks/detect_throughput.py [--images 16] [--runs 3] [--out results.json]
    python benchmarks/detect_throughput.py --tiny --images 2 --runs 1 --size 96x72
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from _report import emit, machine  # noqa: E402


def write_jpegs(folder, count, width, height, seed=0):
    """``count`` JPEGs of width x height: smooth colour fields with noise, so that they
    compress and decode like photos rather than like pure noise."""
    import numpy as np
    import skimage.io

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        channels = [127 + 100 * np.sin(xx / (40 + 20 * c) + yy / (60 + 10 * c) + phase[c])
                    for c in range(3)]
        image = np.stack(channels, axis=-1) + rng.normal(0, 12, (height, width, 3))
        path = os.path.join(folder, "image_{:04d}.jpg".format(i))
        skimage.io.imsave(path, np.clip(image, 0, 255).astype(np.uint8), quality=90)
        paths.append(path)
    return paths


def build_model(tiny, images_per_gpu):
    """The benchmarked inference model (random weights)."""
    from mrcnn import model as modellib
    from mrcnn.config import Config

    attributes = {"NAME": "throughput", "GPU_COUNT": 1, "IMAGES_PER_GPU": images_per_gpu,
                  "DETECTION_MIN_CONFIDENCE": 0.0}
    if tiny:
        from samples.shapes.shapes import TinyShapesConfig as base
    else:
        base = Config
        attributes.update(BACKBONE="resnet50", NUM_CLASSES=81)
    config = type("ThroughputConfig", (base,), attributes)()
    return modellib.MaskRCNN("inference", config, "/tmp/mrcnn_bench_logs")


def sequential(model, paths):
    """Read BATCH_SIZE files, detect() on them, and so on; returns the detections count."""
    from mrcnn.data.images import read_rgb

    found = 0
    step = model.config.BATCH_SIZE
    for start in range(0, len(paths), step):
        images = [read_rgb(p) for p in paths[start:start + step]]
        found += sum(len(r["class_ids"]) for r in model.detect(images))
    return found


def pipelined(model, paths, workers):
    """detect_iter over the files; returns the detections count (errors would fail here)."""
    found = 0
    for result in model.detect_iter(paths, workers=workers):
        if "error" in result:
            raise RuntimeError(result["error"])
        found += len(result["class_ids"])
    return found


def main(argv=None):
    """Parse the arguments, time both paths, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16, help="JPEGs in the folder")
    parser.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of the JPEGs")
    parser.add_argument("--runs", type=int, default=3,
                        help="timed passes of each path, alternating (median reported)")
    parser.add_argument("--images-per-gpu", type=int, default=1, help="IMAGES_PER_GPU")
    parser.add_argument("--workers", type=int, default=2, help="detect_iter's reading threads")
    parser.add_argument("--tiny", action="store_true",
                        help="the shapes sample's tiny preset (smoke run, not a measurement)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    width, height = (int(v) for v in args.size.lower().split("x"))
    model = build_model(args.tiny, args.images_per_gpu)
    with tempfile.TemporaryDirectory(prefix="mrcnn_throughput_") as folder:
        paths = write_jpegs(folder, args.images, width, height)
        # Warm-up: graph tracing and the unmolding function's first call.
        warm = paths[:model.config.BATCH_SIZE]
        sequential(model, warm)
        pipelined(model, warm, args.workers)
        times = {"sequential_detect": [], "detect_iter": []}
        counts = {}
        for _ in range(args.runs):
            for name, run in (("sequential_detect", lambda: sequential(model, paths)),
                              ("detect_iter", lambda: pipelined(model, paths, args.workers))):
                start = time.perf_counter()
                counts[name] = run()
                times[name].append(time.perf_counter() - start)
    rates = {name: args.images / float(np.median(t)) for name, t in times.items()}
    emit({"benchmark": "detect_throughput", "machine": machine(),
          "tensorflow": tf.__version__,
          "model": "tiny shapes preset (smoke)" if args.tiny else "resnet50-fpn, 81 classes",
          "image_size_wxh": [width, height], "images": args.images,
          "images_per_gpu": args.images_per_gpu, "workers": args.workers, "runs": args.runs,
          "images_per_s": {name: round(rate, 3) for name, rate in rates.items()},
          "speedup_detect_iter": round(rates["detect_iter"] / rates["sequential_detect"], 3),
          "all_runs_s": {name: [round(t, 3) for t in ts] for name, ts in times.items()},
          "detections": counts}, args.out)


if __name__ == "__main__":
    main()
