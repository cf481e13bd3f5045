"""Training pieces: the loss-owning Keras model, the input pipelines of a ``train()`` call,
layer freezing and the optimizer."""

import math
import numbers
import re

import keras
import numpy as np
import tensorflow as tf

from mrcnn.engine import distribute, optimizers
from mrcnn.modeling import precision
from mrcnn.config import LOSS_NAMES, config_train_bn
from mrcnn.data.pipeline import build_input_pipeline, resolve_seed, with_horizontal_flip
from mrcnn.modeling.layers import BatchNorm
from mrcnn.modeling.losses import LossLayer
from mrcnn.weights.loading import weight_owners

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

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Private Keras member: mrcnn.engine.keras_private (tests/engine/test_training.py checks
        # that Keras still has and calls it). Keras' hook run by fit() and evaluate() before
        # their first step. Under a strategy, Keras' version averages a whole input batch over the
        # replicas to build the model from it symbolically, which fails on the bool GT masks
        # and, with several workers, on any dict of inputs; without one it does nothing, and
        # the optimizer's variables are then created inside the first trace of the train
        # step, which makes tf.function trace the whole step twice (about 16 s of the demo's
        # first step). This graph is built when it is created and compile() gives no loss or
        # metric to build: what is left is the optimizer, built here, in the strategy's scope,
        # before the step is traced.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras' step logs (the loss trackers' values), shaped for several workers."""
        logs = super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if distribute.is_multi_worker(tf.distribute.get_strategy()):
            # Keras then averages each log over the replicas with an axis 0 (TensorFlow issue
            # 72388): the values are the same on every replica, given one axis they average
            # back to themselves.
            logs = {key: tf.reshape(value, [1]) for key, value in logs.items()}
        return logs

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = tf.constant(0.0)
        for name in LOSS_NAMES:
            value = tf.reduce_mean(y_pred[name])
            getattr(self, name + "_tracker").update_state(value)
            total += self.loss_weights.get(name, 1.0) * value
        if self.weight_decay:
            # Matterport's form: L2 per tensor divided by its size; not on BN gamma/beta.
            # L2Loss (sum(w^2) / 2) is one op forward and one multiply backward, where a
            # square and a sum are two of each, over ~27 M weights every step.
            reg = [self.weight_decay * 2.0 * tf.nn.l2_loss(w) / float(np.prod(w.shape))
                   for w in self.trainable_weights
                   if not w.path.endswith(("gamma", "beta"))]
            if reg:
                total += tf.add_n(reg)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            # Keras sums the replicas' gradients (and reports the loss times the replica count,
            # as for its own losses): each replica contributes its share of the average. The
            # trackers above hold each replica's true loss and average them over the replicas.
            total = total / replicas
        return total

    def set_loss_options(self, options):
        """Set options of the loss layers after the graph is built: {loss name: {option:
        value}}, e.g. ``losses.default_loss_options(config, train_dataset)``, whose balanced
        ``class_weights`` come from the training set. Only the options a loss layer holds as
        weights change (``LossLayer.set_options``); the others are fixed in the graph."""
        for layer in self.layers:
            if isinstance(layer, LossLayer) and layer.name in options:
                layer.set_options(**options[layer.name])

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


def check_train_arguments(learning_rate, epochs, current_epoch, log_dir):
    """Raise ValueError for a learning rate that is not positive or ``epochs`` (the epoch to
    train up to, counted over the whole run) not beyond ``current_epoch``."""
    if isinstance(learning_rate, numbers.Real) and not 0 < learning_rate < math.inf:
        raise ValueError("learning_rate must be a positive number, got {!r}".format(
            learning_rate))
    if epochs <= current_epoch:
        raise ValueError("epochs={} is the epoch to train up to (counted over the whole run) "
                         "but the model is already at epoch {} ({}); pass epochs > {}".format(
                             epochs, current_epoch, log_dir, current_epoch))


def input_pipelines(config, strategy, train_dataset, val_dataset, epoch, augmentation=None,
                    no_augmentation_sources=None):
    """(training, validation) input pipelines of a ``train()`` call that starts after epoch
    ``epoch``, ready for ``fit`` under ``strategy`` (validation None without ``val_dataset``
    or VALIDATION_STEPS). The training stream continues where epoch ``epoch`` ended; with
    HORIZONTAL_FLIP, flips join ``augmentation``. Each worker of several draws its own stream
    (``distribute.worker_seed``, ``distribute.prepare_dataset``) and takes BATCH_SIZE images
    per step from it, as one machine does."""
    seed = distribute.worker_seed(resolve_seed(config), strategy)
    batch_size = distribute.global_batch_size(config, strategy)
    if config.HORIZONTAL_FLIP:
        augmentation = with_horizontal_flip(augmentation)
    train_data = distribute.prepare_dataset(build_input_pipeline(
        train_dataset, config, shuffle=True, augmentation=augmentation,
        no_augmentation_sources=no_augmentation_sources, batch_size=batch_size, seed=seed,
        start_index=epoch * config.STEPS_PER_EPOCH * config.BATCH_SIZE, name="train",
        repeat_factor_threshold=config.REPEAT_FACTOR_THRESHOLD), strategy)
    val_data = None
    if val_dataset is not None and config.VALIDATION_STEPS:
        val_data = distribute.prepare_dataset(build_input_pipeline(
            val_dataset, config, shuffle=True, batch_size=batch_size, seed=seed + 1,
            name="validation"), strategy)
    return train_data, val_data


def raise_no_trainable_layer(layers, config, some_layers):
    """The ValueError of a ``layers`` choice that leaves nothing to train."""
    raise ValueError(
        "layers={!r} matches no layer with weights to train{}; use 'heads', '3+', '4+', "
        "'5+', 'all' or a regular expression that fully matches layer names such as "
        "{}".format(layers, " (BatchNorm layers are frozen by TRAIN_BN/NORM)"
                    if config_train_bn(config) is False else "",
                    [layer.name for layer in some_layers[:3]]))


def set_trainable(keras_model, layer_regex, train_bn=None, indent=0, verbose=0):
    """Make layers whose name fully matches ``layer_regex`` trainable, freeze the others.

    layer_regex: a regular expression or a key of LAYER_PRESETS. BatchNorm layers stay frozen
    when train_bn is False (config.TRAIN_BN). Nested models are walked.
    Returns the number of layers with weights made trainable (0: the regex matches none).
    """
    layer_regex = LAYER_PRESETS.get(layer_regex, layer_regex)
    count = 0
    for layer in keras_model.layers:
        if isinstance(layer, keras.Model):
            if verbose:
                print("In model: ", layer.name)
            count += set_trainable(layer, layer_regex, train_bn, indent + 4, verbose)
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
        count += trainable
    return count


@keras.saving.register_keras_serializable(package="mrcnn")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate (a number or a schedule) with a linear warm-up: the factor rises from
    ``warmup_factor`` at step 0 to 1 at ``warmup_steps`` (detectron2's WarmupLinear)."""

    def __init__(self, base, warmup_steps, warmup_factor=0.001):
        if isinstance(base, dict):
            base = keras.saving.deserialize_keras_object(base)
        self.base = base
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = self.base(step) if callable(self.base) else tf.constant(self.base, tf.float32)
        alpha = tf.minimum(1.0, step / max(1, self.warmup_steps))
        return rate * (self.warmup_factor * (1.0 - alpha) + alpha)

    def get_config(self):
        base = keras.saving.serialize_keras_object(self.base) if callable(self.base) \
            else self.base
        return {"base": base, "warmup_steps": self.warmup_steps,
                "warmup_factor": self.warmup_factor}


def learning_rate_schedule(config, learning_rate, total_steps):
    """The learning rate of one ``train()`` call of ``total_steps`` steps (Config.LR_SCHEDULE).

    None: constant (Matterport). "step": x0.1 at each fraction LR_STEP_FRACTIONS of the call.
    "cosine": cosine decay to 0 over the call. WARMUP_STEPS > 0 adds a linear warm-up.
    """
    total_steps = max(1, int(total_steps))
    rate = float(learning_rate)
    if config.LR_SCHEDULE == "step":
        boundaries = [max(1, int(f * total_steps)) for f in config.LR_STEP_FRACTIONS]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries, [rate * 0.1 ** i for i in range(len(boundaries) + 1)])
    elif config.LR_SCHEDULE == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=total_steps)
    if config.WARMUP_STEPS:
        rate = WarmupSchedule(rate, config.WARMUP_STEPS)
    return rate


