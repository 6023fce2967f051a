"""What an earlier run left in a study's folder: finished, half done, or started with other settings.

No Keras here: the grid's parent process uses it to skip finished studies.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tuning.atomic import write_json
from tuning.config import CONFIG_FILE, LOG_FILE, SUMMARY_FILE, StudyConfig, StudyError
from tuning.lock import LOCK_FILE
from tuning.results import TRIALS_FILE, read_trials, repair_table

log = logging.getLogger(__name__)


def finished_summary(config: StudyConfig) -> dict[str, Any] | None:
    """The summary of an already finished study of this config, or None if it has to run.

    A finished study that was run with other settings is an error: its results would be mixed
    into a comparison they do not belong to.
    """
    path = config.study_dir / SUMMARY_FILE
    if not path.exists():
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    differing = config.differences(summary.get("config", {}))
    if differing:
        raise StudyError(
            f"{config.study_dir} holds a finished study run with other settings "
            f"({', '.join(differing)}): pass --fresh to run it again, or choose another --out "
            "or --study"
        )
    return summary


def clear_study(study_dir: Path) -> None:
    """Delete what earlier runs left (``--fresh``), all but the lock file the caller holds and
    the log a grid worker has open."""
    for entry in study_dir.iterdir():
        if entry.name in (LOCK_FILE, LOG_FILE):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@dataclass(frozen=True)
class EarlierRun:
    """The trials an interrupted run of the study finished, and what they spent."""

    trials: pd.DataFrame
    epochs: int = 0
    seconds: float = 0.0
    idle_trials: int = 0  # trials at the end that trained no epoch (see `BudgetMeter`)

    def __len__(self) -> int:
        return len(self.trials)


def start_or_resume(
    config: StudyConfig, *, shared: bool = False, algorithm: dict[str, Any] | None = None
) -> EarlierRun:
    """Record the study's settings on its first run; on a later run check that they are the
    same, make the table safe to append to, and return what the earlier runs finished.
    ``algorithm``: the backend's algorithm and the settings it resolved (`SearchBackend.settings`),
    recorded beside the study's settings for the reader (the settings decide them).

    Call it holding the study's lock, after `finished_summary` found the study unfinished.
    ``shared``: several processes add rows to the table (see `SearchBackend.shares_study`), in
    the order their trials end: the trial numbers are checked to be unique, not in order.
    """
    study_dir = config.study_dir
    settings, table = study_dir / CONFIG_FILE, study_dir / TRIALS_FILE
    if not settings.exists():
        if table.exists():
            raise StudyError(
                f"{study_dir} holds trials but no {CONFIG_FILE} (an older version's study?): "
                "pass --fresh to start it over, or --study NAME for a new one"
            )
        write_json(
            settings, {**config.recorded(), **({"algorithm": algorithm} if algorithm else {})}
        )
        return EarlierRun(pd.DataFrame())
    differing = config.differences(json.loads(settings.read_text(encoding="utf-8")))
    if differing:
        raise StudyError(
            f"study {config.study!r} in {study_dir} was started with other settings "
            f"({', '.join(differing)}): run it with the same ones to resume it, pass --fresh to "
            "start it over, or --study NAME for a new one"
        )
    if not repair_table(table):
        return EarlierRun(pd.DataFrame())
    trials = read_trials(table)
    numbers = trials["trial"].tolist()
    if (not shared and numbers != list(range(len(trials)))) or len(set(numbers)) != len(numbers):
        raise StudyError(
            f"{table}: trial numbers are not 0..{len(trials) - 1} in order (rows from elsewhere?): "
            "pass --fresh to start the study over"
        )
    cum_epochs = trials["cum_epochs"].astype(int).tolist()
    idle = 0
    for before, after in zip([0, *cum_epochs], cum_epochs, strict=False):
        idle = idle + 1 if after == before else 0
    log.info("study %s: resuming after %d finished trials", config.study, len(trials))
    return EarlierRun(trials, cum_epochs[-1], float(trials["cum_seconds"].iloc[-1]), idle)
