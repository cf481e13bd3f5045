"""SGD, Adam and AdamW whose update of each variable is one fused TensorFlow kernel.

Keras 3 writes an optimizer's update as separate tensor ops: Adam's is about fifteen per
variable (two moment updates, a square root, a division, the assignments), each a pass over
the variable's memory; with the ~270 variables of ResNet-50-FPN that is ~4,000 ops to trace
and run every step. TensorFlow has a kernel that does each of these updates in one pass
(``ResourceApplyAdam``, ``ResourceApplyKerasMomentum``), and these classes call it. The
arithmetic is Keras' (tests/engine/test_optimizers.py compares the weights after several steps);
clipping, learning-rate schedules, AdamW's decoupled decay, loss scaling and
``tf.distribute`` (the kernel runs once per device copy, inside the strategy's ``update``)
are Keras' too, as everything but ``update_step`` and the per-tensor clip is inherited.
Measured on the demo's step in docs/BENCHMARKS.md ("Training step").

They need the TensorFlow backend (mrcnn's only one); sparse gradients (``tf.IndexedSlices``)
and AMSGrad take Keras' path. The private Keras members they use (``_clip_by_norm``,
``_get_variable_index``, Adam's ``_momentums`` and ``_velocities``) are listed, with the
reasons, in ``mrcnn.engine.keras_private``; tests/engine/test_optimizers.py fails when Keras
changes one.
"""
import keras
import tensorflow as tf


def _dense(gradient):
    return not isinstance(gradient, tf.IndexedSlices)


class _TwoPassClip:
    """Per-tensor ``clipnorm`` in two passes over the gradient instead of Keras' four.

    Keras computes ``g * clipnorm / max(|g|, clipnorm)`` with a square, a sum, a full-size
    multiply and a full-size division per tensor; here the norm is one ``L2Loss`` op
    (sum(g^2) / 2) and the scale a scalar, applied with one multiply. Same result to float
    rounding.
    """

    def _clip_by_norm(self, values, axes=None):
        # Private Keras member (called by Keras' _clip_gradients): mrcnn.engine.keras_private.
        if axes is not None or not _dense(values):
            return super()._clip_by_norm(values, axes)
        norm = tf.sqrt(2.0 * tf.nn.l2_loss(values))
        return values * (self.clipnorm / tf.maximum(norm, self.clipnorm))


@keras.saving.register_keras_serializable(package="mrcnn")
class FusedSGD(_TwoPassClip, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` (momentum, Nesterov) with one kernel per variable update.

    Keras' momentum form: ``m = momentum * m - lr * g; w += m`` (Nesterov:
    ``w += momentum * m - lr * g``), which is what ``ResourceApplyKerasMomentum`` computes.
    """

    def update_step(self, gradient, variable, learning_rate):
        # variable: the backend's tf.Variable (one device's copy under a strategy's update).
        if self.momentum == 0 or not _dense(gradient):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        # Private / undocumented Keras members: mrcnn.engine.keras_private.
        m = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=m.handle, lr=tf.cast(learning_rate, dtype),
            grad=tf.cast(gradient, dtype), momentum=tf.cast(self.momentum, dtype),
            use_locking=False, use_nesterov=self.nesterov)


class _FusedAdamStep:
    """Adam's step as one ``ResourceApplyAdam`` (AMSGrad and sparse gradients: Keras'):
    m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon), as Keras' Adam."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or not _dense(gradient):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        # Private Keras members (_get_variable_index, _momentums, _velocities):
        # mrcnn.engine.keras_private.
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle,
            v=self._velocities[index].handle, beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1,
            beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype), use_locking=False, use_nesterov=False)


@keras.saving.register_keras_serializable(package="mrcnn")
class FusedAdam(_TwoPassClip, _FusedAdamStep, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with one kernel per variable update."""


@keras.saving.register_keras_serializable(package="mrcnn")
class FusedAdamW(_TwoPassClip, _FusedAdamStep, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW``: Keras' decoupled weight decay, then the fused Adam step."""
