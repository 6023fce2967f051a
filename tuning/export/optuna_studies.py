"""``tuning export optuna``: every study of a results folder, whatever library ran it, as an
Optuna study in one storage, so that optuna-dashboard shows all libraries side by side.

Each study becomes an Optuna study of its name (minimize the validation loss): distributions
from its search space, one trial per row with its state (complete, pruned, failed), the
per-epoch validation losses as intermediate values where the row recorded them (``curve``),
and the backend, algorithm, seed and task as user attributes. Exporting again replaces what an
earlier export wrote, and never touches a study that the export did not write.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from tuning.analysis.importance import to_optuna_distribution
from tuning.core.errors import StudyError, first_line
from tuning.core.urls import check_url, redact
from tuning.export.folders import StudyRecord, curve_losses, finite, row_params, study_records

log = logging.getLogger(__name__)
EXPORT_MARK = "tuning_export"  # the study user attribute naming the folder it was exported from
STATES = {
    "complete": optuna.trial.TrialState.COMPLETE,
    "pruned": optuna.trial.TrialState.PRUNED,
    "failed": optuna.trial.TrialState.FAIL,
}
ROW_ATTRIBUTES = ("epochs", "cum_epochs", "cum_seconds", "fit_seconds", "worker", "error")


@dataclass(frozen=True)
class Exported:
    """One study written to the storage: its name and how many trials it holds."""

    name: str
    trials: int


def export_to_optuna(out: Path, storage_url: str) -> list[Exported]:
    """Write every study under ``out`` to the Optuna storage at ``storage_url`` (a database
    URL); returns what was written. A study of the same name that this export did not write
    (a real Optuna study) is refused in one line, before anything is written."""
    check_url(storage_url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # (a line per study created: noise)
    records = study_records(out)
    if not records:
        raise StudyError(
            f"{out} holds no readable study (no trials.csv under it, or each left out above): "
            "nothing to export"
        )
    folders: dict[str, Path] = {}
    for record in records:
        if record.name in folders:
            raise StudyError(
                f"two studies named {record.name!r} ({folders[record.name]} and "
                f"{record.folder}): export each folder into a storage of its own"
            )
        folders[record.name] = record.folder
    # every row made an Optuna trial first: a row that cannot be one stops the export before
    # anything of the storage is touched
    studies = [(record, _trials(record)) for record in records]
    try:
        storage = optuna.storages.RDBStorage(storage_url)
    except Exception as exc:  # a driver's error may quote the URL: shown without its secrets
        raise StudyError(
            f"--storage: cannot open the storage: {redact(first_line(exc), storage_url)}"
        ) from None
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    for record in records:
        found = existing.get(record.name)
        if found is None:
            continue
        source = found.user_attrs.get(EXPORT_MARK)
        if source is None:
            raise StudyError(
                f"--storage already holds an Optuna study named {record.name!r} that no export "
                "wrote: export into another storage (or delete that study)"
            )
        if source != str(record.folder):
            raise StudyError(
                f"--storage already holds {record.name!r} exported from {source}, another "
                "folder: export this one into another storage"
            )
    exported = []
    for record, trials in studies:
        if record.name in existing:
            optuna.delete_study(study_name=record.name, storage=storage)
        exported.append(_write(record, trials, storage))
    return exported


def _trials(record: StudyRecord) -> list[optuna.trial.FrozenTrial]:
    distributions = {p.name: to_optuna_distribution(p) for p in record.space}
    return [_trial(record, row, distributions) for row in record.trials.to_dict("records")]


def _write(
    record: StudyRecord,
    trials: list[optuna.trial.FrozenTrial],
    storage: optuna.storages.BaseStorage,
) -> Exported:
    study = optuna.create_study(study_name=record.name, storage=storage, direction="minimize")
    settings = record.settings
    attributes = {
        EXPORT_MARK: str(record.folder),
        "backend": settings.get("backend"),
        "algorithm": record.algorithm,
        "seed": settings.get("seed"),
        "task": settings.get("dataset") or settings.get("objective"),
        "finished": record.summary is not None,
    }
    if record.summary is not None:
        attributes["test_loss"] = record.summary.get("test_loss")
    for key, value in attributes.items():
        study.set_user_attr(key, value)
    study.add_trials(trials)
    return Exported(record.name, len(trials))


def _trial(
    record: StudyRecord,
    row: dict[str, Any],
    distributions: dict[str, optuna.distributions.BaseDistribution],
) -> optuna.trial.FrozenTrial:
    params = row_params(row)
    params = {k: v for k, v in params.items() if k in distributions}
    loss = finite(row.get("val_loss"))
    state = STATES.get(str(row.get("status")), optuna.trial.TrialState.FAIL)
    if state == optuna.trial.TrialState.COMPLETE and loss is None:
        state = optuna.trial.TrialState.FAIL  # (a diverged trial: no value to rank)
    attributes = {
        "trial": int(row["trial"]),
        "backend": row.get("backend"),
        "seed": row.get("seed"),
        "algorithm": row.get("algorithm") or record.algorithm,
    }
    attributes |= {k: _plain(row.get(k)) for k in ROW_ATTRIBUTES if _plain(row.get(k)) is not None}
    try:
        return optuna.trial.create_trial(
            state=state,
            value=loss if state == optuna.trial.TrialState.COMPLETE else None,
            params=params,
            distributions={k: distributions[k] for k in params},
            user_attrs=attributes,
            intermediate_values={
                epoch: loss
                for epoch, loss in enumerate(curve_losses(row.get("curve")), start=1)
                if loss is not None
            },
        )
    except ValueError as exc:
        raise StudyError(
            f"{record.folder}: trial {row['trial']} cannot be an Optuna trial "
            f"({first_line(exc)}): its parameters are outside the study's recorded space"
        ) from None


def _plain(value: Any) -> Any:
    """A row's value as a JSON value Optuna stores (None for a missing cell)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if pd.api.types.is_integer(value):
        return int(value)
    if pd.api.types.is_float(value):
        return float(value)
    return str(value)
