"""Mixed precision (Config.MIXED_PRECISION): which layers compute in float16/bfloat16.

Only the convolution bodies run in the reduced type: the backbone and the FPN, the RPN's
shared 3x3 convolution, and the convolutions (with their normalization) of the classifier and
mask heads. Everything that handles boxes or probabilities stays float32: anchors, the RPN's
class/box outputs, proposals and NMS, RoI sampling, RoIAlign (``crop_and_resize`` samples
float32 maps), the heads' final logits and deltas, softmax/sigmoid, detections and the losses.
Variables are float32 in every case (Keras' mixed policies keep them so).

A layer takes its dtype policy from Keras' global policy when it is created, so the graph is
built with :func:`compute_scope` around the layers that may run in the reduced type; the global
policy is restored afterwards (other models built in the same process are unaffected). Layers
created outside the scope are float32 and cast their bfloat16/float16 inputs back to float32.
"""

import contextlib

from mrcnn.config import MIXED_PRECISION_POLICIES as POLICIES


def check_policy(policy):
    """Raise ValueError unless ``policy`` is one of POLICIES."""
    if policy not in POLICIES:
        raise ValueError("MIXED_PRECISION must be one of {}, got {!r}".format(POLICIES, policy))


@contextlib.contextmanager
def compute_scope(policy):
    """Layers created inside compute in ``policy`` (None: float32, nothing changes)."""
    if not policy:
        yield
        return
    check_policy(policy)
    import keras        # here: the config and CPU checks above need no TensorFlow
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def needs_loss_scaling(policy):
    """float16's narrow exponent needs a dynamically scaled loss; bfloat16's does not."""
    return policy == "mixed_float16"


# CPU features that decide which kernels TensorFlow (oneDNN) runs, reported by benchmarks and
# the demo; the first two compute bfloat16 natively.
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
              "amx_tile", "amx_bf16")


def cpu_info(cpuinfo="/proc/cpuinfo"):
    """{"cpu_model": name or None, "cpu_flags": the SIMD_FLAGS present}, from Linux's
    ``/proc/cpuinfo`` (empty elsewhere)."""
    model, flags = None, set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:     # not Linux
        pass
    return {"cpu_model": model, "cpu_flags": [flag for flag in SIMD_FLAGS if flag in flags]}


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU computes bfloat16 natively (AMX or AVX512-BF16). Other CPUs have no
    bfloat16 arithmetic; bfloat16 was not measured on one, and the shapes demo uses float32
    there."""
    flags = cpu_info(cpuinfo)["cpu_flags"]
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)
