"""The balloon, nucleus and COCO samples, end to end on generated data in each real layout.

Every command runs in-process through the sample's ``main([...])`` with a tiny config
(``--config sample_configs:<Class>``): one training step, then inference from the checkpoint.
The figures are checked against known answers: run-length encodings decode to the masks they
encode, a splash is gray exactly outside the detected masks, and an oracle that "detects" the
ground truth scores AP 1.0 through each sample's evaluation.
"""

import hashlib
import io
import json
import os
import re
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest
import skimage.color
import skimage.draw
import skimage.io
from pycocotools import mask as mask_utils

from mrcnn import model as modellib
from mrcnn.engine import recipes
from mrcnn import utils
from samples import common
from samples.balloon import balloon
from samples.coco import coco
from samples.nucleus import nucleus
from sample_configs import TinyBalloonConfig
from tiny import shift_class_logits

SIZE = 64


def write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    skimage.io.imsave(path, array, check_contrast=False)


def background(rng, color, height=SIZE, width=SIZE):
    """A noisy plain background, so that every generated image is unique."""
    noise = rng.integers(-12, 13, size=(height, width, 3))
    return np.clip(np.array(color) + noise, 0, 255).astype(np.uint8)


def polygon_mask(xs, ys, height=SIZE, width=SIZE):
    mask = np.zeros((height, width), bool)
    rr, cc = skimage.draw.polygon(np.asarray(ys) - 0.5, np.asarray(xs) - 0.5, (height, width))
    mask[rr, cc] = True
    return mask


def biased(model, path):
    """Load ``path`` and favour class 1 in the classifier, so that barely trained weights
    still detect something (one training step may leave every RoI background)."""
    model.load_weights(path, by_name=True)
    return shift_class_logits(model, np.eye(model.config.NUM_CLASSES)[1] * 50)


def run_model(config, checkpoint, logs):
    """An inference MaskRCNN of ``config`` as the checkpoint's run trained it: a run from
    random weights recorded its from-scratch recipe (GroupNorm) in run_config.json."""
    config = recipes.with_run_settings(type(config), recipes.read_run_settings(checkpoint))()
    return modellib.MaskRCNN("inference", config, str(logs))


def oracle_detect(dataset):
    """A ``MaskRCNN.detect`` replacement that returns each image's non-crowd ground truth."""
    truth = {}
    for image_id in dataset.image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        keep = class_ids > 0
        key = hashlib.sha1(dataset.load_image(image_id).tobytes()).hexdigest()
        truth[key] = masks[:, :, keep], class_ids[keep]

    def detect(self, images, verbose=0):
        results = []
        for image in images:
            masks, class_ids = truth[hashlib.sha1(np.asarray(image).tobytes()).hexdigest()]
            results.append({"rois": utils.extract_bboxes(masks), "class_ids": class_ids,
                            "scores": np.linspace(1.0, 0.9, len(class_ids)), "masks": masks})
        return results
    return detect


