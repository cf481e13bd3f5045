"""Balloons: train Mask R-CNN on one new class and apply a colour splash (Matterport's sample).

The data is a folder per subset with images and a VGG Image Annotator (VIA) json of balloon
outlines. The colour splash keeps the colour of the pixels inside detected balloons and turns
everything else gray.

Usage, from the repository root::

    # Train the heads, starting from Matterport's COCO weights
    python samples/balloon/balloon.py train --dataset /data/balloon --weights coco
    # Colour splash of an image or a video with the newest checkpoint
    python samples/balloon/balloon.py splash --weights last --image photo.jpg
    python samples/balloon/balloon.py splash --weights last --video clip.mp4
    # COCO mask and box AP on the validation images
    python samples/balloon/balloon.py evaluate --dataset /data/balloon --weights last
    # Dataset report (class balance, object sizes, anchor coverage, advice) under logs/
    python samples/balloon/balloon.py inspect --dataset /data/balloon --weights none
"""

import datetime
import os
import sys

import numpy as np
import skimage.color
import skimage.io

# Run as a script from anywhere: make the repository's mrcnn importable.
ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)

from mrcnn import utils  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.data.formats import ViaDataset  # noqa: E402
from mrcnn.data.images import read_rgb  # noqa: E402
from samples import common  # noqa: E402

# Matterport's recipe: the heads only, 30 epochs, at the config's learning rate. A few dozen
# images are too few to train the backbone without overfitting. With --weights none there is
# no backbone to keep: every layer trains (common.training_config).
TRAINING_STAGES = (("heads", 30, 1.0),)


############################################################
#  Configuration
############################################################

class BalloonConfig(Config):
    """Configuration for training on the balloon dataset."""
    NAME = "balloon"
    # Two 1024x1024 images fit a 12 GB GPU.
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 1  # background + balloon
    STEPS_PER_EPOCH = 100
    # Detections below 90% confidence are skipped.
    DETECTION_MIN_CONFIDENCE = 0.9


############################################################
#  Dataset
############################################################

class BalloonDataset(ViaDataset):
    """Balloon outlines drawn with VIA: ``<dataset_dir>/<subset>/via_region_data.json``."""

    def load_balloon(self, dataset_dir, subset):
        """Load the "train" or "val" subset: its images and their balloon polygons."""
        if subset not in ("train", "val"):
            raise ValueError("subset must be 'train' or 'val', got {!r}".format(subset))
        subset_dir = os.path.join(dataset_dir, subset)
        self.load_via(os.path.join(subset_dir, "via_region_data.json"), subset_dir,
                      class_names=["balloon"], source="balloon")


def load_subset(dataset_dir, subset):
    """A prepared BalloonDataset of one subset."""
    dataset = BalloonDataset()
    dataset.load_balloon(dataset_dir, subset)
    dataset.prepare()
    return dataset


def train(model, dataset_dir, epochs=None, stages=None):
    """Train ``model`` on the balloon dataset through ``stages`` (default: Matterport's recipe
    ending at ``epochs``)."""
    if stages is None:
        stages = common.schedule(TRAINING_STAGES, epochs)
    common.train_stages(model, load_subset(dataset_dir, "train"), load_subset(dataset_dir, "val"),
                        stages)


############################################################
#  Colour splash
############################################################

def color_splash(image, mask):
    """A grayscale copy of ``image`` that keeps the colour where any instance mask is on.

    image: [H, W, 3] RGB; mask: [H, W, N] instance masks (N may be 0: all gray).
    Returns [H, W, 3] uint8.
    """
    image = np.asarray(image).astype(np.uint8, copy=False)
    luminance = np.round(skimage.color.rgb2gray(image) * 255).astype(np.uint8)
    gray = np.repeat(luminance[..., np.newaxis], 3, axis=-1)
    mask = np.asarray(mask)
    if mask.ndim != 3 or mask.shape[-1] == 0:
        return gray
    on = np.any(mask, axis=-1, keepdims=True)
    return np.where(on, image, gray).astype(np.uint8)


def _import_cv2():
    try:
        import cv2
    except ImportError as e:
        raise ImportError("splashing a video needs OpenCV: pip install "
                          "opencv-python-headless") from e
    return cv2


