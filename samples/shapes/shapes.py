"""Synthetic shapes: squares, circles and triangles on plain backgrounds.

The dataset is generated on the fly (no files), deterministically for a given seed, so it is the
quickest way to check that the whole pipeline trains. Matterport's ``ShapesConfig`` and
``ShapesDataset`` API is kept.
"""

import math
import os
import sys

import numpy as np
import skimage.draw

# Run as a script from anywhere: make the repository's mrcnn importable.
ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT_DIR not in sys.path:
    sys.path.insert(0, ROOT_DIR)

from mrcnn import utils  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.dataset import Dataset  # noqa: E402

SHAPES = ("square", "circle", "triangle")


class ShapesConfig(Config):
    """Configuration for training on the shapes dataset: small images, few RoIs."""
    NAME = "shapes"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 8
    NUM_CLASSES = 1 + 3  # background + 3 shapes
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    # Small images, so smaller anchors.
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    # Few objects per image: few RoIs are enough.
    TRAIN_ROIS_PER_IMAGE = 32
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 5


class ShapesDataset(Dataset):
    """Random images of squares, circles and triangles, drawn when loaded."""

    def load_shapes(self, count, height, width, seed=None):
        """Register ``count`` random images of ``height`` x ``width``.

        seed: the same seed gives the same images (specs are drawn here; pixels when loaded).
        """
        for class_id, name in enumerate(SHAPES, start=1):
            self.add_class("shapes", class_id, name)
        rng = np.random.default_rng(seed)
        for i in range(count):
            bg_color, shapes = self.random_image(height, width, rng)
            self.add_image("shapes", image_id=i, path=None, width=width, height=height,
                           bg_color=bg_color, shapes=shapes)

    def load_image(self, image_id):
        """Draw the image from its specs: [height, width, 3] uint8."""
        info = self.image_info[image_id]
        image = np.empty([info["height"], info["width"], 3], dtype=np.uint8)
        image[:, :] = np.array(info["bg_color"], dtype=np.uint8)
        for shape, color, dims in info["shapes"]:
            rr, cc = shape_pixels(shape, dims, image.shape[:2])
            image[rr, cc] = color
        return image

    def image_reference(self, image_id):
        """The image's shapes, e.g. ``shapes: ['circle', 'square']``."""
        info = self.image_info[image_id]
        if info["source"] == "shapes":
            return "shapes: {}".format([s[0] for s in info["shapes"]])
        return super().image_reference(image_id)

    def load_mask(self, image_id):
        """Instance masks with occlusion: shapes drawn later hide the earlier ones."""
        info = self.image_info[image_id]
        shapes = info["shapes"]
        mask = np.zeros([info["height"], info["width"], len(shapes)], dtype=bool)
        for i, (shape, _, dims) in enumerate(shapes):
            rr, cc = shape_pixels(shape, dims, mask.shape[:2])
            mask[rr, cc, i] = True
        # Walk from the top-most shape down, removing what is covered.
        occlusion = np.ones(mask.shape[:2], dtype=bool)
        for i in range(len(shapes) - 1, -1, -1):
            mask[:, :, i] &= occlusion
            occlusion &= ~mask[:, :, i]
        keep = mask.any(axis=(0, 1))  # a fully hidden shape is no instance
        class_ids = np.array([self.class_names.index(s[0]) for s in shapes], dtype=np.int32)
        return mask[:, :, keep], class_ids[keep]

    @staticmethod
    def random_shape(height, width, rng):
        """A random (shape, color, (center_y, center_x, size)) that fits the image."""
        shape = SHAPES[int(rng.integers(0, len(SHAPES)))]
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        buffer = 20
        y = int(rng.integers(buffer, height - buffer))
        x = int(rng.integers(buffer, width - buffer))
        size = int(rng.integers(buffer, max(buffer + 1, height // 4 + 1)))
        return shape, color, (y, x, size)

    def random_image(self, height, width, rng):
        """Background color and 1-4 shapes, with heavily overlapping ones removed by NMS."""
        bg_color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        shapes, boxes = [], []
        for _ in range(int(rng.integers(1, 5))):
            shape, color, (y, x, s) = self.random_shape(height, width, rng)
            shapes.append((shape, color, (y, x, s)))
            boxes.append([y - s, x - s, y + s, x + s])
        keep = utils.non_max_suppression(np.array(boxes), np.arange(len(boxes)), 0.3)
        return bg_color, [shapes[i] for i in sorted(keep)]


def shape_pixels(shape, dims, image_shape):
    """Row and column indices of a shape's pixels, clipped to ``image_shape``."""
    y, x, s = dims
    if shape == "square":
        return skimage.draw.polygon([y - s, y - s, y + s, y + s], [x - s, x + s, x + s, x - s],
                                    shape=image_shape)
    if shape == "circle":
        return skimage.draw.disk((y, x), s, shape=image_shape)
    if shape == "triangle":
        half = s / math.sin(math.radians(60))
        return skimage.draw.polygon([y - s, y + s, y + s], [x, x - half, x + half],
                                    shape=image_shape)
    raise ValueError("unknown shape {!r}".format(shape))


def make_datasets(config, train_count=500, val_count=50, seed=0):
    """Prepared train and validation ShapesDatasets of the config's image size."""
    h, w = int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])
    train = ShapesDataset()
    train.load_shapes(train_count, h, w, seed=seed)
    train.prepare()
    val = ShapesDataset()
    val.load_shapes(val_count, h, w, seed=seed + 1_000_003)
    val.prepare()
    return train, val
