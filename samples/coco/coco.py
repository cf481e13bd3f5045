"""MS COCO: train and evaluate Mask R-CNN on the 80 COCO classes (Matterport's COCO sample).

Usage, from the repository root::

    # Train from Matterport's COCO weights (weights/mask_rcnn_coco.h5, downloaded when absent)
    python samples/coco/coco.py train --dataset /data/coco --year 2017 --weights coco
    # Continue the newest run under logs/
    python samples/coco/coco.py train --dataset /data/coco --year 2017 --weights last
    # COCO mask and box AP of the newest checkpoint on 500 validation images
    python samples/coco/coco.py evaluate --dataset /data/coco --year 2017 --weights last
    # Dataset report (class balance, object sizes, anchor coverage, advice) under logs/
    python samples/coco/coco.py inspect --dataset /data/coco --year 2017 --weights none

The command-line plumbing shared by the samples is in ``samples/common.py``.
"""

import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile

from pycocotools.coco import COCO

# Run as a script from anywhere: make the repository's mrcnn importable.
ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)

from mrcnn.evaluation import evaluate as mrcnn_evaluate  # noqa: E402
from mrcnn.data import formats
from mrcnn import utils  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from samples.common import (build_model, inspect_splits, make_config,  # noqa: E402
                            run_evaluation, sample_parser, train_stages, training_config)

DEFAULT_DATASET_YEAR = "2014"

# Where Matterport's auto-download fetched the dataset. minival and valminusminival are the
# 2014 validation split used by Detectron and Faster R-CNN (5k and 35k images of val2014).
IMAGES_URL = "http://images.cocodataset.org/zips/{}{}.zip"
ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval{}.zip"
MINIVAL_URLS = {
    "minival": "https://dl.dropboxusercontent.com/s/o43o90bna78omob/"
               "instances_minival2014.json.zip?dl=0",
    "valminusminival": "https://dl.dropboxusercontent.com/s/s3tw5zcg7395368/"
                       "instances_valminusminival2014.json.zip?dl=0",
}

# Matterport's recipe: (layers, last epoch, learning rate as a fraction of LEARNING_RATE). With
# --weights none every layer trains from the first step (training_config).
TRAINING_STAGES = (("heads", 40, 1.0), ("4+", 120, 1.0), ("all", 160, 0.1))


############################################################
#  Configuration
############################################################

class CocoConfig(Config):
    """Matterport's configuration for training on MS COCO."""
    NAME = "coco"
    # Matterport trained on 8 GPUs of 12 GB; 2 images fit one such GPU.
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 80  # background + the 80 COCO classes


############################################################
#  Dataset
############################################################

