"""Optuna: a TPE-sampled study stored in SQLite inside the study folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna

from tuning.backends.base import Budget, SearchBackend
from tuning.objective import Objective
from tuning.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace

STORAGE_FILE = "optuna.db"


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
            sampler=optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=budget.random_start(
                    self.n_startup_trials, objective.protocol.max_epochs
                ),
            ),
            direction="minimize",
            load_if_exists=True,
        )

        def evaluate(trial: optuna.Trial) -> float:
            params = space.coerce({p.name: suggest(trial, p) for p in space})
            result = objective(params)
            trial.set_user_attr("epochs", result.epochs)
            if not result.ok:
                trial.set_user_attr("error", result.error)
                return math.nan  # Optuna records a NaN objective as a FAILED trial
            return result.val_loss

        def stop_when_spent(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
            if objective.meter.exhausted:  # an epoch or seconds budget, or the trial count
                study.stop()

        study.optimize(evaluate, n_trials=budget.trials, callbacks=[stop_when_spent], catch=())
