"""The callbacks a trial's fit gets besides the protocol's: the budget, Ctrl-C, a pruner.

Each is called once per epoch by every trainer (Keras `fit`, the compiled trainer); one whose
``reads_model`` is False needs no weights written back into the model before it runs."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import keras

from tuning.core.budget import BudgetMeter
from tuning.core.signals import StopSignals


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
