"""Search backends, registered by name through the ``tuning.backends`` entry-point group.

A backend is a `SearchBackend` subclass in its own module plus one line per algorithm under
``[project.entry-points."tuning.backends"]`` in its package's ``pyproject.toml``; nothing else
in this repository needs editing, and a third-party package can add one the same way.

Names are ``library:algorithm`` (``optuna:cmaes``, ``skopt:forest``); a bare library name
(``optuna``) is the library's main algorithm, the one the harness compared before algorithms
were listed. An entry point may carry an extra (``optuna:gp = ...:OptunaBackend [gp]``): the
algorithm is listed only where that extra's requirements are installed. Listing, validating
and checking a name import no library: the grid's parent process checks names without Keras.
"""

from __future__ import annotations

import inspect
import logging
import re
from importlib import metadata
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from tuning.core.errors import StudyError, UserCodeRaised, call_user_code, first_line
from tuning.search.base import Budget, SearchBackend, SearchTask

ENTRY_POINT_GROUP = "tuning.backends"
log = logging.getLogger(__name__)

__all__ = [
    "BackendError",
    "Budget",
    "SearchBackend",
    "available_backends",
    "create_backend",
    "default_backends",
    "describe_backends",
    "load_backend",
    "missing_extra",
    "same_algorithms",
    "search_with",
]


class BackendError(ValueError):
    """An unknown backend, or options it does not take."""


def _registry() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _package(ep: EntryPoint) -> str:
    """The distribution that registered ``ep`` (else its module's top package)."""
    return ep.dist.metadata["Name"] if ep.dist is not None else ep.value.split(".")[0]


def _own(ep: EntryPoint) -> bool:
    return ep.value.startswith("tuning.")


def load_backend(name: str) -> type[SearchBackend]:
    """The class registered as ``name``, imported and checked. A package that fails to import
    (whatever it raises), or that registers something other than a `SearchBackend` subclass,
    is a `BackendError` naming the package and the error in one line: one broken plugin
    cannot break the harness."""
    registry = _registry()
    if name not in registry:
        raise BackendError(f"backend {name!r} is unknown; choose one of {available_backends()}")
    ep = registry[name]
    try:
        cls = call_user_code(ep.load)
    except UserCodeRaised as exc:
        raise BackendError(
            f"backend {name!r} (package {_package(ep)}) cannot be loaded: {exc}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, SearchBackend)):
        raise BackendError(
            f"backend {name!r} (package {_package(ep)}): {ep.value} is not a SearchBackend subclass"
        )
    return cls


def _installed(requirement: str) -> bool:
    name = re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0]
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def missing_extra(ep: EntryPoint) -> str | None:
    """The extra of ``ep``'s distribution whose requirements are not all installed, or None."""
    if not ep.extras or ep.dist is None:
        return None
    requirements = ep.dist.requires or []
    for extra in ep.extras:
        marker = re.compile(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]")
        needed = [r.split(";")[0] for r in requirements if marker.search(r)]
        if not all(_installed(r) for r in needed):
            return extra
    return None


def available_backends() -> list[str]:
    """Names of the installed backends and algorithms (``optuna``, ``optuna:cmaes``, ...), sorted;
    an algorithm whose extra is not installed is left out."""
    return sorted(name for name, ep in _registry().items() if missing_extra(ep) is None)


def same_algorithms(names: list[str]) -> list[tuple[str, str]]:
    """Pairs of ``names`` that run one algorithm: a bare library name and its default
    ``library:algorithm`` (``optuna`` and ``optuna:tpe``). Only a library named both ways is
    loaded to tell (its module may import Keras)."""
    registry = _registry()
    pairs = []
    for bare in (n for n in names if ":" not in n and n in registry):
        spelled = [n for n in names if n.partition(":")[0] == bare and ":" in n]
        if not spelled:
            continue
        default = getattr(load_backend(bare), "default_algorithm", "")
        pairs += [(bare, n) for n in spelled if n.partition(":")[2] == default]
    return pairs


def default_backends() -> list[str]:
    """The bare library names: each library's main algorithm, compared when none is named. A
    plugin's that cannot be loaded is left out, with a warning (`load_backend`)."""
    registry, names = _registry(), []
    for name in (n for n in available_backends() if ":" not in n):
        if not _own(registry[name]):
            try:
                load_backend(name)
            except BackendError as exc:
                log.warning("%s: left out of the default backends", exc)
                continue
        names.append(name)
    return names


