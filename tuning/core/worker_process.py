"""One worker process of a study (`tuning.core.process_workers`): its view of the study's
meter, its recorder, and its loop (`serve`), which evaluates what the study's process sends and
asks it for what a trial needs (a pruner's answer, its row's number) through its pipe."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any, Protocol

from tuning.core.budget import Budget, BudgetMeter
from tuning.core.errors import first_line
from tuning.core.ledger import TrialResult
from tuning.core.signals import die_with_parent


class WorkerEvaluator(Protocol):
    """What a worker process evaluates with (a `tuning.core.evaluator.Evaluator`)."""

    def evaluate(self, params: Mapping[str, Any], **options: Any) -> TrialResult: ...


# Builds the evaluator a worker process uses: called there with its meter and its recorder
# (an object with `tuning.core.recorder.TrialRecorder.record`'s signature). Picklable: a
# module-level function, or a `functools.partial` of one.
EvaluatorMaker = Callable[[BudgetMeter, Any], WorkerEvaluator]


class WorkerMeter(BudgetMeter):
    """A worker process's view of its study's meter: each epoch counted into the ``shared``
    counter every worker adds to, and the study's epoch and seconds budgets read from it plus
    the study's ``offset`` (what a resumed study's earlier rows spent; the study's process alone
    counts trials). ``started``: the study's start on the monotonic clock, which every process
    of the machine shares."""

    def __init__(self, budget: Budget | None, shared: Any, offset: Any, started: float) -> None:
        super().__init__(budget)
        self.shared = shared
        self.offset = offset
        self.started = started

    def __deepcopy__(self, memo: dict[int, Any]) -> WorkerMeter:
        return self

    def add_epoch(self, count: int = 1) -> None:
        with self.shared.get_lock():
            self.shared.value += count
        self.epochs = self.shared.value + self.offset.value

    @property
    def exhausted(self) -> bool:
        # (the meter's own rule: its trial counts stay at zero here, the study's process has them)
        self.epochs = self.shared.value + self.offset.value
        return super().exhausted


class RemoteRecorder:
    """A worker's recorder: sends a finished trial to the study's process, which writes its row
    and answers with its number (`tuning.core.recorder.TrialRecorder.record`'s signature)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.compile_seconds: Callable[[], float] = lambda: 0.0
        self._compiled_before = 0.0

    def record(self, params: Mapping[str, Any], **fields: Any) -> TrialResult:
        compiled = self.compile_seconds()
        compiling, self._compiled_before = compiled - self._compiled_before, compiled
        fields.pop("number", None)  # (the study's process numbers the rows)
        message = ("record", dict(params), fields, compiling, socket.gethostname(), os.getpid())
        self.connection.send(message)
        result: TrialResult = self.connection.recv()
        return result


def serve(
    connection: Connection,
    make_evaluator: EvaluatorMaker,
    budget: Budget | None,
    shared: Any,
    offset: Any,
    parent: int,
) -> None:
    """A worker process: build the evaluator, then evaluate each configuration sent (with the
    study's start on the monotonic clock, which a resumed study moves), until told to stop
    (None) or the study's process ends."""
    die_with_parent(parent)
    try:
        recorder = RemoteRecorder(connection)
        meter = WorkerMeter(budget, shared, offset, time.monotonic())
        evaluator = make_evaluator(meter, recorder)
        while (task := connection.recv()) is not None:
            params, options, meter.started = task
            if options.pop("report"):
                options["report"] = _remote_report(connection)
            evaluator.evaluate(params, **options)
            connection.send(("done",))
    except EOFError:  # the study's process ended
        return
    except BaseException as exc:  # the harness's, not a trial's: the study stops
        connection.send(("error", first_line(exc)))


def _remote_report(connection: Connection) -> Callable[[int, float], bool]:
    def report(epochs: int, val_loss: float) -> bool:
        connection.send(("report", epochs, val_loss))
        answer: bool = connection.recv()
        return answer

    return report
