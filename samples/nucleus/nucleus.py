"""Nuclei: segment cell nuclei in microscopy images (Kaggle Data Science Bowl 2018).

Matterport's nucleus sample: training on random 512x512 crops with flips, rotations and
brightness changes, and a ``detect`` command that writes a Kaggle submission (one run-length
encoded mask per row).

Usage, from the repository root::

    # Train from ImageNet weights (heads for 20 epochs, then everything to epoch 40); with
    # --weights none every layer trains from the first epoch (the from-scratch recipe)
    python samples/nucleus/nucleus.py train --dataset /data/nucleus --weights imagenet
    # Kaggle submission for stage1_test with the newest checkpoint
    python samples/nucleus/nucleus.py detect --dataset /data/nucleus --subset stage1_test \\
        --weights last
    # COCO mask and box AP on the validation images
    python samples/nucleus/nucleus.py evaluate --dataset /data/nucleus --weights last
    # Dataset report (class balance, object sizes, anchor coverage, advice) under logs/
    python samples/nucleus/nucleus.py inspect --dataset /data/nucleus --weights none
"""

import datetime
import os
import sys

import numpy as np

# Run as a script from anywhere: make the repository's mrcnn importable.
ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)

from mrcnn import utils  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.data.formats import MaskFolderDataset  # noqa: E402
from samples import common  # noqa: E402

# Submissions are written under here unless --out says otherwise.
RESULTS_DIR = os.path.join(ROOT_DIR, "results", "nucleus")

# The dataset has no validation split; these stage1_train images are Matterport's, a variety
# of image types. Pass val_ids (--val-ids FILE) to use another list.
VAL_IMAGE_IDS = [
    "0c2550a23b8a0f29a7575de8c61690d3c31bc897dd5ba66caec201d201a278c2",
    "92f31f591929a30e4309ab75185c96ff4314ce0a7ead2ed2c2171897ad1da0c7",
    "1e488c42eb1a54a3e8412b1f12cde530f950f238d71078f2ede6a85a02168e1f",
    "c901794d1a421d52e5734500c0a2a8ca84651fb93b19cec2f411855e70cae339",
    "8e507d58f4c27cd2a82bee79fe27b069befd62a46fdaed20970a95a2ba819c7b",
    "60cb718759bff13f81c4055a7679e81326f78b6a193a2d856546097c949b20ff",
    "da5f98f2b8a64eee735a398de48ed42cd31bf17a6063db46a9e0783ac13cd844",
    "9ebcfaf2322932d464f15b5662cae4d669b2d785b8299556d73fffcae8365d32",
    "1b44d22643830cd4f23c9deadb0bd499fb392fb2cd9526d81547d93077d983df",
    "97126a9791f0c1176e4563ad679a301dac27c59011f579e808bbd6e9f4cd1034",
    "e81c758e1ca177b0942ecad62cf8d321ffc315376135bcbed3df932a6e5b40c0",
    "f29fd9c52e04403cd2c7d43b6fe2479292e53b2f61969d25256d2d2aca7c6a81",
    "0ea221716cf13710214dcd331a61cea48308c3940df1d28cfc7fd817c83714e1",
    "3ab9cab6212fabd723a2c5a1949c2ded19980398b56e6080978e796f45cbbc90",
    "ebc18868864ad075548cc1784f4f9a237bb98335f9645ee727dac8332a3e3716",
    "bb61fc17daf8bdd4e16fdcf50137a8d7762bec486ede9249d92e511fcb693676",
    "e1bcb583985325d0ef5f3ef52957d0371c96d4af767b13e48102bca9d5351a9b",
    "947c0d94c8213ac7aaa41c4efc95d854246550298259cf1bb489654d0e969050",
    "cbca32daaae36a872a11da4eaff65d1068ff3f154eedc9d3fc0c214a4e5d32bd",
    "f4c4db3df4ff0de90f44b027fc2e28c16bf7e5c75ea75b0a9762bbb7ac86e7a3",
    "4193474b2f1c72f735b13633b219d9cabdd43c21d9c2bb4dfc4809f104ba4c06",
    "f73e37957c74f554be132986f38b6f1d75339f636dfe2b681a0cf3f88d2733af",
    "a4c44fc5f5bf213e2be6091ccaed49d8bf039d78f6fbd9c4d7b7428cfcb2eda4",
    "cab4875269f44a701c5e58190a1d2f6fcb577ea79d842522dcab20ccb39b7ad2",
    "8ecdb93582b2d5270457b36651b62776256ade3aaa2d7432ae65c14f07432d49",
]

