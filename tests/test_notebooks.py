"""The notebooks in notebooks/ run top to bottom (fast mode) and their committed versions show
pictures.

Each notebook is executed with nbclient in a fresh kernel of this interpreter, with
MRCNN_NOTEBOOK_FAST=1 (tiny backbone, 64x64 images, a couple of training steps) and its working
directory in notebooks/. The committed files are not modified: they carry the outputs of a full
run, so that they render with their pictures.
"""

import glob
import os
import sys

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need nbformat (requirements-dev)")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need nbclient (requirements-dev)")
pytest.importorskip("ipykernel", reason="notebook tests need ipykernel (requirements-dev)")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")
# train_shapes first: it leaves a checkpoint in a shared log directory that inspect_model and
# inspect_weights pick up (run alone, each trains its own, as in a fresh checkout). The demo
# runs in a log directory of its own, so that its train-here path runs too.
FIRST = ["train_shapes.ipynb"]
SHARED_LOGS = {"train_shapes.ipynb", "inspect_model.ipynb", "inspect_weights.ipynb"}
NOTEBOOKS = sorted(glob.glob(os.path.join(NOTEBOOK_DIR, "*.ipynb")),
                   key=lambda p: (os.path.basename(p) not in FIRST, os.path.basename(p)))
CELL_TIMEOUT_S = 300


def _ids(paths):
    return [os.path.splitext(os.path.basename(p))[0] for p in paths]


def _execute(nb, env):
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": NOTEBOOK_DIR}})
    client.execute(env=env)
    return nb


def _kernel_env(log_dir):
    env = dict(os.environ)
    env.update(MRCNN_NOTEBOOK_FAST="1", MRCNN_NOTEBOOK_LOGS=str(log_dir), MPLBACKEND="Agg",
               TF_CPP_MIN_LOG_LEVEL="2")
    return env


def _outputs(nb):
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def _images(nb):
    return [o for o in _outputs(nb) if "image/png" in o.get("data", {})]


@pytest.fixture(scope="module")
def notebook_logs(tmp_path_factory):
    """One log directory for the module's notebook runs (checkpoints pass between them)."""
    return tmp_path_factory.mktemp("notebook_logs")


def test_there_are_notebooks():
    names = set(os.path.basename(p) for p in NOTEBOOKS)
    assert {"demo.ipynb", "train_shapes.ipynb", "inspect_data.ipynb", "inspect_model.ipynb",
            "inspect_weights.ipynb"} <= names


def test_kernel_runs_this_interpreter(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys\nprint(sys.executable)")])
    _execute(nb, _kernel_env(tmp_path))
    printed = "".join(o.get("text", "") for o in _outputs(nb)).strip()
    assert os.path.realpath(printed) == os.path.realpath(sys.executable)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_notebook_has_markdown_intro_and_pictures(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells and nb.cells[0].cell_type == "markdown"
    assert nb.cells[0].source.lstrip().startswith("# ")
    # Committed with the outputs of a full run, without errors.
    assert _images(nb), "no picture in the committed notebook: save it after a full run"
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    assert all(cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code")
    assert "MRCNN_NOTEBOOK_FAST=1" not in "".join(
        o.get("text", "") for o in _outputs(nb)), "committed outputs are of a fast run"
    assert os.path.getsize(path) < 3 * 1024 * 1024


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_fast_mode(path, notebook_logs, tmp_path):
    nb = nbformat.read(path, as_version=4)
    log_dir = notebook_logs if os.path.basename(path) in SHARED_LOGS else tmp_path
    try:
        _execute(nb, _kernel_env(log_dir))
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail("{} failed in fast mode:\n{}".format(os.path.basename(path), e))
    assert _images(nb), "the fast run drew no picture"
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
