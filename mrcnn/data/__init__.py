"""Data in: the ``Dataset`` base class (``mrcnn.utils.Dataset``), annotation formats (COCO,
VIA, YOLO, folders) and data files, image checks and loading, the image meta vector, the
``tf.data`` input pipeline with its ground-truth targets, repeat-factor sampling, and the dataset
report."""