# Images in stage1_train/ (the training set of the competition's first stage).
STAGE1_TRAIN_SIZE = 670

SUBSETS = ("train", "val", "stage1_train", "stage1_test", "stage2_test")

# Matterport's recipe for pretrained weights: the heads first (they start random), then every
# layer. With --weights none every layer trains from the first step (common.training_config).
TRAINING_STAGES = (("heads", 20, 1.0), ("all", 40, 1.0))


############################################################
#  Configurations
############################################################

class NucleusConfig(Config):
    """Configuration for training on the nucleus dataset (Matterport's values)."""
    NAME = "nucleus"
    IMAGES_PER_GPU = 6
    NUM_CLASSES = 1 + 1  # background + nucleus

    # One epoch sees every training image once.
    STEPS_PER_EPOCH = (STAGE1_TRAIN_SIZE - len(VAL_IMAGE_IDS)) // IMAGES_PER_GPU
    VALIDATION_STEPS = max(1, len(VAL_IMAGE_IDS) // IMAGES_PER_GPU)

    # One class: the class score already picks between nucleus and background.
    DETECTION_MIN_CONFIDENCE = 0

    BACKBONE = "resnet50"

    # Random 512x512 crops of images scaled up at least 2x (nuclei are small).
    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    IMAGE_MIN_SCALE = 2.0

    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 2000
    # Nuclei touch each other: a high threshold keeps more overlapping proposals in training.
    RPN_NMS_THRESHOLD = 0.9
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    TRAIN_ROIS_PER_IMAGE = 128

    # Images hold up to a few hundred nuclei.
    MAX_GT_INSTANCES = 200
    DETECTION_MAX_INSTANCES = 400

    MEAN_PIXEL = np.array([43.53, 39.56, 48.22])  # of the training images (RGB)

    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)


class NucleusInferenceConfig(NucleusConfig):
    """Inference: one whole image at a time, padded to a multiple of 64 instead of cropped."""
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "pad64"
    RPN_NMS_THRESHOLD = 0.7


def inference_overrides():
    """The attributes NucleusInferenceConfig sets, to apply to any --config class."""
    return {k: v for k, v in vars(NucleusInferenceConfig).items() if k.isupper()}


############################################################
#  Dataset
############################################################

class NucleusDataset(MaskFolderDataset):
    """DSB 2018 folders: ``<subset>/<id>/images/<id>.png`` and ``<subset>/<id>/masks/*.png``."""

    def load_nucleus(self, dataset_dir, subset, val_ids=None):
        """Load a subset of the nucleus dataset.

        subset: "train" (stage1_train without the validation images), "val" (the validation
        images of stage1_train), or a folder: "stage1_train", "stage1_test", "stage2_test".
        val_ids: the validation image ids (default ``VAL_IMAGE_IDS``).
        """
        if subset not in SUBSETS:
            raise ValueError("subset must be one of {}, got {!r}".format(SUBSETS, subset))
        val_ids = list(VAL_IMAGE_IDS if val_ids is None else val_ids)
        subset_dir = os.path.join(dataset_dir,
                                  "stage1_train" if subset in ("train", "val") else subset)
        if not os.path.isdir(subset_dir):
            raise FileNotFoundError("no folder {!r}".format(subset_dir))
        image_ids = None  # every folder
        if subset in ("train", "val"):
            folders = sorted(d for d in os.listdir(subset_dir)
                             if os.path.isdir(os.path.join(subset_dir, d)))
            if subset == "val":
                missing = sorted(set(val_ids) - set(folders))
                if missing:
                    raise ValueError("{} validation image(s) are not in {}: {}{}; pass your "
                                     "own list (val_ids, --val-ids FILE)".format(
                                         len(missing), subset_dir, ", ".join(missing[:3]),
                                         ", ..." if len(missing) > 3 else ""))
                image_ids = val_ids
            else:
                image_ids = [d for d in folders if d not in set(val_ids)]
        self.load_dsb(subset_dir, image_ids=image_ids, class_name="nucleus", source="nucleus")


