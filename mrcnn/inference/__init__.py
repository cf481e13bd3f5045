"""Running a trained model: molding images for the network and unmolding its detections
(NumPy), the TensorFlow post-processing (``detect()`` and the SavedModel), the pipelined
``detect_iter`` path, and tiled detection of large images."""
