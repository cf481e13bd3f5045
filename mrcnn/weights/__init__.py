"""Pretrained weights: loading Keras/h5 weights by layer name (``loading``), converting
torchvision's Mask R-CNN (``convert``, ``python -m mrcnn.weights.convert``), and comparing a
converted model with torchvision stage by stage (``parity``)."""
