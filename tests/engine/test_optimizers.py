"""mrcnn.engine.optimizers: the fused updates give Keras' weights and slots, step after step."""
import numpy as np
import pytest

CASES = {
    "sgd_momentum": ("FusedSGD", "SGD", {"momentum": 0.9}),
    "sgd_nesterov": ("FusedSGD", "SGD", {"momentum": 0.9, "nesterov": True}),
    "sgd_plain": ("FusedSGD", "SGD", {"momentum": 0.0}),
    "adam": ("FusedAdam", "Adam", {}),
    "adam_amsgrad": ("FusedAdam", "Adam", {"amsgrad": True}),
    "adamw": ("FusedAdamW", "AdamW", {"weight_decay": 0.01}),
}


def _run(optimizer, shapes, steps, seed=0):
    """Apply ``steps`` random gradients to variables of ``shapes``; return their values and
    the optimizer's slot variables."""
    import keras
    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.normal(size=s).astype(np.float32), name="v{}".format(i))
                 for i, s in enumerate(shapes)]
    for _ in range(steps):
        grads = [rng.normal(scale=3.0, size=s).astype(np.float32) for s in shapes]
        optimizer.apply_gradients(zip(grads, variables))
    slots = [v.numpy() for v in optimizer.variables if len(v.shape)]
    return [v.numpy() for v in variables], slots


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_update_equals_keras(case):
    import keras

    from mrcnn.engine import optimizers
    fused_name, keras_name, kwargs = CASES[case]
    # A decaying schedule and a per-tensor clip: the parts Keras keeps doing.
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 3, 0.5)
    shapes = [(3, 3, 4, 5), (5,), (7, 2)]
    common = dict(learning_rate=schedule, clipnorm=4.0, **kwargs)
    fused_values, fused_slots = _run(getattr(optimizers, fused_name)(**common), shapes, 6)
    keras_values, keras_slots = _run(getattr(keras.optimizers, keras_name)(**common), shapes, 6)
    moved = max(np.abs(v - s).max() for v, s in zip(fused_values, _run(
        getattr(keras.optimizers, keras_name)(**common), shapes, 0)[0]))
    assert moved > 0.05                      # the steps changed the weights
    assert len(fused_slots) == len(keras_slots) > 0 or case == "sgd_plain"
    for a, b in zip(fused_values + fused_slots, keras_values + keras_slots):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_fused_adam_under_loss_scaling_equals_keras():
    """MIXED_PRECISION="mixed_float16" wraps the optimizer in Keras' LossScaleOptimizer."""
    import keras

    from mrcnn.engine import optimizers
    shapes = [(4, 6), (6,)]
    fused = _run(keras.optimizers.LossScaleOptimizer(optimizers.FusedAdam(0.01, clipnorm=1.0)),
                 shapes, 5)
    reference = _run(keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(
        0.01, clipnorm=1.0)), shapes, 5)
    for a, b in zip(fused[0] + fused[1], reference[0] + reference[1]):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_sparse_gradients_take_keras_path():
    """tf.IndexedSlices (an embedding's gradient) are clipped and applied by Keras' code."""
    import keras
    import tensorflow as tf

    from mrcnn.engine import optimizers
    results = []
    for optimizer in (optimizers.FusedAdam(0.1, clipnorm=1.0),
                      keras.optimizers.Adam(0.1, clipnorm=1.0)):
        variable = keras.Variable(np.ones((4, 3), np.float32))
        grad = tf.IndexedSlices(tf.constant([[3.0, 0, 0], [0, 4.0, 0]]), tf.constant([1, 1]),
                                tf.constant([4, 3]))
        optimizer.apply_gradients([(grad, variable)])
        results.append(variable.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
    assert not np.allclose(results[0], 1.0)


def test_fused_optimizer_trains_a_keras_model_like_keras():
    """In compile()/fit(), inside the traced train step, the update is the same."""
    import keras

    from mrcnn.engine import optimizers

    def fit(optimizer):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=optimizer, loss="mse")
        rng = np.random.default_rng(2)
        model.fit(rng.random((32, 6), np.float32), rng.random((32, 1), np.float32),
                  batch_size=8, epochs=2, verbose=0, shuffle=False)
        return [w.numpy() for w in model.weights]

    for fused, reference in ((optimizers.FusedAdam(0.01, clipnorm=0.5),
                              keras.optimizers.Adam(0.01, clipnorm=0.5)),
                             (optimizers.FusedSGD(0.05, momentum=0.9, clipnorm=0.5),
                              keras.optimizers.SGD(0.05, momentum=0.9, clipnorm=0.5))):
        for a, b in zip(fit(fused), fit(reference)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_build_optimizer_uses_the_fused_classes():
    from mrcnn.engine import optimizers, training
    from mrcnn.config import Config

    for name, cls in (("sgd", optimizers.FusedSGD), ("adam", optimizers.FusedAdam),
                      ("adamw", optimizers.FusedAdamW)):
        config = type("C", (Config,), {"OPTIMIZER": name, "NUM_CLASSES": 2})()
        optimizer, _ = training.build_optimizer(config, 0.01, 0.9)
        assert type(optimizer) is cls, name


def _private(name):
    from mrcnn.engine import keras_private
    return [m for m in keras_private.MEMBERS if m.name == name][0]


def test_keras_still_clips_through_the_two_pass_override():
    """_TwoPassClip overrides Keras' private _clip_by_norm (mrcnn.engine.keras_private): Keras'
    apply_gradients must still call it for clipnorm, once per gradient."""
    import keras

    from mrcnn.engine import keras_private, optimizers
    member = _private("_clip_by_norm")
    calls = []

    class Recorder(optimizers.FusedSGD):
        def _clip_by_norm(self, values, axes=None):
            calls.append(values.shape)
            return super()._clip_by_norm(values, axes)

    variables = [keras.Variable(np.ones((3, 2), np.float32)), keras.Variable(np.ones(2))]
    Recorder(0.1, momentum=0.9, clipnorm=1.0).apply_gradients(
        [(np.full((3, 2), 5.0, np.float32), variables[0]), (np.full(2, 5.0), variables[1])])
    assert len(calls) == 2, keras_private.failure_message(
        member, "apply_gradients(clipnorm=...) called it {} times, not once per gradient".format(
            len(calls)))
    # Clipped to norm 1, then one momentum step of 0.1: every weight moved by 0.1 / sqrt(6).
    np.testing.assert_allclose(variables[0].numpy(), 1.0 - 0.1 / np.sqrt(6), rtol=1e-6)


@pytest.mark.parametrize("fused_name, slots", [("FusedSGD", ["momentums"]),
                                               ("FusedAdam", ["_momentums", "_velocities"]),
                                               ("FusedAdamW", ["_momentums", "_velocities"])])
def test_slot_variables_are_where_the_fused_kernels_update_them(fused_name, slots):
    """The fused steps find each variable's slots by Keras' private _get_variable_index in
    Keras' private slot lists (mrcnn.engine.keras_private): one slot per variable, of its shape,
    among the optimizer's variables."""
    import keras

    from mrcnn.engine import keras_private, optimizers
    optimizer = getattr(optimizers, fused_name)(0.1, **(
        {"momentum": 0.9} if fused_name == "FusedSGD" else {}))
    variables = [keras.Variable(np.zeros(s, np.float32)) for s in [(2, 3), (4,), (1, 5)]]
    optimizer.build(variables)
    owned = {id(v) for v in optimizer.variables}
    for name in slots:
        member = _private(name)
        lists = getattr(optimizer, name, None)
        assert lists is not None and len(lists) == len(variables), \
            keras_private.failure_message(member, "a built {} has {} = {!r}".format(
                fused_name, name, lists))
        for variable in variables:
            slot = lists[optimizer._get_variable_index(variable)]
            assert tuple(slot.shape) == tuple(variable.shape) and id(slot) in owned, \
                keras_private.failure_message(member, "its slots no longer match the variables")
