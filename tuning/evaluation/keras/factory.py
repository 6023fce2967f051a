"""The model factory every trial of a study builds through: the book's `build_model` by default, or
a user's, named ``package.module:function`` or ``path/to/file.py:function``.

A factory takes the searched parameters (the space's names) and the study's fixed
``model_options`` as keyword arguments, and each of `OFFERED_ARGUMENTS` that its signature
accepts (``input_shape``, ``n_outputs``, ``task``, ``seed``, ``steps_per_execution``); it returns
a compiled Keras model. `load_factory`, `check_arguments` and `check_builds` refuse, in one line
naming it, a factory that cannot be imported, lacks a searched argument, or does not return a
compiled model, before a study starts.
No Keras import here: the user's module imports what it needs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuning.core.errors import StudyError, UserCodeRaised, call_user_code, message_line
from tuning.core.space import IntParam, SearchSpace
from tuning.evaluation.data import DATA_ARGUMENTS

# The factory's arguments that the training protocol sets (speed, and the study's seed of the
# initial weights); never searched either.
PROTOCOL_ARGUMENTS = ("steps_per_execution", "seed")

DEFAULT_FACTORY = "tuning.evaluation.keras.model:build_model"
# What the harness offers every factory, where the factory's signature takes it.
OFFERED_ARGUMENTS = (*DATA_ARGUMENTS, *PROTOCOL_ARGUMENTS)


class FactoryError(StudyError):
    """A model factory that cannot be used: the message names it and says what to fix."""


def load_factory(spec: str | None) -> Callable[..., Any]:
    """The function ``spec`` names (default: the book's `build_model`)."""
    spec = spec or DEFAULT_FACTORY
    where, colon, name = spec.rpartition(":")
    if not colon or not where or not name.isidentifier():
        raise FactoryError(
            f"model {spec!r}: write package.module:function or path/to/file.py:function"
        )
    try:
        module = (
            _from_file(Path(where)) if where.endswith(".py") else importlib.import_module(where)
        )
    except FactoryError:
        raise
    except Exception as exc:  # the user's module may raise anything while it is imported
        raise FactoryError(
            f"model {spec!r}: cannot import {where} ({type(exc).__name__}: {message_line(exc)})"
        ) from None
    factory = getattr(module, name, None)
    if factory is None:
        raise FactoryError(f"model {spec!r}: {where} has no function {name!r}")
    # A Python function or class, not any callable a module exposes (``os:system`` would run a
    # searched value as a shell command during the pre-flight build).
    if not (inspect.isfunction(factory) or inspect.isclass(factory)):
        raise FactoryError(
            f"model {spec!r}: {name} is a {type(factory).__name__}, not a Python function or "
            "class: name a function that builds and compiles a Keras model"
        )
    return factory


class _NoBytecodeLoader(importlib.machinery.SourceFileLoader):
    """Python's loader of a source file, writing no bytecode cache (``__pycache__``) beside it:
    the user's folder is not the harness's to write in."""

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:
        return None


def _from_file(path: Path) -> Any:
    if not path.is_file():
        raise FactoryError(
            f"model: {path} does not exist (paths are relative to the working folder)"
        )
    resolved = path.resolve()
    # one module per file, under a name of its own (the same in every process)
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    module_name = f"tuning_user_model_{resolved.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader = _NoBytecodeLoader(module_name, str(resolved))
    spec = importlib.util.spec_from_file_location(module_name, resolved, loader=loader)
    if spec is None or spec.loader is None:
        raise FactoryError(f"model: {path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # pickling its functions (a Dask worker) finds it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _parameters(factory: Callable[..., Any]) -> tuple[set[str], bool]:
    """The keyword arguments ``factory`` takes, and whether it takes any (``**kwargs``)."""
    parameters = inspect.signature(factory).parameters.values()
    named = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return named, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


# Padding every model to the space's largest width (and depth) compiles one program for a study
# but adds arithmetic in proportion to the rows trained; past this many row-epochs a trial
# (training rows times the epoch cap) the extra arithmetic outweighs the programs saved: widths
# are padded to the next power of two instead (at most twice the arithmetic) and each depth keeps
# its own layers (figures: benchmarks/README.md).
ONE_WIDTH_ROW_EPOCHS = 100_000


def padded_width(units: int, largest: int) -> int:
    """The next power of two of ``units`` (at least 16), at most ``largest``."""
    return min(largest, max(16, 1 << (int(units) - 1).bit_length()))


@dataclass(frozen=True)
class Padding:
    """How a study builds its models at a few shapes: ``widths`` maps each searched integer
    parameter that sets a layer width to (the factory's argument that pads it, the space's
    largest value); ``one_width``: every model at that largest width, else each at
    `padded_width`. ``depths`` likewise for the parameters that set a number of
    layers: every model built at the largest depth. Empty for a factory that declares none."""

    widths: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    one_width: bool = True
    depths: Mapping[str, tuple[str, int]] = field(default_factory=dict)

    def fixed_arguments(self) -> dict[str, int]:
        """The padding arguments when they are the same for every configuration (one width),
        else none."""
        if not self.one_width:
            return {}
        return {
            argument: largest
            for argument, largest in (*self.widths.values(), *self.depths.values())
        }

    def arguments(self, params: Mapping[str, Any]) -> dict[str, int]:
        """The padding arguments of the configuration ``params``."""
        widths = {
            argument: largest if self.one_width else padded_width(params[name], largest)
            for name, (argument, largest) in self.widths.items()
            if name in params
        }
        depths = {
            argument: largest for name, (argument, largest) in self.depths.items() if name in params
        }
        return {**widths, **depths}


def study_padding(
    factory: Callable[..., Any],
    space: SearchSpace,
    rows: int,
    max_epochs: int,
    inputs: int,
) -> Padding:
    """A study's `Padding`. A factory declares, as its ``padded_widths`` attribute, which
    searched integer parameters set a layer width and the argument that builds those layers at
    a larger width instead (the book's `build_model`: ``{"n_neurons": "padded_neurons"}``),
    and as ``padded_depths`` the same for a number of layers (``{"n_hidden":
    "padded_hidden"}``). Depths are padded where every model has the one largest width, and
    only if the ``inputs`` values of an example fit in it: a padded layer passes a shallower
    model's values through, and a model without hidden layers passes its inputs."""
    by_name = {param.name: param for param in space}

    def declared(attribute: str) -> dict[str, tuple[str, int]]:
        names = getattr(factory, attribute, None) or {}
        return {
            name: (argument, by_name[name].high)
            for name, argument in names.items()
            if isinstance(by_name.get(name), IntParam)
        }

    widths = declared("padded_widths")
    one_width = rows * max_epochs <= ONE_WIDTH_ROW_EPOCHS
    fits = all(inputs <= largest for _, largest in widths.values())
    depths = declared("padded_depths") if widths and one_width and fits else {}
    return Padding(widths, one_width, depths)


def offered_arguments(factory: Callable[..., Any], offered: Mapping[str, Any]) -> dict[str, Any]:
    """The harness's arguments (`OFFERED_ARGUMENTS`) that ``factory``'s signature accepts."""
    named, any_keyword = _parameters(factory)
    return {k: v for k, v in offered.items() if any_keyword or k in named}


def check_arguments(
    factory: Callable[..., Any], spec: str | None, searched: Iterable[str], fixed: Iterable[str]
) -> None:
    """Every searched parameter and ``model_options`` key must be an argument of ``factory``
    that the harness does not set itself."""
    spec = spec or DEFAULT_FACTORY
    named, any_keyword = _parameters(factory)
    tunable = named - set(OFFERED_ARGUMENTS)
    for where, names in (("space parameter", searched), ("model_options key", fixed)):
        for name in names:
            if name in OFFERED_ARGUMENTS:
                raise FactoryError(f"{where} {name!r}: the harness sets {name} itself; remove it")
            if name not in named and not any_keyword:
                raise FactoryError(
                    f"{where} {name!r} is not an argument of model {spec}; "
                    f"its arguments: {sorted(tunable)}"
                )


def check_builds(
    factory: Callable[..., Any], spec: str | None, arguments: Mapping[str, Any]
) -> None:
    """Build one model with ``arguments``: it must be a compiled Keras model."""
    import keras

    spec = spec or DEFAULT_FACTORY
    try:
        model = call_user_code(factory, **arguments)
    except UserCodeRaised as exc:
        raise FactoryError(f"model {spec} failed to build {dict(arguments)}: {exc}") from None
    if not isinstance(model, keras.Model):
        raise FactoryError(f"model {spec} returned {type(model).__name__}, not a keras.Model")
    if not getattr(model, "compiled", False):
        raise FactoryError(
            f"model {spec} returned a model that is not compiled: call model.compile(...) "
            "with its optimizer and loss before returning it"
        )
