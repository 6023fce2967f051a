"""N worker processes training one study's trials at once (``--workers N`` on a study that trains).

Each worker is a process of its own (started by ``spawn``: TensorFlow and JAX do not survive a
fork) that builds the study's evaluator once and then evaluates what it is sent, one
configuration at a time. What a trial needs from the study goes through its pipe to the study's
process, which alone talks to the library and writes rows:

- ``report`` (a pruner, each epoch): the epoch's validation loss; the library's answer comes back;
- ``record`` (the trial ended): its fields; the study's process numbers its row (in the order
  trials end) and sends the number back, under which the worker keeps the trial's weights (a
  warm start continues them on any worker);
- ``done``: the evaluation returned, its weights kept: the study's process writes the row
  through the one recorder and tells the library, in the order of the rows' numbers, so a row
  in the table always has its weights; ``error``: the harness failed there (the study stops).

The budget is one meter: every epoch any worker trains counts into one shared counter, which
every worker reads at its epoch's end (`WorkerMeter`); the study's process starts no trial
beyond a trial budget. An epoch a worker is training when another spends the budget still ends
(and counts), so a study of N workers may end up to N - 1 epochs past an epoch budget.

Nothing is lost. A worker ends with the study's process (`tuning.core.signals.die_with_parent`:
even after ``kill -9``), and a worker that dies mid-trial (killed, out of memory) leaves a
failed row naming it, its slot restarted. A study resumed after a kill is driven again from its
start: each proposal that has a row (matched by its ``proposal`` number and configuration) is
answered from it in the order the rows ended, its losses reported to the library again from its
``curve``, so the library makes the same decisions; a proposal that has none (it was running
when the study died) is trained again. Its rows are written once.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import math
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_any
from pathlib import Path
from typing import Any

from tuning.core.budget import BudgetMeter
from tuning.core.errors import ResumeError, StudyError, start_over
from tuning.core.ledger import TrialResult, same_params
from tuning.core.results import read_trials
from tuning.core.signals import StopSignals
from tuning.core.worker_process import EvaluatorMaker, serve
from tuning.core.workers import Finished, Submission, Workers, parallel_columns

log = logging.getLogger(__name__)

# How often the study's process looks up from its workers' pipes for a stop signal.
POLL_SECONDS = 0.5
# How long a worker told to stop may take to end before it is killed.
JOIN_SECONDS = 10.0
# Worker processes in a row that die before saying anything: the study stops (they cannot start).
MAX_SILENT_DEATHS = 3
STUDY_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@dataclass
class _Row:
    """An ended trial's row: its number, configuration, `TrialRecorder.record` fields, the
    process that trained it, its parallel cells and when it ended."""

    number: int
    params: dict[str, Any]
    fields: dict[str, Any]
    host_pid: tuple[str, int]
    extra: dict[str, Any]
    ended: float


@dataclass(order=True)
class _Replayed:
    """A proposal an earlier run of the study finished, answered from its row (``trial``: the
    row's number, the order the library was told them in)."""

    trial: int
    worker: int = field(compare=False)
    row: dict[str, Any] = field(compare=False)


class ProcessWorkers(Workers):
    """``size`` worker processes evaluating one study's configurations (see the module).

    ``make_evaluator`` builds a worker's evaluator; ``record`` writes a row in the study's
    process (`tuning.core.recorder.TrialRecorder.record`); ``table``: the study's
    ``trials.csv`` (what an earlier run finished, replayed); ``stop``: the study's signals.
    """

    def __init__(
        self,
        size: int,
        meter: BudgetMeter,
        *,
        make_evaluator: EvaluatorMaker,
        record: Callable[..., TrialResult],
        table: Path,
        stop: StopSignals | None = None,
    ) -> None:
        super().__init__(size, meter)
        self.make_evaluator = make_evaluator
        self.record = record
        self.table = Path(table)
        self.stop = stop
        self._context = multiprocessing.get_context("spawn")
        self._shared = self._context.Value("q", 0)  # epochs the workers trained in this run
        # the epochs before them: a resumed study's, as its rows recorded them (`_next_replayed`)
        self._offset = self._context.Value("q", 0)
        self._processes: dict[int, tuple[Any, Connection]] = {}
        self._started: dict[int, float] = {}  # worker -> when its trial started
        # worker -> its ended trial's row, numbered but not written until the worker is done
        # with it (its weights kept): a row in the table always has its weights
        self._rows: dict[int, _Row] = {}
        # workers whose trials ended, in the order of their numbers: their rows are written
        # and the library told in that order (a resumed study's replay tells them so too)
        self._ended: list[int] = []
        self._done: set[int] = set()
        self._next_number = 0
        self._replayed_epochs = 0
        self._spoke: set[int] = set()  # workers whose current process has sent a message
        self._silent_deaths = 0  # worker processes in a row that died before any message
        self._earlier: dict[int, dict[str, Any]] = {}  # proposal -> an earlier run's row
        self._replayed: list[_Replayed] = []
        self.restarted = 0

    # -- the study ----------------------------------------------------------------------------
    def begin(self) -> None:
        """The earlier runs' rows, to replay; the meter from zero: the replay spends it again
        (the seconds go on from where they were)."""
        if self.table.exists():
            for row in read_trials(self.table).to_dict("records"):
                self._earlier[int(row["proposal"])] = row
        self._next_number = len(self._earlier)
        self._replayed_epochs = 0
        self.meter.restore(0, 0, self.meter.seconds)

    def _sync(self) -> None:
        """The meter to the epochs every worker trained, read once per row, just before it is
        recorded: the study decides whether to propose more on that row's ``cum_epochs``, which
        a resumed study's replay can set again (a fresher reading, taken when a worker is free,
        would decide on epochs no row records, and the replay could propose a trial the first
        run never ran)."""
        self.meter.epochs = self._shared.value + self._offset.value

    def report(self) -> dict[str, Any]:
        return {**super().report(), "processes_restarted": self.restarted}

    def close(self) -> None:
        """Stop every worker: told to, once nothing runs (they end at once), else killed."""
        for worker, (process, connection) in list(self._processes.items()):
            if worker not in self.running:
                with contextlib.suppress(OSError):  # (it died: nothing to tell)
                    connection.send(None)
            else:
                process.kill()
        for process, connection in self._processes.values():
            process.join(JOIN_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
            connection.close()
        self._processes.clear()
        if self._earlier:
            log.warning(
                "%d rows of an earlier run were not proposed again (kept in the table): %s",
                len(self._earlier),
                sorted(int(row["trial"]) for row in self._earlier.values()),
            )
            self._earlier.clear()

    # -- one trial ----------------------------------------------------------------------------
    def start(self, worker: int, submission: Submission) -> None:
        row = self._earlier.pop(submission.number, None)
        if row is not None:
            self._replay(worker, submission, row)
            return
        options = dict(submission.options)
        options["report"] = options.get("report") is not None
        self._started[worker] = self.meter.seconds
        try:
            self._connection(worker).send((submission.params, options, self.meter.started))
        except OSError:  # it died between two trials: a new one takes the trial
            self._drop(worker)
            self._connection(worker).send((submission.params, options, self.meter.started))

    def start_processes(self) -> None:
        """Start every worker's process now: they load while the study gets ready (its
        lock, its earlier rows, the library's import), instead of at the first trial."""
        for worker in range(self.size):
            self._connection(worker)

    def _connection(self, worker: int) -> Connection:
        """``worker``'s pipe, its process started first where it has none (or it died)."""
        if worker in self._processes and not self._processes[worker][0].is_alive():
            self._drop(worker)
        if worker not in self._processes:
            ours, theirs = self._context.Pipe()
            budget = self.meter.budget
            process = self._context.Process(
                target=serve,
                args=(theirs, self.make_evaluator, budget, self._shared, self._offset, os.getpid()),
                name=f"tuning-worker-{worker}",
                daemon=True,
            )
            # Ctrl-C and SIGTERM reach a terminal's or a container's whole process group: they
            # are the study's process's to handle (it stops its workers). Blocked while a worker
            # starts, they stay blocked in it for its life (a blocked signal waits here, is not
            # lost, and is delivered once unblocked).
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STUDY_SIGNALS)
            try:
                process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            theirs.close()
            self._spoke.discard(worker)
            self._processes[worker] = (process, ours)
        return self._processes[worker][1]

    def _drop(self, worker: int) -> Any:
        """Forget ``worker``'s process, which ended; its slot gets a new one when next used."""
        process = self._processes.pop(worker)[0]
        process.join(JOIN_SECONDS)
        self.restarted += 1
        return process

    def _replay(self, worker: int, submission: Submission, row: dict[str, Any]) -> None:
        recorded = json.loads(row["params"])
        if not same_params(recorded, submission.params):
            raise ResumeError(
                f"cannot resume: the library proposed {submission.params} as proposal "
                f"{submission.number}, but trial {int(row['trial'])} of the table (that proposal) "
                f"is {recorded}; " + start_over(self.table.parent)
            )
        heapq.heappush(self._replayed, _Replayed(int(row["trial"]), worker, row))

    def wait(self) -> Finished | None:
        if self._replayed:
            return self._next_replayed()
        while not (self._ended and self._ended[0] in self._done):
            busy = [w for w in sorted(self.running) if w not in self._done]
            connections = {self._processes[w][1]: w for w in busy}
            ready = wait_for_any(list(connections), timeout=POLL_SECONDS)
            if self.stop is not None:
                self.stop.raise_if_stopped()
            for connection in sorted(ready, key=lambda c: connections[c]):
                self._receive(connections[connection])
        worker = self._ended.pop(0)
        self._done.discard(worker)
        row = self._rows.pop(worker)
        self._sync()
        result = self.record(
            row.params, **row.fields, number=row.number, worker=row.host_pid, extra=row.extra
        )
        submission = self.running.pop(worker)
        return Finished(submission, result, worker, self._started.pop(worker), row.ended)

    def _next_replayed(self) -> Finished:
        replayed = heapq.heappop(self._replayed)
        row, worker = replayed.row, replayed.worker
        submission = self.running.pop(worker)
        report = submission.options.get("report")
        if report is not None:  # the library hears the trial's losses again, as it did
            curve = json.loads(row["curve"]) if isinstance(row.get("curve"), str) else []
            for epoch, val_loss in enumerate(curve, start=1):
                if val_loss is not None and math.isfinite(val_loss) and report(epoch, val_loss):
                    break
        self._replayed_epochs += int(row["epochs"])
        if self._replayed or self._earlier:
            # the study as it was when the library was told this row: the epochs every worker
            # had trained then (the trials still running included), so that it decides as then
            self._offset.value = int(row["cum_epochs"]) - self._shared.value
        else:  # the replay is over: what the earlier rows spent, and what this run trains
            self._offset.value = self._replayed_epochs
        self._sync()
        self.meter.add_trial()
        result = TrialResult.from_row(row)
        log.info("trial %d replayed from the table", result.trial)
        return Finished(submission, result, worker, float(row["started"]), float(row["ended"]))

    def _receive(self, worker: int) -> None:
        """Handle one message of ``worker``'s."""
        try:
            message = self._processes[worker][1].recv()
        except (EOFError, OSError):
            self._died(worker)
            return
        self._spoke.add(worker)
        self._silent_deaths = 0
        kind = message[0]
        if kind == "report":
            with self.library():
                answer = bool(self.running[worker].options["report"](message[1], message[2]))
            self._reply(worker, answer)
        elif kind == "record":
            _, params, fields, compiling, host, pid = message
            row = self._number(worker, params, fields, compiling, (host, pid))
            self._reply(worker, TrialResult(trial=row.number, params=dict(params), **fields))
        elif kind == "error":
            raise StudyError(f"worker {worker} of the study failed: {message[1]}")
        else:  # done: its weights are kept, a warm start may continue them
            self._done.add(worker)

    def _reply(self, worker: int, answer: Any) -> None:
        """Answer ``worker``, which may have died since it asked."""
        try:
            self._processes[worker][1].send(answer)
        except OSError:
            self._died(worker)

    def _number(
        self,
        worker: int,
        params: Mapping[str, Any],
        fields: dict[str, Any],
        compiling: float,
        host_pid: tuple[str, int],
    ) -> _Row:
        """``worker``'s trial ended: its row's number and cells, written once it is done."""
        submission = self.running[worker]
        ended = self.meter.seconds
        extra = {
            **parallel_columns(submission, worker, self._started[worker], ended),
            "compile_seconds": round(compiling, 4),
        }
        row = _Row(self._next_number, dict(params), fields, host_pid, extra, ended)
        self._next_number += 1
        self._rows[worker] = row
        self._ended.append(worker)
        return row

    def _died(self, worker: int) -> None:
        """``worker``'s process ended mid-trial: the trial is recorded failed (its row names
        why) unless its row was written already; the slot gets a new process for its next."""
        if self.stop is not None:  # (a signal to the process group ends the workers too)
            self.stop.raise_if_stopped()
        process = self._drop(worker)
        code = process.exitcode
        cause = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if worker not in self._spoke:
            self._silent_deaths += 1
            if self._silent_deaths >= MAX_SILENT_DEATHS:
                raise StudyError(
                    f"{self._silent_deaths} worker processes in a row died before they said a word "
                    f"({cause}): they cannot start here (memory? the model's module?); "
                    "run the study with --workers 1 to see why"
                )
        row = self._rows.get(worker)
        if row is None:
            row = self._number(
                worker,
                self.running[worker].params,
                {},
                0.0,
                (socket.gethostname(), process.pid or 0),
            )
        # (its weights may not have been kept: no trial may continue it)
        row.fields = {
            "status": "failed",
            "val_loss": math.nan,
            "epochs": row.fields.get("epochs", 0),
            "fit_seconds": row.fields.get(
                "fit_seconds", self.meter.seconds - self._started[worker]
            ),
            "error": f"its worker process died ({cause})",
        }
        log.warning("worker %d died (%s) in trial %d", worker, cause, row.number)
        self._done.add(worker)
