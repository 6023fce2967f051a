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
        if shared:  # the holders are many: their hosts are named, and none clears the file
            hosts = _sharing_hosts(_read(fd))
            if hosts is None or socket.gethostname() not in hosts:
                named = sorted({*(hosts or ()), socket.gethostname()})
                _write(fd, f"{SHARED_OWNER}, on {', '.join(named)}\n")
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


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode("utf-8", "replace").strip()


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)
    os.fsync(fd)


def _sharing_hosts(owner: str) -> set[str] | None:
    """The hosts a shared lock file names (processes there shared the study, or still do);
    None where the file is not a shared lock's."""
    if not owner.startswith(SHARED_OWNER):
        return None
    _, _, named = owner.partition(", on ")
    return {host for host in named.split(", ") if host}


def is_running(study_dir: Path) -> bool:
    """Whether a live process holds the study's lock, found without taking it (a reader that
    took it, however briefly, could refuse a study starting at that moment).

    On this host the kernel's table of locks says it (`_locked_here`), for a study run alone or
    shared. A lock file naming another host (a folder on a shared file system) is taken as
    running, as that host cannot be asked. Where the table cannot be read or is found not to
    list this folder's locks (a file system whose devices it names otherwise), the file's owner
    is asked whether it is alive, and processes sharing a study are taken as running. A lock its
    owner left behind (killed) is held by no one. Locks held in another PID namespace (a
    container beside this one) are not in this one's table."""
    path = Path(study_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # (never created, nor a link followed)
    except OSError:
        return False
    try:
        owner, held = _read(fd), _locked_here(os.fstat(fd), Path(study_dir))
    finally:
        os.close(fd)
    here = socket.gethostname()
    found = re.fullmatch(r"pid (\d+) on (.+)", owner)
    hosts = _sharing_hosts(owner)
    if (found is not None and found.group(2) != here) or (hosts and hosts - {here}):
        return True
    if held is not None:
        return held
    if hosts is not None:
        return True
    if found is None:
        return False
    try:
        os.kill(int(found.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


# Linux lists every lock it holds in this file: "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146857 0 EOF"
# (the device's major and minor numbers in hex, then the inode).
KERNEL_LOCKS = Path("/proc/locks")


def _locked_here(file: os.stat_result, folder: Path) -> bool | None:
    """Whether a process of this host holds a ``flock`` of ``file``; None where the kernel's
    table cannot be read, or does not list a lock this function takes on ``folder`` (on some
    file systems, btrfs subvolumes or overlays of several, it names devices otherwise than
    ``stat`` does). Locking the folder itself keeps out no one: the harness locks files."""
    try:
        probe = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
        table = KERNEL_LOCKS.read_text()
        if _named(os.fstat(probe)) not in _flocked(table):
            return None
        return _named(file) in _flocked(table)
    except OSError:
        return None
    finally:
        os.close(probe)  # (releases the probe's lock)


def _named(file: os.stat_result) -> str:
    return f"{os.major(file.st_dev):02x}:{os.minor(file.st_dev):02x}:{file.st_ino}"


def _flocked(table: str) -> set[str]:
    """The files (`_named`) that the kernel's table lists as held by ``flock`` (blocked
    requests, ``->``, are not holders)."""
    return {
        fields[5]
        for fields in (line.split() for line in table.splitlines())
        if len(fields) > 5 and fields[1] == "FLOCK"
    }
