"""The estimator scikit-learn's searches fit where the study's evaluator answers each trial
without a model the search could train (a table): ``fit`` is one evaluation. Where the study
trains, the evaluator hands out its own estimator (`tuning.core.evaluator.NativeTraining`).
`score_fold` scores either."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from tuning.core.budget import BudgetSpent
from tuning.core.evaluator import ESTIMATOR_PREFIX as PREFIX
from tuning.core.ledger import TrialResult
from tuning.search.base import SearchTask


class SharedTask:
    """The study's one search task, as an estimator's parameter: scikit-learn's ``clone``
    deep-copies parameters, and every candidate must evaluate through the same evaluator."""

    def __init__(self, task: SearchTask) -> None:
        self.task = task

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedTask:
        return self


class EvaluatorEstimator(BaseEstimator):
    """The estimator of a study whose trials the evaluator answers without a model the search
    could train (a table, `tuning.evaluation.tabular.lookup`): ``fit`` evaluates its
    configuration for at most ``epochs`` epochs (successive halving's resource) through the
    study's evaluator, which records the row; no model, no data. Parameters are the searched
    ones, ``model__``-prefixed as scikeras names them."""

    def __init__(self, shared: SharedTask | None = None, epochs: int = 1, **model_params: Any):
        self.shared = shared
        self.epochs = epochs
        self.model_params = model_params

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"shared": self.shared, "epochs": self.epochs, **self.model_params}

    def set_params(self, **params: Any) -> EvaluatorEstimator:
        for name, value in params.items():
            if name in ("shared", "epochs"):
                setattr(self, name, value)
            else:
                self.model_params[name] = value
        return self

    def __repr__(self) -> str:
        return f"EvaluatorEstimator(epochs={self.epochs}, {self.model_params})"

    def fit(self, X: np.ndarray, y: np.ndarray, **_fit_params: Any) -> EvaluatorEstimator:
        if self.shared is None:
            raise RuntimeError("EvaluatorEstimator needs the study's task")
        task = self.shared.task
        if task.meter.exhausted:
            raise BudgetSpent("the study's budget is spent")
        params = {k[len(PREFIX) :]: v for k, v in self.model_params.items()}
        self.result_: TrialResult = task.evaluator.evaluate(
            task.space.coerce(params), epochs=int(self.epochs)
        )
        self.fit_seconds_ = self.result_.fit_seconds
        return self

    def fold_epochs(self) -> int:
        return self.result_.epochs

    def fold_loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """The evaluator's validation loss of the configuration (its best epoch's)."""
        return self.result_.val_loss


def score_fold(estimator: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The scorer of every fold, in whichever process fitted it: the fold's loss (negated, as
    scikit-learn maximises scores; NaN if the model diverged), epochs trained and fit seconds.
    A fold that failed to fit is never scored: scikit-learn gives it NaN for all three."""
    loss = estimator.fold_loss(X, y)
    return {
        "score": -float(loss),  # the one successive halving ranks by (as "mean_test_score")
        "loss": -float(loss),
        "epochs": float(estimator.fold_epochs()),
        "fit_seconds": float(getattr(estimator, "fit_seconds_", math.nan)),
        "pid": float(os.getpid()),  # the worker that fitted it (a number: scores must be)
    }
