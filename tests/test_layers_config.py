"""Every custom graph layer round-trips through get_config / from_config."""

import copy

import keras

from mrcnn.detection import DetectionLayer
from mrcnn.heads import RoiDistributed
from mrcnn.layers import ActiveClassIds, BatchNorm, DetectionBoxes, LeadingRois, NormBoxes
from mrcnn.losses import LossLayer, mrcnn_mask_loss
from mrcnn.roi_align import PyramidROIAlign
from mrcnn.rpn import AnchorsLayer, ProposalLayer
from mrcnn.targets import DetectionTargetLayer


def test_custom_layers_round_trip_their_config():
    layers = [
        BatchNorm(train_bn=False, name="bn_conv1"),
        DetectionLayer(10, 0.6, 0.4, name="mrcnn_detection"),
        RoiDistributed(keras.layers.Dense(3), name="mrcnn_bbox_fc"),
        ActiveClassIds(name="a"), DetectionBoxes(name="b"), NormBoxes(name="n"),
        LeadingRois(5, name="mask_rois"),
        LossLayer(mrcnn_mask_loss, name="mrcnn_mask_loss"),
        PyramidROIAlign([7, 7], name="roi_align_classifier"),
        AnchorsLayer([8, 16], [0.5, 1, 2], [[4, 4], [2, 2]], [4, 8], 1, [16, 16], name="anchors"),
        ProposalLayer(100, 0.7, 500, name="ROI"),
        DetectionTargetLayer(32, 0.33, [0.1, 0.1, 0.2, 0.2], [28, 28], True, name="t"),
    ]
    for layer in layers:
        config = layer.get_config()
        clone = type(layer).from_config(copy.deepcopy(config))
        assert clone.get_config() == config, type(layer).__name__
        assert clone.name == layer.name
