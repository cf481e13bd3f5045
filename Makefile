# mrcnn developer commands. Every target creates the virtual environment when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Two test processes (pytest-xdist), a test file each at a time: on 2 cores they ran the suite
# in 10:26 where one process took 17:16. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
ifeq ($(TEST_WORKERS),0)
XDIST_ARGS :=
else
XDIST_ARGS := -n $(TEST_WORKERS) --dist loadfile
endif

.PHONY: venv test demo notebooks bench bench-inference wheel-check clean

# Reinstall when the dependency lists change. The distribution was named "mrcnn" before
# "mrcnn-keras": that one is uninstalled first, so that one package owns mrcnn/.
$(STAMP): requirements.txt requirements-dev.txt requirements-export.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes mrcnn 2>/dev/null || true
	$(PY) -m pip install --quiet -e ".[export]" -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	MPLBACKEND=Agg TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest $(XDIST_ARGS) $(PYTEST_ARGS) tests

# Train shapes from random initialization, evaluate on 100 held-out images, draw detections.
demo: $(STAMP)
	MPLBACKEND=Agg TF_CPP_MIN_LOG_LEVEL=2 $(PY) samples/shapes/shapes.py demo \
		--logs logs/demo --out demo_detections.png

# Build a wheel from a clean clone of HEAD, install it into a fresh venv, run `mrcnn --help`
# and a detect() outside the checkout (minutes: the dependencies install into the new venv).
wheel-check: $(STAMP)
	$(PY) .ci/check_wheel.py

# Run every notebook in full mode and save it with its outputs (several minutes each on a CPU).
notebooks: $(STAMP)
	$(PY) notebooks/execute.py

bench: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) benchmarks/input_pipeline.py

bench-inference: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) benchmarks/inference_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
