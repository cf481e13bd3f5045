"""Example datasets in each annotation format the command line reads (see make_examples.py)."""
