"""The tabular evaluator: trials answered from a table of learning curves (``tuning tabulate``).

``--objective tabular:TABLE`` makes every backend search the table's space through its own
library, as in a real study, but each trial is looked up instead of trained: the configuration
the library proposes is snapped to the grid's nearest values (on the parameter's own scale: log
for a log range), and its training and validation curves, for the table seed the study's seed
maps to (``seeds[seed % len(seeds)]``), are played epoch by epoch under the rules a real fit
follows. Whatever stops a real fit stops the played one at the same epoch: the table's curve ends
where early stopping (or the NaN guard) ended the real run, and the budget, a pruner, Ctrl-C or a
Hyperband round end it earlier. Each epoch played costs one epoch of the budget and
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

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuning.core.budget import Budget, BudgetMeter
from tuning.core.collector import collect_and_freeze
from tuning.core.evaluator import DataDescription, Evaluator, Report, WarmStart
from tuning.core.ledger import ResumeLedger, TrialResult
from tuning.core.outcome import trained_outcome
from tuning.core.recorder import TrialRecorder
from tuning.core.results import TrialWriter
from tuning.core.signals import StopSignals
from tuning.core.space import SearchSpace
from tuning.core.workers import RunningTrial, SimulatedWorkers, Submission
from tuning.evaluation.data import Dataset
from tuning.evaluation.tabular.table import Table, TableEntry


class SimulatedClock:
    """The study's clock: real time plus the training seconds the table says lookups took."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class TableEvaluator(Evaluator):
    """The evaluator of a tabular study: the same contract, rows, budget and resume as real
    training, with each trial looked up. A configuration is snapped to the grid (the rows hold
    the snapped one) and its curves for the study's table seed are played: each epoch costs one
    epoch of the budget and its recorded seconds on the study's `SimulatedClock` (``clock``,
    which the study's ``meter`` reads). Each row's ``table_test_loss`` is the table's test loss
    of that configuration fully trained (what the study would report were it the winner)."""

    simulated_clock = True

    def __init__(
        self,
        table: Table,
        space: SearchSpace,
        writer: TrialWriter,
        ledger: ResumeLedger,
        seed: int,
        max_epochs: int,
        budget: Budget | None = None,
        stop: StopSignals | None = None,
    ) -> None:
        self.table = table
        self.space = space
        self.max_epochs = max_epochs
        self.stop = stop
        self.ledger = ledger
        self.clock = SimulatedClock()
        self.meter = BudgetMeter(budget, self.clock)
        self.recorder = TrialRecorder(writer, ledger, self.meter)
        self.table_seed = table.table_seed(seed)
        self.dataset: Dataset = table.dataset()
        # libraries collect garbage between trials (Keras Tuner: a full collection per build),
        # which with the frameworks loaded costs far more than a lookup
        collect_and_freeze()

    def entry(self, params: Mapping[str, Any]) -> TableEntry:
        """The table's run of (snapped) ``params`` for the study's table seed."""
        return self.table.entry(params, self.table_seed)

    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        epochs: int | None = None,
        warm_start: WarmStart | None = None,
        report: Report | None = None,
        number: int | None = None,
    ) -> TrialResult:
        """Play ``params`` (snapped) for at most ``epochs`` epochs and record it. A warm start
        continues the table's one run of the configuration from the epoch the earlier trial
        reached: a lookup keeps no weights."""
        params = self.table.snap(params, self.space)
        replayed = self.ledger.replay(params)
        if replayed is not None:
            return replayed
        trial = self._played(params, epochs, warm_start, report, number)
        started = self.clock.offset
        while (seconds := trial.next_epoch_seconds()) is not None:
            self.clock.advance(seconds)
            trial.play_epoch()
        trial.seconds = self.clock.offset - started  # (the clock's sum, to the last bit)
        return trial.record({})

    def workers(self, size: int) -> SimulatedWorkers:
        """``size`` simulated workers (`tuning.core.workers.SimulatedWorkers`): each trial's
        epochs take the seconds the table recorded, on one event queue."""
        return SimulatedWorkers(size, self.meter, self._start)

    def _start(self, submission: Submission) -> PlayedTrial:
        params = self.table.snap(submission.params, self.space)
        return self._played(params, replays=True, **submission.options)

    def _played(
        self,
        params: dict[str, Any],
        epochs: int | None = None,
        warm_start: WarmStart | None = None,
        report: Report | None = None,
        number: int | None = None,
        replays: bool = False,
    ) -> PlayedTrial:
        if self.stop is not None:
            self.stop.raise_if_stopped()
        return PlayedTrial(
            self,
            params,
            self.entry(params),
            first=0 if warm_start is None else warm_start.epochs,
            last=self.max_epochs if epochs is None else epochs,
            report=report,
            number=number,
            replays=replays,
        )

    def _record(
        self,
        params: dict[str, Any],
        entry: TableEntry,
        extra: Mapping[str, Any] = {},  # noqa: B006  (read only)
        **fields: Any,
    ) -> TrialResult:
        extra = {"table_test_loss": entry.test_loss, **extra}
        return self.recorder.record(params, extra=extra, **fields)

    def data(self) -> DataDescription:
        return self.dataset.description()

    def final_result(self, params: Mapping[str, Any], folder: Path) -> dict[str, Any]:
        """The winner "retrained": the table's full run of its configuration and seed; its
        regret against the table's best test loss for the seed. No model file."""
        entry = self.entry(self.table.snap(params, self.space))
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
        }


