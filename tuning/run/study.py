"""A study: one backend searching one dataset with one seed, then the winner retrained and tested.

What evaluates its trials is built by its kind of objective (`tuning.evaluation.objectives`);
a study sees only the `tuning.core.evaluator.Evaluator` contract. No Keras here.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from tuning.core.atomic import write_json
from tuning.core.config import StudyConfig
from tuning.core.errors import FinalBuildError, StudyError
from tuning.core.evaluator import Evaluator
from tuning.core.files import SUMMARY_FILE, writable_folder
from tuning.core.lock import study_lock
from tuning.core.results import TRIALS_FILE, all_columns, read_trials
from tuning.core.signals import StopSignals
from tuning.core.versions import library_versions
from tuning.evaluation.data import Dataset
from tuning.evaluation.keras.environment import use_keras_backend
from tuning.evaluation.objectives import build_evaluator, resolve
from tuning.run.resume import carry_over, clear_study, finished_summary, start_or_resume
from tuning.search import BackendError, create_backend, search_with
from tuning.search.base import SearchBackend, SearchTask

log = logging.getLogger(__name__)
# A table's study of one worker runs on one simulated worker too, where its algorithm has a
# parallel mode: every worker count of a comparison on one clock. (Its sequential loop proposes
# the same: tests/test_workers.py checks it by turning this off.)
ONE_WORKER_SIMULATED = True


def run_study(
    config: StudyConfig,
    *,
    dataset: Dataset | None = None,
    fresh: bool = False,
    stop: StopSignals | None = None,
) -> dict[str, Any]:
    """Search, then retrain the best configuration, test it, and write ``summary.json``.

    Returns the summary. ``dataset`` may be passed to reuse arrays already loaded. One process at
    a time runs a study (`tuning.core.lock`). A study an earlier run left unfinished (killed,
    interrupted) is resumed: its finished trials are kept and the search goes on from them; a
    finished one returns its summary. ``fresh`` deletes what earlier runs left and starts over.
    Under ``stop`` (`tuning.core.signals.StopSignals`), Ctrl-C and SIGTERM are never lost; the trial
    they stop writes no row.
    """
    started = time.perf_counter()
    config = resolve(config)  # (a resolved config, as the grid's workers get: as it is)
    use_keras_backend(config.keras_backend)  # before a library or the evaluator imports Keras
    backend = create_backend(config.backend, **config.backend_options)
    backend.check()
    shared = backend.shares_study
    if fresh and shared:
        raise StudyError(
            "--fresh cannot start over a study shared through --storage (other processes may be "
            "working on it): delete it from the storage and its folder, or use --study NAME"
        )
    evaluator = build_evaluator(
        config,
        algorithm=backend.algorithm_name,
        keeps_weights=backend.warm_starts,
        dataset=dataset,
        stop=stop,
    )
    task = SearchTask(
        evaluator=evaluator,
        meter=evaluator.meter,
        ledger=evaluator.ledger,
        space=evaluator.space,
        budget=config.budget(),
        seed=config.seed,
        max_epochs=config.max_epochs,
        workdir=config.study_dir,
    )
    algorithm = {"name": backend.algorithm_name, **backend.settings_for(task)}
    parallel = parallel_run(config, backend, evaluator)  # refused before anything is written
    if parallel is not None:
        algorithm["parallel"] = parallel
        task = replace(task, workers=evaluator.workers(config.workers))
    algorithm["versions"] = library_versions()
    study_dir = writable_folder(config.study_dir, f"--out {config.out}")
    # (worker processes start with the workers: they end with this block, however it ends)
    with study_lock(study_dir, shared=shared), task.workers or nullcontext():
        if fresh:
            clear_study(study_dir)
        summary = finished_summary(config)
        if summary is not None:
            log.warning(
                "study %s finished before (%s): nothing to do; pass --fresh to run it again",
                config.study,
                study_dir / SUMMARY_FILE,
            )
            return summary
        columns = all_columns(evaluator.space.names)
        earlier = start_or_resume(config, shared=shared, algorithm=algorithm, columns=columns)
        carry_over(earlier, evaluator, shared)
        meter = evaluator.meter
        log.info(
            "study %s: %s on %s, budget %s",
            config.study,
            config.backend,
            evaluator.data().name,
            task.budget,
        )
        # killed after its last trial: only the retraining is left (simulated workers play the
        # study again from its start, and check its rows)
        if task.workers is not None or not meter.exhausted:
            search_with(config.backend, backend, task)
        spent = meter.spent()  # the search's spend, before the winner is retrained
        if meter.idle_trials >= meter.MAX_IDLE_TRIALS:
            log.warning(
                "study %s stopped: %d trials in a row trained nothing (see their error column)",
                config.study,
                meter.idle_trials,
            )
        search_seconds = time.perf_counter() - started
        if not shared and not evaluator.simulated_clock:  # (a table's rows: simulated time)
            search_seconds += earlier.seconds
        summary = finalize(config, evaluator, study_dir, search_seconds, started, spent)
        summary["trials_from_earlier_runs"] = len(earlier)
        summary["algorithm"] = algorithm
        if task.workers is not None:
            summary["workers"] = task.workers.report()
        write_json(study_dir / SUMMARY_FILE, summary)
        return summary


def parallel_run(config: StudyConfig, backend: SearchBackend, evaluator: Evaluator) -> str | None:
    """The library's parallel mode where the study runs on the evaluator's workers (N > 1, or
    a table's one worker where the algorithm has a parallel mode: `ONE_WORKER_SIMULATED`);
    None where it runs the sequential loop."""
    if config.workers == 1 and not (
        ONE_WORKER_SIMULATED
        and evaluator.simulated_clock
        and backend.parallel_mode() is not None
        and not backend.shares_study
    ):
        return None
    return parallel_mode(backend, config.workers)


def check_parallel_modes(configs: list[StudyConfig]) -> None:
    """A grid's studies of N > 1 workers: each algorithm has a parallel mode and no shared
    storage; refused in one line before any study starts."""
    for config in configs:
        if config.workers > 1:
            parallel_mode(create_backend(config.backend, **config.backend_options), config.workers)


def parallel_mode(backend: SearchBackend, workers: int) -> str:
    """The library's own mechanism for ``workers`` trials at once; refused in one line for an
    algorithm that has none, or whose study is shared through a storage."""
    if backend.shares_study:
        raise BackendError(f"--workers {workers} with --storage: drop one of the two")
    mode = backend.parallel_mode()
    if mode is None:
        raise BackendError(
            f"--workers {workers}: {backend.algorithm_name} has no parallel mode (it proposes "
            "one trial after another); drop --workers, or see `tuning backends` for those that have"
        )
    return mode


def finalize(
    config: StudyConfig,
    evaluator: Evaluator,
    study_dir: Path,
    search_seconds: float,
    started: float,
    spent: dict[str, Any],
) -> dict[str, Any]:
    """Retrain the best trial's parameters once under the protocol; test, save the model, and
    return the summary (the caller writes it: its presence marks the study finished)."""
    space, data = evaluator.space, evaluator.data()
    if (study_dir / TRIALS_FILE).exists():
        trials = read_trials(study_dir)
    else:  # the budget ran out before a trial finished
        trials = pd.DataFrame(columns=list(all_columns(space.names)))
    complete = trials[trials["status"] == "complete"].dropna(subset=["val_loss"])
    summary: dict[str, Any] = {
        "config": config.recorded(),
        "study": config.study,
        "backend": config.backend,
        "dataset": data.name,
        "task": data.task,
        "seed": config.seed,
        "split_sizes": list(data.sizes),
        "trials": int(len(trials)),
        "trials_complete": int(len(complete)),
        "trials_failed": int((trials["status"] == "failed").sum()),
        "trials_pruned": int((trials["status"] == "pruned").sum()),
        "epochs": int(trials["epochs"].sum()),
        "search_seconds": round(search_seconds, 3),
        "budget": config.budget().as_dict(),
        "spent": spent,
    }
    if complete.empty:
        summary["error"] = (
            "no trial completed: no model to retrain; see the status and error columns"
            if len(trials)
            else "no trial finished within the budget: give it more"
        )
        log.error("study %s: %s", config.study, summary["error"])
    else:
        best = complete.loc[complete["val_loss"].idxmin()]
        params = space.coerce(json.loads(best["params"]))
        summary.update(
            best_trial=int(best["trial"]), best_params=params, best_val_loss=float(best["val_loss"])
        )
        try:
            summary.update(evaluator.final_result(params, study_dir))
        except FinalBuildError as exc:  # the user's factory: no model, the trials kept
            summary["error"] = f"the winner (trial {summary['best_trial']}) {exc}"
            log.error("study %s: %s", config.study, summary["error"])
    summary["wall_seconds"] = round(time.perf_counter() - started, 3)
    return summary