def detect_and_color_splash(model, image_path=None, video_path=None, out_dir="."):
    """Detect balloons in an image or a video and write its colour splash to ``out_dir``.

    Exactly one of ``image_path`` and ``video_path``. An image gives
    ``splash_<timestamp>.png``; a video gives ``splash_<timestamp>.avi`` (Motion JPEG, the
    input's frame rate), read and written with OpenCV. Returns the output path.
    """
    if (image_path is None) == (video_path is None):
        raise ValueError("give exactly one of image_path and video_path")
    os.makedirs(out_dir, exist_ok=True)
    stamp = "{:%Y%m%dT%H%M%S}".format(datetime.datetime.now())
    if image_path is not None:
        print("Running on", image_path)
        image = read_rgb(image_path)
        r = model.detect([image], verbose=0)[0]
        out_path = os.path.join(out_dir, "splash_{}.png".format(stamp))
        skimage.io.imsave(out_path, color_splash(image, r["masks"]), check_contrast=False)
        print("Saved to", out_path, "({} balloons)".format(len(r["class_ids"])))
        return out_path

    cv2 = _import_cv2()
    capture = cv2.VideoCapture(video_path)
    if not capture.isOpened():
        raise OSError("OpenCV cannot open the video {!r}".format(video_path))
    # Some containers do not record the frame rate.
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    out_path = os.path.join(out_dir, "splash_{}.avi".format(stamp))

    def frames():
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame[..., ::-1]  # OpenCV frames are BGR

    # detect_iter decodes and molds the next frames while the graph runs on these.
    results = model.detect_iter(frames(), return_images=True)
    writer, count = None, 0
    try:
        for r in results:
            if "error" in r:
                raise ValueError("{}: frame {}: {}".format(video_path, r["index"], r["error"]))
            rgb = r["image"]
            if writer is None:
                writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"MJPG"), fps,
                                         (rgb.shape[1], rgb.shape[0]))
            writer.write(np.ascontiguousarray(color_splash(rgb, r["masks"])[..., ::-1]))
            count += 1
            print("frame", count, end="\r")
    finally:
        results.close()   # its reading thread stops before the capture is released
        capture.release()
        if writer is not None:
            writer.release()
    if count == 0:
        raise OSError("no frame could be read from {!r}".format(video_path))
    print("Saved to", out_path, "({} frames)".format(count))
    return out_path


############################################################
#  Command line
############################################################

def main(argv=None):
    """Command line: ``train``, ``splash``, ``evaluate`` or ``inspect`` (see the module
    docstring)."""
    parser = common.sample_parser("Train Mask R-CNN to detect balloons, apply a colour splash, "
                                  "evaluate or inspect the data.",
                                  ["train", "splash", "evaluate", "inspect"])
    parser.add_argument("--image", help="splash: the image to splash")
    parser.add_argument("--video", help="splash: the video to splash")
    parser.add_argument("--out", default=".",
                        help="splash: directory of the output file (default: current)")
    args = parser.parse_args(argv)
    if args.command in ("train", "evaluate", "inspect") and not args.dataset:
        parser.error("--dataset is required for {}".format(args.command))
    if args.command == "splash" and (args.image is None) == (args.video is None):
        parser.error("splash needs --image or --video")

    if args.command == "inspect":
        return common.inspect_splits({"train": load_subset(args.dataset, "train"),
                                      "val": load_subset(args.dataset, "val")},
                                     common.make_config(args.config, BalloonConfig), args.logs,
                                     limit=args.limit)
    if args.command == "train":
        overrides = {"STEPS_PER_EPOCH": args.steps} if args.steps is not None else {}
        config, stages = common.training_config(args.config, BalloonConfig, args.weights,
                                                TRAINING_STAGES, args.epochs,
                                                logs_dir=args.logs, **overrides)
        config.display()
        model = common.build_model("training", config, args.weights, args.logs)
        train(model, args.dataset, stages=stages)
        return model.find_last()

    config = common.make_config(args.config, BalloonConfig, GPU_COUNT=1, IMAGES_PER_GPU=1)
    config.display()
    model = common.build_model("inference", config, args.weights, args.logs)
    if args.command == "splash":
        return detect_and_color_splash(model, image_path=args.image, video_path=args.video,
                                       out_dir=args.out)
    return common.run_evaluation(model, load_subset(args.dataset, "val"), args.limit,
                                 args.results)


if __name__ == "__main__":
    try:
        main()
    except utils.DownloadError as e:
        sys.exit("error: {}".format(e))