class PlayedTrial(RunningTrial):
    """One configuration's curves played epoch by epoch, from epoch ``first`` to ``last`` (or
    where its table's run ended), stopped as a real fit is: by the search's ``report`` (pruned
    after that epoch), the spent budget or a stop signal. ``replays``: an earlier run's row for
    it is checked and kept when it ends (a simulated parallel study, played again from its
    start) rather than before it plays."""

    def __init__(
        self,
        evaluator: TableEvaluator,
        params: dict[str, Any],
        entry: TableEntry,
        *,
        first: int,
        last: int,
        report: Report | None,
        number: int | None,
        replays: bool,
    ) -> None:
        self.evaluator, self.params, self.entry = evaluator, params, entry
        self.epoch, self.last = first, min(last, entry.epochs)
        self.report, self.number, self.replays = report, number, replays
        self.history: dict[str, list[float]] = {"loss": [], "val_loss": []}
        self.seconds = 0.0
        self.pruned_after: int | None = None
        # a continued trial whose run early stopping ended before: nothing left to play
        self.run_ended = first >= entry.epochs and math.isfinite(entry.best_val_loss)
        self.stopped = self.run_ended

    def next_epoch_seconds(self) -> float | None:
        if self.stopped or self.epoch >= self.last:
            return None
        return self.entry.epoch_seconds

    def play_epoch(self) -> None:
        meter, stop = self.evaluator.meter, self.evaluator.stop
        val_loss = self.entry.val_loss[self.epoch]
        self.history["loss"].append(self.entry.loss[self.epoch])
        self.history["val_loss"].append(val_loss)
        self.epoch += 1
        self.seconds += self.entry.epoch_seconds
        # a diverged epoch is failed by the NaN guard, not pruned
        if (
            self.report is not None
            and math.isfinite(val_loss)
            and self.report(self.epoch, val_loss)
        ):
            self.pruned_after, self.stopped = self.epoch, True
        meter.add_epoch()
        self.stopped = self.stopped or meter.exhausted
        if stop is not None:
            stop.raise_if_stopped()

    def end(self) -> bool:
        self.stopped = True
        return bool(self.history["loss"]) or self.run_ended

    def record(self, extra: Mapping[str, Any]) -> TrialResult:
        evaluator = self.evaluator
        if self.replays:
            replayed = evaluator.ledger.replay(self.params)
            if replayed is not None:
                evaluator.meter.add_trial()
                return replayed
        if self.run_ended:
            return evaluator._record(
                self.params,
                self.entry,
                extra,
                status="complete",
                val_loss=self.entry.best_val_loss,
                epochs=0,
                fit_seconds=0.0,
                error=f"early stopping ended this configuration after epoch {self.entry.epochs}",
                number=self.number,
            )
        outcome = trained_outcome(self.history, self.pruned_after)
        return evaluator._record(
            self.params,
            self.entry,
            extra,
            status=outcome.status,
            val_loss=outcome.val_loss,
            epochs=len(self.history["loss"]),
            fit_seconds=self.seconds,
            error=outcome.error,
            history=self.history,
            number=self.number,
        )
