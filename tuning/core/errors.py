"""The errors a user can fix: each message names the field or file and the fix.

The CLI prints them as one line; no layer below the CLI lets a library's traceback through
where a bad input is the cause.
"""

from __future__ import annotations

from typing import Any


class StudyError(ValueError):
    """A study that cannot run as configured; the message names the field and the fix."""


class ResumeError(StudyError):
    """The library's search, restarted, does not retrace the trials already in the table."""


class FinalBuildError(Exception):
    """The user's factory raised when the winner was built again for its final training: the
    study ends without a model (its trials kept), not with the factory's traceback."""


def message_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" when it has none; a placeholder when the
    exception cannot even say it: a user's ``__str__`` that raises)."""
    try:
        text = str(exc)
    except Exception:
        return "<its message could not be read>"
    return (text.strip().splitlines() or [""])[0]


class UserCodeRaised(Exception):
    """What the user's code (a model factory, a backend package) raised, of whatever type (a
    `BaseException` that is not an interrupt, ``SystemExit`` and ``GeneratorExit`` included),
    as one line: a trial's failure or a one-line refusal, never the process's end."""


def call_user_code(function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, for the user's code (a model factory, a plugin's import):
    whatever it raises but an interrupt (Ctrl-C, SIGTERM) is a `UserCodeRaised` with its first
    line."""
    try:
        return function(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except UserCodeRaised:
        raise
    except BaseException as exc:
        raise UserCodeRaised(first_line(exc)) from None


def first_line(exc: BaseException) -> str:
    """An exception in one line: its type and the first line of its message (``KeyError:
    'width'``), for a failed row or a one-line error, never a traceback."""
    message = message_line(exc)
    if isinstance(exc, UserCodeRaised):  # (its message is that line already)
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def start_over(folder: object) -> str:
    """The remedy for a study that cannot continue, naming that study alone: a grid's
    ``--fresh`` would empty every finished study of the grid too."""
    return f"move {folder} away (or delete it) to start that study over"
