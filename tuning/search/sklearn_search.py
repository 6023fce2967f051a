"""scikit-learn: `RandomizedSearchCV` or `HalvingRandomSearchCV` over a scikeras
`KerasRegressor`/`KerasClassifier`.

The randomized search is the book's: the shared factory wrapped by scikeras, cross-validated (``cv=3`` by default,
or ``cv="holdout"`` for the shared validation split through `PredefinedSplit`), early stopping on
the shared validation set. Each fold is scored by a multi-metric scorer, so ``cv_results_`` carries
the loss, the epochs trained and the fit time of every fold; a candidate's row is written as soon as
its last fold is scored, and the rows are checked against ``cv_results_`` when the search ends.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np
from scipy import stats
from sklearn.exceptions import FitFailedWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (scikit-learn's own switch)
from sklearn.model_selection import (
    HalvingRandomSearchCV,
    ParameterSampler,
    PredefinedSplit,
    RandomizedSearchCV,
)

from tuning.core.budget import BudgetMeter
from tuning.core.errors import ResumeError, UserCodeRaised, start_over
from tuning.core.evaluator import NativeTraining
from tuning.core.ledger import ResumeLedger
from tuning.core.outcome import folds_outcome
from tuning.core.space import CategoricalParam, FloatParam, IntParam, Param
from tuning.core.workers import drive
from tuning.search import BackendError
from tuning.search.base import REDUCTION_FACTOR, Budget, SearchBackend, SearchTask, min_resource
from tuning.search.sklearn_estimators import PREFIX, EvaluatorEstimator, SharedTask, score_fold

log = logging.getLogger(__name__)


class _LogUniformInt:
    """An integer drawn log-uniformly in [low, high] (scipy has no such distribution)."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._float = stats.loguniform(low, high + 1)

    def rvs(self, random_state=None) -> int:
        return min(int(self._float.rvs(random_state=random_state)), self.high)


def to_sklearn_distribution(param: Param) -> Any:
    """One parameter of the neutral space as a `ParameterSampler` distribution.

    A linear integer range becomes a ``range`` (sampled uniformly by index, as the book's
    ``np.arange(1, 100)`` is), a log float becomes ``scipy.stats.loguniform`` (the book's
    ``reciprocal``): with ``random_state=42`` the book's candidates come back.
    """
    if isinstance(param, IntParam):
        return (
            _LogUniformInt(param.low, param.high) if param.log else range(param.low, param.high + 1)
        )
    if isinstance(param, FloatParam):
        if param.log:
            return stats.loguniform(param.low, param.high)
        return stats.uniform(param.low, param.high - param.low)
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    raise TypeError(f"unsupported parameter {param!r}")


