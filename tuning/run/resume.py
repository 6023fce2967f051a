"""What an earlier run left in a study's folder: finished, half done, or started with other settings.

No Keras here: the grid's parent process uses it to skip finished studies.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tuning.core.atomic import create_json, is_temporary_of, read_json
from tuning.core.config import StudyConfig
from tuning.core.errors import StudyError, start_over
from tuning.core.evaluator import Evaluator
from tuning.core.files import CONFIG_FILE, LOG_FILE, SUMMARY_FILE
from tuning.core.ledger import TrialResult
from tuning.core.lock import LOCK_FILE
from tuning.core.results import TRIALS_FILE, read_trials, repair_table

log = logging.getLogger(__name__)
# Where a study of other settings goes instead (benchmark has no --study).
ANOTHER_FOLDER = "choose another --out (with `tuning run`: or --study NAME)"


def finished_summary(config: StudyConfig) -> dict[str, Any] | None:
    """The summary of an already finished study of this config, or None if it has to run.

    A finished study that was run with other settings is an error: its results would be mixed
    into a comparison they do not belong to.
    """
    path = config.study_dir / SUMMARY_FILE
    if not path.exists():
        return None
    try:
        summary = read_settings(path)
    except ValueError as exc:  # (`CorruptFile`, or a config that is not a table)
        # The rows are the study's record and the summary is made from them: a summary that
        # cannot be read is set aside, and the study is finished again (its winner retrained).
        aside = path.with_name(f"{SUMMARY_FILE}.unreadable")
        if aside.is_dir() and not aside.is_symlink():  # (set aside before, and a folder)
            shutil.rmtree(aside)
        path.replace(aside)
        log.warning("%s; kept as %s, and the study is finished again from its rows", exc, aside)
        return None
    differing = config.differences(summary.get("config") or {})
    if differing:
        raise StudyError(
            f"{config.study_dir} holds a finished study run with other settings "
            f"({', '.join(differing)}): move that folder away to run it again with these, or "
            f"{ANOTHER_FOLDER}"
        )
    return summary


def read_settings(path: Path) -> dict[str, Any]:
    """A study's JSON file (``study.json``, ``summary.json``) as a dict; a corrupt one is an
    error naming it."""
    remedy = start_over(path.parent)
    data = read_json(path, remedy)
    if not isinstance(data.get("config", {}), dict):
        raise StudyError(f"{path}: its config is not a table: {remedy}")
    return data


# What the harness writes in a study's folder; a folder holding none of them is not a study's,
# and --fresh refuses to empty it.
STUDY_MARKERS = (CONFIG_FILE, TRIALS_FILE, SUMMARY_FILE)


def clear_study(study_dir: Path) -> None:
    """Delete what earlier runs left (``--fresh``), all but the lock file the caller holds and
    the log a grid worker has open. Only a folder the harness made is emptied: one that holds
    other files but none of `STUDY_MARKERS`, or that is a link, is refused."""
    entries = [e for e in study_dir.iterdir() if e.name not in (LOCK_FILE, LOG_FILE)]
    if not entries:
        return
    if study_dir.is_symlink() or not any((study_dir / m).exists() for m in STUDY_MARKERS):
        raise StudyError(
            f"--fresh: {study_dir} is not a study's folder (no {CONFIG_FILE}, {TRIALS_FILE} or "
            f"{SUMMARY_FILE}), so nothing in it is deleted; choose another --study or --out"
        )
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _record_settings(config: StudyConfig, algorithm: dict[str, Any] | None) -> bool:
    """A new study's first step: create its settings file, in a folder holding nothing of a
    user's. False where a process sharing the study created it first (the caller then checks
    its own settings against it)."""
    study_dir = config.study_dir
    settings = study_dir / CONFIG_FILE
    trials = (study_dir / TRIALS_FILE).exists()
    others = sorted(
        e.name
        for e in study_dir.iterdir()
        if e.name not in (LOCK_FILE, LOG_FILE) and not is_temporary_of(e.name, CONFIG_FILE)
    )
    # Processes sharing a study start together: what one finds may be what another has just
    # written, settings first
    if settings.exists():
        return False
    if trials:
        raise StudyError(
            f"{study_dir} holds trials but no {CONFIG_FILE} (an older version's study?): "
            f"{start_over(study_dir)}, or {ANOTHER_FOLDER}"
        )
    if others:  # a folder of the user's: a study there would make --fresh empty it later
        raise StudyError(
            f"{study_dir} already holds files that are not a study's ({', '.join(others[:3])}"
            f"{', ...' if len(others) > 3 else ''}): {ANOTHER_FOLDER}"
        )
    return create_json(
        settings, {**config.recorded(), **({"algorithm": algorithm} if algorithm else {})}
    )


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
    config: StudyConfig,
    *,
    shared: bool = False,
    algorithm: dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
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
    if not settings.exists() and _record_settings(config, algorithm):
        return EarlierRun(pd.DataFrame())
    differing = config.differences(read_settings(settings))
    if differing:
        raise StudyError(
            f"study {config.study!r} in {study_dir} was started with other settings "
            f"({', '.join(differing)}): run it with the same ones to resume it, "
            f"{start_over(study_dir)}, or {ANOTHER_FOLDER}"
        )
    if not repair_table(table, columns):
        return EarlierRun(pd.DataFrame())
    trials = read_trials(table)
    numbers = trials["trial"].tolist()
    if (not shared and numbers != list(range(len(trials)))) or len(set(numbers)) != len(numbers):
        raise StudyError(
            f"{table}: trial numbers are not 0..{len(trials) - 1} in order (rows from elsewhere?): "
            f"{start_over(study_dir)}"
        )
    cum_epochs = trials["cum_epochs"].astype(int).tolist()
    idle = 0
    for before, after in zip([0, *cum_epochs], cum_epochs, strict=False):
        idle = idle + 1 if after == before else 0
    log.info("study %s: resuming after %d finished trials", config.study, len(trials))
    return EarlierRun(trials, cum_epochs[-1], float(trials["cum_seconds"].iloc[-1]), idle)


def carry_over(earlier: EarlierRun, evaluator: Evaluator, shared: bool) -> None:
    """What the study's earlier runs finished, handed to its evaluator: their rows to the
    resume ledger, their spending to the budget meter (a study shared through a storage starts
    its meter at zero: its rows are other processes' spending)."""
    evaluator.ledger.load([TrialResult.from_row(row) for _, row in earlier.trials.iterrows()])
    if shared:
        evaluator.meter.restore(0, 0, 0.0)
    else:
        evaluator.meter.restore(len(earlier), earlier.epochs, earlier.seconds, earlier.idle_trials)
