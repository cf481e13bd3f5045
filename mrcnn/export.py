"""Command line: export an inference model as a TensorFlow SavedModel (see mrcnn.serving).

    python -m mrcnn.export --config samples.shapes.shapes:ScratchShapesConfig \\
        --weights logs/.../mask_rcnn_shapes_0008.h5 --out exported/shapes
"""

import argparse
import os

from mrcnn import model as modellib
from mrcnn.config import load_config_class
from mrcnn.serving import export_saved_model


def inference_config(spec):
    """An inference instance (one image per batch) of the Config class named by ``spec``."""
    base = load_config_class(spec)
    return type("Export" + base.__name__, (base,), {"GPU_COUNT": 1, "IMAGES_PER_GPU": 1})()


def main(argv=None):
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description="Export a Mask R-CNN as a SavedModel.")
    parser.add_argument("--config", required=True,
                        help="config class as 'package.module:ConfigClass'")
    parser.add_argument("--weights", required=True, help=".h5 weights to export")
    parser.add_argument("--out", required=True, help="SavedModel directory to write")
    args = parser.parse_args(argv)
    # Bad arguments end in argparse's usage message (exit status 2), not in a traceback.
    try:
        config = inference_config(args.config)
    except (ValueError, ImportError) as e:
        parser.error("--config {}: {}".format(args.config, e))
    if not os.path.isfile(args.weights):
        parser.error("--weights {}: no such file".format(args.weights))
    model = modellib.MaskRCNN("inference", config, model_dir="/tmp")
    model.load_weights(args.weights, by_name=True)
    export_saved_model(model, args.out)
    print("Exported SavedModel to {}".format(args.out))


if __name__ == "__main__":
    main()
