# `make demo` and `make test` are the README's two commands; both install the package first.
PYTHON ?= python3
# Offline machines: use the shared dataset cache beside the checkout when there is one.
SHARED_DATASETS ?= $(abspath ../shared/datasets)
ifneq ($(wildcard $(SHARED_DATASETS)/scikit_learn_data),)
export SCIKIT_LEARN_DATA ?= $(SHARED_DATASETS)/scikit_learn_data
endif

.PHONY: install demo test lint format

install:
	$(PYTHON) -m pip install --quiet -e ".[dev]"

demo: install
	$(PYTHON) -m tuning demo --out results/demo --fresh

test: install
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .
