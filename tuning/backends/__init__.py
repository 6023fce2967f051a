"""Search backends, registered by name through the ``tuning.backends`` entry-point group.

A backend is a `SearchBackend` subclass in its own module plus one line under
``[project.entry-points."tuning.backends"]`` in its package's ``pyproject.toml``; nothing else in this
repository needs editing, and a third-party package can add one the same way.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from tuning.backends.base import Budget, SearchBackend

ENTRY_POINT_GROUP = "tuning.backends"

__all__ = ["Budget", "SearchBackend", "available_backends", "create_backend", "BackendError"]


class BackendError(ValueError):
    """An unknown backend, or options it does not take."""


def _registry() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> list[str]:
    """Names of the installed backends, sorted."""
    return sorted(_registry())


def create_backend(name: str, **options: Any) -> SearchBackend:
    """Load the backend registered as ``name`` and construct it with its own ``options``."""
    registry = _registry()
    if name not in registry:
        raise BackendError(f"backend {name!r} is unknown; choose one of {sorted(registry)}")
    cls = registry[name].load()
    if not (isinstance(cls, type) and issubclass(cls, SearchBackend)):
        raise BackendError(f"entry point {name!r} does not name a SearchBackend subclass")
    try:
        return cls(**options)
    except TypeError:
        raise BackendError(f"backend {name!r} does not take options {sorted(options)}") from None
