"""Keras Tuner: its Hyperband (scheduling its own brackets; every round a trial trains is a row),
Bayesian-optimization and random-search oracles, each through its own tuner loop."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras_tuner as kt

from tuning.core.atomic import read_json, write_atomically
from tuning.core.budget import BudgetMeter
from tuning.core.errors import ResumeError, start_over
from tuning.core.evaluator import WarmStart
from tuning.core.files import refuse_links_under
from tuning.core.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace
from tuning.core.workers import Finished, drive
from tuning.search.base import Budget, SearchBackend, SearchTask

PROJECT_DIR = "keras_tuner"
ROWS_FILE = "rows.json"  # Keras Tuner trial id -> the row it wrote
# The Gaussian process's noise and the upper-confidence bound's exploration (Keras Tuner's own
# values, set rather than inherited)
BAYESIAN_ALPHA, BAYESIAN_BETA = 1e-4, 2.6


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


class _SpaceOnly(kt.HyperModel):
    """Declares the neutral space on Keras Tuner's `HyperParameters` (the oracle learns it
    from `build`); builds no model: every trial is the evaluator's (`_Evaluated.run_trial`)."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(name="tuning", tunable=True)
        self.space = space

    def params(self, hp: kt.HyperParameters) -> dict[str, Any]:
        return self.space.coerce({p.name: to_keras_tuner(hp, p) for p in self.space})

    def build(self, hp: kt.HyperParameters) -> None:
        self.params(hp)


class _Evaluated:
    """Mixin for a tuner: `run_trial`, Keras Tuner's own extension point for "how a trial is
    run", asks the study's evaluator. Hyperband's rounds give the epochs to reach, and for a
    promoted trial the trial it continues (``tuner/trial_id``) and the epoch it stopped at
    (``tuner/initial_epoch``): a `WarmStart` from that trial's row. Which row each Keras Tuner
    trial wrote is kept in ``rows.json`` in the project, for a resumed study's promotions."""

    def __init__(self, *, task: SearchTask, **kwargs: Any) -> None:
        self.task = task
        super().__init__(**kwargs)
        self._rows_file = Path(self.project_dir) / ROWS_FILE
        self._rows: dict[str, int] = (
            read_json(self._rows_file, start_over(self.task.workdir))
            if self._rows_file.exists()
            else {}
        )

    def run_trial(
        self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any
    ) -> dict[str, float]:
        hp = trial.hyperparameters
        params = self.hypermodel.params(hp)
        epochs = hp.values.get("tuner/epochs", kwargs.get("epochs"))
        parent = hp.values.get("tuner/trial_id")
        warm_start = None
        if parent is not None:
            if parent not in self._rows:
                raise ResumeError(
                    f"keras_tuner: trial {parent}, which this trial continues, has no row in "
                    f"{self._rows_file} (a study of an earlier version?): "
                    + start_over(self.task.workdir)
                )
            warm_start = WarmStart(self._rows[parent], hp.values["tuner/initial_epoch"])
        result = self.task.evaluator.evaluate(params, epochs=epochs, warm_start=warm_start)
        self._rows[trial.trial_id] = result.trial
        write_atomically(self._rows_file, json.dumps(self._rows))
        if not result.ok:
            raise kt.errors.FailedTrialError(result.error)
        return {"val_loss": result.val_loss}