class CocoDataset(formats.CocoDataset):
    """COCO in its official layout: ``annotations/instances_<subset><year>.json`` and images
    in ``<subset><year>/``."""

    def load_coco(self, dataset_dir, subset, year=DEFAULT_DATASET_YEAR, class_ids=None,
                  class_map=None, return_coco=False, auto_download=False):
        """Load a subset of COCO.

        subset: "train", "val", or (2014 only) "minival" / "valminusminival", whose images are
        in ``val2014/``. class_ids: COCO category ids to keep (default all; with a subset,
        only the images that hold one of them). class_map: merges, see ``Dataset.prepare``.
        return_coco: return the pycocotools ``COCO`` object. auto_download: fetch and unzip
        the images and annotations that are missing (see :meth:`auto_download`).
        """
        if auto_download:
            self.auto_download(dataset_dir, subset, year)
        annotation_file = os.path.join(dataset_dir, "annotations",
                                       "instances_{}{}.json".format(subset, year))
        image_subset = "val" if subset in MINIVAL_URLS else subset
        image_dir = os.path.join(dataset_dir, "{}{}".format(image_subset, year))
        return self.load_coco_json(annotation_file, image_dir, class_ids=class_ids,
                                   class_map=class_map, source="coco", return_coco=return_coco)

    def auto_download(self, data_dir, data_type, data_year):
        """Download and unzip the images and the annotation file of a subset when missing.

        Files are downloaded to a temporary name and renamed when complete, and archives are
        extracted to a temporary folder and moved into place, so an interrupted run leaves
        nothing that looks complete. The zip files are kept next to the data. Without network
        access this raises ``utils.DownloadError`` naming the URL.
        """
        if data_type in MINIVAL_URLS and data_year != "2014":
            raise ValueError("{} is a split of val2014: use year 2014".format(data_type))
        image_type = "val" if data_type in MINIVAL_URLS else data_type
        os.makedirs(data_dir, exist_ok=True)

        image_dir = os.path.join(data_dir, "{}{}".format(image_type, data_year))
        if not os.path.isdir(image_dir):
            image_zip = os.path.join(data_dir, "{}{}.zip".format(image_type, data_year))
            download(IMAGES_URL.format(image_type, data_year), image_zip)
            extract(image_zip, data_dir)
        print("Will use images in", image_dir)

        annotation_dir = os.path.join(data_dir, "annotations")
        annotation_file = os.path.join(annotation_dir,
                                       "instances_{}{}.json".format(data_type, data_year))
        if not os.path.isfile(annotation_file):
            if data_type in MINIVAL_URLS:
                url = MINIVAL_URLS[data_type]
                zip_path = os.path.join(data_dir, "instances_{}2014.json.zip".format(data_type))
                unzip_dir = annotation_dir  # this zip holds the json file alone
            else:
                url = ANNOTATIONS_URL.format(data_year)
                zip_path = os.path.join(data_dir, "annotations_trainval{}.zip".format(data_year))
                unzip_dir = data_dir  # this zip holds an annotations/ folder
            download(url, zip_path)
            extract(zip_path, unzip_dir)
        print("Will use annotations in", annotation_file)


def download(url, path, timeout=60):
    """Download ``url`` to ``path`` atomically; an existing ``path`` is kept as it is.

    Raises ``utils.DownloadError`` with the URL and the reason when the download fails.
    """
    if os.path.isfile(path):
        return
    print("Downloading {} to {} ...".format(url, path))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise utils.DownloadError(
            "could not download {} to {}: {}. Download it by other means and unzip it into "
            "the dataset directory (see samples/coco/README.md).".format(
                url, path, getattr(e, "reason", e))) from e
    print("... done downloading")


