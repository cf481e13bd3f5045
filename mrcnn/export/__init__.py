"""Export: the SavedModel serving signature (``serving``), the fixed-size TFLite/ONNX core
(``formats``), the NumPy runner for those files (``runner``), and the command line
``python -m mrcnn.export`` (``command``)."""
