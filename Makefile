# `make demo` and `make test` are the README's two commands; both install the package first.
# Into the active virtual environment if there is one; else into the project's own `.venv`,
# made with BASE_PYTHON on first use (a system python3 refuses `pip install`: PEP 668).
BASE_PYTHON ?= python3
VENV ?= .venv
ifdef VIRTUAL_ENV
PYTHON ?= python3
else
PYTHON ?= $(VENV)/bin/python
endif
# Offline machines: use the shared dataset cache beside the checkout when there is one.
SHARED_DATASETS ?= $(abspath ../shared/datasets)
ifneq ($(wildcard $(SHARED_DATASETS)/scikit_learn_data),)
export SCIKIT_LEARN_DATA ?= $(SHARED_DATASETS)/scikit_learn_data
endif

.PHONY: install demo test lint format benchmarks fuzz mutation

$(VENV)/bin/python:
	$(BASE_PYTHON) -m venv $(VENV)

# The extras the tests cover: the dev tools, MLflow and optuna-dashboard (`--mlflow`, `tuning export`).
EXTRAS ?= dev,mlflow,dashboard
install: $(filter $(VENV)/bin/python,$(PYTHON))
	$(PYTHON) -m pip install --quiet -e ".[$(EXTRAS)]"

demo: install
	$(PYTHON) -m tuning demo --out results/demo --fresh

# The whole suite on each Keras backend: JAX (the default) and TensorFlow, each in TEST_WORKERS
# processes (pytest-xdist; a test file stays in one process, so its module fixtures run once).
TEST_WORKERS ?= 2
PYTEST = $(PYTHON) -m pytest --numprocesses $(TEST_WORKERS) --dist loadfile
test: install
	KERAS_BACKEND=jax $(PYTEST)
	KERAS_BACKEND=tensorflow $(PYTEST) -m "not one_keras_backend"

# The CLI fuzzer's long run (the default test run tries 40 examples): FUZZ_EXAMPLES=N for more.
FUZZ_EXAMPLES ?= 1000
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) KERAS_BACKEND=jax $(PYTHON) -m pytest tests/test_fuzz_cli.py \
		--hypothesis-show-statistics -p no:cacheprovider

# Mutation testing of the statistics modules (mutmut; see [tool.mutmut] in pyproject.toml): the
# share of mutants the tests kill, and the survivors.
mutation: install
	rm -rf mutants
	KERAS_BACKEND=jax $(PYTHON) -m mutmut run --max-children 2 || true
	$(PYTHON) -m mutmut results

# Speed, memory and same-math figures (about 25 minutes on 2 cores); see benchmarks/README.md.
benchmarks: install
	$(PYTHON) benchmarks/trial_speed.py
	$(PYTHON) benchmarks/same_math.py
	$(PYTHON) benchmarks/memory.py
	$(PYTHON) benchmarks/parallel.py

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -c "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .
