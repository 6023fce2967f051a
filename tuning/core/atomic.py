"""Writing a whole file so that a reader, or a process killed mid-write, sees the old version or
the new one, never part of either: a unique temporary file in the same folder, flushed to disk,
then renamed over the target (a rename within one file system is atomic)."""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuning.core.files import open_for_append, refuse_link


def write_atomically(path: str | Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` (text is written as UTF-8) in one step; returns the path.
    A link at ``path`` is refused (`tuning.core.files.LinkRefused`), never written through."""
    path = refuse_link(Path(path))
    payload = data.encode("utf-8") if isinstance(data, str) else data
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); keep what the file had, else the usual 0644
        os.fchmod(handle, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def append_locked(path: Path, render: Callable[[bool], str]) -> None:
    """Append ``render(empty)`` to ``path`` (never through a link) in one ``write`` under an
    exclusive ``flock`` of the file, then fsync. ``empty`` says whether the file is new (write its header then): decided
    under the lock, so that of several processes appending to one new file only the first
    writes it. What is appended is on disk whole or not at all, and appends never interleave."""
    fd = open_for_append(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, render(os.fstat(fd).st_size == 0).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the flock


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, so readers never see half a file."""
    write_atomically(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"cannot serialise {value!r}")


class CorruptFile(ValueError):
    """A file of the harness's that does not hold what it should; the message names it."""


def read_json(path: Path, remedy: str, kind: type = dict) -> Any:
    """The JSON in ``path``, which must hold a ``kind``; a file that is not text, not JSON or of
    another shape is a `CorruptFile` naming it, with ``remedy`` (what to do) after it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # (nested deep)
        raise CorruptFile(f"{path} is corrupt ({type(exc).__name__}): {remedy}") from None
    except IsADirectoryError:
        raise CorruptFile(f"{path} is a folder, not a file: {remedy}") from None
    if not isinstance(data, kind):
        raise CorruptFile(
            f"{path} holds {type(data).__name__} data, not a {kind.__name__}: {remedy}"
        )
    return data