def read_ids(path):
    """Image ids from a text file: one per line; blank lines and ``#`` comments skipped."""
    with open(path, encoding="utf-8") as f:
        lines = (line.split("#", 1)[0].strip() for line in f)
        return [line for line in lines if line]


def load_subset(dataset_dir, subset, val_ids=None):
    """A prepared NucleusDataset of one subset."""
    dataset = NucleusDataset()
    dataset.load_nucleus(dataset_dir, subset, val_ids=val_ids)
    dataset.prepare()
    return dataset


############################################################
#  Training
############################################################

def training_augmentation():
    """Matterport's augmentation in albumentations: up to two of flips left-right and
    up-down, a rotation by a multiple of 90 degrees, a brightness factor of 0.8-1.5 and a
    Gaussian blur of sigma up to 5.

    Two of the five are picked per image and each is applied with probability 0.5, so 0, 1
    or 2 apply (imgaug's ``SomeOf((0, 2), ...)``). Training crops are square, so rotations
    keep the shape.
    """
    import albumentations as A

    return A.SomeOf([
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=0.5),
        A.MultiplicativeNoise(multiplier=(0.8, 1.5), per_channel=False, elementwise=False,
                              p=0.5),
        A.GaussianBlur(blur_limit=0, sigma_limit=(0.0, 5.0), p=0.5),
    ], n=2)


def train(model, dataset_dir, subset="train", epochs=None, val_ids=None, stages=None):
    """Train ``model`` through ``stages`` (default: Matterport's recipe ending at ``epochs``),
    validating on "val"."""
    train_set = load_subset(dataset_dir, subset, val_ids)
    val_set = load_subset(dataset_dir, "val", val_ids)
    if stages is None:
        stages = common.schedule(TRAINING_STAGES, epochs)
    common.train_stages(model, train_set, val_set, stages, augmentation=training_augmentation())


############################################################
#  Run-length encoding (Kaggle's submission format)
############################################################

def rle_encode(mask):
    """Run-length encoding of a [H, W] mask: "start length start length ...".

    Pixels are numbered from 1 in column-major order (top to bottom, then left to right).
    An empty mask gives "".
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError("mask must be [height, width], got shape {}".format(mask.shape))
    # Zero-padded at both ends so that every run has a start and an end transition.
    pixels = np.concatenate([[0], mask.T.ravel() != 0, [0]]).astype(np.int8)
    runs = np.flatnonzero(np.diff(pixels)) + 1  # 1-based starts and (exclusive) ends
    runs[1::2] -= runs[::2]
    return " ".join(str(v) for v in runs)


def rle_decode(rle, shape):
    """[H, W] bool mask of a run-length encoding made by :func:`rle_encode`."""
    height, width = shape[:2]
    values = np.array(rle.split(), dtype=np.int64)
    if values.size % 2:
        raise ValueError("run-length encoding needs start/length pairs, got {} numbers".format(
            values.size))
    starts, lengths = values[0::2] - 1, values[1::2]
    if np.any(starts < 0) or np.any(lengths < 1) or np.any(starts + lengths > height * width):
        raise ValueError("run outside a {}x{} image in {!r:.80}".format(height, width, rle))
    flat = np.zeros(height * width, dtype=bool)
    for start, length in zip(starts, lengths):
        flat[start:start + length] = True
    return flat.reshape(width, height).T


def mask_to_rle(image_id, mask, scores):
    """Submission rows (``"<image_id>,<rle>"`` joined by newlines) of one image's masks.

    Kaggle wants non-overlapping masks: each pixel goes to the highest-scoring instance that
    covers it, and instances left without pixels are dropped. An image without any instance
    gives one row with empty EncodedPixels, ``"<image_id>,"``.
    mask: [H, W, N] bool; scores: [N].
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError("mask must be [height, width, count], got shape {}".format(mask.shape))
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    # owner[y, x] = 1 + the index of the instance that keeps the pixel, 0 for none. Painting
    # from the lowest score up leaves each pixel to its highest-scoring instance.
    owner = np.zeros(mask.shape[:2], dtype=np.int32)
    for i in order[::-1]:
        owner[mask[:, :, i]] = i + 1
    lines = []
    for i in order:
        instance = owner == i + 1
        if instance.any():
            lines.append("{},{}".format(image_id, rle_encode(instance)))
    return "\n".join(lines) if lines else "{},".format(image_id)


