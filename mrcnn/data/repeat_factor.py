"""Repeat-factor sampling against class imbalance (LVIS, Gupta et al. 2019; detectron2's
``RepeatFactorTrainingSampler``).

A class present in a fraction f(c) of the training images gets r(c) = max(1, sqrt(t / f(c)))
for a threshold t (Config.REPEAT_FACTOR_THRESHOLD); an image is repeated r(i) = max over its
classes times per epoch (1 without instances), the fractional part by a coin flip, so rare
classes are seen more often.
"""

import numpy as np

from mrcnn.data.dataset import image_class_ids


def repeat_factors(dataset, threshold):
    """[num_images] repeat factor of each image of a prepared dataset (positions as in
    ``dataset.image_ids``). Crowd regions (negative ids) count for their class."""
    image_classes = [set(ids.tolist()) for ids in image_class_ids(dataset)]
    counts = np.zeros(dataset.num_classes)
    for classes in image_classes:
        counts[list(classes)] += 1
    with np.errstate(divide="ignore"):
        class_factors = np.maximum(1.0, np.sqrt(threshold / (counts / len(image_classes))))
    return np.array([max((class_factors[c] for c in classes), default=1.0)
                     for classes in image_classes])


def epoch_order(factors, rng):
    """One epoch's image positions: image i appears floor(r_i) times, plus once more with
    probability frac(r_i), in a random order drawn from ``rng``."""
    factors = np.asarray(factors, dtype=np.float64)
    whole = np.floor(factors)
    copies = whole + (rng.random(len(factors)) < factors - whole)
    return rng.permutation(np.repeat(np.arange(len(factors)), copies.astype(np.int64)))
