"""Shared output of the benchmark scripts: JSON on stdout, optionally to a file."""

import json
import os
import platform
import sys
import time


def machine():
    """What the figures were measured on: CPU count, model and SIMD flags, Python version."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    if root not in sys.path:
        sys.path.insert(0, root)
    from mrcnn.precision import cpu_info
    return {"cpus": os.cpu_count(), **cpu_info(), "python": platform.python_version()}


def seconds(fn):
    """Wall-clock seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_times(fn, runs, warmup=1):
    """Seconds of each of ``runs`` calls of ``fn``, after ``warmup`` untimed calls (tracing)."""
    for _ in range(warmup):
        fn()
    return [seconds(fn) for _ in range(runs)]


def emit(results, out=None):
    """Print ``results`` as indented JSON and, with ``out``, write the same text there."""
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
