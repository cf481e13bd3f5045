"""Where the committed reference data lie: ``tests/reference/``, each file made by the script
there that names it (those needing torch were run once, outside ``make test``)."""

import os

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")


def reference_path(name):
    """The path of reference file ``name`` under tests/reference."""
    return os.path.join(REFERENCE_DIR, name)
