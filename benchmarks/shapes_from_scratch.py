"""Shapes from random initialization: mAP@0.5 on 100 held-out images and wall-clock time.

Runs exactly what `make demo` runs (``samples/shapes/shapes.py demo``: train from scratch,
evaluate, draw detections) and prints its summary as JSON, with the machine's core count.

    python benchmarks/shapes_from_scratch.py [--epochs N] [--out results.json]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from _report import emit, machine  # noqa: E402
from samples.shapes import shapes  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="override the demo's epoch count")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    logs = tempfile.mkdtemp(prefix="shapes_scratch_")
    argv = ["demo", "--logs", logs, "--out", os.path.join(logs, "detections.png")]
    if args.epochs:
        argv += ["--epochs", str(args.epochs)]
    start = time.time()
    summary = shapes.main(argv)
    summary["wall_clock_s"] = round(time.time() - start, 1)
    summary["machine"] = machine()
    emit(summary, args.out)


if __name__ == "__main__":
    main()
