"""A study folder's file names, and reading the TOML files a user writes."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuning.core.errors import StudyError

SUMMARY_FILE = "summary.json"
LOG_FILE = "study.log"  # a grid worker's log of its study
CONFIG_FILE = "study.json"  # the settings a study was started with, written before its first trial


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The tables of a TOML file; a missing or malformed file is a `StudyError` naming it as
    ``what`` ("study file", "suite")."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise StudyError(f"{what} {path} is a folder: give a .toml file") from None
    except UnicodeDecodeError:
        raise StudyError(f"{what} {path} is not text (UTF-8 TOML expected)") from None
    except OSError as exc:
        raise StudyError(f"{what} {path} cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{what} {path} is not valid TOML: {exc}") from None


class LinkRefused(StudyError):
    """A file or folder the harness would write to is a symbolic link."""


def refuse_link(path: Path) -> Path:
    """``path``, refused in one line if it is a symbolic link: the harness never writes through
    one (planted in a results folder, it would send the harness's writes outside ``--out``)."""
    if Path(path).is_symlink():
        raise LinkRefused(
            f"{path} is a symbolic link: the harness never writes through one (it could point "
            "outside --out); remove the link"
        )
    return Path(path)


def refuse_links_under(folder: Path) -> Path:
    """``folder`` and everything under it, refused in one line at the first symbolic link: for a
    library that writes a tree of its own files (Keras Tuner's project) through plain ``open``,
    the tree is checked before the library is handed it."""
    refuse_link(folder)
    for root, folders, files in os.walk(folder):  # (walk does not follow links to folders)
        for name in [*folders, *files]:
            refuse_link(Path(root, name))
    return Path(folder)


def open_unfollowed(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open(path, flags | O_CREAT)`` without following a link: a link there is refused
    (`LinkRefused`) instead of opened."""
    try:
        return os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            refuse_link(path)
        raise


def open_for_append(path: Path, mode: int = 0o644) -> int:
    """A descriptor of ``path`` opened to append (created if need be) without following a link
    (`open_unfollowed`)."""
    return open_unfollowed(path, os.O_WRONLY | os.O_APPEND, mode)


class NoLinkFileHandler(logging.FileHandler):
    """A log file opened to append without following a link (`open_for_append`)."""

    def _open(self):  # noqa: ANN202 (logging's own signature)
        return os.fdopen(open_for_append(Path(self.baseFilename)), "a", encoding=self.encoding)


def replace_with(path: Path, write: Callable[[Path], Any]) -> Path:
    """Replace ``path`` with what ``write(temporary)`` writes (a library's own save: a Keras
    model), in one step: the library writes a new file beside it, which is renamed over
    ``path``; a link at ``path`` is refused, never written through."""
    refuse_link(path)
    # In a new folder of a name no one could know in advance (a predictable file name could
    # be a link planted before the library's plain `open`); the file's whole name is kept, as
    # libraries check it (Keras wants ".keras", ".weights.h5").
    private = Path(tempfile.mkdtemp(prefix=".tmp", dir=path.parent))
    try:
        temporary = private / path.name
        write(temporary)
        os.replace(temporary, path)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return path


def writable_folder(path: Path, field: str, *, link_allowed: bool = False) -> Path:
    """Create ``path`` if needed and check that this process can write there; ``field`` names the
    option or key that gave it, for the message. A folder that is a link is refused unless
    ``link_allowed`` (the ``--out`` a user names may be one; what the harness makes inside it
    may not)."""
    if not link_allowed:
        refuse_link(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudyError(
            f"{field}: cannot create {path} ({exc.strerror}); choose another folder"
        ) from None
    if not os.access(path, os.W_OK):
        raise StudyError(f"{field}: {path} is not writable; choose another folder")
    return path


# A results folder's own MLflow store (`tuning.export.mlflow_runs`): its artifacts are copies of
# studies' files, never studies.
MLFLOW_FOLDER = "mlflow"
MLFLOW_STORE = "mlflow.db"


def folders_holding(out: Path, name: str) -> list[Path]:
    """The folders under ``out`` (any depth) that hold a file called ``name``, in path order;
    none inside an MLflow store of the harness (a folder ``mlflow`` holding ``mlflow.db``, the
    compared folder's or a folder's inside it)."""
    out = Path(out)
    found = []
    for path in out.rglob(name):
        parents = path.relative_to(out).parents
        if not any(
            (out / p).name == MLFLOW_FOLDER and (out / p / MLFLOW_STORE).exists() for p in parents
        ):
            found.append(path.parent)
    return sorted(found)
