"""mrcnn.engine.training and mrcnn.engine.keras_private: the private Keras members mrcnn relies on
are still there, with the signatures mrcnn's overrides have, and Keras still calls the training
hook."""

import keras
import numpy as np
import pytest

from mrcnn.engine import keras_private


@pytest.mark.parametrize("member", keras_private.MEMBERS, ids=keras_private.qualified_name)
def test_keras_has_each_private_member_mrcnn_uses(member):
    problem = keras_private.problem(member)
    assert problem is None, keras_private.failure_message(member, problem)


def test_every_private_member_is_named_once():
    names = [keras_private.qualified_name(m) for m in keras_private.MEMBERS]
    assert len(names) == len(set(names))
    assert keras_private.missing() == []
    for member in keras_private.MEMBERS:
        assert member.kind in ("override", "method", "attribute"), member
        assert member.reason and member.used_by.startswith("mrcnn."), member


def test_a_missing_member_is_reported_with_its_name_and_the_keras_version():
    gone = keras_private.Member(keras.Model, "_no_such_hook", "override",
                                "mrcnn.engine.training.TrainingModel", "a test")
    problem = keras_private.problem(gone)
    assert problem == "Keras {} has no Model._no_such_hook".format(keras.__version__)
    message = keras_private.failure_message(gone, problem)
    assert "Model._no_such_hook" in message and keras_private.CHECKED_KERAS in message
    assert "mrcnn.engine.training.TrainingModel" in message


def test_an_override_with_other_parameters_than_keras_is_reported():
    member = [m for m in keras_private.MEMBERS if m.name == "_maybe_symbolic_build"][0]
    renamed = member._replace(owner=type("Renamed", (keras.Model,), {
        "_maybe_symbolic_build": lambda self, iterator=None, batch=None: None}))
    assert "takes ['self', 'iterator', 'batch']" in keras_private.problem(renamed)


def test_keras_fit_and_evaluate_call_the_symbolic_build_hook():
    """TrainingModel builds its optimizer in _maybe_symbolic_build: Keras must still call it,
    by these keyword names, before the first step of fit() and evaluate()."""
    from mrcnn.engine import training
    member = [m for m in keras_private.MEMBERS if m.name == "_maybe_symbolic_build"][0]
    calls = []

    class Recorder(keras.Model):
        def _maybe_symbolic_build(self, iterator=None, data_batch=None):
            calls.append(self.optimizer.built if self.optimizer else None)
            return training.TrainingModel._maybe_symbolic_build(self, iterator, data_batch)

    inputs = keras.Input([3])
    model = Recorder(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    assert calls, keras_private.failure_message(member, "fit() no longer calls it")
    # Called before the first step, where the hook builds the optimizer.
    assert calls[0] is False and model.optimizer.built
    model.evaluate(x, y, verbose=0)
    assert len(calls) == 2, keras_private.failure_message(member, "evaluate() no longer calls it")