############################################################
#  Detection
############################################################

def detect(model, dataset_dir, subset, out_dir=RESULTS_DIR, val_ids=None):
    """Detect nuclei in a subset and write a Kaggle submission.

    Writes ``out_dir/submit_<timestamp>/submit.csv`` (``ImageId,EncodedPixels``) and, per
    image, ``<image id>.png`` with the predicted outlines. Returns the csv's path.
    """
    from mrcnn import visualize

    submit_dir = os.path.join(out_dir, "submit_{:%Y%m%dT%H%M%S}".format(
        datetime.datetime.now()))
    os.makedirs(submit_dir, exist_ok=True)
    dataset = load_subset(dataset_dir, subset, val_ids)
    print("Running on {} images of {}".format(dataset.num_images, subset))
    rows = []
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        r = model.detect([image], verbose=0)[0]
        source_id = dataset.image_info[image_id]["id"]
        rows.append(mask_to_rle(source_id, r["masks"], r["scores"]))
        visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"],
                                    dataset.class_names, r["scores"], show_bbox=False,
                                    show_mask=False, title="Predictions",
                                    save_path=os.path.join(submit_dir, source_id + ".png"))
    csv_path = os.path.join(submit_dir, "submit.csv")
    with open(csv_path, "w", encoding="utf-8") as f:
        f.write("ImageId,EncodedPixels\n" + "\n".join(rows) + "\n")
    print("Saved to", submit_dir)
    return csv_path


############################################################
#  Command line
############################################################

def main(argv=None):
    """Command line: ``train``, ``detect``, ``evaluate`` or ``inspect`` (see the module
    docstring)."""
    parser = common.sample_parser("Mask R-CNN for nuclei counting and segmentation.",
                                  ["train", "detect", "evaluate", "inspect"])
    parser.add_argument("--subset", choices=SUBSETS,
                        help="train: the training subset (default 'train'); detect: the "
                             "images to run on (default 'stage1_test'); evaluate: the images "
                             "to score (default 'val')")
    parser.add_argument("--val-ids", metavar="FILE",
                        help="validation image ids, one per line (default: VAL_IMAGE_IDS)")
    parser.add_argument("--out", default=RESULTS_DIR,
                        help="detect: where to write submit_<timestamp>/ (default: "
                             "results/nucleus/)")
    args = parser.parse_args(argv)
    if not args.dataset:
        parser.error("--dataset is required")
    subset = args.subset or {"train": "train", "detect": "stage1_test",
                             "evaluate": "val", "inspect": "train"}[args.command]
    val_ids = read_ids(args.val_ids) if args.val_ids else None

    if args.command == "inspect":
        config = common.make_config(args.config, NucleusConfig)
        return common.inspect_splits({subset: load_subset(args.dataset, subset, val_ids),
                                      "val": load_subset(args.dataset, "val", val_ids)},
                                     config, args.logs, limit=args.limit)

    if args.command == "train":
        overrides = {"STEPS_PER_EPOCH": args.steps} if args.steps is not None else {}
        config, stages = common.training_config(args.config, NucleusConfig, args.weights,
                                                TRAINING_STAGES, args.epochs,
                                                logs_dir=args.logs, **overrides)
        config.display()
        model = common.build_model("training", config, args.weights, args.logs)
        train(model, args.dataset, subset, val_ids=val_ids, stages=stages)
        return model.find_last()

    config = common.make_config(args.config, NucleusConfig, **inference_overrides())
    config.display()
    model = common.build_model("inference", config, args.weights, args.logs)
    if args.command == "detect":
        return detect(model, args.dataset, subset, args.out, val_ids)
    return common.run_evaluation(model, load_subset(args.dataset, subset, val_ids), args.limit,
                                 args.results)


if __name__ == "__main__":
    try:
        main()
    except utils.DownloadError as e:
        sys.exit("error: {}".format(e))