class _CandidateRecorder:
    """Evaluates candidates through the search's ``evaluate_candidates`` and, where the folds
    trained natively (``record``: `tuning.core.evaluator.NativeTraining.record`), writes one row per candidate from
    its folds' scores (`score_fold`), wherever they were computed. Without ``record`` each
    candidate's fold was an evaluation, which wrote its own row.

    ``count_epochs``: the folds ran in other processes (a Dask cluster), whose budget callbacks
    counted into copies of the meter: the study's meter gets their epochs here.
    """

    def __init__(
        self,
        task: SearchTask,
        record: Any | None,
        n_splits: int,
        count_epochs: bool,
    ) -> None:
        self.ledger: ResumeLedger = task.ledger
        self.meter: BudgetMeter = task.meter
        self.space = task.space
        self.record = record
        self.n_splits = n_splits
        self.count_epochs = count_epochs
        self.hosts: dict[int, str] = {}  # pid -> host of the cluster's workers

    def params_of(self, candidate: Mapping[str, Any]) -> dict[str, Any]:
        """A candidate of the search (``model__``-prefixed names) as a configuration (without
        the ``epochs`` successive halving gives it as its resource)."""
        return self.space.coerce(
            {k[len(PREFIX) :]: v for k, v in candidate.items() if k.startswith(PREFIX)}
        )

    def finished_before(self, candidate: Mapping[str, Any]) -> bool:
        """Whether an earlier run of the study finished ``candidate`` (its row is replayed, not
        trained again). Without ``record``, the evaluator replays it when asked."""
        return self.record is not None and self.ledger.replay(self.params_of(candidate)) is not None

    def evaluate(
        self, evaluate_candidates: Any, candidates: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Cross-validate ``candidates`` (their folds in parallel where joblib runs them so)
        through the search, then write their rows in order; returns the search's results.
        Candidates none of whose folds fit (scikit-learn raises then, whatever ``error_score``
        says) are failed rows, and the search goes on: their results are ``{}``."""
        try:
            results = evaluate_candidates(candidates)
        except ValueError as exc:
            reason = every_fit_failed(exc)
            if reason is None:
                raise
            for candidate in candidates if self.record is not None else ():
                self.record(
                    self.params_of(candidate),
                    status="failed",
                    val_loss=math.nan,
                    epochs=0,
                    fit_seconds=0.0,
                    error=reason,
                )
            return {}
        if self.record is None:
            return results
        first = len(results["params"]) - len(candidates)
        for index, candidate in enumerate(candidates, start=first):
            folds = [
                tuple(
                    float(results[f"split{k}_test_{metric}"][index])
                    for metric in ("loss", "epochs", "fit_seconds")
                )
                for k in range(self.n_splits)
            ]
            pid = float(results["split0_test_pid"][index])
            worker = None
            if self.count_epochs and not math.isnan(pid):  # its first fold's worker
                worker = (self.hosts.get(int(pid), "?"), int(pid))
            self._record(self.params_of(candidate), folds, worker)
        return results

    def _record(
        self,
        params: dict[str, Any],
        folds: list[tuple[float, ...]],
        worker: tuple[str, int] | None = None,
    ) -> None:
        scored = [(-loss, e, seconds) for loss, e, seconds in folds if not math.isnan(e)]
        epochs = int(sum(f[1] for f in scored))
        if self.count_epochs:
            self.meter.add_epoch(epochs)
        outcome = folds_outcome([f[0] for f in scored], self.n_splits, self.meter.exhausted)
        self.record(
            params,
            status=outcome.status,
            val_loss=outcome.val_loss,
            epochs=epochs,
            fit_seconds=sum(f[2] for f in scored),
            error=outcome.error,
            worker=worker,
        )


def every_fit_failed(exc: ValueError) -> str | None:
    """The row's error for scikit-learn's "All the N fits failed" (its message holds each
    fold's traceback, flattened): "every fold failed to fit: " and the first line of the last
    fold's exception; None for any other error."""
    lines = str(exc).strip().splitlines()
    if not lines or not lines[0].startswith("All the ") or "fits failed" not in lines[0]:
        return None
    tracebacks = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    after = lines[tracebacks[-1] + 1 :] if tracebacks else []
    cause = next((line for line in after if line.strip() and not line[0].isspace()), "")
    cause = cause.removeprefix(f"{UserCodeRaised.__module__}.{UserCodeRaised.__name__}: ")
    return f"every fold failed to fit: {cause}" if cause else "every fold failed to fit"


class BudgetedRandomizedSearchCV(RandomizedSearchCV):
    """`RandomizedSearchCV` that stops drawing candidates once the study's budget is spent.

    `_run_search` is scikit-learn's extension point for search strategies (the successive-halving
    searches override it too). The candidates are the same `ParameterSampler` stream, drawn
    lazily and evaluated one by one, each writing its row before the next starts;
    ``cv_results_`` holds the candidates that were evaluated. A resumed study draws the same
    stream and skips the candidates whose rows the table already holds
    (`tuning.core.ledger.ResumeLedger.replay`).
    """

    # set by the backend (scikit-learn estimators take no new constructor arguments)
    recorder: _CandidateRecorder | None = None
    candidates_at_once: int = 1  # more when the folds run on a cluster

    def _run_search(self, evaluate_candidates, **_callback_context) -> None:
        recorder = self.recorder
        if recorder is None:
            raise RuntimeError("set the search's recorder before fitting it")
        sampler = ParameterSampler(
            self.param_distributions, self.n_iter, random_state=self.random_state
        )
        batch: list[dict[str, Any]] = []
        fitted = False
        for candidate in sampler:
            if recorder.finished_before(candidate):
                continue
            if recorder.meter.exhausted:
                break
            batch.append(dict(candidate))
            if len(batch) == self.candidates_at_once:
                fitted |= bool(recorder.evaluate(evaluate_candidates, batch))
                batch = []
        if batch and not recorder.meter.exhausted:
            fitted |= bool(recorder.evaluate(evaluate_candidates, batch))
        if not fitted:  # (scikit-learn's `fit` reads the first candidate's results next)
            raise _SearchEnded


class _SearchEnded(Exception):
    """A search stops where scikit-learn would go on to rank its candidates: the study's budget
    is spent (successive halving, between two candidates), or no candidate fitted (nothing to
    rank)."""


class BudgetedHalvingRandomSearchCV(HalvingRandomSearchCV):
    """`HalvingRandomSearchCV` (resource: the training epochs) whose candidates are evaluated
    one at a time, each writing its row as it ends, until the study's budget is spent.

    scikit-learn's own `_run_search` runs the rounds (which candidates go on, at how many
    epochs); only its ``evaluate_candidates`` is wrapped, to evaluate a round's candidates one
    by one and stop between two of them once the budget is spent (`_SearchEnded`).
    """

    recorder: _CandidateRecorder | None = None  # set by the backend

    def _run_search(self, evaluate_candidates, *, callback_ctx=None) -> None:
        recorder = self.recorder
        if recorder is None:
            raise RuntimeError("set the search's recorder before fitting it")
        latest: dict[str, Any] = {}

        def one_at_a_time(candidates, cv=None, more_results=None, **_context):
            for index, candidate in enumerate(candidates):
                if recorder.meter.exhausted:
                    raise _SearchEnded
                # (its own per-round `more_results`: the round and epochs of this candidate)
                more = {key: [values[index]] for key, values in (more_results or {}).items()}
                latest.update(
                    recorder.evaluate(
                        lambda c, more=more: evaluate_candidates(c, cv, more_results=more),
                        [candidate],
                    )
                )
            if not latest:  # no candidate has fitted yet: no round to rank
                raise _SearchEnded
            return latest

        super()._run_search(one_at_a_time, callback_ctx=callback_ctx)
        # `refit=False` with a scorer of several values leaves no best index, which the
        # halving search's `fit` reads at its end: the best of the search's last round.
        last_round = np.flatnonzero(np.asarray(latest["iter"]) == max(latest["iter"]))
        scores = np.asarray(latest["mean_test_score"], dtype=float)[last_round]
        best = last_round[int(np.nanargmax(scores))] if np.isfinite(scores).any() else 0
        self.best_index_ = int(best)


class SklearnBackend(SearchBackend):
    """`RandomizedSearchCV(cv=cv, random_state=seed)` (``randomized``) or
    `HalvingRandomSearchCV` (``halving``: the training epochs are the resource, from
    ``min_resource(max_epochs)`` to ``max_epochs``, ``factor=3``, as many candidates as its
    first round can train at the least epochs) over scikeras, until the budget is spent.
    Successive halving ranks each round's candidates and trains the best third again, from
    scratch, for three times the epochs; when a whole search ends within the budget, another
    starts with the next seed. It cannot resume an interrupted study (its rounds keep no
    state): a resumed ``sklearn:halving`` study says so and asks for ``--fresh``.

    Args:
        cv: number of cross-validation folds on the training split (the book's 3), or
            ``"holdout"`` to score each candidate once on the shared validation split.
        scheduler: a Dask cluster (``local:N``, ``tcp://HOST:PORT``) whose workers fit the
            folds, through joblib's Dask backend: as many candidates at a time as its worker
            threads can take all folds of. Their epochs are counted as each batch ends, so
            the budget must be in trials or seconds.
    """

    name = "sklearn"
    library = "scikit-learn"
    default_algorithm = "randomized"
    options_by_algorithm = {
        "randomized": frozenset({"cv", "scheduler"}),
        "halving": frozenset({"cv", "scheduler"}),
    }
    algorithms = {
        "randomized": "randomized search, cross-validated (RandomizedSearchCV; the book's)",
        "halving": "successive halving over the epochs, cross-validated (HalvingRandomSearchCV)",
    }
    parallel = {
        "randomized": "n_jobs: its candidate stream (ParameterSampler, seeded as the search "
        "seeds it) dispatched to a pool of workers, each candidate whenever one is free",
    }

    def __init__(
        self,
        algorithm: str | None = None,
        cv: int | str | None = None,
        scheduler: str | None = None,
    ) -> None:
        self.algorithm = self._choose(algorithm)
        if (
            cv is not None
            and cv != "holdout"
            and (isinstance(cv, bool) or not isinstance(cv, int) or cv < 2)
        ):
            raise BackendError(f"cv must be an integer >= 2 or 'holdout', got {cv!r}")
        self.cv = cv
        self.scheduler = scheduler

    def folds(self, trains: bool) -> int | str:
        """``cv`` as given; by default 3 (the book's) where the search ``trains`` the model, or
        ``holdout`` where the evaluator answers without one (a table holds one validation
        split per configuration: cross-validation folds and a Dask cluster are refused)."""
        if trains:
            return 3 if self.cv is None else self.cv
        if self.cv not in (None, "holdout"):
            raise BackendError(
                f"sklearn with a tabular objective: cv={self.cv!r} cannot be looked up (the "
                "table holds the shared validation split only): drop cv, or use cv='holdout'"
            )
        if self.scheduler is not None:
            raise BackendError(
                "sklearn with a tabular objective looks trials up here: drop --scheduler"
            )
        return "holdout"

    def settings_for(self, task: SearchTask) -> dict[str, Any]:
        trains = task.evaluator.native_training() is not None
        return {"cv": self.folds(trains), **self.settings(task.budget, task.max_epochs)}

    def settings(self, budget: Budget, max_epochs: int) -> dict[str, Any]:
        if self.algorithm != "halving":
            return {}
        return {
            "resource": "epochs",
            "min_resources": min_resource(max_epochs),
            "max_resources": max_epochs,
            "factor": REDUCTION_FACTOR,
            "n_candidates": "exhaust",
        }

    def search(self, task: SearchTask) -> None:
        if self.scheduler is not None and task.budget.epochs is not None:
            raise BackendError(
                "sklearn with --scheduler: folds fitted on other processes cannot stop at the "
                "study's epoch budget; give the budget in --trials or --budget-seconds"
            )
        native = task.evaluator.native_training()
        if task.workers is not None:
            self._search_parallel(task)
            return
        defaults = {PREFIX + p.name: _default_value(p) for p in task.space}
        if native is None:  # each fold an evaluation: no data, one row on each side
            cv: Any = PredefinedSplit(np.array([-1, 0]))
            n_splits, X, y = 1, np.zeros((2, 1)), np.zeros(2)
            estimator: Any = EvaluatorEstimator(
                SharedTask(task), epochs=task.max_epochs, **defaults
            )
            fit_data: dict[str, Any] = {}
            record = None
        else:
            folds = self.folds(trains=True)
            cv, n_splits = self._splitter(folds, len(native.X_train), len(native.X_valid))
            X, y = self._split_rows(folds, native)
            # (a cluster's workers do not get the signal: the search stops between batches)
            estimator = native.estimator(defaults, self.scheduler is None)
            fit_data = dict(native.fit_params)
            record = native.record
        recorder = _CandidateRecorder(task, record, n_splits, self.scheduler is not None)
        distributions = {PREFIX + p.name: to_sklearn_distribution(p) for p in task.space}
        search_options = {
            "cv": cv,
            "scoring": score_fold,
            "refit": False,
            "error_score": np.nan,
            "n_jobs": 1 if self.scheduler is None else -1,
        }
        if self.algorithm == "halving":
            self._halve(task, estimator, distributions, search_options, recorder, X, y, fit_data)
            return
        search = BudgetedRandomizedSearchCV(
            estimator,
            distributions,
            # drawn lazily: without a trial budget the meter ends the stream
            n_iter=task.budget.trials or sys.maxsize,
            random_state=task.seed,
            **search_options,
        )
        search.recorder = recorder
        with (
            self._folds_on_cluster(search, n_splits),
            _expected_warnings_quietly(),
            suppress(_SearchEnded),  # no candidate fitted: every row is written already
        ):
            search.fit(X, y, **fit_data)

    def _search_parallel(self, task: SearchTask) -> None:
        """`RandomizedSearchCV(n_jobs=N)` on a table: the candidates it would fit (its own
        `ParameterSampler`, drawn lazily as its budgeted search draws them), each evaluated
        (holdout: one fold, looked up) as soon as a worker of the pool is free; none is told
        anything, as in the search itself."""
        self.folds(trains=False)  # (cross-validation folds cannot be looked up: refused)
        distributions = {PREFIX + p.name: to_sklearn_distribution(p) for p in task.space}
        candidates = iter(
            ParameterSampler(
                distributions, n_iter=task.budget.trials or sys.maxsize, random_state=task.seed
            )
        )

        def propose() -> tuple[dict[str, Any], None, dict[str, Any]] | None:
            candidate = next(candidates, None)
            if candidate is None:
                return None
            params = {name[len(PREFIX) :]: value for name, value in candidate.items()}
            return task.space.coerce(params), None, {"epochs": task.max_epochs}

        drive(task.workers, propose, lambda _finished: None)

    @staticmethod
    def _splitter(folds: int | str, n_train: int, n_valid: int) -> tuple[Any, int]:
        if folds == "holdout":
            test_fold = np.r_[np.full(n_train, -1), np.zeros(n_valid)]
            return PredefinedSplit(test_fold), 1
        return folds, int(folds)

    @staticmethod
    def _split_rows(folds: int | str, native: NativeTraining) -> tuple[Any, Any]:
        """The rows the search splits: the training rows, and the validation rows for holdout."""
        if folds == "holdout":
            return (
                np.concatenate([native.X_train, native.X_valid]),
                np.concatenate([native.y_train, native.y_valid]),
            )
        return native.X_train, native.y_train

    def _halve(
        self,
        task: SearchTask,
        estimator: Any,
        distributions: dict[str, Any],
        search_options: dict[str, Any],
        recorder: _CandidateRecorder,
        X: np.ndarray,
        y: np.ndarray,
        fit_data: dict[str, Any],
    ) -> None:
        """Successive-halving searches, one after another (search ``k`` seeded with
        ``(seed, k)``; the first with ``seed``), until the budget is spent."""
        if task.ledger.finished:
            raise ResumeError(
                f"sklearn:halving cannot resume study {task.workdir.name!r} "
                "(scikit-learn's successive halving keeps no state between its rounds): "
                + start_over(task.workdir)
            )
        if self.scheduler is not None:
            raise BackendError("sklearn:halving runs its folds here: drop --scheduler")
        for index in itertools.count():
            rows_before = task.ledger.recorded
            search = BudgetedHalvingRandomSearchCV(
                estimator,
                distributions,
                resource="epochs",
                min_resources=min_resource(task.max_epochs),
                max_resources=task.max_epochs,
                factor=REDUCTION_FACTOR,
                n_candidates="exhaust",
                return_train_score=False,  # (its default scores every fold's training data too)
                random_state=task.seed
                if index == 0
                else int(np.random.SeedSequence([task.seed, index]).generate_state(1)[0]),
                **search_options,
            )
            search.recorder = recorder
            try:
                with _expected_warnings_quietly():
                    search.fit(X, y, **fit_data)
            except _SearchEnded:
                return
            if task.meter.exhausted or task.ledger.recorded == rows_before:
                return

    @contextmanager
    def _folds_on_cluster(
        self, search: BudgetedRandomizedSearchCV, n_splits: int
    ) -> Iterator[None]:
        if self.scheduler is None:
            yield
            return
        import joblib

        from tuning.core.cluster import dask_client

        with dask_client(self.scheduler) as client, joblib.parallel_backend("dask"):
            threads = sum(client.nthreads().values())
            search.candidates_at_once = max(1, threads // n_splits)
            hosts, pids = client.run(socket.gethostname), client.run(os.getpid)
            search.recorder.hosts = {pids[address]: hosts[address] for address in pids}
            yield


@contextmanager
def _expected_warnings_quietly() -> Iterator[None]:
    """A diverged candidate's NaN score, and a fold that failed (or was not started because the
    budget ran out), are expected in a search: their rows already say so."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "One or more of the test scores are non-finite")
        warnings.filterwarnings("ignore", category=FitFailedWarning)
        yield


def _default_value(param: Param) -> Any:
    return param.choices[0] if isinstance(param, CategoricalParam) else param.low