class _Budgeted:
    """Mixin for a Keras Tuner oracle: it also ends the search once the study's budget is spent.

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

    def reload(self) -> None:
        """The library's reload, less what a kill between two of its writes left behind.

        - A new trial's file is written before the oracle's state that starts it: a kill
          between the two leaves a trial the reloaded oracle counts against ``max_trials``
          but neither runs nor retries. Dropped, the oracle is as before that proposal and
          proposes it again (its seed state was saved before it) under the same trial id.
        - An ended trial is saved in ``end_order`` before it leaves the ongoing trials: a
          kill between the two has the reload send a finished trial for retry, which would
          train it again. Only trials that did not end are retried.
        """
        super().reload()
        started, ended = set(self.start_order), set(self.end_order)
        for trial_id in [t for t in self.trials if t not in started]:
            del self.trials[trial_id]
        self._retry_queue = [t for t in self._retry_queue if t not in ended]


class _BudgetedHyperbandOracle(_Budgeted, kt.oracles.HyperbandOracle):
    pass


class _BudgetedBayesianOracle(_Budgeted, kt.oracles.BayesianOptimizationOracle):
    pass


class _BudgetedRandomOracle(_Budgeted, kt.oracles.RandomSearchOracle):
    pass


class _AtomicSave:
    """Mixin for a tuner: `BaseTuner.save`, atomically (see `_Budgeted.save`)."""

    def save(self) -> None:
        self.oracle.save()
        write_atomically(self._get_tuner_fname(), json.dumps(self.get_state()))


class _BudgetedTuner(_Evaluated, _AtomicSave, kt.Tuner):
    """`kt.Tuner`: the loop of `kt.Hyperband`, `kt.BayesianOptimization` and `kt.RandomSearch`
    (each only builds its oracle and hands it to it; Hyperband's rounds are its oracle's, and
    its weight hand-over a warm start here), with a budgeted oracle."""


class KerasTunerBackend(SearchBackend):
    """One of Keras Tuner's oracles and its tuner, until the budget is spent.

    ``hyperband`` (``max_epochs=protocol.max_epochs``, ``factor=3``): the budget in trials counts
    Hyperband's rounds (each is a row); an epoch budget counts every epoch of every round, so
    the 2-epoch rounds of its first bracket cost what they train. ``bayesian`` and ``random``
    train every trial up to the protocol's epoch cap, like the other libraries.

    Args:
        algorithm: one of `algorithms` (default ``hyperband``).
        factor, hyperband_iterations: Hyperband's.
        num_initial_points: random trials before the Bayesian oracle's GP models the results
            (default: a third of the budget's expected trials, at most 10).
    """

    name = "keras_tuner"
    library = "keras-tuner"
    default_algorithm = "hyperband"
    options_by_algorithm = {
        "hyperband": frozenset({"factor", "hyperband_iterations"}),
        "bayesian": frozenset({"num_initial_points"}),
        "random": frozenset(),
    }
    algorithms = {
        "hyperband": "Hyperband brackets, promoted trials resume from their weights (Hyperband)",
        "bayesian": "Gaussian-process Bayesian optimization (BayesianOptimization)",
        "random": "random search (RandomSearch)",
    }
    parallel = dict.fromkeys(
        algorithms,
        "the oracle serving one tuner per worker (create_trial(tuner_id), update_trial, "
        "end_trial: what the chief's gRPC server calls for its workers)",
    )

    def __init__(
        self,
        algorithm: str | None = None,
        factor: int = 3,
        hyperband_iterations: int = 100,
        num_initial_points: int | None = None,
    ) -> None:
        self.algorithm = self._choose(algorithm)
        self.factor = factor
        self.hyperband_iterations = hyperband_iterations
        self.num_initial_points = num_initial_points

    def settings(self, budget: Budget, max_epochs: int) -> dict[str, Any]:
        common = {"max_retries_per_trial": 0, "max_consecutive_failed_trials": "unbounded"}
        if self.algorithm == "hyperband":
            return {
                "oracle": "HyperbandOracle",
                "max_epochs": max_epochs,
                "factor": self.factor,
                "hyperband_iterations": self.hyperband_iterations,
                **common,
            }
        if self.algorithm == "bayesian":
            startup = budget.random_start(self.num_initial_points, max_epochs)
            return {
                "oracle": "BayesianOptimizationOracle",
                "num_initial_points": startup,
                "alpha": BAYESIAN_ALPHA,
                "beta": BAYESIAN_BETA,
                **common,
            }
        return {"oracle": "RandomSearchOracle", **common}

    @property
    def warm_starts(self) -> bool:
        return self.algorithm == "hyperband"

    def _oracle(self, meter: BudgetMeter, budget: Budget, seed: int, max_epochs: int) -> kt.Oracle:
        common = {
            "objective": "val_loss",
            # The oracle takes seed 0 for "no seed" (`seed or random.randint(1, 10000)`), which
            # made study seed 0 draw other configurations in each process: shift by one.
            "seed": seed + 1,
            # A run of diverging trials is recorded, not fatal: the budget ends the search.
            "max_consecutive_failed_trials": sys.maxsize,
            "max_retries_per_trial": 0,
        }
        if self.algorithm == "hyperband":
            oracle = _BudgetedHyperbandOracle(
                meter,
                max_epochs=max_epochs,
                factor=self.factor,
                # Enough brackets for any budget: the budget, not the bracket count, stops it.
                hyperband_iterations=self.hyperband_iterations,
                **common,
            )
            # Hyperband's oracle takes no max_trials argument; its base Oracle honours it.
            oracle.max_trials = budget.trials
            return oracle
        max_trials = budget.trials or sys.maxsize  # else the budget's epochs or seconds stop it
        if self.algorithm == "bayesian":
            return _BudgetedBayesianOracle(
                meter,
                max_trials=max_trials,
                num_initial_points=budget.random_start(self.num_initial_points, max_epochs),
                alpha=BAYESIAN_ALPHA,
                beta=BAYESIAN_BETA,
                **common,
            )
        return _BudgetedRandomOracle(meter, max_trials=max_trials, **common)

    def search(self, task: SearchTask) -> None:
        refuse_links_under(Path(task.workdir) / PROJECT_DIR)  # Keras Tuner's files: plain open
        oracle = self._oracle(task.meter, task.budget, task.seed, task.max_epochs)
        tuner = _BudgetedTuner(
            task=task,
            hypermodel=_SpaceOnly(task.space),
            oracle=oracle,
            directory=str(task.workdir),
            project_name=PROJECT_DIR,
            # a resumed study reloads the project: its trials and brackets (a simulated
            # parallel study is played again from its start)
            overwrite=task.workers is not None,
        )
        if task.workers is not None:
            try:
                _search_parallel(task, tuner)
            finally:
                _forget_oracle(oracle)
            return
        # The reloaded oracle holds every trial that ended; a trial whose row was written just
        # before a kill is retried by Keras Tuner and answered from the table.
        task.ledger.restored(len(oracle.end_order))
        # Hyperband sets each round's epochs itself; the other tuners pass this to every trial.
        try:
            with _failed_trials_quiet():
                tuner.search(verbose=0, epochs=task.max_epochs)
        finally:
            _forget_oracle(oracle)


def _search_parallel(task: SearchTask, tuner: _BudgetedTuner) -> None:
    """Keras Tuner's distributed tuning, its oracle's side: each worker is a tuner
    (``tuner{worker}``) asking the one oracle for a trial (`Oracle.create_trial`: Hyperband
    answers ``IDLE`` while a round waits for its trials), reporting its metric
    (`update_trial`) and ending it (`end_trial`), as the chief's gRPC servicer does for its
    workers' calls."""
    oracle, workers = tuner.oracle, task.workers
    oracle.verbose = 0  # (its display prints each trial, as `search(verbose=0)` keeps it from)
    rows: dict[str, int] = {}  # Keras Tuner trial id -> the row it wrote
    running = kt.engine.trial.TrialStatus.RUNNING

    def propose() -> tuple[dict[str, Any], kt.engine.trial.Trial, dict[str, Any]] | None:
        trial = oracle.create_trial(f"tuner{workers.next_worker}")
        if trial.status != running:  # IDLE (wait for a running trial) or STOPPED
            return None
        values = trial.hyperparameters.values
        parent = values.get("tuner/trial_id")
        warm_start = (
            None if parent is None else WarmStart(rows[parent], values["tuner/initial_epoch"])
        )
        options = {"epochs": values.get("tuner/epochs", task.max_epochs), "warm_start": warm_start}
        return tuner.hypermodel.params(trial.hyperparameters), trial, options

    def tell(finished: Finished) -> None:
        trial, result = finished.submission.tag, finished.result
        rows[trial.trial_id] = result.trial
        if result.ok:
            oracle.update_trial(trial.trial_id, {"val_loss": result.val_loss})
            trial.status = kt.engine.trial.TrialStatus.COMPLETED
        else:
            trial.status, trial.message = kt.engine.trial.TrialStatus.FAILED, result.error
        oracle.end_trial(trial)

    with _failed_trials_quiet():
        drive(workers, propose, tell)


@contextmanager
def _failed_trials_quiet() -> Iterator[None]:
    """Keras Tuner prints the traceback of every failed trial while its ``DEBUG`` switch is on
    (its default); a failed trial here is a row with its error's first line, so the switch is
    off during the search, and restored after it."""
    from keras_tuner.src import config  # (the switch is not exported)

    debug, config.DEBUG = config.DEBUG, False
    try:
        yield
    finally:
        config.DEBUG = debug


def _forget_oracle(oracle: kt.Oracle) -> None:
    """Keras Tuner keeps every oracle it ever ran in two module-level dicts (a lock and a
    thread name per oracle, `keras_tuner.src.engine.oracle.LOCKS`/`THREADS`), and with it every
    trial: a grid worker running study after study grows with every study, and the library's
    own garbage collection slows with it. The search has ended: its entries are dropped."""
    from keras_tuner.src.engine import oracle as oracle_module

    for registry in (getattr(oracle_module, "LOCKS", {}), getattr(oracle_module, "THREADS", {})):
        registry.pop(oracle, None)
