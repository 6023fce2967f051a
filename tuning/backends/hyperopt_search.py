"""Hyperopt: `fmin` with `tpe.suggest` and a `Trials` object."""

from __future__ import annotations

import contextlib
import math
import sys
from functools import partial
from pathlib import Path
from typing import Any

import hyperopt
import hyperopt.exceptions
import numpy as np
from hyperopt import hp
from hyperopt.pyll import scope

from tuning.backends.base import Budget, SearchBackend
from tuning.objective import Objective
from tuning.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace


def to_hyperopt(param: Param) -> Any:
    """One parameter of the neutral space as a Hyperopt expression."""
    if isinstance(param, IntParam):
        if param.low == param.high:  # hp.uniformint needs low < high; a constant is a valid space
            return param.low
        if param.log:
            return scope.int(
                hp.qloguniform(param.name, math.log(param.low), math.log(param.high), 1)
            )
        return scope.int(hp.uniformint(param.name, param.low, param.high))
    if isinstance(param, FloatParam):
        if param.log:
            return hp.loguniform(param.name, math.log(param.low), math.log(param.high))
        return hp.uniform(param.name, param.low, param.high)
    if isinstance(param, CategoricalParam):
        return hp.choice(param.name, list(param.choices))
    raise TypeError(f"unsupported parameter {param!r}")


class HyperoptBackend(SearchBackend):
    """`hyperopt.fmin(tpe.suggest)` over the translated space, seeded through ``rstate``.

    Args:
        n_startup_jobs: random trials before TPE models the results (default: a third of the
            budget's expected trials, at most 10; see `Budget.random_start`).
    """

    name = "hyperopt"

    def __init__(self, n_startup_jobs: int | None = None) -> None:
        self.n_startup_jobs = n_startup_jobs

    def run(
        self, objective: Objective, space: SearchSpace, budget: Budget, seed: int, workdir: Path
    ) -> None:
        def evaluate(sample: dict[str, Any]) -> dict[str, Any]:
            # Hyperopt hands back numpy scalars (np.float64(44.0) for an integer): coerce first.
            result = objective(space.coerce(sample))
            if not result.ok:
                return {"status": hyperopt.STATUS_FAIL, "error": result.error}
            return {"status": hyperopt.STATUS_OK, "loss": result.val_loss, "epochs": result.epochs}

        algo = partial(
            hyperopt.tpe.suggest,
            n_startup_jobs=budget.random_start(self.n_startup_jobs, objective.protocol.max_epochs),
        )
        # fmin raises AllTrialsFailed after its loop, when it looks up its best point: the failed
        # trials are already in the table, and the study reports that none succeeded.
        with contextlib.suppress(hyperopt.exceptions.AllTrialsFailed):
            hyperopt.fmin(
                evaluate,
                {p.name: to_hyperopt(p) for p in space},
                algo=algo,
                max_evals=budget.trials or sys.maxsize,  # else the meter stops it
                early_stop_fn=lambda _trials, *args: (objective.meter.exhausted, args),
                trials=hyperopt.Trials(),
                rstate=np.random.default_rng(seed),
                show_progressbar=False,
            )
