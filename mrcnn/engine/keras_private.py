"""The private and undocumented Keras members mrcnn relies on, each named here with its reason.

Keras may rename, drop or stop calling any of these in a minor release, without a deprecation.
mrcnn uses no other: everything else is Keras' public API. Each entry of :data:`MEMBERS` says
where mrcnn uses the member and why the public API does not do; :func:`missing` lists the ones
the installed Keras lacks (or whose signature changed), and tests/engine/test_training.py and
tests/engine/test_optimizers.py fail with the member's name and the Keras version when one goes away
or Keras no longer calls an override. Last checked against :data:`CHECKED_KERAS`.

A code comment at each use points back here ("private Keras member: mrcnn.engine.keras_private").
"""

import collections
import importlib
import inspect

import keras

CHECKED_KERAS = "3.15.1"

Member = collections.namedtuple("Member", "owner name kind used_by reason")
Member.__doc__ = """One Keras member mrcnn relies on.

owner: the public Keras class that has it; name: the member; kind: "override" (mrcnn defines
it and Keras must call it), "method" (mrcnn calls it) or "attribute" (set by Keras on built
instances, read by mrcnn); used_by: where (for an override, the class defining it, as
"module.Class"); reason: why the public API does not do.
"""

MEMBERS = (
    Member(
        keras.Model, "_maybe_symbolic_build", "override", "mrcnn.engine.training.TrainingModel",
        "The hook fit() and evaluate() run before their first step. Under a tf.distribute "
        "strategy Keras' version builds the model from an averaged input batch, which fails on "
        "the bool GT masks and on dicts of inputs with several workers; without one, the "
        "optimizer would be built inside the first trace of the step, which traces it twice. "
        "The override builds the optimizer there instead. No public hook runs at that point."),
    Member(
        keras.optimizers.Optimizer, "_clip_by_norm", "override",
        "mrcnn.engine.optimizers._TwoPassClip",
        "The per-tensor clipnorm, which Keras' _clip_gradients calls for each gradient; the "
        "override computes the same clip in two passes over the gradient instead of four. "
        "Keras has no public clipping hook."),
    Member(
        keras.optimizers.Optimizer, "_get_variable_index", "method",
        "mrcnn.engine.optimizers.FusedSGD, _FusedAdamStep",
        "The slot variables (momentums, moments) of a model variable are found by this index, "
        "as Keras' own update_step finds them; the fused kernels update those slots in place."),
    Member(
        keras.optimizers.Adam, "_momentums", "attribute", "mrcnn.engine.optimizers._FusedAdamStep",
        "Adam's (and AdamW's) first-moment slots, updated by ResourceApplyAdam; Keras exposes "
        "them only in the flat optimizer.variables list."),
    Member(
        keras.optimizers.Adam, "_velocities", "attribute", "mrcnn.engine.optimizers._FusedAdamStep",
        "Adam's (and AdamW's) second-moment slots, as _momentums."),
    # Undocumented, though not underscored.
    Member(
        keras.optimizers.SGD, "momentums", "attribute", "mrcnn.engine.optimizers.FusedSGD",
        "SGD's momentum slots, updated by ResourceApplyKerasMomentum (undocumented)."),
    Member(
        keras.layers.Layer, "supports_jit", "attribute",
        "mrcnn.modeling.rpn.ProposalLayer, mrcnn.modeling.detection.DetectionLayer, "
        "mrcnn.modeling.roi_align.PyramidROIAlign, mrcnn.modeling.targets.DetectionTargetLayer",
        "Set False by layers whose ops have no XLA kernel (crop_and_resize, NMS with "
        "data-dependent counts): Keras' jit_compile='auto' then does not compile the model "
        "(undocumented; read by Keras' model_supports_jit)."),
)


def qualified_name(member):
    """``keras.<Class>.<name>`` of a :class:`Member`."""
    return "{}.{}".format(member.owner.__name__, member.name)


def _instance(owner):
    """A built instance of ``owner``, where attributes set when it is built can be read."""
    if issubclass(owner, keras.optimizers.Optimizer):
        optimizer = owner(momentum=0.9) if owner is keras.optimizers.SGD else owner()
        optimizer.build([keras.Variable([0.0, 0.0])])
        return optimizer
    return owner()


def _lookup(member):
    """The member's value on its owner (a method) or on a built instance (an attribute)."""
    holder = _instance(member.owner) if member.kind == "attribute" else member.owner
    return getattr(holder, member.name)


def override(member):
    """mrcnn's function for an "override" member (from ``used_by``)."""
    module, _, cls = member.used_by.rpartition(".")
    return getattr(getattr(importlib.import_module(module), cls), member.name)


def problem(member):
    """Why ``member`` cannot be relied on in the installed Keras, or None: Keras lacks it, or
    (an override) Keras' method takes other parameters than mrcnn's, which Keras calls with
    its own."""
    try:
        value = _lookup(member)
    except AttributeError:
        return "Keras {} has no {}".format(keras.__version__, qualified_name(member))
    if member.kind == "override":
        expected = list(inspect.signature(value).parameters)
        got = list(inspect.signature(override(member)).parameters)
        if expected != got:
            return "Keras {}'s {} takes {}, mrcnn's override {}".format(
                keras.__version__, qualified_name(member), expected, got)
    return None


def missing():
    """The problem (see :func:`problem`) of every member that has one: [] when the installed
    Keras has them all as mrcnn uses them."""
    return [p for p in (problem(m) for m in MEMBERS) if p]


def failure_message(member, what):
    """A message naming the member, its use, the Keras version and ``what`` went wrong."""
    return ("mrcnn relies on the private Keras member {} ({}; {}), checked with Keras {}, but "
            "with Keras {} {}. See mrcnn.engine.keras_private.").format(
                qualified_name(member), member.used_by, member.reason, CHECKED_KERAS,
                keras.__version__, what)
