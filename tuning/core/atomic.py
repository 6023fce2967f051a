"""Writing a whole file so that a reader, or a process killed mid-write, sees the old version or
the new one, never part of either: a unique temporary file in the same folder, flushed to disk,
then renamed over the target (a rename within one file system is atomic)."""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuning.core.files import open_unfollowed, refuse_link

log = logging.getLogger(__name__)


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


def create_atomically(path: str | Path, data: str) -> bool:
    """Write ``path`` whole, as `write_atomically` does, unless it exists: False then, and
    nothing written. Of several processes (on several hosts: a hard link is made atomically on
    NFS too) creating one file, one does; the others find its content."""
    path = refuse_link(Path(path))
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "wb") as file:
            file.write(data.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)


def is_temporary_of(name: str, target: str) -> bool:
    """Whether ``name`` is a temporary file `write_atomically` or `create_atomically` makes
    while writing the file named ``target`` in the same folder."""
    return re.fullmatch(rf"\.{re.escape(target)}\.[a-z0-9_]{{8}}\.tmp", name) is not None


def append_locked(path: Path, render: Callable[[bool], str]) -> None:
    """Append ``render(empty)`` to ``path`` (never through a link) in one ``write`` under an
    exclusive ``flock`` of the file, then fsync. ``empty`` says whether the file is new (write its header then): decided
    under the lock, so that of several processes appending to one new file only the first
    writes it. What is appended is on disk whole or not at all, and appends never interleave;
    a last line another process left torn (killed mid-write) is cut off first, so that the
    next one starts a line of its own."""
    fd = open_unfollowed(path, os.O_RDWR | os.O_APPEND)  # (read too: to find a torn line)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = _cut_torn_line(fd, path)
        os.write(fd, render(size == 0).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the flock


def _cut_torn_line(fd: int, path: Path, chunk: int = 1 << 16) -> int:
    """Cut what follows the last newline of the file open at ``fd`` (with a warning); returns
    its size then. Reads back from its end only as far as that newline."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - chunk)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            whole = start + newline + 1
            break
        end = start
    else:
        whole = 0
    if whole != size:
        log.warning("%s: its last line was cut off mid-write (a killed process?): removed it", path)
        os.ftruncate(fd, whole)
    return whole


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, so readers never see half a file."""
    write_atomically(path, _json_text(data))


def create_json(path: Path, data: Any) -> bool:
    """Create a JSON file whole unless it exists (`create_atomically`); False if it did."""
    return create_atomically(path, _json_text(data))


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default) + "\n"


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