# The ResNet backbone's layers (Matterport's names): what BACKBONE_LR_MULTIPLIER slows down.
BACKBONE_LAYERS = r"(conv1)|(bn_conv1)|(res\d.*)|(bn\d.*)"


def with_layer_learning_rates(optimizer_class, multiplier, variables):
    """A subclass of a Keras optimizer whose step for ``variables`` uses ``multiplier`` times
    the learning rate: a true per-layer learning rate for SGD, Adam and the others alike
    (scaling those gradients instead would not be one: Adam's step does not depend on the
    gradient's scale)."""
    # update_step receives the backend's variable (a tf.Variable under TensorFlow), under a
    # distribution strategy each device's copy of it.
    strategy = tf.distribute.get_strategy()
    ids = frozenset(id(v) for v in variables) | frozenset(id(v.value) for v in variables) | \
        frozenset(id(c) for v in variables for c in strategy.experimental_local_results(v.value))

    def update_step(self, gradient, variable, learning_rate):
        if id(variable) in ids:
            learning_rate = learning_rate * multiplier
        return optimizer_class.update_step(self, gradient, variable, learning_rate)

    return type("LayerRate" + optimizer_class.__name__, (optimizer_class,),
                {"update_step": update_step})


def build_optimizer(config, learning_rate, momentum, total_steps=None, keras_model=None,
                    num_replicas=None):
    """(optimizer, L2 weight decay for TrainingModel) from config.OPTIMIZER.

    The learning rate follows :func:`learning_rate_schedule` over ``total_steps`` (default:
    one epoch). Gradients are clipped to GRADIENT_CLIP_NORM: each tensor on its own
    (Matterport's clipnorm), or all together when GRADIENT_CLIP_GLOBAL (global norm, as
    detectron2 and torchvision recipes clip). AdamW decays the weights itself, so the L2 term
    is then 0. With BACKBONE_LR_MULTIPLIER != 1, the ResNet layers of ``keras_model`` learn at
    that multiple of the learning rate (:func:`with_layer_learning_rates`). MIXED_PRECISION
    "mixed_float16" wraps the optimizer in Keras' LossScaleOptimizer.

    num_replicas (default: those of the current ``tf.distribute`` strategy): with several,
    Keras clips each replica's share of the gradient before summing the shares, so the clip
    norm is divided by their number: each replica's gradient is clipped to GRADIENT_CLIP_NORM,
    then the replicas' gradients are averaged.
    """
    name = str(config.OPTIMIZER).lower()
    rate = learning_rate_schedule(config, learning_rate,
                                  total_steps or config.STEPS_PER_EPOCH)
    replicas = num_replicas or tf.distribute.get_strategy().num_replicas_in_sync
    clip = config.GRADIENT_CLIP_NORM
    kwargs = {"learning_rate": rate,
              "global_clipnorm" if config.GRADIENT_CLIP_GLOBAL else "clipnorm":
              clip / replicas if clip is not None else None}
    optimizer_class, l2 = {"sgd": (optimizers.FusedSGD, config.WEIGHT_DECAY),
                           "adam": (optimizers.FusedAdam, config.WEIGHT_DECAY),
                           "adamw": (optimizers.FusedAdamW, 0.0)}[name]
    if name == "sgd":
        kwargs["momentum"] = momentum
    elif name == "adamw":
        kwargs["weight_decay"] = config.WEIGHT_DECAY
    if config.BACKBONE_LR_MULTIPLIER != 1 and keras_model is not None:
        backbone = [v for _, layer in weight_owners(keras_model)
                    if re.fullmatch(BACKBONE_LAYERS, layer.name) for v in layer.weights]
        optimizer_class = with_layer_learning_rates(optimizer_class,
                                                    config.BACKBONE_LR_MULTIPLIER, backbone)
    optimizer = optimizer_class(**kwargs)
    if precision.needs_loss_scaling(config.MIXED_PRECISION):
        # float16 gradients underflow: Keras scales the loss up and the gradients back down,
        # adjusting the scale when they overflow (the step is then skipped).
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer, l2

