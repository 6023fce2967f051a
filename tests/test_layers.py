"""The floor plan at run time: a search backend imports nothing of the harness that trains.

import-linter (`make lint`) holds the packages' layers; what it cannot see is what an import
loads at run time. A backend on the evaluator contract (`tuning.search.base.SearchTask`) must
not load `tuning.evaluation`, and no Keras unless its library is a Keras library.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tuning.search import available_backends, create_backend
from tuning.search.base import SearchBackend

pytestmark = pytest.mark.one_keras_backend


def _module(name: str) -> str | None:
    try:
        backend_class = type(create_backend(name))
    except Exception:  # its library is not installed (an optional extra)
        return None
    return backend_class.__module__ if backend_class.search is not SearchBackend.search else None


CONTRACT_MODULES = sorted({m for m in map(_module, available_backends()) if m is not None})


@pytest.mark.parametrize("module", CONTRACT_MODULES)
def test_a_backend_on_the_contract_imports_nothing_of_the_harness_that_trains(module):
    code = (
        f"import sys, {module}\n"
        "print(sorted(m for m in sys.modules if m.startswith('tuning.evaluation')))\n"
        "print('keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    harness, keras_loaded = out.stdout.split("\n")[:2]
    assert harness == "[]", (module, harness)
    # Keras only where the library itself is a Keras library (scikeras: scikit-learn's wrapper)
    assert keras_loaded == str(module.endswith(("keras_tuner_search", "sklearn_search"))), module


def test_scikit_learns_backend_does_not_load_tensorflow_on_jax():
    # scikeras imports TensorFlow only to seed it: seconds and memory of every worker on JAX
    code = (
        "import sys, tuning.search.sklearn_search\n"
        "print('tensorflow' in sys.modules)\n"
        "import tensorflow\n"  # a later import still works
        "print(tensorflow.__name__)"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["False", "tensorflow"]
