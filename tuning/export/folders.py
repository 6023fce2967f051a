"""The studies of a results folder as the exporters read them: finished or not, each with its
settings, its space and its rows."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tuning.core.atomic import read_json
from tuning.core.files import CONFIG_FILE, SUMMARY_FILE, folders_holding
from tuning.core.results import TRIALS_FILE, read_trials
from tuning.core.space import SearchSpace, default_space

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyRecord:
    """One study folder: its name, settings (``study.json``), summary (None until it finished),
    searched space and trial rows."""

    folder: Path
    name: str
    settings: dict[str, Any]
    summary: dict[str, Any] | None
    space: SearchSpace
    trials: pd.DataFrame

    @property
    def algorithm(self) -> str:
        recorded = (self.summary or self.settings).get("algorithm")
        if isinstance(recorded, dict):
            return str(recorded.get("name", ""))
        return str(recorded or self.settings.get("backend", ""))


def study_records(out: Path) -> list[StudyRecord]:
    """Every study folder under ``out`` holding rows, in name order; a folder that cannot be
    read is left out with a warning naming it and why."""
    records = []
    for folder in folders_holding(Path(out).resolve(), TRIALS_FILE):
        try:
            records.append(_record(folder))
        except (OSError, ValueError) as exc:
            log.warning("left out %s: %s", folder, exc)
    return records


def _record(folder: Path) -> StudyRecord:
    settings = read_json(folder / CONFIG_FILE, "not a study's settings")
    summary = (
        read_json(folder / SUMMARY_FILE, "not a study's summary")
        if (folder / SUMMARY_FILE).exists()
        else None
    )
    space_spec = settings.get("space") or {}
    space = SearchSpace.from_dict(space_spec) if space_spec else default_space()
    name = str(settings.get("study") or folder.name)
    return StudyRecord(folder, name, settings, summary, space, read_trials(folder))


def finite(value: Any) -> float | None:
    """A cell as a finite number, or None (missing, not a number, infinite or NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def row_params(row: dict[str, Any]) -> dict[str, Any]:
    """A row's configuration (its ``params`` cell, JSON); empty where the row has none."""
    return json.loads(row["params"]) if isinstance(row.get("params"), str) else {}


def curve_losses(text: Any) -> list[float | None]:
    """A row's per-epoch validation losses (its ``curve`` cell, a JSON list), epoch 1 first,
    None where an epoch's loss is not a finite number; empty where the row has no curve."""
    if not isinstance(text, str) or not text.strip():
        return []
    try:
        losses = json.loads(text)
    except ValueError:
        return []
    return [finite(v) for v in losses] if isinstance(losses, list) else []
