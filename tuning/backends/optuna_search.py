"""Optuna: a TPE-sampled study stored in SQLite inside the study folder, which a resumed study
loads again (`optuna.create_study(load_if_exists=True)`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from tuning.backends.base import Budget, SearchBackend
from tuning.objective import Objective
from tuning.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace

STORAGE_FILE = "optuna.db"
ROW = "row"  # user attribute: the trial's number in the study's table
_ENDED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def suggest(trial: optuna.Trial, param: Param) -> Any:
    """Ask an Optuna trial for one parameter of the neutral space."""
    if isinstance(param, IntParam):
        return trial.suggest_int(param.name, param.low, param.high, log=param.log)
    if isinstance(param, FloatParam):
        return trial.suggest_float(param.name, param.low, param.high, log=param.log)
    if isinstance(param, CategoricalParam):
        return trial.suggest_categorical(param.name, list(param.choices))
    raise TypeError(f"unsupported parameter {param!r}")


class OptunaBackend(SearchBackend):
    """`optuna.create_study` with a seeded `TPESampler`; trials run through `study.optimize`.

    Args:
        n_startup_trials: random trials before TPE models the results (default: a third of the
            budget's expected trials, at most 10; see `Budget.random_start`).
    """

    name = "optuna"

    def __init__(self, n_startup_trials: int | None = None) -> None:
        self.n_startup_trials = n_startup_trials

    def run(
        self, objective: Objective, space: SearchSpace, budget: Budget, seed: int, workdir: Path
    ) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name=workdir.name,
            storage=f"sqlite:///{(workdir / STORAGE_FILE).resolve()}",
            direction="minimize",
            load_if_exists=True,  # a resumed study continues from its storage
        )
        settle_interrupted(study, objective)
        # The sampler's random stream does not depend on the trials already stored: a resumed
        # study seeded as the first run was would draw that run's first configurations again.
        stored = len(study.trials)
        study.sampler = optuna.samplers.TPESampler(
            seed=seed
            if not stored
            else int(np.random.SeedSequence([seed, stored]).generate_state(1)[0]),
            n_startup_trials=budget.random_start(
                self.n_startup_trials, objective.protocol.max_epochs
            ),
        )

        def evaluate(trial: optuna.Trial) -> float:
            params = space.coerce({p.name: suggest(trial, p) for p in space})
            trial.set_user_attr(ROW, objective.n_recorded)  # stored before the trial trains
            result = objective(params)
            trial.set_user_attr("epochs", result.epochs)
            if not result.ok:
                trial.set_user_attr("error", result.error)
                return math.nan  # Optuna records a NaN objective as a FAILED trial
            return result.val_loss

        def stop_when_spent(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
            if objective.meter.exhausted:  # an epoch or seconds budget, or the trial count
                study.stop()

        remaining = None if budget.trials is None else budget.trials - objective.meter.trials
        study.optimize(evaluate, n_trials=remaining, callbacks=[stop_when_spent], catch=())


def settle_interrupted(study: optuna.Study, objective: Objective) -> None:
    """End the trials that an earlier, killed run left RUNNING in the storage.

    One whose row reached the table (the kill came after the row, before Optuna's own record)
    is told the row's result; one killed while it trained is marked FAIL, and its configuration
    is not in the table. Then every row of the table is one of the storage's finished trials.
    """
    finished = objective.finished
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        row = trial.user_attrs.get(ROW)
        if row is not None and row < len(finished) and finished[row].ok:
            study.tell(trial.number, finished[row].val_loss)
        else:
            study.tell(trial.number, state=TrialState.FAIL)
    in_storage = {t.user_attrs.get(ROW) for t in study.get_trials(deepcopy=False, states=_ENDED)}
    objective.restored(len(finished) if in_storage >= set(range(len(finished))) else 0)
