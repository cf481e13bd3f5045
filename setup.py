"""Install mrcnn: `pip install .` (dependencies come from requirements.txt).

The distribution is named ``mrcnn-keras``: ``mrcnn`` on PyPI is an unrelated placeholder of
2018. The import name stays ``mrcnn``, and the console script is ``mrcnn``.
"""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
DISTRIBUTION_NAME = "mrcnn-keras"


def read_requirements(name):
    """Requirement lines of a requirements file, without comments and blank lines."""
    with open(os.path.join(HERE, name)) as f:
        lines = (line.split("#", 1)[0].strip() for line in f)
        return [line for line in lines if line]


def read_version():
    """__version__ from mrcnn/__init__.py without importing the package."""
    with open(os.path.join(HERE, "mrcnn", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=", 1)[1].strip().strip('"\'')
    raise RuntimeError("no __version__ in mrcnn/__init__.py")


setup(
    # The name on PyPI (free as of 2026-12-02; not published yet): see the module docstring.
    name=DISTRIBUTION_NAME,
    version=read_version(),
    description="Mask R-CNN for object detection and instance segmentation on Keras 3 / TF 2",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["mrcnn", "mrcnn.*"]),
    python_requires=">=3.11",
    install_requires=read_requirements("requirements.txt"),
    extras_require={
        "test": read_requirements("requirements-dev.txt"),
        # TFLite and ONNX export and their runtimes (mrcnn.export.formats, mrcnn.export.runner).
        "export": read_requirements("requirements-export.txt"),
        # imgaug does not import under NumPy 2; install it only where it works.
        "imgaug": ["imgaug"],
        # Reading torchvision's .pth files for `python -m mrcnn.weights.convert torchvision` only.
        "torch": ["torch"],
    },
    # The command line of mrcnn.cli (also `python -m mrcnn`).
    entry_points={"console_scripts": ["mrcnn = mrcnn.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
