"""The tabular objective: trials answered from a table of learning curves (``tuning tabulate``).

``--objective tabular:TABLE`` makes every backend search the table's space through its own
library, as in a real study, but each trial is looked up instead of trained: the configuration
the library proposes is snapped to the grid's nearest values (on the parameter's own scale: log
for a log range), and its training and validation curves, for the table seed the study's seed
maps to (``seeds[seed % len(seeds)]``), are played through the same callbacks a real fit calls,
epoch by epoch. Whatever stops a real fit stops the played one at the same epoch: the table's
curve ends where early stopping (or the NaN guard) ended the real run, and the budget, a pruner,
Ctrl-C or a Hyperband round end it earlier. Each epoch played costs one epoch of the budget and
its recorded seconds on a simulated clock (the real time of the search, the library's own work,
plus the table's training seconds), so a seconds budget spends as it would have.

A study's winner is not retrained: its test loss is the table's (the same configuration and
seed trained under the protocol, best weights restored), and its regret is that minus the best
test loss in the table for the seed. Where lookups differ from real runs (README): the grid's
resolution; a trial continued from an earlier round (Keras Tuner's Hyperband) continues the
table's one run rather than restarting from the best epoch's weights with a fresh optimizer, and
cannot go past the epoch at which early stopping ended that run.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tuning.core.evaluator import WarmStart
from tuning.core.space import SearchSpace
from tuning.evaluation.keras.objective import Objective, TrialResult
from tuning.evaluation.keras.trainer import History, Trainer, TrainingProtocol, ValidationData
from tuning.evaluation.tabular.table import Table, TableEntry


class SimulatedClock:
    """The study's clock: real time plus the training seconds the table says lookups took."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class TableModel(keras.Model):
    """What a tabular trial "builds": no layers, only the configuration to look up. A Keras
    model (Keras Tuner checks), whose weights are the table's: saving and loading them
    (Keras Tuner's checkpoints) does nothing."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__()
        self.params = dict(params)
        self.stop_training = False

    def call(self, inputs: Any) -> Any:
        return inputs

    def save_weights(self, *args: Any, **kwargs: Any) -> None:
        return None

    def load_weights(self, *args: Any, **kwargs: Any) -> None:
        return None


class TableTrainer(Trainer):
    """Plays a configuration's curves from the table through a fit's callbacks, epoch by epoch,
    advancing the simulated clock by each epoch's seconds; stops where the table's run stopped,
    or earlier where a callback stops the fit."""

    name = "table"

    def __init__(
        self, protocol: TrainingProtocol, seed: int, table: Table, clock: SimulatedClock
    ) -> None:
        super().__init__(protocol, seed)
        self.table = table
        self.clock = clock

    def fit(
        self,
        model: keras.Model,
        x: np.ndarray,
        y: np.ndarray,
        *,
        validation_data: ValidationData,
        epochs: int | None = None,
        initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        **fit_options: Any,
    ) -> History:
        entry = self.table.entry(model.params, self.seed)
        epochs = self.protocol.max_epochs if epochs is None else epochs
        for cb in callbacks:
            cb.set_model(model)
            cb.set_params({"epochs": epochs, "verbose": 0, "steps": None})
        model.stop_training = False
        for cb in callbacks:
            cb.on_train_begin()
        history: History = {"loss": [], "val_loss": []}
        for epoch in range(initial_epoch, min(epochs, entry.epochs)):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            self.clock.advance(entry.epoch_seconds)
            logs = {"loss": entry.loss[epoch], "val_loss": entry.val_loss[epoch]}
            history["loss"].append(logs["loss"])
            history["val_loss"].append(logs["val_loss"])
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        return history


def _freeze_what_is_alive() -> None:
    """Libraries collect garbage between trials (Keras Tuner: a full collection per build);
    with the frameworks loaded one scans half a million objects, far more than a lookup costs.
    As `tuning.evaluation.keras.objective.release_models` does before the first real trial:
    what is alive now (the frameworks, the table) is left out of every later collection."""
    if not gc.get_freeze_count():
        gc.collect()
        gc.freeze()


class TabularObjective(Objective):
    """The `Objective` of a tabular study: the same calls, rows, budget and resume, with each
    trial looked up (`TableTrainer`) rather than trained, its configuration snapped to the grid
    (the rows hold the snapped one), and its row's ``table_test_loss`` the table's test loss of
    that configuration fully trained (what the study would report were it the winner)."""

    def __init__(
        self,
        table: Table,
        space: SearchSpace,
        protocol: TrainingProtocol,
        clock: SimulatedClock,
        seed: int,
        **objective_options: Any,
    ) -> None:
        self.table = table
        self.space = space
        self.clock = clock
        self.table_seed = table.table_seed(seed)
        trainer = TableTrainer(protocol, self.table_seed, table, clock)
        _freeze_what_is_alive()
        super().__init__(table.dataset(), protocol, seed=seed, trainer=trainer, **objective_options)

    def __deepcopy__(self, memo: dict[int, Any]) -> TabularObjective:
        return self  # scikit-learn copies an estimator's parameters: one objective per study

    def snap(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return self.table.snap(params, self.space)

    def entry(self, params: Mapping[str, Any]) -> TableEntry:
        return self.table.entry(self.snap(params), self.table_seed)

    def build(self, params: Mapping[str, Any]) -> keras.Model:
        return TableModel(self.snap(params))

    def replay(self, params: Mapping[str, Any]) -> TrialResult | None:
        return super().replay(self.snap(params))

    def __call__(self, params: Mapping[str, Any], **options: Any) -> TrialResult:
        return super().__call__(self.snap(params), **options)

    def warm_model(self, params: Mapping[str, Any], warm_start: WarmStart) -> keras.Model:
        """A warm start continues the table's one run of the configuration from the epoch the
        earlier trial reached (`train`'s ``initial_epoch``): a lookup keeps no weights."""
        return self.build(params)

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
        params = self.snap(params)
        entry = self.table.entry(params, self.table_seed)
        if initial_epoch < entry.epochs or not math.isfinite(entry.best_val_loss):
            return super().train(
                model,
                params,
                epochs=epochs,
                initial_epoch=initial_epoch,
                callbacks=callbacks,
                number=number,
            )
        # continued past the epoch where early stopping ended the table's run: nothing to play
        replayed = self.replay(params)
        if replayed is not None:
            return replayed
        self._before_training()
        return self.record(
            params,
            status="complete",
            val_loss=entry.best_val_loss,
            epochs=0,
            fit_seconds=0.0,
            error=f"early stopping ended this configuration after epoch {entry.epochs}",
            number=number,
        )

    def fit(self, model: keras.Model, **options: Any) -> tuple[dict[str, list[float]], float]:
        """Play the curves; the seconds are the table's, not the lookup's."""
        before = self.clock.offset
        history, _ = super().fit(model, **options)
        return history, self.clock.offset - before

    def answer(
        self, params: Mapping[str, Any], epochs: int
    ) -> tuple[dict[str, list[float]], float]:
        """Play ``params`` for at most ``epochs`` epochs without writing a row (a
        scikit-learn fold: its search's recorder writes the row); returns history, seconds."""
        return self.fit(self.build(params), epochs=epochs)

    def record(self, params: Mapping[str, Any], **fields: Any) -> TrialResult:
        params = self.snap(params)
        fields.setdefault("extra", {})["table_test_loss"] = self.entry(params).test_loss
        return super().record(params, **fields)

    def final_result(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], None]:
        """The winner "retrained": the table's full run of its configuration and seed; its
        regret against the table's best test loss for the seed. No model file."""
        entry = self.entry(params)
        best = self.table.best(self.table_seed)
        return {
            "final_val_loss": entry.best_val_loss,
            "final_epochs": entry.epochs,
            "final_fit_seconds": round(entry.seconds, 3),
            "test_loss": entry.test_loss,
            "test_accuracy": None,
            "table": str(self.table.folder),
            "table_seed": self.table_seed,
            "table_best_params": best.params,
            "table_best_test_loss": best.test_loss,
            "regret": entry.test_loss - best.test_loss,
        }, None
