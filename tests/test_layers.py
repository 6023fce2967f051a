"""The floor plan beyond import-linter (`make lint`, which holds the packages' layers).

What it cannot see: what an import loads at run time (a backend on the evaluator contract loads
nothing of `tuning.evaluation`, and no Keras unless its library is a Keras library; a study
loads no Keras until its evaluator is built), modules named by a string and imported by
`importlib` (never a layer above the code that names them), and private names (never imported
from another module).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

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
    assert keras_loaded == str(module.endswith("keras_tuner_search")), module


def test_a_study_loads_no_keras_until_its_evaluator_is_built():
    code = "import sys, tuning.run.study, tuning.run.grid\nprint('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


PACKAGE = Path(__file__).resolve().parents[1] / "tuning"


def _modules() -> list[tuple[str, ast.Module]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, ast.parse(path.read_text())))
    return found


def _layer_contracts() -> list[list[list[str]]]:
    """Each layers contract of pyproject.toml: its layers, top first, each a list of packages."""
    settings = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    return [
        [[p.strip() for p in layer.split("|")] for layer in contract["layers"]]
        for contract in settings["tool"]["importlinter"]["contracts"]
        if contract["type"] == "layers"
    ]


def _layer(module: str, layers: list[list[str]]) -> int | None:
    for index, packages in enumerate(layers):
        if any(module == p or module.startswith(p + ".") for p in packages):
            return index
    return None


# strings of that form that name no module to import
NOT_MODULES = {"tuning.backends": "the entry-point group backends register in"}


def upward_strings(modules: list[tuple[str, ast.Module]]) -> list[str]:
    """Each string naming a module (``tuning.x.y`` or ``tuning.x.y:function``) of a layer above
    the module holding it, under any layers contract."""
    named = re.compile(r"tuning(\.\w+)+(:\w+)?")
    found = []
    for module, tree in modules:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if not named.fullmatch(node.value) or node.value in NOT_MODULES:
                continue
            target = node.value.partition(":")[0]
            for layers in _layer_contracts():
                here, there = _layer(module, layers), _layer(target, layers)
                if here is not None and there is not None and there < here:
                    found.append(f"{module}: {node.value!r}")
    return found


def test_no_module_named_by_a_string_is_in_a_layer_above():
    assert upward_strings(_modules()) == []


def test_the_string_check_finds_a_string_that_names_a_layer_above():
    # (the circle that import-linter could not see: a factory named in evaluation, living in run)
    tree = ast.parse('FACTORY = "tuning.run.certify:build_on_grid"')
    assert upward_strings([("tuning.evaluation.keras.factory", tree)]) == [
        "tuning.evaluation.keras.factory: 'tuning.run.certify:build_on_grid'"
    ]
    keras_to_tables = ast.parse('TABLE = "tuning.evaluation.tabular.table"')
    assert upward_strings([("tuning.evaluation.keras.kind", keras_to_tables)]) != []
    assert upward_strings([("tuning.run.certify", ast.parse('F = "tuning.core.space"'))]) == []


def private_imports(modules: list[tuple[str, ast.Module]]) -> list[str]:
    """Each ``from tuning.x import _name``: a private name used by another module."""
    found = []
    for module, tree in modules:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tuning"):
                for alias in node.names:
                    if alias.name.startswith("_"):
                        found.append(f"{module}: from {node.module} import {alias.name}")
    return found


def test_no_private_name_is_imported_from_another_module():
    assert private_imports(_modules()) == []
    planted = ast.parse("from tuning.analysis.plots import _panels")
    assert private_imports([("tuning.analysis.table_report", planted)]) != []


def test_scikit_learns_estimator_does_not_load_tensorflow_on_jax():
    # scikeras imports TensorFlow only to seed it: seconds and memory of every worker on JAX
    code = (
        "import sys, tuning.evaluation.keras.scikeras_estimator\n"
        "print('tensorflow' in sys.modules)\n"
        "import tensorflow\n"  # a later import still works
        "print(tensorflow.__name__)"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["False", "tensorflow"]
