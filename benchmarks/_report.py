"""Shared output of the benchmark scripts: JSON on stdout, optionally to a file."""

import json
import os
import platform


def machine():
    """What the figures were measured on."""
    return {"cpus": os.cpu_count(), "python": platform.python_version()}


def emit(results, out=None):
    """Print ``results`` as indented JSON and, with ``out``, write the same text there."""
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
