"""The common results table: one row per trial, the same columns for every backend.

Rows are appended and flushed to disk as each trial ends, so a study that stops early keeps every
finished trial.
"""

from __future__ import annotations

import csv
import fcntl
import io
import logging
import math
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tuning.core.atomic import append_locked
from tuning.core.errors import message_line, start_over
from tuning.core.files import refuse_link
from tuning.core.workers import PARALLEL_COLUMNS

if TYPE_CHECKING:
    from tuning.core.config import StudyConfig

log = logging.getLogger(__name__)
TRIALS_FILE = "trials.csv"
STATUSES = ("complete", "failed", "pruned")

# Every trials.csv begins with these, then one column per searched parameter (named after it, in
# the space's order), then `RESULT_COLUMNS`, then `EXTRA_COLUMNS`.
KEY_COLUMNS = ("study", "backend", "dataset", "seed", "trial", "status")
RESULT_COLUMNS = ("val_loss", "epochs", "fit_seconds")
EXTRA_COLUMNS = (
    "cum_epochs",
    "cum_seconds",
    "params",
    "error",
    "host",
    "pid",
    "compile_seconds",
    "algorithm",
    "table_test_loss",  # a tabular study's: the configuration's test loss in the table
    *PARALLEL_COLUMNS,  # a parallel study's (`tuning.core.workers`)
)
FIXED_COLUMNS = frozenset(KEY_COLUMNS + RESULT_COLUMNS + EXTRA_COLUMNS)


def parameter_columns(names: Sequence[str]) -> tuple[str, ...]:
    """The columns of the searched parameters ``names``: each its own, bar a name that is one of
    the row's own columns (``seed``, ``epochs``...): that one is in ``params`` only."""
    return tuple(name for name in names if name not in FIXED_COLUMNS)


def trial_columns(names: Sequence[str]) -> tuple[str, ...]:
    """The columns every row of a study searching ``names`` has, in order (`EXTRA_COLUMNS` follow)."""
    return KEY_COLUMNS + parameter_columns(names) + RESULT_COLUMNS


def all_columns(names: Sequence[str]) -> tuple[str, ...]:
    return trial_columns(names) + EXTRA_COLUMNS


def parameters_in(columns: Sequence[str]) -> list[str]:
    """The parameter columns of a table with these ``columns``: those between ``status`` and
    ``val_loss`` (a table written before rows took their columns from the space has the book's
    three there)."""
    columns = list(columns)
    try:
        return columns[columns.index("status") + 1 : columns.index("val_loss")]
    except ValueError:
        return []


@dataclass(frozen=True)
class StudyKey:
    """What every row of one study shares."""

    study: str
    backend: str
    dataset: str
    seed: int
    algorithm: str = ""  # ``library:algorithm`` (`SearchBackend.algorithm_name`); default: backend


