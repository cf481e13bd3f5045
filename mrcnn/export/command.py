"""Command line: export an inference model as a SavedModel, TFLite or ONNX model.

    python -m mrcnn.export --config samples.shapes.shapes:ScratchShapesConfig \\
        --weights logs/.../mask_rcnn_shapes_0008.h5 --out exported/shapes
    python -m mrcnn.export ... --format tflite --quantize dynamic --out shapes.tflite
    python -m mrcnn.export ... --format onnx --out shapes.onnx

SavedModel: see mrcnn.export.serving. TFLite and ONNX: the fixed-size core and ``<out>.json``, run
with mrcnn.export.runner (see mrcnn.export.formats); ONNX needs the export extra (``pip install '.[export]'``).
"""

import argparse
import os

from mrcnn.export import formats as export_formats
from mrcnn import model as modellib
from mrcnn.config import load_config_class
from mrcnn.engine import recipes


def inference_config(config_class, weights=None):
    """An inference instance (one image per batch, ``Config.for_inference``) of
    ``config_class``, with the settings the run recorded beside ``weights``
    (``run_config.json``, as ``python -m mrcnn export`` reads it): a run from random weights
    trained with GroupNorm and the paper's RoIAlign, which its class may not say, and RoIAlign
    has no weights whose loading would fail on the wrong setting."""
    if weights is not None:
        config_class = recipes.with_run_settings(config_class,
                                                 recipes.read_run_settings(weights))
    return config_class().for_inference()


def main(argv=None):
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        description="Export a Mask R-CNN as a SavedModel, TFLite or ONNX model.")
    parser.add_argument("--config", required=True,
                        help="config class as 'package.module:ConfigClass'")
    parser.add_argument("--weights", required=True, help=".h5 weights to export")
    parser.add_argument("--out", required=True,
                        help="SavedModel directory, or .tflite / .onnx file, to write")
    parser.add_argument("--format", default="savedmodel", choices=export_formats.FORMATS,
                        help="savedmodel (default; any image size), tflite or onnx (fixed "
                             "IMAGE_MAX_DIM square input, see mrcnn.export.formats)")
    parser.add_argument("--quantize", choices=["dynamic"],
                        help="tflite only: dynamic-range quantization (int8 weights)")
    args = parser.parse_args(argv)
    # Bad arguments end in argparse's usage message (exit status 2), not in a traceback.
    if args.quantize and args.format != "tflite":
        parser.error("--quantize applies to --format tflite only")
    if args.format == "onnx":
        try:
            export_formats.require("tf2onnx", "--format onnx")
        except ImportError as e:
            parser.error(str(e))
    try:
        config_class = load_config_class(args.config)
        inference_config(config_class)     # the class's own values are valid
    except (ValueError, ImportError) as e:
        parser.error("--config {}: {}".format(args.config, e))
    if not os.path.isfile(args.weights):
        parser.error("--weights {}: no such file".format(args.weights))
    try:
        config = inference_config(config_class, args.weights)
    except ValueError as e:
        parser.error("--weights {}: the run's {}: {}".format(args.weights,
                                                             recipes.RUN_SETTINGS, e))
    model = modellib.MaskRCNN("inference", config, model_dir="/tmp")
    model.load_weights(args.weights, by_name=True)
    export_formats.export(model, args.out, format=args.format, quantize=args.quantize)
    print("Exported {} to {}".format(args.format, args.out))


if __name__ == "__main__":
    main()
