"""The real-training evaluator: the only place a trial is trained.

Every backend evaluates a configuration through `KerasEvaluator.evaluate` (the contract of
`tuning.core.evaluator`; scikit-learn's scikeras estimator through the same evaluator's
`native_training`: the same factory, trainer and callbacks), so every trial sees the same data,
batch size, epoch cap, early stopping and divergence guard, and writes the same row
(`tuning.core.recorder`). The winner's final training is `tuning.evaluation.keras.winner`'s.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import keras

from tuning.core.budget import BudgetMeter
from tuning.core.errors import ResumeError, StudyError, first_line, start_over
from tuning.core.evaluator import DataDescription, Evaluator, NativeTraining, Report, WarmStart
from tuning.core.files import refuse_link, replace_with
from tuning.core.ledger import ResumeLedger, TrialResult
from tuning.core.outcome import trained_outcome
from tuning.core.process_workers import ProcessWorkers
from tuning.core.recorder import TrialRecorder
from tuning.core.results import TrialWriter
from tuning.core.signals import StopSignals
from tuning.core.space import SearchSpace, default_space
from tuning.evaluation.data import Dataset
from tuning.evaluation.keras.between_trials import release_models
from tuning.evaluation.keras.callbacks import BudgetCallback, PruneCallback, StopCallback
from tuning.evaluation.keras.factory import Padding
from tuning.evaluation.keras.model import build_model
from tuning.evaluation.keras.seeded_build import build_seeded, factory_arguments
from tuning.evaluation.keras.trainer import Trainer, TrainingProtocol
from tuning.evaluation.keras.trainer_choice import create_trainer

log = logging.getLogger(__name__)


class KerasEvaluator(Evaluator):
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
        space: SearchSpace | None = None,  # default: the book's
        model_options: Mapping[str, Any] | None = None,
        meter: BudgetMeter | None = None,
        finished: Sequence[TrialResult] = (),
        stop: StopSignals | None = None,
        trainer: Trainer | None = None,
        factory: Callable[..., keras.Model] | None = None,
        checkpoints: Path | None = None,
        ledger: ResumeLedger | None = None,
        padding: Padding | None = None,
        workers_from: Callable[..., KerasEvaluator] | None = None,
    ) -> None:
        self.dataset = dataset
        self.space = space if space is not None else default_space()
        self.factory = factory or build_model
        self.protocol = protocol
        self.trainer = trainer or create_trainer(protocol, seed, share_programs=True)
        self.writer = writer
        self.seed = seed
        self.model_options = dict(model_options or {})
        # models built at a few shapes (`Padding`), where the trainer profits from it
        shares = padding is not None and self.trainer.shares_programs_by_shape
        self.padding = padding if shares else Padding()
        self.meter = meter or BudgetMeter(None)
        self.ledger = ledger or ResumeLedger(finished, writer.key.backend)
        self.recorder = TrialRecorder(
            writer, self.ledger, self.meter, lambda: self.trainer.compile_seconds
        )
        self.stop = stop
        # each trial's final (best) weights, for a search that continues trials (warm starts)
        self.checkpoints = checkpoints
        # builds this study's evaluator again in a worker process, given its compute threads,
        # meter and recorder (`tuning.evaluation.keras.kind.worker_evaluator`)
        self.workers_from = workers_from

    def _before_training(self) -> None:
        if self.stop is not None:
            self.stop.raise_if_stopped()

    # -- building -----------------------------------------------------------------------------
    def model_kwargs(self) -> dict[str, Any]:
        """The factory's arguments besides the searched ones (`factory_arguments`): for a
        library that builds every configuration with them (scikit-learn's estimator), the
        padding only where it is the same for every configuration."""
        return factory_arguments(
            self.factory,
            self.dataset,
            self.protocol,
            self.seed,
            {**self.padding.fixed_arguments(), **self.model_options},
        )

    def build(self, params: Mapping[str, Any], padded: bool = True) -> keras.Model:
        """Free the previous trial's models, seed, then build ``params`` through the factory,
        at the study's padded shape unless ``padded`` is False (JAX's programs for building are
        kept where every model has a padded shape)."""
        release_models(forget_programs=not self.padding.widths)
        padding = self.padding.arguments(params) if padded else {}
        return build_seeded(
            self.factory,
            params,
            self.dataset,
            self.protocol,
            self.seed,
            {**padding, **self.model_options},
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
            return self.train_new(params, number=number, callbacks=callbacks, epochs=epochs)
        replayed = self.ledger.replay(params)
        if replayed is not None:
            return replayed
        started = time.perf_counter()
        try:
            model = self.warm_model(params, warm_start)
        except StudyError:  # the harness's (weights never kept): the study cannot go on
            raise
        except Exception as exc:  # the user's factory, or Keras loading its weights
            # recorded, not raised: a library that catches a trial's error (Keras Tuner) would
            # go on without it, and the study would silently lose the trial
            error = f"warm start from trial {warm_start.trial} failed: {first_line(exc)}"
            return self.failed(params, started, error, number)
        return self.train(
            model,
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
                f"study of an earlier version?): {start_over(self.checkpoints.parent)}"
            )
        return path

    def train_new(
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
        replayed = self.ledger.replay(params)
        if replayed is not None:
            return replayed
        self._before_training()
        started = time.perf_counter()
        try:
            model = self.build(params)
        except StudyError:
            raise
        except Exception as exc:  # whatever the user's factory raises is the trial's failure
            return self.failed(params, started, f"build failed: {first_line(exc)}", number)
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
        replayed = self.ledger.replay(params)
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
            log.debug("trial %d raised while training", self.ledger.recorded, exc_info=True)
            error = f"training failed: {first_line(exc)}"
            epochs = len(getattr(progress, "epoch", []))
            done = {k: list(v) for k, v in (getattr(progress, "history", None) or {}).items()}
            return self.failed(params, started, error, number, epochs=epochs, history=done)
        pruned = [cb.pruned_after for cb in callbacks if getattr(cb, "pruned_after", None)]
        outcome = trained_outcome(history, pruned[0] if pruned else None)
        result = self.record(
            params,
            status=outcome.status,
            val_loss=outcome.val_loss,
            epochs=len(history.get("loss", [])),
            fit_seconds=seconds,
            error=outcome.error,
            history=history,
            number=number,
        )
        if self.checkpoints is not None and outcome.status != "failed":
            refuse_link(self.checkpoints).mkdir(exist_ok=True)
            replace_with(self.checkpoint(result.trial), model.save_weights)
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

    def final_result(self, params: Mapping[str, Any], folder: Path) -> dict[str, Any]:
        """`tuning.core.evaluator.Evaluator.final_result`: the winner retrained, tested and
        saved into ``folder`` (`tuning.evaluation.keras.winner`)."""
        from tuning.evaluation.keras.winner import final_training

        return final_training(self, params, folder)

    def data(self) -> DataDescription:
        return self.dataset.description()

    # -- recording ----------------------------------------------------------------------------
    def record(self, params: Mapping[str, Any], **fields: Any) -> TrialResult:
        """Append one finished trial to the table (`tuning.core.recorder.TrialRecorder.record`)."""
        return self.recorder.record(params, **fields)

    def failed(
        self,
        params: Mapping[str, Any],
        started: float,
        error: str,
        number: int | None,
        epochs: int = 0,
        history: dict[str, list[float]] | None = None,
    ) -> TrialResult:
        """Record a trial that failed (``error``) after ``epochs`` epochs, begun at ``started``
        (``history``: those epochs' losses)."""
        seconds = time.perf_counter() - started
        return self.record(
            params,
            status="failed",
            val_loss=math.nan,
            epochs=epochs,
            fit_seconds=seconds,
            error=error,
            history=history,
            number=number,
        )

    def workers(self, size: int) -> ProcessWorkers:
        """``size`` worker processes training this study's trials at once
        (`tuning.core.process_workers.ProcessWorkers`), started now, the machine's compute
        threads shared among them."""
        if self.workers_from is None:
            return super().workers(size)  # (built without its config: refused in one line)
        threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
        workers = ProcessWorkers(
            size,
            self.meter,
            make_evaluator=partial(self.workers_from, max(1, threads // size)),
            record=self.record,
            table=self.writer.path,
            stop=self.stop,
        )
        workers.start_processes()
        return workers

    def native_training(self) -> NativeTraining:
        """What scikit-learn's scikeras estimator needs to train the study's model
        (`tuning.evaluation.keras.scikeras_estimator`)."""
        from tuning.evaluation.keras.scikeras_estimator import native_training

        return native_training(
            dataset=self.dataset,
            protocol=self.protocol,
            factory=self.factory,
            searched=self.space.names,
            arguments=self.model_kwargs(),
            padded=bool(self.padding.fixed_arguments()),
            trainer=self.trainer,
            seed=self.seed,
            meter=self.meter,
            stop=self.stop,
            record=self.record,
        )
