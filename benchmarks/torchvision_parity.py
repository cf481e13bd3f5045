"""torchvision's full-size ``maskrcnn_resnet50_fpn`` (or ``_v2``) against its conversion in
mrcnn, live.

Random weights (pretrained ones cannot be downloaded here; a real ``.pth`` converts the same
way), drawn as tests/reference/make_torchvision_reference.py draws them, then the heads' last layers
scaled (:func:`calibrate`) so that scores are well apart and none saturates. On ``--images``
generated 800x1066 images (torchvision's resize keeps them; both pad them to 800x1088) it reports,
per image, every stage's largest difference (``mrcnn.weights.parity.compare_stages``), and the
seconds per image of torchvision's forward pass (resize, normalization, paste included) and of
``detect()`` on the same CPU, in one run.

torch lives in another environment than TensorFlow here: the script runs itself there for the
torch half (``--torch-python``), through files in a temporary folder.

    python benchmarks/torchvision_parity.py --torch-python /path/to/torch-venv/bin/python \\
        [--arch maskrcnn_resnet50_fpn | maskrcnn_resnet50_fpn_v2] [--images 3] [--runs 3] \\
        [--out results.json]
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
REFERENCE_SCRIPT = os.path.join(ROOT, "tests", "data", "make_torchvision_reference.py")
HEIGHT, WIDTH = 800, 1066


def _reference_module():
    """tests/reference/make_torchvision_reference.py (its randomize, smooth_image and stages)."""
    spec = importlib.util.spec_from_file_location("tv_reference", REFERENCE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The standard deviations the heads' outputs are scaled to: the small reference's (its
# GAINS): scores well apart, none saturated (sigmoid(15) rounds to 1 in float32, and tied scores
# have no defined order), moderate box deltas.
OUTPUT_SPREAD = {"rpn.head.cls_logits": 1.0, "rpn.head.bbox_pred": 0.3,
                 "roi_heads.box_predictor.cls_score": 2.0,
                 "roi_heads.box_predictor.bbox_pred": 1.0}


def calibrate(model, image):
    """Scale the heads' last layers so that their outputs on ``image`` have OUTPUT_SPREAD's
    standard deviations (the full-size model's features are far larger than the small
    reference's, so the reference's fixed gains would saturate every score)."""
    import torch

    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    outputs = {}
    hooks = [model.get_submodule(name).register_forward_hook(
        lambda module, inputs, output, name=name: outputs.setdefault(name, []).append(output))
        for name in OUTPUT_SPREAD]
    with torch.no_grad():
        model([x])
    for hook in hooks:
        hook.remove()
    for name, target in OUTPUT_SPREAD.items():
        std = torch.cat([o.flatten() for o in outputs[name]]).std().item()
        module = model.get_submodule(name)
        module.weight.data *= target / std
        module.bias.data *= target / std


def torch_half(workdir, images, runs, arch):
    """In the torch environment: the model, its state dict, every stage and its timings."""
    import numpy as np
    import torch
    import torchvision
    from torchvision.models import detection

    ref = _reference_module()
    torch.manual_seed(0)
    model = getattr(detection, arch)(weights=None, weights_backbone=None)
    ref.randomize(model, torch.Generator().manual_seed(2026))
    model.eval()
    calibrate(model, ref.smooth_image((HEIGHT, WIDTH), np.random.default_rng(1)))
    np.savez(os.path.join(workdir, "state.npz"),
             **{k: v.numpy() for k, v in model.state_dict().items()})
    rng = np.random.default_rng(7)
    arrays, times = {}, []
    for i in range(images):
        image = ref.smooth_image((HEIGHT, WIDTH), rng)
        arrays["image{}/image".format(i)] = image
        for name, value in ref.stages(model, image, exact_size=False).items():
            arrays["image{}/{}".format(i, name)] = value
        x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        with torch.no_grad():
            model([x])                                             # warm-up
            for _ in range(runs):
                start = time.perf_counter()
                model([x])
                times.append(time.perf_counter() - start)
    np.savez(os.path.join(workdir, "stages.npz"), **arrays)
    with open(os.path.join(workdir, "torch.json"), "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__,
                   "threads": torch.get_num_threads(), "seconds": times}, f)


def mrcnn_half(workdir, images, runs, arch):
    """In mrcnn's environment: convert, compare stage by stage, time detect()."""
    import numpy as np

    sys.path.insert(0, ROOT)
    from mrcnn.weights import convert, parity
    from mrcnn import model as modellib

    config = convert.torchvision_config(arch)
    model = modellib.MaskRCNN("inference", config, os.path.join(workdir, "logs"))
    start = time.perf_counter()
    convert.load_torchvision_state_dict(model.keras_model,
                                        convert.read_state_dict(os.path.join(workdir,
                                                                             "state.npz")))
    convert_seconds = time.perf_counter() - start
    with np.load(os.path.join(workdir, "stages.npz")) as data:
        stages = {k: data[k] for k in data.files}
    reports, times = [], []
    for i in range(images):
        prefix = "image{}/".format(i)
        theirs = {k[len(prefix):]: v for k, v in stages.items() if k.startswith(prefix)}
        image = theirs["image"]
        reports.append(parity.compare_stages(parity.torchvision_stages(model, image), theirs))
        model.detect([image])                                      # warm-up
        for _ in range(runs):
            start = time.perf_counter()
            model.detect([image])
            times.append(time.perf_counter() - start)
    return reports, times, convert_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torch-python", default=sys.executable,
                        help="a Python with torch and torchvision")
    parser.add_argument("--arch", default="maskrcnn_resnet50_fpn",
                        choices=["maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2"])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="timed calls per image")
    parser.add_argument("--out", default=None)
    parser.add_argument("--torch-half", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_half:
        torch_half(args.torch_half, args.images, args.runs, args.arch)
        return
    with tempfile.TemporaryDirectory() as workdir:
        subprocess.run([args.torch_python, os.path.abspath(__file__), "--torch-half", workdir,
                        "--images", str(args.images), "--runs", str(args.runs),
                        "--arch", args.arch], check=True)
        with open(os.path.join(workdir, "torch.json")) as f:
            torch_results = json.load(f)
        reports, times, convert_seconds = mrcnn_half(workdir, args.images, args.runs,
                                                     args.arch)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _report import emit, machine

    import numpy as np
    worst = {k: max(r[k] for r in reports) for k in reports[0]
             if k not in ("proposals", "torchvision_proposals", "detections",
                          "torchvision_detections", "proposals_matched",
                          "detections_matched")}
    worst.update({k: min(r[k] for r in reports) for k in ("proposals_matched",
                                                          "detections_matched")})
    emit({"benchmark": "torchvision_parity", "arch": args.arch, "machine": machine(),
          "image": [HEIGHT, WIDTH], "images": args.images, "runs": args.runs,
          "torch": torch_results["torch"], "torchvision": torch_results["torchvision"],
          "torch_threads": torch_results["threads"],
          "convert_seconds": round(convert_seconds, 2),
          "worst_over_images": worst, "per_image": reports,
          "seconds_per_image": {
              "torchvision": round(float(np.median(torch_results["seconds"])), 3),
              "mrcnn_detect": round(float(np.median(times)), 3)}}, args.out)


if __name__ == "__main__":
    main()
