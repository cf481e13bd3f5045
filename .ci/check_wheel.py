"""Release check: a wheel built from a clean clone installs into a fresh venv and runs there.

1. ``git clone`` this checkout's HEAD into a temporary folder (what is committed, nothing else);
2. build the wheel there (``pip wheel --no-deps``);
3. make a fresh venv and ``pip install`` the wheel, its dependencies from the package index;
4. from a folder outside any checkout: ``mrcnn --help`` (the console script), then a
   ``detect()`` on a generated image with a small ResNet-50 config, checking that ``mrcnn`` was
   imported from the venv and not from a checkout.

Prints one JSON line with the wheel's name and each step's seconds; exits non-zero on failure.
Minutes (the dependencies install; pip's cache helps), so not part of ``make test``:

    make wheel-check        # or: python3 .ci/check_wheel.py [--keep DIR]
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# Run by the venv's python in a folder outside the checkout.
DETECT_SCRIPT = """
import json, os, sys
import numpy as np
import mrcnn
from mrcnn import model as modellib
from mrcnn.config import Config

class Small(Config):
    NAME = "wheel_check"
    NUM_CLASSES = 3
    BACKBONE = "resnet50"
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    GPU_COUNT = IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0

model = modellib.MaskRCNN("inference", Small(), model_dir="logs")
image = np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)
result = model.detect([image])[0]
assert result["masks"].shape[:2] == (100, 140), result["masks"].shape
assert len(result["class_ids"]) == len(result["scores"]) == len(result["rois"])
print(json.dumps({"mrcnn_file": mrcnn.__file__, "version": mrcnn.__version__,
                  "detections": int(len(result["class_ids"]))}))
"""


def run(command, **kwargs):
    """Run ``command``; its output is shown only when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit("failed ({}): {}".format(result.returncode, " ".join(command)))
    return result.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="work in this folder and leave it (default: a "
                                       "temporary folder, removed)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that builds the wheel and makes the venv")
    args = parser.parse_args(argv)
    if args.keep:
        if os.path.exists(args.keep):
            raise SystemExit("--keep {}: choose a folder that does not exist".format(args.keep))
        os.makedirs(args.keep)
    work = args.keep or tempfile.mkdtemp(prefix="mrcnn_wheel_")
    try:
        check(work, args.python)
    finally:
        # A failed check must not leave a clone and a venv with TensorFlow behind.
        if not args.keep:
            import shutil
            shutil.rmtree(work, ignore_errors=True)


def check(work, python):
    """The steps of the module docstring in ``work``; prints the JSON line."""
    seconds = {}

    def step(name, fn):
        start = time.time()
        value = fn()
        seconds[name] = round(time.time() - start, 1)
        return value

    clone, dist, venv = (os.path.join(work, n) for n in ("clone", "dist", "venv"))
    outside = os.path.join(work, "outside")
    os.makedirs(outside, exist_ok=True)
    step("clone", lambda: run(["git", "clone", "--quiet", ROOT, clone]))
    step("build", lambda: run([python, "-m", "pip", "wheel", "--quiet", "--no-deps",
                               "-w", dist, clone]))
    wheels = glob.glob(os.path.join(dist, "*.whl"))
    if len(wheels) != 1:
        raise SystemExit("expected one wheel in {}, found {}".format(dist, wheels))
    step("venv", lambda: run([python, "-m", "venv", venv]))
    py = os.path.join(venv, "bin", "python")
    step("install", lambda: run([py, "-m", "pip", "install", "--quiet", wheels[0]]))
    # Outside any checkout, and without this repository on the path.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    help_text = step("help", lambda: run([os.path.join(venv, "bin", "mrcnn"), "--help"],
                                          cwd=outside, env=env))
    for command in ("inspect", "train", "evaluate", "detect", "export"):
        if command not in help_text:
            raise SystemExit("mrcnn --help does not list {!r}:\n{}".format(command, help_text))
    detect = json.loads(step("detect", lambda: run([py, "-c", DETECT_SCRIPT], cwd=outside,
                                                   env=env)).strip().splitlines()[-1])
    if not os.path.abspath(detect["mrcnn_file"]).startswith(os.path.abspath(venv)):
        raise SystemExit("mrcnn was imported from {}, not from the venv".format(
            detect["mrcnn_file"]))
    print(json.dumps({"wheel": os.path.basename(wheels[0]), "seconds": seconds, **detect}))


if __name__ == "__main__":
    main()
