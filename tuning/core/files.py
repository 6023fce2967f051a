"""A study folder's file names, and reading the TOML files a user writes."""

from __future__ import annotations

import os
import tomllib
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


def writable_folder(path: Path, field: str) -> Path:
    """Create ``path`` if needed and check that this process can write there; ``field`` names the
    option or key that gave it, for the message."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudyError(
            f"{field}: cannot create {path} ({exc.strerror}); choose another folder"
        ) from None
    if not os.access(path, os.W_OK):
        raise StudyError(f"{field}: {path} is not writable; choose another folder")
    return path
