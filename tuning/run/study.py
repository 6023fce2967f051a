"""A study: one backend searching one dataset with one seed, then the winner retrained and tested."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import keras
import pandas as pd

from tuning.core.atomic import write_json
from tuning.core.budget import BudgetMeter
from tuning.core.errors import FinalBuildError, StudyError
from tuning.core.files import SUMMARY_FILE, replace_with, writable_folder
from tuning.core.ledger import ResumeLedger, TrialResult
from tuning.core.lock import study_lock
from tuning.core.results import TRIALS_FILE, StudyKey, TrialWriter, all_columns, read_trials
from tuning.core.signals import StopSignals
from tuning.core.space import SearchSpace
from tuning.core.versions import library_versions
from tuning.evaluation.data import Dataset, load_dataset
from tuning.evaluation.keras.environment import use_keras_backend
from tuning.evaluation.keras.factory import check_builds, study_padding
from tuning.evaluation.keras.objective import Objective, factory_arguments, release_models
from tuning.evaluation.tabular.lookup import TableEvaluator
from tuning.evaluation.tabular.table import load_table
from tuning.run.config import StudyConfig
from tuning.run.resume import clear_study, finished_summary, start_or_resume
from tuning.search import create_backend
from tuning.search.base import SearchTask

CHECKPOINTS_DIR = "checkpoints"  # each trial's weights, for a search that continues trials
log = logging.getLogger(__name__)
MODEL_FILE = "best_model.keras"


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
    config = config.resolve()  # (a resolved config, as the grid's workers get: as it is)
    use_keras_backend(config.keras_backend)  # only checks: Keras is imported by now
    space = config.search_space()
    protocol = config.protocol()
    backend = create_backend(config.backend, **config.backend_options)
    backend.check()
    table = None if config.table is None else load_table(config.table)
    if table is not None:  # trials looked up: the table's data, its grid searched
        table.check_space(space)
        dataset = table.dataset()
    else:
        if dataset is None:
            dataset = load_dataset(config.dataset, target=config.target, task=config.task)
        dataset = dataset.head(config.max_rows)
        if config.model is not None or config.space or config.model_options:  # the user's
            check_model(config, dataset, space)
    budget = config.budget()
    shared = backend.shares_study
    if fresh and shared:
        raise StudyError(
            "--fresh cannot start over a study shared through --storage (other processes may be "
            "working on it): delete it from the storage and its folder, or use --study NAME"
        )
    key = StudyKey(config.study, config.backend, dataset.name, config.seed, backend.algorithm_name)
    writer = TrialWriter(config.study_dir / TRIALS_FILE, key, space.names)
    ledger = ResumeLedger(backend=config.backend)  # loaded once the table is read
    evaluator: Objective | TableEvaluator
    training = None
    if table is not None:
        evaluator = TableEvaluator(
            table, space, writer, ledger, config.seed, protocol.max_epochs, budget, stop
        )
    else:
        factory = config.factory()
        evaluator = Objective(
            dataset,
            protocol,
            writer,
            seed=config.noise_seed,
            model_options=config.model_options,
            meter=BudgetMeter(budget),
            stop=stop,
            factory=factory,
            padding=study_padding(
                factory, space, len(dataset.X_train), protocol.max_epochs, dataset.n_inputs
            ),
            checkpoints=config.study_dir / CHECKPOINTS_DIR if backend.warm_starts else None,
            ledger=ledger,
        )
        training = evaluator.keras_training()
    meter = evaluator.meter
    task = SearchTask(
        evaluator=evaluator,
        meter=meter,
        ledger=ledger,
        space=space,
        budget=budget,
        seed=config.seed,
        max_epochs=protocol.max_epochs,
        workdir=config.study_dir,
        training=training,
    )
    algorithm = {
        "name": backend.algorithm_name,
        **backend.settings_for(task),
        "versions": library_versions(),
    }
    study_dir = writable_folder(config.study_dir, f"--out {config.out}")
    with study_lock(study_dir, shared=shared):
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
        earlier = start_or_resume(
            config, shared=shared, algorithm=algorithm, columns=all_columns(space.names)
        )
        ledger.load([TrialResult.from_row(row) for _, row in earlier.trials.iterrows()])
        # the search's clock starts here (a shared study's rows are other processes' spending)
        if shared:
            meter.restore(0, 0, 0.0)
        else:
            meter.restore(len(earlier), earlier.epochs, earlier.seconds, earlier.idle_trials)
        log.info(
            "study %s: %s on %s, budget %s", config.study, config.backend, dataset.name, budget
        )
        if not meter.exhausted:  # else killed after its last trial: only the retraining is left
            backend.search(task)
        spent = meter.spent()  # the search's spend, before the winner is retrained
        if meter.idle_trials >= meter.MAX_IDLE_TRIALS:
            log.warning(
                "study %s stopped: %d trials in a row trained nothing (see their error column)",
                config.study,
                meter.idle_trials,
            )
        search_seconds = time.perf_counter() - started
        if not shared and table is None:  # (a tabular study's earlier rows hold simulated time)
            search_seconds += earlier.seconds
        summary = finalize(config, evaluator, space, study_dir, search_seconds, started, spent)
        summary["trials_from_earlier_runs"] = len(earlier)
        summary["algorithm"] = algorithm
        write_json(study_dir / SUMMARY_FILE, summary)
        return summary


def check_model(config: StudyConfig, dataset: Dataset, space: SearchSpace) -> None:
    """Build the study's model with each parameter at its lowest value, and once with each other
    choice of each categorical parameter (`SearchSpace.each_choice`), and refuse a factory that
    fails or does not return a compiled Keras model, in one line."""
    factory = config.factory()
    protocol = config.protocol()
    padding = study_padding(
        factory, space, len(dataset.X_train), protocol.max_epochs, dataset.n_inputs
    )
    for params in space.each_choice():
        options = {**padding.arguments(params), **config.model_options}
        fixed = factory_arguments(factory, dataset, protocol, config.noise_seed, options)
        check_builds(factory, config.model, {**params, **fixed})
        release_models()


def save_model(model: keras.Model, path: Path) -> None:
    """`keras.Model.save`, without importing TensorFlow on another backend.

    Keras' serializer asks whether TensorFlow is available (``tf.available`` imports it: 4-7 s
    of every study on JAX) only to test whether an object is a TensorFlow type, which nothing
    can be while TensorFlow was never imported. For the save, that question is answered "no";
    the answer is forgotten afterwards, so a later use of TensorFlow imports it as before.
    """
    from keras.src.utils import module_utils  # the lazy module Keras' serializer asks

    lazy = getattr(module_utils, "tensorflow", None)
    pretend = (
        keras.backend.backend() != "tensorflow"
        and "tensorflow" not in sys.modules
        and lazy is not None
        and getattr(lazy, "_available", False) is None
    )
    if pretend:
        lazy._available = False
    try:
        replace_with(path, model.save)  # whole or not at all, never through a link
    finally:
        if pretend:
            lazy._available = None


def finalize(
    config: StudyConfig,
    evaluator: Objective | TableEvaluator,
    space: SearchSpace,
    study_dir: Path,
    search_seconds: float,
    started: float,
    spent: dict[str, Any],
) -> dict[str, Any]:
    """Retrain the best trial's parameters once under the protocol; test, save the model, and
    return the summary (the caller writes it: its presence marks the study finished)."""
    if (study_dir / TRIALS_FILE).exists():
        trials = read_trials(study_dir)
    else:  # the budget ran out before a trial finished
        trials = pd.DataFrame(columns=list(all_columns(space.names)))
    complete = trials[trials["status"] == "complete"].dropna(subset=["val_loss"])
    summary: dict[str, Any] = {
        "config": config.recorded(),
        "study": config.study,
        "backend": config.backend,
        "dataset": evaluator.dataset.name,
        "task": evaluator.dataset.task,
        "seed": config.seed,
        "split_sizes": list(evaluator.dataset.sizes),
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
            final, model = evaluator.final_result(params)
        except FinalBuildError as exc:  # the user's factory: no model, the trials kept
            summary["error"] = f"the winner (trial {summary['best_trial']}) {exc}"
            log.error("study %s: %s", config.study, summary["error"])
            final, model = {}, None
        if model is not None:
            save_model(model, study_dir / MODEL_FILE)
            final["model_file"] = MODEL_FILE
        summary.update(final)
    summary["wall_seconds"] = round(time.perf_counter() - started, 3)
    return summary
