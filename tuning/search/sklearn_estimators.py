"""The estimators scikit-learn's searches fit, one per candidate and fold: thin adapters.

Where the study trains, a scikeras estimator over the study's factory whose ``fit`` trains through
the study's trainer (the book's code path); where it does not (a table), a plain estimator whose
``fit`` is one evaluation. `score_fold` scores either."""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.metrics import log_loss, mean_squared_error

from tuning.core.errors import call_user_code
from tuning.core.ledger import TrialResult
from tuning.search.base import SearchTask

if TYPE_CHECKING:  # imported where a model is trained (a table's study trains none)
    from tuning.evaluation.keras.trainer import Trainer


@contextlib.contextmanager
def _tensorflow_hidden() -> Iterator[None]:
    """Make ``import tensorflow`` fail, on another Keras backend while TensorFlow is not loaded:
    scikeras imports it only to seed it (seconds and hundreds of MiB per process, unused on
    JAX); it then seeds Python's and NumPy's generators alone. A later import is not affected."""
    hide = keras.backend.backend() != "tensorflow" and "tensorflow" not in sys.modules
    if hide:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if hide:
            del sys.modules["tensorflow"]


with _tensorflow_hidden():
    from scikeras.wrappers import KerasClassifier, KerasRegressor

PREFIX = "model__"  # scikeras routes these parameters to the model-building function


# what scikeras hands a model-building function that takes ``**kwargs``, beyond its parameters
SCIKERAS_EXTRAS = ("meta", "compile_kwargs", "params")


def scikeras_factory(factory: Any, names: list[str]) -> functools.partial:
    """The study's factory as scikeras calls it (a function or a partial, scikeras requires),
    declaring only ``names`` (the space's parameters and the study's fixed arguments) and
    whichever of `SCIKERAS_EXTRAS` the factory itself names: scikeras gives a factory that takes
    ``**kwargs`` those extras too, which it then passes on to Keras, and fails (``unexpected
    keyword argument 'meta'``)."""
    try:
        declared = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # (a callable with no signature to read)
        declared = set()
    wanted = dict.fromkeys([*names, *(e for e in SCIKERAS_EXTRAS if e in declared)])
    # (scikit-learn records a fold's `Exception` as its failure; a `SystemExit` would end the
    # search: the factory's every exception is made one)
    call = functools.partial(call_user_code, factory)
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in wanted]
    )
    return call


class BudgetSpent(RuntimeError):
    """Raised instead of fitting a fold once the study's budget is spent."""


class _TimedFit:
    """Mixin recording how long `fit` took, so every fold's row can carry it; a fold that would
    start after the study's budget is spent is not trained. The previous fold's model is freed
    first, as the objective does before each trial. scikeras' own call of ``model.fit`` is
    handed to the study's trainer (the ``trainer`` fit parameter, which the search passes to
    every fold as it passes ``validation_data``), so each fold trains as every other trial does
    (compiled on JAX), and so is its call of ``model.predict`` when the fold is scored.
    ``padded``: every model has one padded shape (JAX's build programs are kept)."""

    def fit(self, X, y, *, trainer: Trainer, padded: bool = False, **kwargs):
        from tuning.evaluation.keras.callbacks import BudgetCallback
        from tuning.evaluation.keras.session import release_models

        self.trainer_ = trainer
        if any(isinstance(cb, BudgetCallback) and cb.meter.exhausted for cb in self.callbacks):
            raise BudgetSpent("the study's budget is spent")
        release_models(forget_programs=not padded)
        started = time.perf_counter()
        super().fit(X, y, **kwargs)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def fold_epochs(self) -> int:
        return len(self.history_.get("loss", []))

    def _trainer_predicts(self) -> contextlib.AbstractContextManager[None]:
        """scikeras' ``self.model_.predict(X)`` answered by the study's trainer (compiled once
        per structure and shape, where Keras' ``predict`` compiles for each new model)."""
        trainer, model = self.trainer_, self.model_

        def predict(x, **_predict_args):
            return trainer.predict(model, x)

        return _answered(model, "predict", predict)

    def _fit_keras_model(self, X, y, *args, **kwargs):
        trainer, model = self.trainer_, self.model_

        def fit(*, x, y, **fit_args):
            return SimpleNamespace(history=trainer.fit(model, x, y, **fit_args))

        # scikeras calls `self.model_.fit(x=..., y=..., **fit_args)` and reads `.history`
        with _answered(model, "fit", fit):
            return super()._fit_keras_model(X, y, *args, **kwargs)


@contextlib.contextmanager
def _answered(model: Any, method: str, function: Any) -> Iterator[None]:
    """Within the block, scikeras' calls of ``model.<method>`` go to ``function`` (set on the
    instance, past Keras' own `__setattr__`, which tracks what is set on a model)."""
    object.__setattr__(model, method, function)
    try:
        yield
    finally:
        object.__delattr__(model, method)


class TimedKerasRegressor(_TimedFit, KerasRegressor):
    def fold_loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """The fold's validation loss: mean squared error (NaN if the model diverged)."""
        with self._trainer_predicts():
            pred = self.predict(X)
        return float(mean_squared_error(y, pred)) if np.isfinite(pred).all() else math.nan


class _Shared:
    """The study's one search task, as an estimator's parameter: scikit-learn's ``clone``
    deep-copies parameters, and every candidate must evaluate through the same evaluator."""

    def __init__(self, task: SearchTask) -> None:
        self.task = task

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


class EvaluatorEstimator(BaseEstimator):
    """The estimator of a study whose trials the evaluator answers without a model the search
    could train (a table, `tuning.evaluation.tabular.lookup`): ``fit`` evaluates its
    configuration for at most ``epochs`` epochs (successive halving's resource) through the
    study's evaluator, which records the row; no model, no data. Parameters are the searched
    ones, ``model__``-prefixed as scikeras names them."""

    def __init__(self, shared: _Shared | None = None, epochs: int = 1, **model_params: Any):
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


class TimedKerasClassifier(_TimedFit, KerasClassifier):
    def fold_loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """The fold's validation loss: log loss (NaN if the model diverged)."""
        with self._trainer_predicts():
            proba = self.predict_proba(X)
        if not np.isfinite(proba).all():
            return math.nan
        return float(log_loss(y, proba, labels=np.arange(proba.shape[1])))


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
