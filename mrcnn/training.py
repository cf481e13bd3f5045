"""Training pieces: the loss-owning Keras model, layer freezing and the optimizer."""

import re

import keras
import tensorflow as tf

from mrcnn.config import LOSS_NAMES
from mrcnn.layers import BatchNorm

# Presets of train(layers=...): Matterport's regular expressions on layer names.
LAYER_PRESETS = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}


@keras.saving.register_keras_serializable(package="mrcnn")
class TrainingModel(keras.Model):
    """The functional training graph plus the loss: weighted sum of the five loss outputs and
    L2 weight decay. Each loss is tracked as a metric, so the progress bar and the history show
    ``rpn_class_loss`` ... ``mrcnn_mask_loss`` and their ``val_`` twins.

    Keyword arguments: loss_weights ({loss name: weight}, default 1 each) and weight_decay
    (Matterport's L2 term; ``MaskRCNN.compile`` sets it, to 0 with AdamW, whose decoupled
    decay replaces it). The constructor keeps a functional model's signature so that Keras
    saves the graph in ``get_config``.
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        loss_weights = kwargs.pop("loss_weights", None)
        weight_decay = kwargs.pop("weight_decay", 0.0)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.loss_weights = dict(loss_weights or {})
        self.weight_decay = float(weight_decay)
        for name in LOSS_NAMES:
            setattr(self, name + "_tracker", keras.metrics.Mean(name=name))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = tf.constant(0.0)
        for name in LOSS_NAMES:
            value = tf.reduce_mean(y_pred[name])
            getattr(self, name + "_tracker").update_state(value)
            total += self.loss_weights.get(name, 1.0) * value
        if self.weight_decay:
            # Matterport's form: L2 per tensor divided by its size; not on BN gamma/beta.
            reg = [self.weight_decay * tf.reduce_sum(tf.square(w)) / tf.cast(tf.size(w),
                                                                            tf.float32)
                   for w in self.trainable_weights
                   if not w.path.endswith(("gamma", "beta"))]
            if reg:
                total += tf.add_n(reg)
        return total

    def get_config(self):
        config = super().get_config()
        config.update(loss_weights=self.loss_weights, weight_decay=self.weight_decay)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        loss_weights = config.pop("loss_weights", None)
        weight_decay = config.pop("weight_decay", 0.0)
        model = super().from_config(config, custom_objects=custom_objects)
        model.loss_weights = dict(loss_weights or {})
        model.weight_decay = float(weight_decay)
        return model


def set_trainable(keras_model, layer_regex, train_bn=None, indent=0, verbose=0):
    """Make layers whose name fully matches ``layer_regex`` trainable, freeze the others.

    layer_regex: a regular expression or a key of LAYER_PRESETS. BatchNorm layers stay frozen
    when train_bn is False (config.TRAIN_BN). Nested models are walked.
    """
    layer_regex = LAYER_PRESETS.get(layer_regex, layer_regex)
    for layer in keras_model.layers:
        if isinstance(layer, keras.Model):
            if verbose:
                print("In model: ", layer.name)
            set_trainable(layer, layer_regex, train_bn, indent + 4, verbose)
            continue
        if not layer.weights:
            continue
        trainable = bool(re.fullmatch(layer_regex, layer.name))
        inner = layer.layer if isinstance(layer, keras.layers.Wrapper) else layer
        if isinstance(inner, BatchNorm) and train_bn is False:
            trainable = False
        layer.trainable = trainable
        if trainable and verbose:
            print("{}{:20}   ({})".format(" " * indent, layer.name, layer.__class__.__name__))


def build_optimizer(config, learning_rate, momentum):
    """(optimizer, L2 weight decay for TrainingModel) from config.OPTIMIZER.

    Every optimizer clips each gradient tensor to GRADIENT_CLIP_NORM (Matterport's clipnorm).
    AdamW decays the weights itself, so the L2 term is then 0.
    """
    name = str(config.OPTIMIZER).lower()
    clip = config.GRADIENT_CLIP_NORM
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                    clipnorm=clip), config.WEIGHT_DECAY
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clip), \
            config.WEIGHT_DECAY
    return keras.optimizers.AdamW(learning_rate=learning_rate, clipnorm=clip,
                                  weight_decay=config.WEIGHT_DECAY), 0.0