def extract(zip_path, target_dir):
    """Unzip ``zip_path`` into ``target_dir`` through a temporary folder.

    Each top-level entry appears in ``target_dir`` only when fully extracted; a folder that
    exists already (``annotations/``) receives the new files one by one.
    """
    print("Unzipping", zip_path)
    os.makedirs(target_dir, exist_ok=True)
    staging = tempfile.mkdtemp(suffix=".unzip", dir=target_dir)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(staging)
        _merge_into(staging, target_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _merge_into(source_dir, target_dir):
    """Move the entries of ``source_dir`` into ``target_dir``, merging existing folders."""
    for name in os.listdir(source_dir):
        source, target = os.path.join(source_dir, name), os.path.join(target_dir, name)
        if os.path.isdir(source) and os.path.isdir(target):
            _merge_into(source, target)
        else:
            os.replace(source, target)


############################################################
#  COCO evaluation (Matterport's functions, on mrcnn.evaluation.evaluate)
############################################################

def build_coco_results(dataset, image_ids, rois, class_ids, scores, masks):
    """COCO result dicts of one image's detections, with COCO image and category ids.

    image_ids: ``[coco_image_id]``, the image the detections belong to (Matterport's calling
    convention); rois, class_ids, scores, masks: one ``detect()`` result.
    """
    if len(image_ids) != 1:
        raise ValueError("build_coco_results takes the detections of one image; got {} image "
                         "ids".format(len(image_ids)))
    result = {"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks}
    detections = mrcnn_evaluate.detections_to_coco(image_ids[0], result)
    for d in detections:
        d["category_id"] = dataset.get_source_class_id(d["category_id"], "coco")
    return detections


def evaluate_coco(model, dataset, coco, eval_type="bbox", limit=0, image_ids=None,
                  verbose=True):
    """COCOeval of ``model`` against the official annotations ``coco`` (Matterport's function).

    Detects the dataset's images (the first ``limit`` when given) and scores them with
    pycocotools against those images' annotations in ``coco``, the object that
    ``load_coco(..., return_coco=True)`` returned. eval_type: "bbox" or "segm". Returns the
    12 COCO numbers keyed by ``mrcnn.evaluation.evaluate.STAT_NAMES``.
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    if limit:
        image_ids = image_ids[:limit]
    _, results = mrcnn_evaluate.detect_dataset(model, dataset, image_ids, verbose=verbose)
    coco_image_ids = [dataset.image_info[i]["id"] for i in image_ids]
    detections = []
    for coco_id, r in zip(coco_image_ids, results):
        detections.extend(build_coco_results(dataset, [coco_id], r["rois"], r["class_ids"],
                                             r["scores"], r["masks"]))
    # COCOeval scores every image of the ground truth it is given: restrict it to the
    # evaluated images so that a limit does not count the others as missed.
    ground_truth = COCO()
    ground_truth.dataset = {
        "images": coco.loadImgs(coco_image_ids),
        "annotations": coco.loadAnns(coco.getAnnIds(imgIds=coco_image_ids, iscrowd=None)),
        "categories": coco.loadCats(coco.getCatIds())}
    ground_truth.createIndex()
    stats, _ = mrcnn_evaluate.coco_stats(ground_truth, detections, eval_type, verbose=verbose)
    return stats


def main(argv=None):
    """Command line: ``train``, ``evaluate`` or ``inspect`` (see the module docstring and
    README.md)."""
    parser = sample_parser("Train or evaluate Mask R-CNN on MS COCO, or inspect the data.",
                           ["train", "evaluate", "inspect"], limit_default=500,
                           weights_aliases=["--model"])
    parser.add_argument("--year", default=DEFAULT_DATASET_YEAR,
                        help="2014 (default, as Matterport: train on train+valminusminival, "
                             "evaluate on minival) or 2017 (train on train, evaluate on val)")
    parser.add_argument("--download", action="store_true",
                        help="download and unzip the images and annotations that are missing")
    args = parser.parse_args(argv)
    if not args.dataset:
        parser.error("--dataset is required")
    val_subset = "minival" if args.year == "2014" else "val"

    if args.command == "inspect":
        splits = {}
        for subset in ("train", val_subset):
            splits[subset] = CocoDataset()
            splits[subset].load_coco(args.dataset, subset, year=args.year,
                                     auto_download=args.download)
            splits[subset].prepare()
        return inspect_splits(splits, make_config(args.config, CocoConfig), args.logs,
                              limit=args.limit)
    if args.command == "train":
        import albumentations as A

        overrides = {"STEPS_PER_EPOCH": args.steps} if args.steps is not None else {}
        config, stages = training_config(args.config, CocoConfig, args.weights,
                                         TRAINING_STAGES, args.epochs, logs_dir=args.logs,
                                         **overrides)
        config.display()
        model = build_model("training", config, args.weights, args.logs)
        train_set = CocoDataset()
        train_set.load_coco(args.dataset, "train", year=args.year, auto_download=args.download)
        if args.year == "2014":
            train_set.load_coco(args.dataset, "valminusminival", year=args.year,
                                auto_download=args.download)
        train_set.prepare()
        val_set = CocoDataset()
        val_set.load_coco(args.dataset, val_subset, year=args.year, auto_download=args.download)
        val_set.prepare()
        train_stages(model, train_set, val_set, stages, augmentation=A.HorizontalFlip(p=0.5))
        return model.find_last()

    # Every detection counts towards AP: no confidence cut.
    config = make_config(args.config, CocoConfig, GPU_COUNT=1, IMAGES_PER_GPU=1,
                         DETECTION_MIN_CONFIDENCE=0)
    config.display()
    model = build_model("inference", config, args.weights, args.logs)
    dataset = CocoDataset()
    dataset.load_coco(args.dataset, val_subset, year=args.year, auto_download=args.download)
    dataset.prepare()
    return run_evaluation(model, dataset, args.limit, args.results)


if __name__ == "__main__":
    try:
        main()
    except utils.DownloadError as e:
        sys.exit("error: {}".format(e))
