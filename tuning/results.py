"""The common results table: one row per trial, the same columns for every backend.

Rows are appended and flushed to disk as each trial ends, so a study that stops early keeps every
finished trial.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)
TRIALS_FILE = "trials.csv"
STATUSES = ("complete", "failed", "pruned")

# These columns come first, in this order, in every trials.csv; more may follow.
TRIAL_COLUMNS = (
    "study",
    "backend",
    "dataset",
    "seed",
    "trial",
    "status",
    "n_hidden",
    "n_neurons",
    "learning_rate",
    "val_loss",
    "epochs",
    "fit_seconds",
)
EXTRA_COLUMNS = ("cum_epochs", "cum_seconds", "params", "error")
ALL_COLUMNS = TRIAL_COLUMNS + EXTRA_COLUMNS


@dataclass(frozen=True)
class StudyKey:
    """What every row of one study shares."""

    study: str
    backend: str
    dataset: str
    seed: int


class TrialWriter:
    """Appends trial rows to ``trials.csv``; each row is flushed and fsynced as it is written."""

    def __init__(self, path: Path, key: StudyKey) -> None:
        self.path = Path(path)
        self.key = key

    def append(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if row.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {row.get('status')!r}")
        full = {
            "study": self.key.study,
            "backend": self.key.backend,
            "dataset": self.key.dataset,
            "seed": self.key.seed,
            **row,
        }
        unknown = set(full) - set(ALL_COLUMNS)
        if unknown:
            raise ValueError(f"unknown trial columns {sorted(unknown)}")
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=ALL_COLUMNS)
            if new_file:
                writer.writeheader()
            writer.writerow({k: _cell(full.get(k)) for k in ALL_COLUMNS})
            handle.flush()
            os.fsync(handle.fileno())
        return full


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


def whole_rows(text: str) -> str:
    """``text`` up to its last line end: every row is written whole with its line end, so what
    follows it is a row still being written, or torn by a kill."""
    return text[: text.rfind("\n") + 1]


def read_trials(path: Path) -> pd.DataFrame:
    """Read one study's ``trials.csv`` (or a folder holding one).

    A last row without its line end was torn by a kill during its write: it is dropped, with a
    warning, so the table holds every finished trial whole and nothing else.
    """
    path = Path(path)
    if path.is_dir():
        path = path / TRIALS_FILE
    text = path.read_text(encoding="utf-8")
    whole = whole_rows(text)
    if whole != text:
        log.warning("%s: its last row was cut off mid-write (a killed process?): dropped it", path)
    if not whole:  # not even the header was written whole
        return pd.DataFrame(columns=list(ALL_COLUMNS))
    frame = pd.read_csv(io.StringIO(whole), keep_default_na=True)
    missing = [c for c in TRIAL_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not a trials table: columns {missing} are missing")
    return frame
