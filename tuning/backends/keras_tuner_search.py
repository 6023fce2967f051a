"""Keras Tuner: `kt.Hyperband`, scheduling its own brackets; every round a trial trains is a row."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import keras_tuner as kt

from tuning.atomic import write_atomically
from tuning.backends.base import Budget, SearchBackend
from tuning.budget import BudgetMeter
from tuning.objective import Objective
from tuning.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace

PROJECT_DIR = "keras_tuner"


def to_keras_tuner(hp: kt.HyperParameters, param: Param) -> Any:
    """Declare one parameter of the neutral space on a Keras Tuner `HyperParameters` object."""
    sampling = "log" if getattr(param, "log", False) else "linear"
    if isinstance(param, IntParam):
        return hp.Int(param.name, param.low, param.high, sampling=sampling)
    if isinstance(param, FloatParam):
        return hp.Float(param.name, param.low, param.high, sampling=sampling)
    if isinstance(param, CategoricalParam):
        return hp.Choice(param.name, list(param.choices))
    raise TypeError(f"unsupported parameter {param!r}")


class _HarnessHyperModel(kt.HyperModel):
    """Builds through the shared factory and trains through the shared objective."""

    def __init__(self, objective: Objective, space: SearchSpace) -> None:
        super().__init__(name="tuning", tunable=True)
        self.objective = objective
        self.space = space

    def params(self, hp: kt.HyperParameters) -> dict[str, Any]:
        return self.space.coerce({p.name: to_keras_tuner(hp, p) for p in self.space})

    def build(self, hp: kt.HyperParameters):
        return self.objective.build(self.params(hp))

    def fit(
        self,
        hp: kt.HyperParameters,
        model,
        *args,
        epochs: int,
        initial_epoch: int = 0,
        callbacks=(),
        **kwargs,
    ) -> dict[str, float]:
        # Hyperband hands each round its epoch target and, for a promoted trial, the epoch its
        # parent's weights (already loaded into `model`) stopped at: only the difference is trained.
        result = self.objective.train(
            model,
            self.params(hp),
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
        )
        if not result.ok:
            raise kt.errors.FailedTrialError(result.error)
        return {"val_loss": result.val_loss}


class _BudgetedHyperbandOracle(kt.oracles.HyperbandOracle):
    """Hyperband's oracle that also ends the search once the study's budget is spent.

    `populate_space` is the oracle's own hook for "what runs next"; answering ``STOPPED`` there
    makes `Tuner.search` return, as when Hyperband runs out of brackets.
    """

    def __init__(self, meter: BudgetMeter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.meter = meter

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        if self.meter.exhausted:
            return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
        return super().populate_space(trial_id)

    # Keras Tuner writes its JSON state in place; a kill mid-write would leave a file that
    # cannot be reloaded. These write the same JSON through a temporary file and a rename.
    def save(self) -> None:
        write_atomically(self._get_oracle_fname(), json.dumps(self.get_state()))

    def _save_trial(self, trial: kt.engine.trial.Trial) -> None:
        path = Path(self._get_trial_dir(trial.trial_id)) / "trial.json"
        write_atomically(path, json.dumps(trial.get_state()))


class _BudgetedHyperband(kt.Hyperband):
    """`kt.Hyperband` (its rounds' epochs and weight hand-over) driven by the oracle above.

    `kt.Hyperband.__init__` only builds a `HyperbandOracle`; this builds the budgeted one and
    hands it to `kt.Tuner.__init__` the same way.
    """

    def __init__(self, hypermodel: kt.HyperModel, oracle: kt.Oracle, **kwargs: Any) -> None:
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)

    def save(self) -> None:  # as `BaseTuner.save`, atomically (see the oracle's)
        self.oracle.save()
        write_atomically(self._get_tuner_fname(), json.dumps(self.get_state()))


class KerasTunerBackend(SearchBackend):
    """Hyperband (``max_epochs=protocol.max_epochs``, ``factor=3``) until the budget is spent.

    The budget in trials counts Hyperband's rounds (each is a row); an epoch budget counts every
    epoch of every round, so the 2-epoch rounds of its first bracket cost what they train.
    """

    name = "keras_tuner"

    def __init__(self, factor: int = 3, hyperband_iterations: int = 100) -> None:
        self.factor = factor
        self.hyperband_iterations = hyperband_iterations

    def run(
        self, objective: Objective, space: SearchSpace, budget: Budget, seed: int, workdir: Path
    ) -> None:
        oracle = _BudgetedHyperbandOracle(
            objective.meter,
            objective="val_loss",
            max_epochs=objective.protocol.max_epochs,
            factor=self.factor,
            # Enough brackets for any budget: the budget, not the bracket count, stops it.
            hyperband_iterations=self.hyperband_iterations,
            # The oracle takes seed 0 for "no seed" (`seed or random.randint(1, 10000)`), which
            # made study seed 0 draw other configurations in each process: shift by one.
            seed=seed + 1,
            # A run of diverging trials is recorded, not fatal: the budget ends the search.
            max_consecutive_failed_trials=sys.maxsize,
        )
        # Hyperband's oracle takes no max_trials argument; its base Oracle honours the attribute.
        oracle.max_trials = budget.trials
        tuner = _BudgetedHyperband(
            _HarnessHyperModel(objective, space),
            oracle,
            directory=str(workdir),
            project_name=PROJECT_DIR,
            overwrite=False,  # a resumed study reloads the project: its trials and brackets
        )
        # The reloaded oracle holds every trial that ended; a trial whose row was written just
        # before a kill is retried by Keras Tuner and answered from the table.
        objective.restored(len(oracle.end_order))
        tuner.search(verbose=0)
