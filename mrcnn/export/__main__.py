"""``python -m mrcnn.export ...``: see :mod:`mrcnn.export.command`."""

from mrcnn.export.command import main

if __name__ == "__main__":
    main()