def create_backend(name: str, **options: Any) -> SearchBackend:
    """Load the backend registered as ``name`` and construct it with its own ``options``; for
    ``library:algorithm`` the class is constructed with ``algorithm=ALGORITHM``."""
    registry = _registry()
    if name not in registry:
        raise BackendError(f"backend {name!r} is unknown; choose one of {available_backends()}")
    extra = missing_extra(registry[name])
    if extra is not None:
        raise BackendError(
            f"backend {name!r} needs the {extra!r} extra: pip install "
            f"'{_package(registry[name])}[{extra}]'"
        )
    cls = load_backend(name)
    algorithm = name.partition(":")[2]
    if algorithm and algorithm not in cls.algorithms:
        raise BackendError(
            f"entry point {name!r}: {cls.__name__} has no algorithm {algorithm!r}; "
            f"it has {sorted(cls.algorithms)}"
        )
    uses = cls.options_by_algorithm.get(algorithm or cls.default_algorithm)
    taken = set(inspect.signature(cls.__init__).parameters)
    if uses is not None and set(options) <= taken:  # (an option it takes not: said below)
        ignored = sorted(set(options) - uses - {"algorithm"})
        if ignored:
            raise BackendError(
                f"backend {name!r} would ignore option {ignored[0]!r}: "
                f"{algorithm or cls.default_algorithm} uses "
                f"{', '.join(sorted(uses)) or 'no option'}; remove it (an ignored option "
                "would be recorded as if it applied)"
            )
    if algorithm:
        options = {**options, "algorithm": algorithm}
    try:
        return cls(**options)
    except TypeError:
        raise BackendError(f"backend {name!r} does not take options {sorted(options)}") from None


def search_with(name: str, backend: SearchBackend, task: SearchTask) -> None:
    """``backend.search(task)``; where the backend is a plugin's, what its own code raises (but
    an interrupt, or the harness's own one-line errors) is a `BackendError` naming its package and
    the error in one line. The trials it finished are in the table already, and a run that follows
    resumes from them."""
    ep = _registry().get(name)
    if ep is None or _own(ep):
        backend.search(task)
        return
    try:
        backend.search(task)
    except (KeyboardInterrupt, StudyError, OSError):  # (an interrupt; the harness's own errors;
        raise  # a disk or a folder, said in one line by the command)
    except BaseException as exc:  # (chained: --debug shows the plugin's own frames)
        raise BackendError(
            f"backend {name!r} (package {_package(ep)}) failed in its search: {first_line(exc)}; "
            "the trials it finished are kept: fix the package, then run again to resume"
        ) from exc


def describe_backends() -> list[str]:
    """Lines per installed algorithm, for ``tuning backends``: its name, its library and that
    library's installed version, and what it does, then its parallel mode (``--workers``); a
    bare library name says which algorithm it stands for. Imports every backend's library."""
    lines = []
    for name in available_backends():
        try:
            cls = load_backend(name)
        except BackendError as exc:  # listed, with why, and the others still are
            lines.append(f"{name:<22} unavailable: {exc}")
            continue
        try:
            lines += _described(name, cls)
        except Exception as exc:  # a plugin's class attributes that are not what they should be
            lines.append(f"{name:<22} unavailable: {cls.__module__}: {first_line(exc)}")
    return lines


def _described(name: str, cls: type[SearchBackend]) -> list[str]:
    algorithm = name.partition(":")[2]
    if not algorithm and cls.algorithms:
        return [f"{name:<22} = {name}:{cls.default_algorithm}"]
    library = cls.library or "-"
    try:
        version = metadata.version(library) if cls.library else ""
    except metadata.PackageNotFoundError:
        version = "?"
    summary = (cls.__doc__ or "").strip().splitlines() or ["(no description)"]
    description = cls.algorithms.get(algorithm) or summary[0]
    parallel = getattr(cls, "parallel", {}).get(algorithm or cls.default_algorithm or "")
    return [
        f"{name:<22} {library + ' ' + version:<24} {description}",
        f"{'':<47} --workers N: {parallel or 'no parallel mode (one trial at a time)'}",
    ]
