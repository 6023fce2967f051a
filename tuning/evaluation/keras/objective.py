"""The real-training evaluator: the only place a trial is trained.

Every backend evaluates a configuration through `Objective.evaluate` (the contract of
`tuning.core.evaluator`; scikit-learn's estimators, on the first interface, through its factory,
trainer and callbacks), so every trial sees the same data, batch size, epoch cap, early stopping
and divergence guard, and writes the same row.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tuning.core.budget import BudgetMeter
from tuning.core.errors import ResumeError
from tuning.core.evaluator import Evaluator, Report, WarmStart
from tuning.core.ledger import ResumeLedger, TrialResult, same_params
from tuning.core.results import TrialWriter
from tuning.core.signals import StopSignals
from tuning.evaluation.data import DATA_ARGUMENTS, Dataset
from tuning.evaluation.keras.factory import offered_arguments
from tuning.evaluation.keras.model import build_model
from tuning.evaluation.keras.trainer import StopOnNonFiniteLoss, Trainer, TrainingProtocol
from tuning.evaluation.keras.trainers import create_trainer

__all__ = [  # the protocol's names, imported from here by earlier code
    "BudgetCallback",
    "Objective",
    "PruneCallback",
    "ResumeError",
    "StopCallback",
    "StopOnNonFiniteLoss",
    "TrainingProtocol",
    "TrialResult",
    "same_params",
]

log = logging.getLogger(__name__)


class BudgetCallback(keras.callbacks.Callback):
    """Counts each finished epoch into the study's meter and stops the fit once the budget is
    spent, so the last trial ends exactly where the epoch budget does."""

    # `tuning.evaluation.keras.compiled`: needs no weights written back before it runs
    reads_model = False

    def __init__(self, meter: BudgetMeter) -> None:
        super().__init__()
        self.meter = meter

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.meter.add_epoch()
        if self.meter.exhausted:
            self.model.stop_training = True


class StopCallback(keras.callbacks.Callback):
    """Stops a fit at the end of the epoch (or batch) in which Ctrl-C or SIGTERM came, should
    Python have lost the interrupt it raised (`tuning.core.signals`)."""

    reads_model = False

    def __init__(self, stop: StopSignals) -> None:
        super().__init__()
        self.stop = stop

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.stop.raise_if_stopped()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.stop.raise_if_stopped()


class PruneCallback(keras.callbacks.Callback):
    """Lets the search library stop a trial it judges unpromising (Optuna's pruners): at each
    epoch's end ``should_prune(epochs_trained, val_loss)`` reports the epoch's validation loss
    to the library and answers whether to stop. A stopped trial is recorded ``pruned``."""

    reads_model = False

    def __init__(self, should_prune: Callable[[int, float], bool]) -> None:
        super().__init__()
        self.should_prune = should_prune
        self.pruned_after: int | None = None  # epochs trained when it was pruned

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        val_loss = (logs or {}).get("val_loss")
        if val_loss is None or not math.isfinite(val_loss):
            return  # a diverged trial is failed by the NaN guard, not pruned
        if self.should_prune(epoch + 1, float(val_loss)):
            self.pruned_after = epoch + 1
            self.model.stop_training = True


def release_models() -> None:
    """Drop Keras' global state (layer names, graphs, kernel caches) and collect the previous
    trials' models, so that memory stays flat over hundreds of trials. Call it before seeding.

    A full collection with TensorFlow or JAX loaded scans half a million objects, a large share
    of a fast trial. So the first call of a process freezes what is alive then (the frameworks,
    the data: freed by reference counting as before, only skipped by the cycle collector), and
    every collection after scans only what trials made since.
    """
    keras.backend.clear_session(free_memory=False)
    _forget_custom_gradients()
    _forget_jax_programs()
    gc.collect()
    if not gc.get_freeze_count():
        gc.freeze()


def seed_generators(seed: int) -> None:
    """Seed the global generators a trial draws from: Python's and NumPy's (which shuffles the
    batches on JAX), and TensorFlow's when it is loaded (it shuffles them on TensorFlow).

    `keras.utils.set_random_seed` seeds all of them, but imports TensorFlow to do so whatever
    the backend: on JAX, seconds of the first trial's time and of a seconds budget
    (`import tensorflow` takes seconds). It is called only where TensorFlow
    is loaded already.
    """
    if "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
    else:
        random.seed(seed)
        np.random.seed(seed)


def _forget_jax_programs() -> None:
    """JAX keeps every program it compiled for a function in memory, per argument shape: Keras'
    initializers and steps compile one per new layer shape, so memory grows with every new
    architecture (`benchmarks/memory.py` measures it). Cleared before each
    trial; the compiled trainer holds its own programs, and the persistent cache
    (`tuning.evaluation.keras.jax_cache`) gives back the others in milliseconds."""
    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()


def _forget_custom_gradients() -> None:
    """TensorFlow registers a gradient function in a global registry each time it traces a
    `tf.custom_gradient` op (Keras' training step has one) and never removes it; each entry keeps
    its traced graph alive, so memory grows trial after trial (`benchmarks/memory.py`). A graph takes
    its gradients while it is traced, so the entries of earlier trials are not needed again."""
    if keras.backend.backend() != "tensorflow":
        return
    from tensorflow.python.framework import ops  # the registry has no public way to remove

    entries = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if isinstance(entries, dict):
        for name in [name for name in entries if str(name).startswith("CustomGradient-")]:
            del entries[name]


def factory_arguments(
    factory: Callable[..., keras.Model],
    dataset: Dataset,
    protocol: TrainingProtocol,
    seed: int,
    model_options: Mapping[str, Any],
) -> dict[str, Any]:
    """A factory's arguments besides the searched ones: the data's (`DATA_ARGUMENTS`), the
    protocol's (`tuning.run.config.PROTOCOL_ARGUMENTS`: the speed setting, and the study's seed for
    the initial weights, which makes them the same in any process), those of them its signature
    takes, and the study's fixed ``model_options``."""
    from_data = {name: getattr(dataset, name) for name in DATA_ARGUMENTS}
    from_protocol = {
        "steps_per_execution": protocol.steps_per_execution(len(dataset.X_train)),
        "seed": seed,
    }
    return {**offered_arguments(factory, {**from_data, **from_protocol}), **model_options}


def build_seeded(
    factory: Callable[..., keras.Model],
    params: Mapping[str, Any],
    dataset: Dataset,
    protocol: TrainingProtocol,
    seed: int,
    model_options: Mapping[str, Any] | None = None,
) -> keras.Model:
    """Build ``params`` through ``factory`` as every trial is built: the global generators
    seeded with ``seed`` first, the factory's other arguments from `factory_arguments`."""
    seed_generators(seed)
    arguments = factory_arguments(factory, dataset, protocol, seed, model_options or {})
    return factory(**params, **arguments)


def score_history(history: Mapping[str, Sequence[float]]) -> tuple[float, str]:
    """A trial's score is its best validation loss; any non-finite loss makes it a failure."""
    for key in ("loss", "val_loss"):
        values = np.asarray(history.get(key, []), dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            return math.nan, f"{key} became non-finite at epoch {int(bad[0]) + 1}: diverged"
    val = history.get("val_loss", [])
    if not len(val):
        return math.nan, "no validation loss was recorded"
    return float(np.min(val)), ""


class Objective(Evaluator):
    """Train one configuration under the protocol and append its row to the study's table.

    Every trial of a study is seeded with the study's seed, so two trials differ only by their
    hyperparameters (common random numbers) and any trial can be reproduced exactly. Every epoch
    trained counts into ``meter`` (the study's budget; unlimited when not given), and each row
    carries the study's cumulative epochs and wall seconds when it was written, and the seconds
    spent compiling since the previous row. ``trainer`` (default: the protocol's, made here)
    trains every model of the study, so its compiled programs and device arrays are reused.
    """

    def __init__(
        self,
        dataset: Dataset,
        protocol: TrainingProtocol,
        writer: TrialWriter,
        seed: int,
        model_options: Mapping[str, Any] | None = None,
        meter: BudgetMeter | None = None,
        finished: Sequence[TrialResult] = (),
        stop: StopSignals | None = None,
        trainer: Trainer | None = None,
        factory: Callable[..., keras.Model] | None = None,
        checkpoints: Path | None = None,
    ) -> None:
        self.dataset = dataset
        self.factory = factory or build_model
        self.protocol = protocol
        self.trainer = trainer or create_trainer(protocol, seed)
        self._compile_seconds_recorded = self.trainer.compile_seconds
        self.writer = writer
        self.seed = seed
        self.model_options = dict(model_options or {})
        self.meter = meter or BudgetMeter(None)
        self.ledger = ResumeLedger(finished, writer.key.backend)
        self.stop = stop
        # each trial's final (best) weights, for a search that continues trials (warm starts)
        self.checkpoints = checkpoints

    @property
    def finished(self) -> list[TrialResult]:
        return self.ledger.finished

    @property
    def n_recorded(self) -> int:
        return self.ledger.recorded

    def _before_training(self) -> None:
        if self.stop is not None:
            self.stop.raise_if_stopped()

    # -- resuming (the ledger's; kept here for backends written against the first interface) --
    def restored(self, n_trials: int) -> None:
        self.ledger.restored(n_trials)

    def replay(self, params: Mapping[str, Any]) -> TrialResult | None:
        return self.ledger.replay(params)

    # -- building -----------------------------------------------------------------------------
    def model_kwargs(self) -> dict[str, Any]:
        """The factory's arguments besides the searched ones (`factory_arguments`)."""
        return factory_arguments(
            self.factory, self.dataset, self.protocol, self.seed, self.model_options
        )

    def build(self, params: Mapping[str, Any]) -> keras.Model:
        """Free the previous trial's models, seed, then build ``params`` through the factory."""
        release_models()
        return build_seeded(
            self.factory, params, self.dataset, self.protocol, self.seed, self.model_options
        )

    # -- training -----------------------------------------------------------------------------
    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        epochs: int | None = None,
        warm_start: WarmStart | None = None,
        report: Report | None = None,
        number: int | None = None,
    ) -> TrialResult:
        """`tuning.core.evaluator.Evaluator.evaluate`: build, train and record one trial; a
        warm start builds it, loads the earlier trial's kept weights, and trains on from there."""
        callbacks = [PruneCallback(report)] if report is not None else []
        if warm_start is None:
            return self(params, number=number, callbacks=callbacks, epochs=epochs)
        replayed = self.replay(params)
        if replayed is not None:
            return replayed
        return self.train(
            self.warm_model(params, warm_start),
            params,
            epochs=self.protocol.max_epochs if epochs is None else epochs,
            initial_epoch=warm_start.epochs,
            callbacks=callbacks,
            number=number,
        )

    def warm_model(self, params: Mapping[str, Any], warm_start: WarmStart) -> keras.Model:
        """The model a warm start continues: ``params`` built, with the kept weights of the
        trial it continues."""
        model = self.build(params)
        model.load_weights(self.checkpoint(warm_start.trial, must_exist=True))
        return model

    def checkpoint(self, trial: int, must_exist: bool = False) -> Path:
        """Where trial ``trial``'s final weights are kept (`checkpoints`)."""
        if self.checkpoints is None:
            raise ValueError("warm starts need the objective's checkpoints folder")
        path = self.checkpoints / f"trial_{trial}.weights.h5"
        if must_exist and not path.exists():
            raise ResumeError(
                f"cannot continue trial {trial}: its weights are not in {self.checkpoints} (a "
                "study of an earlier version?): pass --fresh to start the study over"
            )
        return path

    def __call__(
        self,
        params: Mapping[str, Any],
        *,
        number: int | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        epochs: int | None = None,
    ) -> TrialResult:
        """Build, train and record one trial; a failure is recorded, never raised.

        ``number`` is the trial's number in the table when the library numbers the trials of a
        study shared by several processes; by default the trials are numbered in order.
        ``callbacks`` join the protocol's (a `PruneCallback`: the library may stop the trial).
        """
        replayed = self.replay(params)
        if replayed is not None:
            return replayed
        self._before_training()
        started = time.perf_counter()
        try:
            model = self.build(params)
        except (ValueError, TypeError) as exc:
            return self.record(
                params,
                status="failed",
                val_loss=math.nan,
                epochs=0,
                fit_seconds=time.perf_counter() - started,
                error=f"build failed: {exc}",
                number=number,
            )
        return self.train(
            model,
            params,
            epochs=self.protocol.max_epochs if epochs is None else epochs,
            callbacks=callbacks,
            number=number,
        )

    def train(
        self,
        model: keras.Model,
        params: Mapping[str, Any],
        *,
        epochs: int,
        initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        number: int | None = None,
    ) -> TrialResult:
        """Fit ``model`` under the protocol (from ``initial_epoch`` to ``epochs``) and record it.

        An exception raised while training is recorded as a failed trial (with the epochs that
        finished before it) rather than ending the study.
        """
        replayed = self.replay(params)
        if replayed is not None:
            return replayed
        self._before_training()
        started = time.perf_counter()
        progress = keras.callbacks.History()  # still readable when fit raises mid-way
        try:
            history, seconds = self.fit(
                model, epochs=epochs, initial_epoch=initial_epoch, callbacks=[*callbacks, progress]
            )
        except Exception as exc:
            log.debug("trial %d raised while training", self.n_recorded, exc_info=True)
            reason = (str(exc).strip().splitlines() or [""])[0]
            return self.record(
                params,
                status="failed",
                val_loss=math.nan,
                epochs=len(getattr(progress, "epoch", [])),
                fit_seconds=time.perf_counter() - started,
                error=f"training failed: {type(exc).__name__}: {reason}",
                number=number,
            )
        val_loss, error = score_history(history)
        status = "failed" if error else "complete"
        pruned = [cb.pruned_after for cb in callbacks if getattr(cb, "pruned_after", None)]
        if pruned and not error:
            status, error = "pruned", f"pruned by the search after epoch {pruned[0]}"
        result = self.record(
            params,
            status=status,
            val_loss=val_loss,
            epochs=len(history.get("loss", [])),
            fit_seconds=seconds,
            error=error,
            history=history,
            number=number,
        )
        if self.checkpoints is not None and status != "failed":
            self.checkpoints.mkdir(exist_ok=True)
            model.save_weights(self.checkpoint(result.trial))
        return result

    def fit(
        self,
        model: keras.Model,
        *,
        epochs: int | None = None,
        initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        metered: bool = True,
    ) -> tuple[dict[str, list[float]], float]:
        """Train ``model`` through the study's trainer; returns the history and seconds spent.

        ``metered=False`` (the winner's final retraining) trains outside the search budget.
        """
        if metered:
            callbacks = [*callbacks, BudgetCallback(self.meter)]
        if self.stop is not None:
            callbacks = [*callbacks, StopCallback(self.stop)]
        d = self.dataset
        started = time.perf_counter()
        history = self.trainer.fit(
            model,
            d.X_train,
            d.y_train,
            validation_data=(d.X_valid, d.y_valid),
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
        )
        return history, time.perf_counter() - started

    def final_result(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], keras.Model | None]:
        """The winner's ``params`` retrained once under the protocol, outside the budget, and
        tested: the summary's figures, and the model (the study saves it)."""
        model = self.build(params)
        history, fit_seconds = self.fit(model, metered=False)
        d = self.dataset
        test = model.evaluate(d.X_test, d.y_test, verbose=0, return_dict=True)
        return {
            "final_val_loss": float(min(history["val_loss"])),
            "final_epochs": len(history["loss"]),
            "final_fit_seconds": round(fit_seconds, 3),
            "test_loss": float(test["loss"]),
            "test_accuracy": float(test["accuracy"]) if "accuracy" in test else None,
        }, model

    # -- recording ----------------------------------------------------------------------------
    def record(
        self,
        params: Mapping[str, Any],
        *,
        status: str,
        val_loss: float,
        epochs: int,
        fit_seconds: float,
        error: str = "",
        history: dict[str, list[float]] | None = None,
        number: int | None = None,
        worker: tuple[str, int] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> TrialResult:
        """Append one finished trial to the table (used directly by backends that train natively).

        ``worker`` (host, pid) names the process that trained it when that is not this one;
        ``extra`` holds more of the table's columns (`tuning.core.results.EXTRA_COLUMNS`).
        """
        result = TrialResult(
            trial=self.ledger.next_number() if number is None else number,
            params=dict(params),
            status=status,
            val_loss=float(val_loss),
            epochs=int(epochs),
            fit_seconds=float(fit_seconds),
            error=error,
            history=history or {},
        )
        self.ledger.count()
        self.meter.add_trial()
        compiling = self.trainer.compile_seconds - self._compile_seconds_recorded
        self._compile_seconds_recorded = self.trainer.compile_seconds
        self.writer.append(
            {
                "trial": result.trial,
                "status": result.status,
                **{name: params.get(name) for name in self.writer.parameters},
                "val_loss": result.val_loss,
                "epochs": result.epochs,
                "fit_seconds": round(result.fit_seconds, 4),
                "cum_epochs": self.meter.epochs,
                "cum_seconds": round(self.meter.seconds, 4),
                "params": json.dumps(result.params, sort_keys=True),
                "error": result.error,
                "compile_seconds": round(compiling, 4),
                **({"host": worker[0], "pid": worker[1]} if worker else {}),
                **(extra or {}),
            }
        )
        log.info(
            "trial %d %s val_loss=%.5g epochs=%d params=%s",
            result.trial,
            result.status,
            result.val_loss,
            result.epochs,
            result.params,
        )
        return result
