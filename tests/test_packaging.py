"""The wheel ``setup.py`` builds: its name, every module of mrcnn, the console script, and
nothing else. (``make wheel-check`` installs such a wheel into a fresh venv and runs it.)"""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def package_modules():
    """Relative paths of the .py files of the mrcnn package in this checkout."""
    found = []
    for folder, dirs, names in os.walk(os.path.join(ROOT, "mrcnn")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [os.path.relpath(os.path.join(folder, n), ROOT) for n in names
                  if n.endswith(".py")]
    return sorted(found)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # Build from a copy of the sources, so that the checkout gets no build/ folder.
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("setup.py", "README.md", "LICENSE", "requirements.txt",
                 "requirements-dev.txt", "requirements-export.txt"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    shutil.copytree(os.path.join(ROOT, "mrcnn"), source / "mrcnn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                             "--no-build-isolation", "-w", str(work / "dist"), str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = (work / "dist").glob("*.whl")
    return path


def test_wheel_name_modules_and_console_script(wheel):
    assert wheel.name.startswith("mrcnn_keras-")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = z.read(info).decode()
        entry_points = z.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "Name: mrcnn-keras" in metadata
    for requirement in ("tensorflow", "keras", "numpy", "pycocotools", "h5py"):
        assert "Requires-Dist: " + requirement in metadata, requirement
    assert "mrcnn = mrcnn.cli:main" in entry_points
    # Every module of the package, and nothing from outside it (tests, samples, examples).
    modules = sorted(n for n in names if n.endswith(".py"))
    assert modules == package_modules()
    assert all(n.startswith(("mrcnn/", "mrcnn_keras-")) for n in names)
