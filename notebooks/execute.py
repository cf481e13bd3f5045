"""Execute the notebooks in full mode and save them with their outputs (``make notebooks``).

    python notebooks/execute.py [name.ipynb ...]

train_shapes runs first: it leaves the checkpoint under notebooks/logs/ that demo, inspect_model
and inspect_weights then load. A full run takes several minutes of CPU per notebook.
"""

import os
import sys
import time

import nbclient
import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = ["train_shapes.ipynb", "demo.ipynb", "inspect_data.ipynb", "inspect_model.ipynb",
         "inspect_weights.ipynb"]


def main(names):
    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline",
               TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MRCNN_NOTEBOOK_FAST", None)
    for name in names or ORDER:
        path = os.path.join(HERE, name)
        nb = nbformat.read(path, as_version=4)
        start = time.time()
        client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=3600,
                                         resources={"metadata": {"path": HERE}})
        client.execute(env=env)
        nbformat.write(nb, path)
        print("{}: {:.0f} s".format(name, time.time() - start), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
