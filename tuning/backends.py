"""The search backends' interface under its first name, for third-party backends written
against it (``from tuning.backends import SearchBackend``). It lives in `tuning.search`."""

from tuning.search import (
    BackendError,
    Budget,
    SearchBackend,
    available_backends,
    create_backend,
    default_backends,
    describe_backends,
)

__all__ = [
    "BackendError",
    "Budget",
    "SearchBackend",
    "available_backends",
    "create_backend",
    "default_backends",
    "describe_backends",
]
