"""A study: one backend searching one dataset with one seed, then the winner retrained and tested."""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import re
import shutil
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tuning.backends import Budget, create_backend
from tuning.data import Dataset, load_dataset
from tuning.model import build_model
from tuning.objective import DATA_ARGUMENTS, Objective, TrainingProtocol
from tuning.results import TRIALS_FILE, StudyKey, TrialWriter, read_trials
from tuning.space import SearchSpace, default_space

log = logging.getLogger(__name__)
SUMMARY_FILE = "summary.json"
MODEL_FILE = "best_model.keras"


class StudyError(ValueError):
    """A study that cannot run as configured; the message names the field and the fix."""


@dataclass
class StudyConfig:
    """Everything that defines a study. Build it in code or from a TOML file (`from_toml`)."""

    backend: str
    dataset: str = "california"
    trials: int = 20
    max_epochs: int = 100
    batch_size: int = 32
    patience: int = 10
    seed: int = 0
    out: str = "results"
    study: str = ""
    target: str | None = None
    task: str | None = None
    max_rows: int | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    space: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.study:
            self.study = default_study_name(self.dataset, self.backend, self.seed)
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.study):
            raise StudyError(
                f"study name {self.study!r} may hold only letters, digits, '.', '_', '-'"
            )
        for name in ("trials", "max_epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise StudyError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_rows is not None and (not isinstance(self.max_rows, int) or self.max_rows < 8):
            raise StudyError(f"max_rows must be an integer >= 8, got {self.max_rows!r}")
        if self.task not in (None, "regression", "classification"):
            raise StudyError(f"task must be 'regression' or 'classification', got {self.task!r}")

    @property
    def study_dir(self) -> Path:
        return Path(self.out) / self.study

    def search_space(self) -> SearchSpace:
        """The space to search; it and ``model_options`` must name arguments of the factory."""
        space = SearchSpace.from_dict(self.space) if self.space else default_space()
        tunable = set(inspect.signature(build_model).parameters) - set(DATA_ARGUMENTS)
        for where, names in (
            ("space parameter", space.names),
            ("model_options key", self.model_options),
        ):
            for name in names:
                if name not in tunable:
                    raise StudyError(
                        f"{where} {name!r} is not an argument of build_model; "
                        f"tunable arguments: {sorted(tunable)}"
                    )
        both = sorted(set(space.names) & set(self.model_options))
        if both:
            raise StudyError(
                f"model_options {both} are also searched in the space: remove them from one of the two"
            )
        return space

    def protocol(self) -> TrainingProtocol:
        return TrainingProtocol(self.max_epochs, self.batch_size, self.patience)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> StudyConfig:
        """Read a study file: top-level keys are this class's fields (``[space.NAME]`` tables)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StudyError(f"study file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise StudyError(f"study file {path} is not valid TOML: {exc}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StudyError(
                f"study file {path}: unknown keys {unknown}; known keys: {sorted(known)}"
            )
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}  # --cv adds to the file's [backend_options]
            elif value is not None:
                data[key] = value
        return cls(**data)


def default_study_name(dataset: str, backend: str, seed: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.removeprefix("csv:")).strip("_") or "data"
    return f"{stem}_{backend}_s{seed}"


def prepare_study_dir(config: StudyConfig, fresh: bool) -> Path:
    """Create the study folder; refuse to mix a new search into an old one unless ``fresh``."""
    study_dir = config.study_dir
    if fresh and study_dir.exists():
        shutil.rmtree(study_dir)
    if (study_dir / TRIALS_FILE).exists():
        raise StudyError(
            f"study {config.study!r} already has results in {study_dir}: pass --fresh to start "
            "over, or --study NAME for a new one"
        )
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudyError(
            f"--out {config.out}: cannot create {study_dir} ({exc.strerror})"
        ) from None
    if not os.access(study_dir, os.W_OK):
        raise StudyError(f"--out {config.out}: {study_dir} is not writable; choose another folder")
    return study_dir


def run_study(
    config: StudyConfig, *, dataset: Dataset | None = None, fresh: bool = False
) -> dict[str, Any]:
    """Search, then retrain the best configuration, test it, and write ``summary.json``.

    Returns the summary. ``dataset`` may be passed to reuse arrays already loaded.
    """
    started = time.perf_counter()
    space = config.search_space()
    protocol = config.protocol()
    backend = create_backend(config.backend, **config.backend_options)
    if dataset is None:
        dataset = load_dataset(config.dataset, target=config.target, task=config.task)
    dataset = dataset.head(config.max_rows)
    study_dir = prepare_study_dir(config, fresh)
    key = StudyKey(config.study, config.backend, dataset.name, config.seed)
    objective = Objective(
        dataset,
        protocol,
        TrialWriter(study_dir / TRIALS_FILE, key),
        config.seed,
        config.model_options,
    )
    log.info(
        "study %s: %s on %s, %d trials", config.study, config.backend, dataset.name, config.trials
    )
    backend.run(objective, space, Budget(config.trials), config.seed, study_dir)
    search_seconds = time.perf_counter() - started
    return finalize(config, objective, space, study_dir, search_seconds, started)


def finalize(
    config: StudyConfig,
    objective: Objective,
    space: SearchSpace,
    study_dir: Path,
    search_seconds: float,
    started: float,
) -> dict[str, Any]:
    """Retrain the best trial's parameters once under the protocol; test, save, summarise."""
    trials = read_trials(study_dir)
    complete = trials[trials["status"] == "complete"].dropna(subset=["val_loss"])
    summary: dict[str, Any] = {
        "config": asdict(config),
        "study": config.study,
        "backend": config.backend,
        "dataset": objective.dataset.name,
        "task": objective.dataset.task,
        "seed": config.seed,
        "split_sizes": list(objective.dataset.sizes),
        "trials": int(len(trials)),
        "trials_complete": int(len(complete)),
        "trials_failed": int((trials["status"] == "failed").sum()),
        "epochs": int(trials["epochs"].sum()),
        "search_seconds": round(search_seconds, 3),
    }
    if complete.empty:
        summary["error"] = "every trial failed: no model to retrain; see the error column"
        log.error("study %s: every trial failed", config.study)
    else:
        best = complete.loc[complete["val_loss"].idxmin()]
        params = space.coerce(json.loads(best["params"]))
        model = objective.build(params)
        history, fit_seconds = objective.fit(model)
        test = model.evaluate(
            objective.dataset.X_test, objective.dataset.y_test, verbose=0, return_dict=True
        )
        model.save(study_dir / MODEL_FILE)
        summary.update(
            best_trial=int(best["trial"]),
            best_params=params,
            best_val_loss=float(best["val_loss"]),
            final_val_loss=float(min(history["val_loss"])),
            final_epochs=len(history["loss"]),
            final_fit_seconds=round(fit_seconds, 3),
            test_loss=float(test["loss"]),
            test_accuracy=float(test["accuracy"]) if "accuracy" in test else None,
            model_file=MODEL_FILE,
        )
    summary["wall_seconds"] = round(time.perf_counter() - started, 3)
    write_json(study_dir / SUMMARY_FILE, summary)
    return summary


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"cannot serialise {value!r}")
