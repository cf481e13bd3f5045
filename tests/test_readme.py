"""The README's example script runs and writes its picture."""

import os
import re
import subprocess
import sys

import skimage.io

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def test_readme_dataset_example_saves_ground_truth_picture(tmp_path):
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    block = re.search(r"<!-- readme-example:start -->\s*```python\n(.*?)```", readme, re.S)
    assert block, "README example block not found"
    script = tmp_path / "example.py"
    script.write_text(block.group(1))
    env = dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"saved ground_truth.png with [1-4] instances", result.stdout)
    picture = skimage.io.imread(tmp_path / "ground_truth.png")
    assert picture.shape[0] > 100 and picture.std() > 10