def assert_figures(summary, num_images):
    assert summary["num_images"] == num_images
    for iou_type in ("segm", "bbox"):
        for name in ("AP", "AP50", "AP75"):
            assert 0.0 <= summary[iou_type][name] <= 1.0, (iou_type, name, summary[iou_type])


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the network."""
    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


############################################################
#  Balloon
############################################################

def make_balloon_dir(root, rng):
    """``root/{train,val}/`` with PNGs and via_region_data.json: VIA 1.x for train, 2.x for val.

    Returns {(subset, filename): [balloon mask, ...]} as drawn.
    """
    drawn = {}
    for subset, count in (("train", 3), ("val", 2)):
        entries = {}
        for i in range(count):
            name = "{}_{}.png".format(subset, i)
            image = background(rng, (110, 170, 230))
            regions, masks = [], []
            for _ in range(int(rng.integers(1, 3))):
                cx, cy = rng.uniform(16, 48, size=2)
                rx, ry = rng.uniform(7, 14), rng.uniform(9, 15)
                angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
                xs = np.round(cx + rx * np.cos(angles), 1)
                ys = np.round(cy + ry * np.sin(angles), 1)
                mask = polygon_mask(xs, ys)
                image[mask] = [rng.integers(150, 256), rng.integers(0, 90), rng.integers(0, 90)]
                masks.append(mask)
                regions.append({"shape_attributes": {"name": "polygon",
                                                     "all_points_x": xs.tolist(),
                                                     "all_points_y": ys.tolist()},
                                "region_attributes": {}})
            path = root / subset / name
            write_png(str(path), image)
            size = os.path.getsize(path)
            entry = {"filename": name, "size": size, "file_attributes": {}}
            if subset == "train":  # VIA 1.x: regions keyed "0", "1", ...
                entry.update(fileref="", base64_img_data="",
                             regions={str(k): r for k, r in enumerate(regions)})
            else:
                entry["regions"] = regions
            entries[name + str(size)] = entry
            drawn[subset, name] = masks
        data = entries if subset == "train" else {
            "_via_settings": {}, "_via_img_metadata": entries,
            "_via_attributes": {"region": {}, "file": {}}}
        with open(root / subset / "via_region_data.json", "w") as f:
            json.dump(data, f)
    return drawn


@pytest.fixture(scope="module")
def balloon_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("balloon")
    drawn = make_balloon_dir(root, np.random.default_rng(1))
    return root, drawn


@pytest.fixture(scope="module")
def balloon_run(balloon_data, tmp_path_factory):
    """One training step of the tiny balloon config; returns (logs dir, checkpoint)."""
    logs = tmp_path_factory.mktemp("balloon_logs")
    checkpoint = balloon.main(["train", "--dataset", str(balloon_data[0]), "--weights", "none",
                               "--logs", str(logs), "--epochs", "1",
                               "--config", "sample_configs:TinyBalloonConfig"])
    return logs, checkpoint


def test_balloon_dataset_reads_via_1_and_2(balloon_data):
    root, drawn = balloon_data
    for subset in ("train", "val"):
        dataset = balloon.load_subset(str(root), subset)
        assert dataset.class_names == ["BG", "balloon"]
        assert dataset.num_images == (3 if subset == "train" else 2)
        for image_id in dataset.image_ids:
            info = dataset.image_info[image_id]
            masks, class_ids = dataset.load_mask(image_id)
            expected = drawn[subset, os.path.basename(info["path"])]
            assert class_ids.tolist() == [1] * len(expected)
            for k, mask in enumerate(expected):
                np.testing.assert_array_equal(masks[:, :, k], mask)
    with pytest.raises(ValueError, match="'train' or 'val'"):
        balloon.BalloonDataset().load_balloon(str(root), "test")


def test_color_splash_keeps_colour_only_inside_masks():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    masks = np.zeros((20, 30, 2), bool)
    masks[2:8, 3:9, 0] = True
    masks[5:15, 20:28, 1] = True
    splash = balloon.color_splash(image, masks)
    on = masks.any(axis=-1)
    assert splash.dtype == np.uint8 and splash.shape == image.shape
    np.testing.assert_array_equal(splash[on], image[on])
    luminance = np.round(skimage.color.rgb2gray(image) * 255)
    for channel in range(3):
        np.testing.assert_array_equal(splash[..., channel][~on], luminance[~on])
    # No instance: all gray.
    gray = balloon.color_splash(image, np.zeros((20, 30, 0), bool))
    assert np.all(gray[..., 0] == gray[..., 1]) and np.all(gray[..., 1] == gray[..., 2])


def test_balloon_train_splash_evaluate(balloon_data, balloon_run, tmp_path):
    root, _ = balloon_data
    logs, checkpoint = balloon_run
    assert os.path.basename(checkpoint) == "mask_rcnn_balloon_tiny_0001.h5"
    assert os.path.dirname(os.path.dirname(checkpoint)) == str(logs)

    image_path = str(root / "val" / "val_0.png")
    out = balloon.main(["splash", "--weights", "last", "--logs", str(logs), "--image",
                        image_path, "--out", str(tmp_path),
                        "--config", "sample_configs:TinyBalloonConfig"])
    assert os.path.dirname(out) == str(tmp_path) and out.endswith(".png")
    image = skimage.io.imread(image_path)[..., :3]
    splash = skimage.io.imread(out)
    assert splash.shape == image.shape
    # Every pixel is either gray (its luminance) or, inside a detection, the original colour.
    luminance = np.round(skimage.color.rgb2gray(image) * 255)
    gray = np.all(splash == luminance[..., np.newaxis], axis=-1)
    coloured = np.all(splash == image, axis=-1)
    assert np.all(gray | coloured)

    summary = balloon.main(["evaluate", "--dataset", str(root), "--weights", "last",
                            "--logs", str(logs), "--config", "sample_configs:TinyBalloonConfig"])
    assert_figures(summary, num_images=2)


def test_detect_and_color_splash_image_and_video(balloon_data, balloon_run, tmp_path):
    cv2 = pytest.importorskip("cv2")
    root, _ = balloon_data
    logs, checkpoint = balloon_run
    config = common.make_config("sample_configs:TinyBalloonConfig", None, GPU_COUNT=1,
                              IMAGES_PER_GPU=1)
    model = biased(run_model(config, checkpoint, logs), checkpoint)

    image_path = str(root / "train" / "train_1.png")
    image = skimage.io.imread(image_path)[..., :3]
    masks = model.detect([image])[0]["masks"]
    assert masks.shape[-1] > 0
    out = balloon.detect_and_color_splash(model, image_path=image_path, out_dir=str(tmp_path))
    splash = skimage.io.imread(out)
    np.testing.assert_array_equal(splash, balloon.color_splash(image, masks))
    on = masks.any(axis=-1)
    assert np.all(splash[~on][:, 0] == splash[~on][:, 1])
    np.testing.assert_array_equal(splash[on], image[on])

    video_path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"MJPG"), 5, (SIZE, SIZE))
    for name in ("train_0.png", "train_1.png", "train_2.png"):
        writer.write(skimage.io.imread(str(root / "train" / name))[..., 2::-1].copy())
    writer.release()
    out = balloon.detect_and_color_splash(model, video_path=video_path,
                                          out_dir=str(tmp_path / "video"))
    assert out.endswith(".avi")
    capture = cv2.VideoCapture(out)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 3 and frames[0].shape == (SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="exactly one"):
        balloon.detect_and_color_splash(model)


############################################################
#  Nucleus
############################################################

def make_nucleus_dir(root, rng):
    """DSB 2018 layout: stage1_train/ (4 images of touching nuclei) and stage1_test/ (2).

    Returns {image id: number of nuclei} for stage1_train and the stage1_test ids.
    """
    counts = {}
    for index in range(6):
        image_id = hashlib.sha1(str(index).encode()).hexdigest()
        subset = "stage1_train" if index < 4 else "stage1_test"
        height, width = 80, 96
        image = np.zeros((height, width, 4), np.uint8)
        image[..., :3] = rng.integers(5, 25, size=(height, width, 1))
        image[..., 3] = 255  # DSB images are RGBA
        taken = np.zeros((height, width), bool)
        masks = []
        # Nuclei on a jittered grid, radii large enough that neighbours touch.
        for cy in range(14, height - 10, 22):
            for cx in range(14, width - 10, 22):
                radius = rng.uniform(8, 12)
                rr, cc = skimage.draw.ellipse(cy + rng.uniform(-3, 3), cx + rng.uniform(-3, 3),
                                              radius, radius * rng.uniform(0.8, 1.2),
                                              shape=(height, width))
                mask = np.zeros((height, width), bool)
                mask[rr, cc] = True
                mask &= ~taken  # DSB masks never overlap
                taken |= mask
                image[mask, :3] = int(rng.integers(110, 250))
                masks.append(mask)
        folder = root / subset / image_id
        write_png(str(folder / "images" / (image_id + ".png")), image)
        if subset == "stage1_train":
            for k, mask in enumerate(masks):
                write_png(str(folder / "masks" / "{}_{}.png".format(image_id[:8], k)),
                          mask.astype(np.uint8) * 255)
            counts[image_id] = len(masks)
    test_ids = sorted(os.listdir(root / "stage1_test"))
    return counts, test_ids


@pytest.fixture(scope="module")
def nucleus_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("nucleus")
    counts, test_ids = make_nucleus_dir(root, np.random.default_rng(2))
    val_id = sorted(counts)[0]
    val_file = root / "val_ids.txt"
    val_file.write_text("# the validation images\n{}\n\n".format(val_id))
    return root, counts, test_ids, val_file


def test_rle_encode_decode_round_trip():
    mask = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1]], bool)
    # Column-major, 1-based: pixels 4-5 (column 1) and 9 (bottom right).
    assert nucleus.rle_encode(mask) == "4 2 9 1"
    np.testing.assert_array_equal(nucleus.rle_decode("4 2 9 1", (3, 3)), mask)
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 5), (16, 33)]:
        for density in (0.0, 0.3, 1.0):
            m = rng.random(shape) < density
            m[0, 0] = m[-1, -1] = density > 0.5  # runs at the first and the last pixel
            np.testing.assert_array_equal(nucleus.rle_decode(nucleus.rle_encode(m), shape), m)
    assert nucleus.rle_encode(np.zeros((4, 4), bool)) == ""
    with pytest.raises(ValueError):
        nucleus.rle_decode("1 2 3", (3, 3))
    with pytest.raises(ValueError):
        nucleus.rle_decode("8 3", (3, 3))


def parse_rows(text):
    """{image id: [EncodedPixels, ...]} of submission rows (no header)."""
    rows = {}
    for line in text.strip().split("\n"):
        image_id, encoded = line.split(",")
        rows.setdefault(image_id, []).append(encoded)
    return rows


def test_mask_to_rle_gives_pixels_to_the_best_score():
    masks = np.zeros((12, 10, 4), bool)
    masks[1:7, 1:7, 0] = True        # score 0.5, overlaps instance 1
    masks[4:10, 4:9, 1] = True       # score 0.9: keeps the overlap
    masks[5:7, 5:7, 2] = True        # score 0.7, inside instance 1: left empty, dropped
    masks[10:12, 0:2, 3] = True      # score 0.2, alone
    scores = np.array([0.5, 0.9, 0.7, 0.2])
    rows = parse_rows(nucleus.mask_to_rle("img", masks, scores))
    decoded = [nucleus.rle_decode(r, (12, 10)) for r in rows["img"]]
    expected = [masks[..., 1], masks[..., 0] & ~masks[..., 1], masks[..., 3]]  # best first
    assert len(decoded) == 3
    for got, want in zip(decoded, expected):
        np.testing.assert_array_equal(got, want)
    assert nucleus.mask_to_rle("empty", np.zeros((5, 5, 0), bool), np.zeros(0)) == "empty,"


def test_nucleus_subsets(nucleus_data):
    root, counts, test_ids, val_file = nucleus_data
    val_ids = nucleus.read_ids(str(val_file))
    assert val_ids == [sorted(counts)[0]]
    train = nucleus.load_subset(str(root), "train", val_ids)
    val = nucleus.load_subset(str(root), "val", val_ids)
    assert train.class_names == ["BG", "nucleus"]
    assert sorted(i["id"] for i in train.image_info) == sorted(counts)[1:]
    assert [i["id"] for i in val.image_info] == val_ids
    for dataset in (train, val):
        for image_id in dataset.image_ids:
            masks, class_ids = dataset.load_mask(image_id)
            assert masks.shape == (80, 96, counts[dataset.image_info[image_id]["id"]])
            assert masks.sum(axis=-1).max() == 1 and np.all(class_ids == 1)
            assert dataset.load_image(image_id).shape == (80, 96, 3)
    test = nucleus.load_subset(str(root), "stage1_test")
    assert [i["id"] for i in test.image_info] == test_ids
    assert test.load_mask(0)[0].shape == (80, 96, 0)
    with pytest.raises(ValueError, match="validation image"):
        nucleus.load_subset(str(root), "val")       # Matterport's ids are not in the fixture
    with pytest.raises(ValueError, match="subset"):
        nucleus.load_subset(str(root), "test")


def test_nucleus_train_and_detect(nucleus_data, tmp_path):
    root, counts, test_ids, val_file = nucleus_data
    logs = tmp_path / "logs"
    shared_args = ["--dataset", str(root), "--logs", str(logs), "--val-ids", str(val_file),
              "--config", "sample_configs:TinyNucleusConfig"]
    checkpoint = nucleus.main(["train", "--weights", "none", "--epochs", "1"] + shared_args)
    assert os.path.basename(checkpoint) == "mask_rcnn_nucleus_tiny_0001.h5"

    # Barely trained weights, favouring the nucleus class, so that the rows hold masks.
    config = common.make_config("sample_configs:TinyNucleusConfig", None,
                              **nucleus.inference_overrides())
    model = biased(run_model(config, checkpoint, logs), checkpoint)
    weights = str(tmp_path / "biased.h5")
    model.save_weights(weights)
    # A checkpoint's run settings travel with it (the sample rebuilds GroupNorm from them).
    recipes.write_run_settings(str(tmp_path), recipes.read_run_settings(checkpoint))

    csv_path = nucleus.main(["detect", "--subset", "stage1_test", "--weights", weights,
                             "--out", str(tmp_path / "results")] + shared_args)
    submit_dir = os.path.dirname(csv_path)
    assert os.path.basename(submit_dir).startswith("submit_")
    with open(csv_path) as f:
        header, body = f.read().split("\n", 1)
    assert header == "ImageId,EncodedPixels"
    rows = parse_rows(body)
    assert sorted(rows) == test_ids
    assert sum(len(r) for r in rows.values() if r != [""]) > 0
    for image_id, encoded in rows.items():
        assert os.path.isfile(os.path.join(submit_dir, image_id + ".png"))
        if encoded == [""]:
            continue
        masks = np.stack([nucleus.rle_decode(e, (80, 96)) for e in encoded], axis=-1)
        # Non-empty and disjoint, as Kaggle requires.
        assert np.all(masks.sum(axis=(0, 1)) > 0) and masks.sum(axis=-1).max() == 1
    # The csv holds exactly what mask_to_rle makes of the model's detections.
    test = nucleus.load_subset(str(root), "stage1_test")
    r = model.detect([test.load_image(0)])[0]
    assert rows[test_ids[0]] == parse_rows(
        nucleus.mask_to_rle(test_ids[0], r["masks"], r["scores"]))[test_ids[0]]


############################################################
#  COCO
############################################################

CATEGORIES = [{"id": 3, "name": "car", "supercategory": "vehicle"},
              {"id": 7, "name": "train", "supercategory": "vehicle"}]


def uncompressed_rle(mask):
    """COCO's uncompressed RLE (as crowd annotations are stored): column-major run lengths,
    starting with a run of zeros."""
    pixels = np.concatenate([[0], mask.T.ravel().astype(np.int8)])
    changes = np.flatnonzero(np.diff(pixels))   # flat indices where a run starts
    runs = np.diff(np.concatenate([[0], changes, [mask.size]]))
    return {"counts": [int(v) for v in runs], "size": list(mask.shape)}


def make_coco_dir(root, rng, subset="train", year="2017", count=3):
    """``annotations/instances_<subset><year>.json`` and ``<subset><year>/`` PNGs: polygons of
    two categories (COCO ids 3 and 7) and one crowd region; boxes are the masks' extents."""
    image_dir = "{}{}".format("val" if subset in coco.MINIVAL_URLS else subset, year)
    images, annotations = [], []
    for i in range(count):
        image_id = 1000 * (i + 1) + 17
        image = background(rng, (90, 90, 90))
        for k in range(3):
            category = CATEGORIES[k % 2]["id"]
            x, y = rng.uniform(4, 40, size=2)
            w, h = rng.uniform(10, 20, size=2)
            if category == 3:   # rectangles
                xs, ys = [x, x + w, x + w, x], [y, y, y + h, y + h]
            else:               # triangles
                xs, ys = [x, x + w, x + w / 2], [y + h, y + h, y]
            polygon = [float(round(v, 2)) for xy in zip(xs, ys) for v in xy]
            rle = mask_utils.merge(mask_utils.frPyObjects([polygon], SIZE, SIZE))
            mask = mask_utils.decode(rle).astype(bool)
            image[mask] = [200, 40, 40] if category == 3 else [40, 40, 200]
            bbox = utils.extract_bboxes(mask[..., np.newaxis])[0]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": category, "segmentation": [polygon],
                                "area": float(mask.sum()), "iscrowd": 0,
                                "bbox": [float(bbox[1]), float(bbox[0]),
                                         float(bbox[3] - bbox[1]), float(bbox[2] - bbox[0])]})
        if i == 0:
            crowd = np.zeros((SIZE, SIZE), bool)
            crowd[50:62, 2:30] = True
            image[crowd] = [40, 200, 40]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": 7, "segmentation": uncompressed_rle(crowd),
                                "area": float(crowd.sum()), "iscrowd": 1,
                                "bbox": [2.0, 50.0, 28.0, 12.0]})
        file_name = "COCO_{}_{:012d}.png".format(image_dir, image_id)
        write_png(str(root / image_dir / file_name), image)
        images.append({"id": image_id, "file_name": file_name, "height": SIZE, "width": SIZE})
    os.makedirs(root / "annotations", exist_ok=True)
    with open(root / "annotations" / "instances_{}{}.json".format(subset, year), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": CATEGORIES}, f)


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    rng = np.random.default_rng(3)
    make_coco_dir(root, rng, "train", count=3)
    make_coco_dir(root, rng, "val", count=3)
    return root


def test_coco_dataset_layout(coco_data, tmp_path):
    dataset = coco.CocoDataset()
    coco_api = dataset.load_coco(str(coco_data), "train", year="2017", return_coco=True)
    dataset.prepare()
    assert dataset.class_names == ["BG", "car", "train"]
    assert sorted(coco_api.getImgIds()) == [1017, 2017, 3017]
    assert all(os.path.dirname(i["path"]) == str(coco_data / "train2017")
               for i in dataset.image_info)
    masks, class_ids = dataset.load_mask(0)
    assert sorted(class_ids.tolist()) == [-2, 1, 1, 2]     # the crowd is negative
    assert dataset.get_source_class_id(2, "coco") == 7
    # Matterport's minival naming: annotations of minival2014, images in val2014/.
    make_coco_dir(tmp_path, np.random.default_rng(4), "minival", year="2014", count=1)
    minival = coco.CocoDataset()
    minival.load_coco(str(tmp_path), "minival", year="2014")
    assert os.path.dirname(minival.image_info[0]["path"]) == str(tmp_path / "val2014")
    with pytest.raises(ValueError, match="year 2014"):
        minival.auto_download(str(tmp_path), "minival", "2017")


def test_coco_auto_download(tmp_path, monkeypatch):
    source = tmp_path / "source"
    make_coco_dir(source, np.random.default_rng(5), "val", count=2)

    def zipped(folder, arcroot):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name in os.listdir(folder):
                archive.write(folder / name, "{}/{}".format(arcroot, name))
        return buffer.getvalue()

    served = {coco.IMAGES_URL.format("val", "2017"): zipped(source / "val2017", "val2017"),
              coco.ANNOTATIONS_URL.format("2017"): zipped(source / "annotations",
                                                          "annotations")}
    requested = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return io.BytesIO(served[url])

    data = tmp_path / "data"
    # Offline: a clear error naming the URL, and no partial file left behind.
    with pytest.raises(utils.DownloadError, match="images.cocodataset.org/zips/val2017.zip"):
        coco.CocoDataset().load_coco(str(data), "val", year="2017", auto_download=True)
    assert not any(name.endswith(".part") for name in os.listdir(data))

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    dataset = coco.CocoDataset()
    dataset.load_coco(str(data), "val", year="2017", auto_download=True)
    dataset.prepare()
    assert requested == sorted(served, key=lambda u: "annotations" in u)
    assert dataset.num_images == 2 and dataset.class_names == ["BG", "car", "train"]
    assert dataset.load_image(0).shape == (SIZE, SIZE, 3)
    assert sorted(os.listdir(data)) == ["annotations", "annotations_trainval2017.zip",
                                        "val2017", "val2017.zip"]
    # Present data is not fetched again.
    coco.CocoDataset().load_coco(str(data), "val", year="2017", auto_download=True)
    assert len(requested) == 2


def test_coco_train_and_evaluate(coco_data, tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    shared_args = ["--dataset", str(coco_data), "--year", "2017", "--logs", str(logs),
              "--config", "sample_configs:TinyCocoConfig"]
    checkpoint = coco.main(["train", "--weights", "none", "--epochs", "1"] + shared_args)
    assert os.path.basename(checkpoint) == "mask_rcnn_coco_tiny_0001.h5"

    results = tmp_path / "eval.json"
    summary = coco.main(["evaluate", "--weights", "last", "--limit", "2",
                         "--results", str(results)] + shared_args)
    assert_figures(summary, num_images=2)
    with open(results) as f:
        assert json.load(f)["summary"]["num_images"] == 2

    # An oracle that detects the ground truth scores 1.0, crowd regions being ignored.
    val = coco.CocoDataset()
    coco_api = val.load_coco(str(coco_data), "val", year="2017", return_coco=True)
    val.prepare()
    monkeypatch.setattr(modellib.MaskRCNN, "detect", oracle_detect(val))
    summary = coco.main(["evaluate", "--weights", "last", "--limit", "2"] + shared_args)
    assert summary["num_images"] == 2
    for iou_type in ("segm", "bbox"):
        assert summary[iou_type]["AP"] == pytest.approx(1.0)
        assert summary[iou_type]["AP75"] == pytest.approx(1.0)
    # Matterport's evaluate_coco: against the json's own annotations, with COCO ids.
    config = common.make_config("sample_configs:TinyCocoConfig", None, GPU_COUNT=1,
                              IMAGES_PER_GPU=1)
    model = modellib.MaskRCNN("inference", config, str(logs))
    for eval_type in ("segm", "bbox"):
        stats = coco.evaluate_coco(model, val, coco_api, eval_type, limit=2, verbose=False)
        assert stats["AP"] == pytest.approx(1.0)
    results = coco.build_coco_results(val, [1017], *[np.zeros((0, 4)), np.zeros(0, np.int32),
                                                      np.zeros(0), np.zeros((SIZE, SIZE, 0))])
    assert results == []
    r = oracle_detect(val)(None, [val.load_image(0)])[0]
    results = coco.build_coco_results(val, [1017], r["rois"], r["class_ids"], r["scores"],
                                      r["masks"])
    assert sorted(d["category_id"] for d in results) == [3, 3, 7]
    assert {d["image_id"] for d in results} == {1017}


############################################################
#  Shared command-line plumbing
############################################################

def _weights_only_under(tmp_path, monkeypatch):
    """Point the weights lookup at tmp_path: $MRCNN_WEIGHTS_DIR, the checkout's weights/ and the
    samples' repository root there (a real mask_rcnn_coco.h5 of this checkout is not seen).
    Returns the weights folder."""
    weights_dir = tmp_path / "weights"
    monkeypatch.setenv(utils.WEIGHTS_DIR_ENV, str(weights_dir))
    monkeypatch.setattr(utils, "CHECKOUT_DIR", str(tmp_path / "checkout"))
    monkeypatch.setattr(common, "ROOT_DIR", str(tmp_path / "root"))
    return weights_dir


@pytest.mark.parametrize("sample,command", [
    (balloon, ["splash", "--image", "photo.png"]),
    (nucleus, ["detect", "--dataset", "missing"]),
    (coco, ["evaluate", "--dataset", "missing"]),
])
def test_weights_coco_offline_is_a_clear_error(sample, command, tmp_path, monkeypatch):
    weights_dir = _weights_only_under(tmp_path, monkeypatch)
    target = weights_dir / "mask_rcnn_coco.h5"      # the download goes to weights/
    with pytest.raises(utils.DownloadError, match="could not download https://github.com/"
                                                  "matterport/.*mask_rcnn_coco.h5 to " +
                                                  re.escape(str(target))):
        sample.main(command + ["--weights", "coco", "--logs", str(tmp_path / "logs")])
    assert os.listdir(tmp_path) == ["weights"]
    assert os.listdir(weights_dir) == []      # no partial download


def test_weights_coco_is_looked_for_in_weights_then_the_root_then_logs(tmp_path, monkeypatch):
    weights_dir = _weights_only_under(tmp_path, monkeypatch)
    places = [tmp_path / "logs", tmp_path / "root", tmp_path / "checkout" / "weights",
              weights_dir]
    for folder in places:               # each copy found is preferred to those before it
        folder.mkdir(parents=True)
        (folder / "mask_rcnn_coco.h5").write_bytes(b"w")
        assert common.locate_coco_weights(str(tmp_path / "logs")) == str(
            folder / "mask_rcnn_coco.h5")


def test_weights_coco_from_logs_skips_class_specific_heads(tmp_path, monkeypatch):
    _weights_only_under(tmp_path, monkeypatch)
    logs = tmp_path / "logs"
    os.makedirs(logs)
    coco_config = common.make_config("sample_configs:TinyCocoConfig", None, NUM_CLASSES=81)
    source = modellib.MaskRCNN("inference", coco_config, str(logs))
    source.save_weights(str(logs / "mask_rcnn_coco.h5"))
    model = common.build_model("inference", TinyBalloonConfig(), "coco", str(logs))
    for name in ("tiny_conv3", "fpn_p2"):
        for ours, theirs in zip(model.keras_model.get_layer(name).get_weights(),
                                source.keras_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    assert model.keras_model.get_layer("mrcnn_class_logits").get_weights()[1].shape == (2,)


@pytest.mark.parametrize("sample", [balloon, nucleus, coco, "shapes"])
@pytest.mark.parametrize("steps, problem", [("0", "must be at least 1, got 0"),
                                            ("-3", "must be at least 1, got -3"),
                                            ("two", "expected a positive integer, got 'two'")])
def test_steps_must_be_positive(sample, steps, problem, tmp_path, capsys):
    # Issue 27 case 7: --steps 0 was taken as "not given" (the config's count was used).
    args = ["train", "--weights", "none", "--logs", str(tmp_path / "logs"), "--steps", steps]
    if sample == "shapes":                  # no --dataset: it draws its images
        from samples.shapes import shapes as sample
    else:
        args += ["--dataset", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        sample.main(args)
    assert exit_info.value.code == 2
    assert "argument --steps: {}".format(problem) in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "logs")


def test_schedule_scales_the_recipe():
    assert common.schedule(coco.TRAINING_STAGES) == list(coco.TRAINING_STAGES)
    assert common.schedule(coco.TRAINING_STAGES, 1) == [("heads", 1, 1.0)]
    assert common.schedule(coco.TRAINING_STAGES, 4) == [("heads", 1, 1.0), ("4+", 3, 1.0),
                                                      ("all", 4, 0.1)]
    assert common.schedule(nucleus.TRAINING_STAGES, 10) == [("heads", 5, 1.0), ("all", 10, 1.0)]
    with pytest.raises(ValueError):
        common.schedule(balloon.TRAINING_STAGES, 0)


def test_class_count_mismatch_is_a_clear_error(coco_data):
    from mrcnn.engine import recipes

    dataset = coco.CocoDataset()
    dataset.load_coco(str(coco_data), "val", year="2017")
    dataset.prepare()
    with pytest.raises(ValueError, match="3 classes .* NUM_CLASSES is 81: pass --config with "
                                         "a Config subclass whose NUM_CLASSES is 3"):
        common.check_classes(dataset, coco.CocoConfig())
    # python -m mrcnn has no --config: its message names the data file's keys.
    with pytest.raises(ValueError) as error:
        common.check_classes(dataset, coco.CocoConfig(), recipes.DATA_FILE_CLASSES_HINT)
    message = str(error.value)
    assert "NUM_CLASSES is 81" in message and "--config" not in message
    assert "data file's keys: 'classes'" in message and "'config'" in message


def test_inference_config_applies_the_run_once_under_this_command():
    from mrcnn.engine import recipes

    settings = {"recipe": recipes.SCRATCH,
                "attributes": {"NORM": "group", "DETECTION_MIN_CONFIDENCE": 0.9,
                               "IMAGES_PER_GPU": 4, "IMAGE_RESIZE_MODE": "crop"}}
    config = recipes.inference_config(TinyBalloonConfig, settings, {
        "DETECTION_MIN_CONFIDENCE": 0, "GPU_COUNT": 1, "IMAGES_PER_GPU": 1})
    assert (config.NORM, config.DETECTION_MIN_CONFIDENCE, config.IMAGES_PER_GPU,
            config.IMAGE_RESIZE_MODE) == ("group", 0, 1, "pad64")


def test_make_config_and_sample_configs():
    config = common.make_config(None, nucleus.NucleusConfig, **nucleus.inference_overrides())
    reference = nucleus.NucleusInferenceConfig()
    np.testing.assert_equal(config.to_dict(), reference.to_dict())
    assert nucleus.NucleusConfig().STEPS_PER_EPOCH == (670 - 25) // 6
    assert balloon.BalloonConfig().DETECTION_MIN_CONFIDENCE == 0.9
    assert coco.CocoConfig().NUM_CLASSES == 81
    with pytest.raises(ValueError, match="package.module:ConfigClass"):
        common.make_config("sample_configs", None)


############################################################
#  --weights none: every layer from the first step
############################################################

SAMPLE_DATA = {
    "balloon": (balloon, "balloon_data", lambda data: ["--dataset", str(data[0])]),
    "nucleus": (nucleus, "nucleus_data",
                lambda data: ["--dataset", str(data[0]), "--val-ids", str(data[3])]),
    "coco": (coco, "coco_data", lambda data: ["--dataset", str(data), "--year", "2017"]),
}


@pytest.mark.parametrize("name", sorted(SAMPLE_DATA))
def test_weights_none_trains_every_layer_from_the_first_step(name, request, tmp_path,
                                                             monkeypatch):
    """Each sample's train command: --weights none runs one 'all' stage under the from-scratch
    recipe; a weights file keeps Matterport's heads-first stages and the sample's settings."""
    sample, fixture, dataset_args = SAMPLE_DATA[name]
    data = request.getfixturevalue(fixture)
    calls = []

    def record(self, train_dataset, val_dataset, learning_rate, epochs, layers, **kwargs):
        calls.append((layers, epochs, learning_rate, self.config, self.log_dir))
        self.epoch = epochs
    monkeypatch.setattr(modellib.MaskRCNN, "train", record)
    monkeypatch.setattr(modellib.MaskRCNN, "find_last", lambda self: "checkpoint.h5")
    monkeypatch.setattr(modellib.MaskRCNN, "load_weights", lambda self, *a, **k: None)
    spec = "sample_configs:Tiny{}Config".format(name.capitalize())
    args = dataset_args(data) + ["--logs", str(tmp_path), "--config", spec, "--epochs", "4"]

    sample.main(["train", "--weights", "none"] + args)
    assert [c[:3] for c in calls] == [("all", 4, 0.001)]
    config = calls[0][3]
    assert (config.NORM, config.OPTIMIZER, config.LR_SCHEDULE) == ("group", "adam", "cosine")
    assert (config.ROI_ALIGN_SAMPLING_RATIO, config.ROI_ALIGN_ALIGNED) == (2, True)
    # A tenth of the run's steps warm up (4 epochs of the tiny configs' 1 step: at least 1).
    assert config.WARMUP_STEPS == max(1, int(0.1 * 4 * config.STEPS_PER_EPOCH))

    # --weights last resumes that run: its recorded recipe, every layer still.
    run_dir = calls[0][4]
    with open(os.path.join(run_dir, recipes.RUN_SETTINGS)) as f:
        assert json.load(f)["recipe"] == recipes.SCRATCH
    open(os.path.join(run_dir, "mask_rcnn_{}_0004.h5".format(config.NAME.lower())), "w").close()
    calls.clear()
    sample.main(["train", "--weights", "last"] + args[:-1] + ["6"])
    assert [c[:3] for c in calls] == [("all", 6, 0.001)]
    assert calls[0][3].NORM == "group"

    calls.clear()
    sample.main(["train", "--weights", str(tmp_path / "pretrained.h5")] + args)
    expected = common.schedule(sample.TRAINING_STAGES, 4)
    assert [c[0] for c in calls] == [layers for layers, _, _ in expected]
    assert calls[0][0] == "heads"
    config = calls[0][3]
    assert (config.NORM, config.LR_SCHEDULE, config.WARMUP_STEPS) == ("batch", None, 0)
    # A weights file keeps Matterport's RoIAlign: its COCO weights were trained with it.
    assert config.ROI_ALIGN_SAMPLING_RATIO == 0


def test_from_scratch_recipe_takes_the_papers_roi_align_and_a_resumed_run_keeps_its_own(
        tmp_path):
    from mrcnn.engine import recipes
    config, _ = recipes.training_plan(nucleus.NucleusConfig, nucleus.TRAINING_STAGES, "none")
    assert (config.ROI_ALIGN_SAMPLING_RATIO, config.ROI_ALIGN_ALIGNED) == (2, True)
    settings = recipes.run_settings(config)
    assert settings["attributes"]["ROI_ALIGN_SAMPLING_RATIO"] == 2
    # A run recorded before the switches joined the recipe resumes with Matterport's sampling,
    # and one recorded with them resumes with them.
    for attributes, expected in (({"NORM": "group", "OPTIMIZER": "adam", "LEARNING_RATE": 0.001,
                                   "LR_SCHEDULE": "cosine", "WARMUP_STEPS": 16}, 0),
                                 (settings["attributes"], 2)):
        run = tmp_path / "run{}".format(expected)
        recipes.write_run_settings(str(run), {"recipe": recipes.SCRATCH,
                                              "attributes": attributes})
        checkpoint = run / "mask_rcnn_nucleus_0002.h5"
        checkpoint.write_bytes(b"")
        config, stages = recipes.training_plan(nucleus.NucleusConfig, nucleus.TRAINING_STAGES,
                                               str(checkpoint))
        assert stages == [("all", 40, 1.0)]
        assert config.ROI_ALIGN_SAMPLING_RATIO == expected
        assert config.NORM == "group"


def test_training_plan_keeps_what_the_config_sets():
    class OwnChoices(nucleus.NucleusConfig):
        OPTIMIZER = "SGD"
        LEARNING_RATE = 0.02
        WARMUP_STEPS = 7

    config, stages = common.training_config("sample_configs:TinyNucleusConfig", None, "none",
                                            nucleus.TRAINING_STAGES, 10, STEPS_PER_EPOCH=30)
    assert stages == [("all", 10, 1.0)]
    assert config.WARMUP_STEPS == 30 and config.STEPS_PER_EPOCH == 30   # 10 % of 300 steps
    from mrcnn.engine import recipes
    config, stages = recipes.training_plan(OwnChoices, nucleus.TRAINING_STAGES, "NONE",
                                           NORM="batch", TRAIN_BN=True)
    assert stages == [("all", 40, 1.0)]
    assert (config.OPTIMIZER, config.LEARNING_RATE, config.WARMUP_STEPS) == ("SGD", 0.02, 7)
    assert (config.NORM, config.LR_SCHEDULE) == ("batch", "cosine")


def test_weights_torchvision_without_the_file_says_how_to_make_it(tmp_path, monkeypatch):
    _weights_only_under(tmp_path, monkeypatch)
    with pytest.raises(FileNotFoundError, match="mrcnn.weights.convert torchvision"):
        common.build_model("inference", TinyBalloonConfig(), "torchvision", str(tmp_path))
    config, _ = common.training_config("sample_configs:TinyBalloonConfig", None, "torchvision",
                                       balloon.TRAINING_STAGES, 1)
    # torchvision's architecture and semantics, the sample's classes and image size.
    assert (config.RESNET_STYLE, config.BOX_DECODING, config.NUM_CLASSES,
            config.IMAGE_MAX_DIM) == ("torchvision", "torchvision", 2, 64)
    assert recipes.run_settings(config)["attributes"]["RPN_ANCHOR_STYLE"] == "torchvision"


def test_fine_tune_a_converted_torchvision_model(balloon_data, tmp_path):
    """balloon.py train --weights <converted .h5>: the file's 5-class heads are left out,
    the rest loads; the run then detects with its own checkpoint."""
    from mrcnn.weights import convert
    from tiny import TorchvisionSmallConfig

    from references import reference_path
    reference = reference_path("torchvision_maskrcnn_reference.npz")
    with np.load(reference) as data:
        np.savez(tmp_path / "state.npz", **{k[len("state/"):]: data[k] for k in data.files
                                            if k.startswith("state/")})
    converted = str(tmp_path / "converted.h5")
    convert.convert_torchvision(str(tmp_path / "state.npz"), converted,
                                config=TorchvisionSmallConfig())
    root, _ = balloon_data
    logs = tmp_path / "logs"
    config = ["--config", "sample_configs:TinyTorchvisionBalloonConfig"]
    checkpoint = balloon.main(["train", "--dataset", str(root), "--weights", converted,
                               "--logs", str(logs), "--epochs", "1"] + config)
    source = modellib.MaskRCNN("inference", TorchvisionSmallConfig(), str(tmp_path))
    source.load_weights(converted)
    tuned = modellib.MaskRCNN("inference", common.make_config(
        "sample_configs:TinyTorchvisionBalloonConfig", None), str(tmp_path))
    tuned.load_weights(checkpoint)
    # The first stage trains the heads (and the FPN): the ResNet is the converted one.
    for name in ("conv1", "bn_conv1", "res5b_branch2c", "bn5b_branch2c"):
        for ours, theirs in zip(tuned.keras_model.get_layer(name).get_weights(),
                                source.keras_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    assert tuned.keras_model.get_layer("mrcnn_class_logits").get_weights()[1].shape == (2,)
    out = balloon.main(["splash", "--weights", checkpoint, "--image",
                        str(root / "val" / "val_0.png"), "--out", str(tmp_path)] + config)
    assert os.path.isfile(out)


@pytest.mark.parametrize("name", sorted(SAMPLE_DATA))
def test_sample_inspect_writes_the_dataset_report(name, request, tmp_path):
    sample, fixture, dataset_args = SAMPLE_DATA[name]
    data = request.getfixturevalue(fixture)
    spec = "sample_configs:Tiny{}Config".format(name.capitalize())
    # inspect builds no model: no --weights; --limit 1 scans one image of each split.
    report = sample.main(["inspect", "--logs", str(tmp_path), "--limit", "1",
                          "--config", spec] + dataset_args(data))
    splits = list(report["splits"].values())
    assert len(splits) == 2 and all(s["images"] == 1 for s in splits)
    assert splits[0]["instances"] == sum(splits[0]["class_counts"]) > 0
    assert os.path.dirname(report["out"]) == str(tmp_path)
    assert sorted(os.listdir(report["out"])) == ["report.png", "report.txt"]
