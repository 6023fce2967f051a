"""The errors a user can fix: each message names the field or file and the fix.

The CLI prints them as one line; no layer below the CLI lets a library's traceback through
where a bad input is the cause.
"""

from __future__ import annotations


class StudyError(ValueError):
    """A study that cannot run as configured; the message names the field and the fix."""


class ResumeError(StudyError):
    """The library's search, restarted, does not retrace the trials already in the table."""


class FinalBuildError(Exception):
    """The user's factory raised when the winner was built again for its final training: the
    study ends without a model (its trials kept), not with the factory's traceback."""


def message_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" when it has none)."""
    return (str(exc).strip().splitlines() or [""])[0]


def first_line(exc: BaseException) -> str:
    """An exception in one line: its type and the first line of its message (``KeyError:
    'width'``), for a failed row or a one-line error, never a traceback."""
    message = message_line(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def start_over(folder: object) -> str:
    """The remedy for a study that cannot continue, naming that study alone: a grid's
    ``--fresh`` would empty every finished study of the grid too."""
    return f"move {folder} away (or delete it) to start that study over"
