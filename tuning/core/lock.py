"""One process per study (or one group of processes sharing it through an Optuna storage): a lock
file in the study's folder, holding the owner's pid and host.

The lock is an advisory ``flock`` on that file, which the kernel releases when its process ends,
however it ends (``kill -9`` included). So a lock left by a dead process is never in the way: the
next run takes it over (and says whose it was), and there is no window in which two processes
can both decide that a lock is stale. The file stays behind between runs; only the lock matters.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuning.core.errors import StudyError
from tuning.core.files import open_unfollowed

log = logging.getLogger(__name__)
LOCK_FILE = "study.lock"
SHARED_OWNER = "processes sharing it through an Optuna storage"


class StudyLocked(StudyError):
    """Another live process is running this study."""


@contextmanager
def study_lock(study_dir: Path, *, shared: bool = False, what: str = "study") -> Iterator[Path]:
    """Hold the study's lock for the ``with`` block, or raise `StudyLocked` at once.

    ``shared``: the study is shared by several processes (an Optuna storage): they all hold the
    lock together, which keeps out a process that would run the study alone, and vice versa.
    ``what``: what the folder holds, for the message (a table is built under the same lock).
    """
    path = Path(study_dir) / LOCK_FILE
    fd = open_unfollowed(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read(fd) or "another process"
            raise StudyLocked(
                f"{what} {Path(study_dir).name!r} is already running ({owner}, lock {path}): "
                "wait for it to end, or stop it first"
                + ("; use --study NAME to run another study" if what == "study" else "")
            ) from None
        if shared:  # the holders are many: none is named, and none clears the file
            if _read(fd) != SHARED_OWNER:
                _write(fd, SHARED_OWNER + "\n")
            yield path
            return
        previous = _read(fd)
        if previous:
            log.warning(
                "%s: taking over the lock of %s, which ended without releasing it", path, previous
            )
        _write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n")
        try:
            yield path
        finally:
            _write(fd, "")  # released: the next owner finds no one to report
    finally:
        os.close(fd)  # closing the file releases the flock


@contextmanager
def one_at_a_time(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` of ``folder`` itself for a short step that the processes
    sharing a study (`study_lock`'s ``shared``) must take one at a time, such as recording its
    settings on its first run; waits for a holder to finish the step."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)  # (a lock writes nothing: a link may lead)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode("utf-8", "replace").strip()


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)
    os.fsync(fd)


def is_running(study_dir: Path) -> bool:
    """Whether a live process holds the study's lock, read without taking it (a reader that
    took it, however briefly, could refuse a study starting at that moment): the owner the lock
    file names, alive on this host, or on another host (which cannot be asked), or processes
    sharing it. A lock its owner left behind (killed) names a process that is gone."""
    path = Path(study_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # (never created, nor a link followed)
    except OSError:
        return False
    try:
        owner = _read(fd)
    finally:
        os.close(fd)
    if owner == SHARED_OWNER:
        return True
    found = re.fullmatch(r"pid (\d+) on (.+)", owner)
    if found is None:
        return False
    if found.group(2) != socket.gethostname():
        return True
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
