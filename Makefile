# `make demo` and `make test` are the README's two commands; both install the package first.
PYTHON ?= python3
# Offline machines: use the shared dataset cache beside the checkout when there is one.
SHARED_DATASETS ?= $(abspath ../shared/datasets)
ifneq ($(wildcard $(SHARED_DATASETS)/scikit_learn_data),)
export SCIKIT_LEARN_DATA ?= $(SHARED_DATASETS)/scikit_learn_data
endif

.PHONY: install demo test lint format benchmarks

install:
	$(PYTHON) -m pip install --quiet -e ".[dev]"

demo: install
	$(PYTHON) -m tuning demo --out results/demo --fresh

# The whole suite on each Keras backend: JAX (the default) and TensorFlow, each in TEST_WORKERS
# processes (pytest-xdist; a test file stays in one process, so its module fixtures run once).
TEST_WORKERS ?= 2
PYTEST = $(PYTHON) -m pytest --numprocesses $(TEST_WORKERS) --dist loadfile
test: install
	KERAS_BACKEND=jax $(PYTEST)
	KERAS_BACKEND=tensorflow $(PYTEST) -m "not one_keras_backend"

# Speed, memory and same-math figures (about 25 minutes on 2 cores); see benchmarks/README.md.
benchmarks: install
	$(PYTHON) benchmarks/trial_speed.py
	$(PYTHON) benchmarks/same_math.py
	$(PYTHON) benchmarks/memory.py
	$(PYTHON) benchmarks/parallel.py

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .
