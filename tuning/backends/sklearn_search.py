"""scikit-learn: `RandomizedSearchCV` over a scikeras `KerasRegressor`/`KerasClassifier`.

The search is the book's: the shared factory wrapped by scikeras, cross-validated (``cv=3`` by default,
or ``cv="holdout"`` for the shared validation split through `PredefinedSplit`), early stopping on
the shared validation set. Each fold is scored by a multi-metric scorer, so ``cv_results_`` carries
the loss, the epochs trained and the fit time of every fold; a candidate's row is written as soon as
its last fold is scored, and the rows are checked against ``cv_results_`` when the search ends.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scikeras.wrappers import KerasClassifier, KerasRegressor
from scipy import stats
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.model_selection import ParameterSampler, PredefinedSplit, RandomizedSearchCV

from tuning.backends.base import Budget, SearchBackend
from tuning.model import build_model
from tuning.objective import BudgetCallback, Objective, StopCallback, release_models
from tuning.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace

log = logging.getLogger(__name__)
PREFIX = "model__"  # scikeras routes these parameters to the model-building function


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


class BudgetSpent(RuntimeError):
    """Raised instead of fitting a fold once the study's budget is spent."""


class _TimedFit:
    """Mixin recording how long `fit` took, so every fold's row can carry it; a fold that would
    start after the study's budget is spent is not trained. The previous fold's model is freed
    first, as the objective does before each trial."""

    def fit(self, X, y, **kwargs):
        if any(isinstance(cb, BudgetCallback) and cb.meter.exhausted for cb in self.callbacks):
            raise BudgetSpent("the study's budget is spent")
        release_models()
        started = time.perf_counter()
        super().fit(X, y, **kwargs)
        self.fit_seconds_ = time.perf_counter() - started
        return self


class TimedKerasRegressor(_TimedFit, KerasRegressor):
    pass


class TimedKerasClassifier(_TimedFit, KerasClassifier):
    pass


class _FoldRecorder:
    """The scorer: scores one fold and writes a candidate's row once its folds are all scored."""

    def __init__(self, objective: Objective, space: SearchSpace, n_splits: int) -> None:
        self.objective = objective
        self.space = space
        self.n_splits = n_splits
        self.classification = objective.dataset.task == "classification"
        self._params: dict[str, Any] | None = None
        self._folds: list[tuple[float, int, float]] = []
        self.n_recorded = 0

    def params_of(self, candidate: Mapping[str, Any]) -> dict[str, Any]:
        """A candidate of the search (``model__``-prefixed names) as a configuration."""
        return self.space.coerce({k[len(PREFIX) :]: v for k, v in candidate.items()})

    def evaluate(self, evaluate_candidates: Any, candidate: Mapping[str, Any]) -> None:
        """Cross-validate one candidate through the search and write its one row."""
        before = self.n_recorded
        evaluate_candidates([dict(candidate)])
        self.flush()
        if self.n_recorded == before:  # no fold reached the scorer: none was fitted
            spent = self.objective.meter.exhausted
            self.objective.record(
                self.params_of(candidate),
                status="pruned" if spent else "failed",
                val_loss=math.nan,
                epochs=0,
                fit_seconds=0.0,
                error="the budget ran out before its first fold"
                if spent
                else "every fold failed to fit",
            )
            self.n_recorded += 1

    def __call__(self, estimator, X, y) -> dict[str, float]:
        if self.classification:
            proba = estimator.predict_proba(X)
            loss = (
                log_loss(y, proba, labels=np.arange(proba.shape[1]))
                if np.isfinite(proba).all()
                else math.nan
            )
        else:
            pred = estimator.predict(X)
            loss = mean_squared_error(y, pred) if np.isfinite(pred).all() else math.nan
        epochs = len(estimator.history_.get("loss", []))
        seconds = float(getattr(estimator, "fit_seconds_", math.nan))
        params = self.params_of(
            {k: v for k, v in estimator.get_params().items() if k.startswith(PREFIX)}
        )
        if params != self._params:
            self.flush()
            self._params = params
        self._folds.append((float(loss), epochs, seconds))
        if len(self._folds) == self.n_splits:
            self.flush()
        return {"loss": -float(loss), "epochs": float(epochs), "fit_seconds": seconds}

    def flush(self) -> None:
        """Write the pending candidate's row (failed if a fold diverged or did not fit)."""
        if self._params is None:
            return
        losses = [f[0] for f in self._folds]
        error, status = "", "failed"
        if len(self._folds) < self.n_splits and self.objective.meter.exhausted:
            error = f"the budget ran out after {len(self._folds)} of {self.n_splits} folds"
            status = "pruned"
        elif len(self._folds) < self.n_splits:
            error = f"{self.n_splits - len(self._folds)} of {self.n_splits} folds failed to fit"
        elif not all(math.isfinite(v) for v in losses):
            error = "validation loss became non-finite in a fold: diverged"
        self.objective.record(
            self._params,
            status=status if error else "complete",
            val_loss=math.nan if error else float(np.mean(losses)),
            epochs=sum(f[1] for f in self._folds),
            fit_seconds=sum(f[2] for f in self._folds),
            error=error,
        )
        self.n_recorded += 1
        self._params, self._folds = None, []


class BudgetedRandomizedSearchCV(RandomizedSearchCV):
    """`RandomizedSearchCV` that stops drawing candidates once the study's budget is spent.

    `_run_search` is scikit-learn's extension point for search strategies (the successive-halving
    searches override it too). The candidates are the same `ParameterSampler` stream, drawn
    lazily and evaluated one by one, each writing its row before the next starts;
    ``cv_results_`` holds the candidates that were evaluated. A resumed study draws the same
    stream and skips the candidates whose rows the table already holds (`Objective.replay`).
    """

    recorder: _FoldRecorder | None = None  # set by the backend: sklearn estimators take no new args

    def _run_search(self, evaluate_candidates, **_callback_context) -> None:
        recorder = self.recorder
        if recorder is None:
            raise RuntimeError("set the search's recorder before fitting it")
        sampler = ParameterSampler(
            self.param_distributions, self.n_iter, random_state=self.random_state
        )
        for candidate in sampler:
            if recorder.objective.replay(recorder.params_of(candidate)) is not None:
                continue  # finished by an earlier run of the study
            if recorder.objective.meter.exhausted:
                break
            recorder.evaluate(evaluate_candidates, candidate)


class SklearnBackend(SearchBackend):
    """`RandomizedSearchCV(cv=cv, random_state=seed)` over scikeras, until the budget is spent.

    Args:
        cv: number of cross-validation folds on the training split (the book's 3), or
            ``"holdout"`` to score each candidate once on the shared validation split.
    """

    name = "sklearn"

    def __init__(self, cv: int | str = 3) -> None:
        self.cv = cv

    def _splitter(self, n_train: int, n_valid: int) -> tuple[Any, int]:
        if self.cv == "holdout":
            test_fold = np.r_[np.full(n_train, -1), np.zeros(n_valid)]
            return PredefinedSplit(test_fold), 1
        try:
            folds = int(self.cv)
        except (TypeError, ValueError):
            folds = 0
        if folds < 2:
            raise ValueError(f"cv must be an integer >= 2 or 'holdout', got {self.cv!r}")
        return folds, folds

    def run(
        self, objective: Objective, space: SearchSpace, budget: Budget, seed: int, workdir: Path
    ) -> None:
        d = objective.dataset
        protocol = objective.protocol
        cv, n_splits = self._splitter(len(d.X_train), len(d.X_valid))
        if self.cv == "holdout":
            X, y = np.concatenate([d.X_train, d.X_valid]), np.concatenate([d.y_train, d.y_valid])
        else:
            X, y = d.X_train, d.y_train
        wrapper = TimedKerasClassifier if d.task == "classification" else TimedKerasRegressor
        fit_kwargs = protocol.fit_kwargs()
        estimator = wrapper(
            model=build_model,
            callbacks=[
                *protocol.callbacks(),
                BudgetCallback(objective.meter),
                *([StopCallback(objective.stop)] if objective.stop else []),
            ],
            batch_size=fit_kwargs["batch_size"],
            epochs=fit_kwargs["epochs"],
            verbose=fit_kwargs["verbose"],
            random_state=objective.seed,
            **{PREFIX + k: v for k, v in objective.model_kwargs().items()},
            **{PREFIX + p.name: _default_value(p) for p in space},
        )
        recorder = _FoldRecorder(objective, space, n_splits)
        search = BudgetedRandomizedSearchCV(
            estimator,
            {PREFIX + p.name: to_sklearn_distribution(p) for p in space},
            # drawn lazily: without a trial budget the meter ends the stream
            n_iter=budget.trials or sys.maxsize,
            cv=cv,
            scoring=recorder,
            refit=False,
            random_state=seed,
            error_score=np.nan,
            n_jobs=1,
        )
        search.recorder = recorder
        with warnings.catch_warnings():
            # A diverged candidate's NaN score, and a fold that failed (or was not started
            # because the budget ran out), are expected here: their rows already say so.
            warnings.filterwarnings("ignore", "One or more of the test scores are non-finite")
            warnings.filterwarnings("ignore", category=FitFailedWarning)
            search.fit(X, y, validation_data=(d.X_valid, d.y_valid))


def _default_value(param: Param) -> Any:
    return param.choices[0] if isinstance(param, CategoricalParam) else param.low
