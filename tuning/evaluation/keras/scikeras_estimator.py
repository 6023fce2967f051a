"""scikit-learn's searches over the study's Keras model: a scikeras estimator whose ``fit`` trains
through the study's trainer, counted into its budget (the book's code path), handed to the search
by the evaluator (`native_training`)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
from sklearn.metrics import log_loss, mean_squared_error

from tuning.core.budget import BudgetMeter, BudgetSpent
from tuning.core.errors import call_user_code
from tuning.core.evaluator import ESTIMATOR_PREFIX, NativeTraining
from tuning.core.ledger import TrialResult
from tuning.core.signals import StopSignals
from tuning.evaluation.data import Dataset
from tuning.evaluation.keras.between_trials import release_models
from tuning.evaluation.keras.callbacks import BudgetCallback, StopCallback
from tuning.evaluation.keras.trainer import Trainer, TrainingProtocol


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


class _TimedFit:
    """Mixin recording how long `fit` took, so every fold's row can carry it; a fold that would
    start after the study's budget is spent is not trained. The previous fold's model is freed
    first, as the objective does before each trial. scikeras' own call of ``model.fit`` is
    handed to the study's trainer (the ``trainer`` fit parameter, which the search passes to
    every fold as it passes ``validation_data``), so each fold trains as every other trial does
    (compiled on JAX), and so is its call of ``model.predict`` when the fold is scored.
    ``padded``: every model has one padded shape (JAX's build programs are kept)."""

    def fit(self, X, y, *, trainer: Trainer, padded: bool = False, **kwargs):
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


class TimedKerasClassifier(_TimedFit, KerasClassifier):
    def fold_loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """The fold's validation loss: log loss (NaN if the model diverged)."""
        with self._trainer_predicts():
            proba = self.predict_proba(X)
        if not np.isfinite(proba).all():
            return math.nan
        return float(log_loss(y, proba, labels=np.arange(proba.shape[1])))


def native_training(
    *,
    dataset: Dataset,
    protocol: TrainingProtocol,
    factory: Callable[..., keras.Model],
    searched: Sequence[str],
    arguments: Mapping[str, Any],
    padded: bool,
    trainer: Trainer,
    seed: int,
    meter: BudgetMeter,
    stop: StopSignals | None,
    record: Callable[..., TrialResult],
) -> NativeTraining:
    """What scikit-learn needs to fit a study's model through scikeras
    (`tuning.core.evaluator.NativeTraining`): the ``dataset``'s splits, and an estimator over
    ``factory`` (``searched``: the space's names; ``arguments``: its fixed ones; ``padded``:
    they build every model at one shape) trained by ``trainer`` under ``protocol`` from initial
    weights seeded by ``seed``, counted into ``meter``; ``record`` writes a candidate's row."""
    d = dataset
    names = [*searched, *arguments]
    wrapper = TimedKerasClassifier if d.task == "classification" else TimedKerasRegressor
    fit_kwargs = protocol.fit_kwargs()

    def estimator(defaults: Mapping[str, Any], stop_here: bool) -> Any:
        return wrapper(
            model=scikeras_factory(factory, names),
            callbacks=[  # the protocol's own are the trainer's
                BudgetCallback(meter),
                *([StopCallback(stop)] if stop and stop_here else []),
            ],
            batch_size=fit_kwargs["batch_size"],
            epochs=fit_kwargs["epochs"],
            verbose=fit_kwargs["verbose"],
            random_state=seed,
            **{ESTIMATOR_PREFIX + k: v for k, v in arguments.items()},
            **defaults,
        )

    return NativeTraining(
        X_train=d.X_train,
        y_train=d.y_train,
        X_valid=d.X_valid,
        y_valid=d.y_valid,
        estimator=estimator,
        fit_params={
            "validation_data": (d.X_valid, d.y_valid),
            "trainer": trainer,
            "padded": padded,
        },
        record=record,
    )
