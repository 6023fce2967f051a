"""Hyperopt: `fmin` with one of its algorithms (`tpe.suggest`, `anneal.suggest`, `rand.suggest`)
and a `Trials` object, saved after every trial."""

from __future__ import annotations

import contextlib
import logging
import math
from functools import partial
from typing import Any

import hyperopt
import hyperopt.exceptions
import numpy as np
from hyperopt import hp
from hyperopt.pyll import scope

from tuning.core.ledger import TrialResult
from tuning.core.space import CategoricalParam, FloatParam, IntParam, Param
from tuning.core.workers import Finished, drive
from tuning.search.base import Budget, SearchBackend, SearchTask

log = logging.getLogger(__name__)


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
    """`hyperopt.fmin(algo)` over the translated space, with a `Trials` object saved in the
    study folder after every trial.

    The search is Hyperopt's documented way to resume: `fmin` called again with the same `Trials`
    and ``max_evals`` one higher, once per trial, each call seeded with ``(seed, trial number)``.
    So a study resumed from its saved `Trials` asks for exactly what an uninterrupted one would.
    A trial finished after the last save (a kill between the two) is replayed from the table.

    Args:
        algorithm: one of `algorithms` (default ``tpe``).
        n_startup_jobs: random trials before TPE models the results (default: a third of the
            budget's expected trials, at most 10; see `Budget.random_start`).
    """

    name = "hyperopt"
    library = "hyperopt"
    default_algorithm = "tpe"
    options_by_algorithm = {
        "tpe": frozenset({"n_startup_jobs"}),
        "anneal": frozenset(),
        "rand": frozenset(),
    }
    algorithms = {
        "tpe": "Tree-structured Parzen Estimator (tpe.suggest)",
        "anneal": "simulated annealing around the best point so far (anneal.suggest)",
        "rand": "independent random sampling (rand.suggest)",
    }
    parallel = dict.fromkeys(
        algorithms,
        "asynchronous trials: the algorithm suggests over a Trials holding the running trials "
        "as JOB_STATE_RUNNING documents (as MongoTrials' workers leave them)",
    )

    def __init__(self, algorithm: str | None = None, n_startup_jobs: int | None = None) -> None:
        self.algorithm = self._choose(algorithm)
        self.n_startup_jobs = n_startup_jobs

    def settings(self, budget: Budget, max_epochs: int) -> dict[str, Any]:
        arguments = self._arguments(budget, max_epochs)
        settings: dict[str, Any] = {"suggest": f"{self.algorithm}.suggest"}
        if self.algorithm == "tpe":
            settings["n_startup_jobs"] = arguments["n_startup_jobs"]
        return {**settings, "suggest_arguments": arguments}

    def _arguments(self, budget: Budget, max_epochs: int) -> dict[str, Any]:
        """Every argument of the algorithm, set here rather than left to its defaults."""
        if self.algorithm == "tpe":
            return {
                "n_startup_jobs": budget.random_start(self.n_startup_jobs, max_epochs),
                "n_EI_candidates": 24,
                "gamma": 0.25,
                "prior_weight": 1.0,
            }
        if self.algorithm == "anneal":
            return {"avg_best_idx": 2.0, "shrink_coef": 0.1}
        return {}

    def _algo(self, budget: Budget, max_epochs: int) -> Any:
        suggest = getattr(hyperopt, self.algorithm).suggest
        return partial(suggest, **self._arguments(budget, max_epochs))

    def search(self, task: SearchTask) -> None:
        space, seed = task.space, task.seed

        def evaluate(sample: dict[str, Any]) -> dict[str, Any]:
            # Hyperopt hands back numpy scalars (np.float64(44.0) for an integer): coerce first.
            return _told(task.evaluator.evaluate(space.coerce(sample)))

        algo = self._algo(task.budget, task.max_epochs)
        domain = {p.name: to_hyperopt(p) for p in space}
        if task.workers is not None:
            _search_parallel(task, algo, domain)
            return
        # A resumed study starts from empty `Trials`: each step is seeded by its number and the
        # history before it, so the same configurations are asked for again, and the table
        # answers them without training. (Hyperopt's `Trials` saves by pickle, and a pickle in
        # a results folder, which is data, would be code run on loading.)
        trials = hyperopt.Trials()
        task.ledger.restored(0)
        while not task.meter.exhausted:
            step = len(trials)
            # fmin raises AllTrialsFailed when it looks up its best point and no trial has
            # succeeded yet: the failed trials are in the table, and the search goes on.
            with contextlib.suppress(hyperopt.exceptions.AllTrialsFailed):
                hyperopt.fmin(
                    evaluate,
                    domain,
                    algo=algo,
                    max_evals=step + 1,
                    trials=trials,
                    rstate=np.random.default_rng([seed, step]),
                    show_progressbar=False,
                )
            if len(trials) == step:  # hyperopt drew nothing: its space is exhausted
                break


def _told(result: TrialResult) -> dict[str, Any]:
    """A trial's result as Hyperopt records it."""
    if not result.ok:
        return {"status": hyperopt.STATUS_FAIL, "error": result.error}
    return {"status": hyperopt.STATUS_OK, "loss": result.val_loss, "epochs": result.epochs}


def _search_parallel(task: SearchTask, algo: Any, space_expression: dict[str, Any]) -> None:
    """The step of `fmin`'s asynchronous loop, run whenever a worker is free: ``algo`` asked
    for one new trial over `Trials` in which the running trials are documents in state
    ``JOB_STATE_RUNNING`` (Hyperopt's TPE models the finished ones), each step seeded by
    ``(seed, step)`` as the one-worker search's `fmin` calls are (one worker proposes what it
    does); a trial's document is completed when it ends. (`fmin` itself only polls a database
    for what its workers did.)"""
    trials = hyperopt.Trials()
    domain = hyperopt.base.Domain(lambda _sample: None, space_expression)
    space = task.space

    def propose() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
        tid = trials.new_trial_ids(1)
        trials.refresh()
        # each step seeded by its number, as the one-worker search seeds its `fmin` calls
        rstate = np.random.default_rng([task.seed, tid[0]])
        (doc,) = algo(tid, domain, trials, rstate.integers(2**31 - 1)) or (None,)
        if doc is None:  # its space is exhausted
            return None
        doc["state"] = hyperopt.JOB_STATE_RUNNING
        trials.insert_trial_docs([doc])  # (a copy of ``doc``: the tag is the one stored)
        trials.refresh()
        sample = hyperopt.space_eval(space_expression, hyperopt.base.spec_from_misc(doc["misc"]))
        return space.coerce(sample), trials.trials[-1], {}

    def tell(finished: Finished) -> None:
        stored = finished.submission.tag
        stored["result"] = _told(finished.result)
        stored["state"] = hyperopt.JOB_STATE_DONE
        trials.refresh()

    drive(task.workers, propose, tell)
