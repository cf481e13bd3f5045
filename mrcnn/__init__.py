"""mrcnn: Mask R-CNN on Keras 3 and TensorFlow 2, with Matterport's API."""

__version__ = "0.1.0"