class TrialWriter:
    """Appends trial rows to ``trials.csv``.

    Each row goes to disk in one ``write`` to a file opened for appending, under an exclusive
    ``flock`` of the file (the header too, when the file is new), then fsynced: a row is in the
    table whole or not at all, and processes appending to one table never interleave. Rows
    appended to a table an earlier version wrote keep that table's columns.
    """

    def __init__(self, path: Path, key: StudyKey, parameters: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.key = key
        self.parameters = parameter_columns(parameters)  # the space's names with a column
        self.allowed = frozenset(all_columns(self.parameters))
        self._columns: tuple[str, ...] | None = None  # the table's header, once read

    def append(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if row.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {row.get('status')!r}")
        full = {
            "study": self.key.study,
            "backend": self.key.backend,
            "dataset": self.key.dataset,
            "seed": self.key.seed,
            "algorithm": self.key.algorithm or self.key.backend,
            "host": socket.gethostname(),  # the worker that trained it
            "pid": os.getpid(),
            **row,
        }
        unknown = set(full) - self.allowed
        if unknown:
            raise ValueError(f"unknown trial columns {sorted(unknown)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def render(header: bool) -> str:
            if header:
                self._columns = all_columns(self.parameters)
            elif self._columns is None:
                self._columns = _header_of(self.path)
            return _csv_lines(full, header, self._columns)

        append_locked(self.path, render)
        return full


def study_writer(
    config: StudyConfig, dataset: str, algorithm: str, parameters: Sequence[str]
) -> TrialWriter:
    """The writer of a study's ``trials.csv``, its rows keyed by the study, its backend, the
    ``dataset``'s name, its seed and ``algorithm`` (``library:algorithm``)."""
    key = StudyKey(config.study, config.backend, dataset, config.seed, algorithm)
    return TrialWriter(config.study_dir / TRIALS_FILE, key, parameters)


def _csv_lines(row: Mapping[str, Any], header: bool, columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buffer.getvalue()


def _header_of(path: Path) -> tuple[str, ...]:
    """The columns of an existing table (its first line)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return tuple(next(csv.reader(handle), ()))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, str):  # one row, one line: what a torn row is told by depends on it
        return " ".join(value.splitlines())
    return value


def whole_rows(data: bytes) -> bytes:
    """``data`` up to its last line end: every row is written whole with its line end, so what
    follows it is a row still being written, or torn by a kill (maybe inside a character)."""
    return data[: data.rfind(b"\n") + 1]


def read_trials(path: Path) -> pd.DataFrame:
    """Read one study's ``trials.csv`` (or a folder holding one).

    A last row without its line end was torn by a kill during its write: it is dropped, with a
    warning, so the table holds every finished trial whole and nothing else.
    """
    path = Path(path)
    if path.is_dir():
        path = path / TRIALS_FILE
    data = path.read_bytes()
    whole = whole_rows(data)
    if whole != data:
        log.warning("%s: its last row was cut off mid-write (a killed process?): dropped it", path)
    if not whole:  # not even the header was written whole
        return pd.DataFrame(columns=list(all_columns(())))
    try:
        frame = pd.read_csv(io.BytesIO(whole), keep_default_na=True, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path} is not a trials table ({message_line(exc)})") from None
    missing = [c for c in KEY_COLUMNS + RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not a trials table: columns {missing} are missing")
    _check_cells(frame, path)
    return frame


NUMERIC_COLUMNS = (
    "seed",
    "trial",
    "val_loss",
    "epochs",
    "fit_seconds",
    "cum_epochs",
    "cum_seconds",
)


def _check_cells(frame: pd.DataFrame, path: Path) -> None:
    """Refuse a table whose rows are not trial rows (a line of something else appended, a cell
    edited by hand), naming the first bad row: every later computation trusts these types."""
    bad = ~frame["status"].isin(STATUSES)
    for column in NUMERIC_COLUMNS:
        if column in frame.columns:
            values = frame[column]
            numbers = pd.to_numeric(values, errors="coerce")
            bad |= numbers.isna() & values.notna()
            frame[column] = numbers
    if bad.any():
        line = int(bad.to_numpy().argmax()) + 2  # 1-based, after the header
        raise ValueError(
            f"{path}: line {line} is not a trial row (status or a number is wrong): remove "
            f"that line, or {start_over(path.parent)}"
        )


def cut_torn_tail(path: Path) -> bytes:
    """Cut a last row torn by a kill off the table at ``path`` (under its file lock, so not while
    a row is being appended; with a warning), so that the next row starts on a line of its own;
    returns the whole rows. A missing file holds none."""
    path = refuse_link(Path(path))  # truncating through a link would write outside --out
    if not path.exists():
        return b""
    with path.open("r+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        data = handle.read()
        whole = whole_rows(data)
        if whole != data:
            log.warning(
                "%s: its last row was cut off mid-write (a killed process?): removed it", path
            )
            handle.truncate(len(whole))
            handle.flush()
            os.fsync(handle.fileno())
    return whole


def repair_table(path: Path, columns: Sequence[str] | None = None) -> int:
    """Make ``trials.csv`` safe to append to again; returns how many whole rows it holds.

    A last row torn by a kill is cut off (`cut_torn_tail`). A table whose header is not
    ``columns`` (the study's: `all_columns` of its space) is refused; ``None`` checks nothing.
    """
    whole = cut_torn_tail(path)
    if not whole:
        return 0
    header, *rows = whole.decode("utf-8").splitlines()
    if columns is not None and next(csv.reader([header])) != list(columns):
        raise ValueError(
            f"{path} has other columns than this version writes: it cannot be continued; "
            f"{start_over(path.parent)}"
        )
    return len(rows)
