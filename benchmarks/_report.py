"""Shared output of the benchmark scripts: JSON on stdout, optionally to a file."""

import json
import os
import platform


# CPU features that decide which TensorFlow kernels run (reported when present).
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
              "amx_tile")


def machine():
    """What the figures were measured on: CPU count, model and SIMD flags, Python version."""
    model, flags = platform.processor() or None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:   # not Linux
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model,
            "cpu_flags": [flag for flag in SIMD_FLAGS if flag in flags],
            "python": platform.python_version()}


def emit(results, out=None):
    """Print ``results`` as indented JSON and, with ``out``, write the same text there."""
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
