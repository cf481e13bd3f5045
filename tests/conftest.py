"""Shared test setup: headless matplotlib, quiet TensorFlow, repository root importable, and the
tiny config and shapes data most model tests use."""

import os
import sys

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_config():
    """tiny.TinyConfig: a strided-conv backbone on 64x64 images, few RoIs."""
    from tiny import TinyConfig
    return TinyConfig()


@pytest.fixture(scope="session")
def tiny_shapes():
    """16 prepared 64x64 shapes images (seed 0)."""
    from samples.shapes.shapes import ShapesDataset
    ds = ShapesDataset()
    ds.load_shapes(16, 64, 64, seed=0)
    ds.prepare()
    return ds
