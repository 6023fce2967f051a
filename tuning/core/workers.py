"""N evaluations of one study at once: what a backend's parallel driver talks to.

A backend with a parallel mode (``--workers N``) drives its library's own mechanism for
proposing while trials run (Optuna's ask/tell with running trials, skopt's constant liar,
Hyperopt's asynchronous trials, Keras Tuner's oracle serving several tuners): it proposes a
configuration whenever `Workers.can_start` and hands it to `Workers.submit`; `Workers.wait`
returns the next evaluation to end, which it tells its library. The library's own work
(proposing and being told) runs inside `Workers.library`, which measures it.

Each row of a parallel study records its worker, when it started and ended on the study's
clock, its proposal's number (proposals are numbered in the order they were made) and the
proposals still running when it was made (``pending``), and the library's seconds spent
deciding before it (``library_seconds``).

A budget means what it means with one worker: the trials started never exceed a trial
budget, and every epoch any worker trains counts into the one meter; once the budget is
spent no trial starts and the running ones stop (`tuning.core.budget.BudgetMeter`).
"""

from __future__ import annotations

import heapq
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tuning.core.budget import BudgetMeter
from tuning.core.ledger import TrialResult

# The columns a parallel study's rows add (`tuning.core.results.EXTRA_COLUMNS`), and ``curve``,
# which every row has (`tuning.core.recorder`; here as the tables written before keep it last):
# the trial's validation loss at each epoch, which a resumed parallel study reports to its
# library again (`tuning.core.process_workers`).
PARALLEL_COLUMNS = (
    "worker",
    "started",
    "ended",
    "proposal",
    "pending",
    "library_seconds",
    "curve",
)


@dataclass(frozen=True)
class Submission:
    """One configuration handed to a worker: its proposal ``number``, the library's ``tag``
    (its own handle on the trial), the evaluation's options (``epochs``, ``warm_start``,
    ``report``, as `tuning.core.evaluator.Evaluator.evaluate` takes them), the proposals
    running when it was made and the library's seconds spent deciding it."""

    number: int
    params: dict[str, Any]
    tag: Any
    options: Mapping[str, Any]
    pending: tuple[int, ...]
    library_seconds: float


@dataclass(frozen=True)
class Finished:
    """An evaluation that ended: its submission, its recorded result, the worker that ran
    it, and when it started and ended (seconds since the search began, the study's clock)."""

    submission: Submission
    result: TrialResult
    worker: int
    started: float
    ended: float


def parallel_columns(submission: Submission, worker: int, started: float, ended: float) -> dict:
    """A parallel row's own cells (`PARALLEL_COLUMNS`)."""
    return {
        "worker": worker,
        "started": round(started, 4),
        "ended": round(ended, 4),
        "proposal": submission.number,
        "pending": json.dumps(list(submission.pending)),
        "library_seconds": round(submission.library_seconds, 6),
    }


class Workers(ABC):
    """``size`` workers evaluating one study's configurations at once, under its ``meter``."""

    def __init__(self, size: int, meter: BudgetMeter) -> None:
        self.size = size
        self.meter = meter
        self.running: dict[int, Submission] = {}  # worker -> what it evaluates
        self.proposals = 0
        self.library_seconds = 0.0  # the library's time in all
        self._deciding = 0.0  # the library's time since the last submission

    @property
    def free(self) -> int:
        return self.size - len(self.running)

    @property
    def next_worker(self) -> int:
        """The worker the next submission goes to: the lowest-numbered free one."""
        return next(w for w in range(self.size) if w not in self.running)

    def can_start(self) -> bool:
        """A worker is free, the budget is not spent, and a trial budget has room for one
        more beside the trials running."""
        budget = self.meter.budget
        room = (
            budget is None
            or budget.trials is None
            or self.meter.trials + len(self.running) < budget.trials
        )
        return self.free > 0 and room and not self.meter.exhausted

    @contextmanager
    def library(self) -> Iterator[None]:
        """The library proposing or being told: its time is measured, charged to the study's
        clock where the workers keep one, and written on the next submission's row."""
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - started
            self._deciding += spent
            self.library_seconds += spent
            self.charge(spent)

    def begin(self) -> None:  # noqa: B027  (a hook: most workers need nothing here)
        """Before the first submission (`drive` calls it)."""

    def charge(self, seconds: float) -> None:  # noqa: B027  (a hook, as `begin`)
        """The library's ``seconds`` on the study's clock (real workers: it is already there)."""

    def close(self) -> None:  # noqa: B027  (a hook, as `begin`)
        """After the last evaluation, or when the study stops (`drive` calls it; so does the
        end of a ``with`` block of the workers): what they hold is let go (processes end)."""

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(self, params: Mapping[str, Any], tag: Any = None, **options: Any) -> Submission:
        """Start evaluating ``params`` on a free worker (``options``: `Evaluator.evaluate`'s)."""
        if not self.free:
            raise RuntimeError("no worker is free: wait for one first")
        submission = Submission(
            number=self.proposals,
            params=dict(params),
            tag=tag,
            options=options,
            pending=tuple(sorted(s.number for s in self.running.values())),
            library_seconds=self._deciding,
        )
        self.proposals += 1
        self._deciding = 0.0
        worker = self.next_worker
        self.running[worker] = submission
        self.start(worker, submission)
        return submission

    def report(self) -> dict[str, Any]:
        """What the study's summary says of its workers."""
        return {
            "workers": self.size,
            "proposals": self.proposals,
            "library_seconds": round(self.library_seconds, 4),
        }

    @abstractmethod
    def start(self, worker: int, submission: Submission) -> None:
        """Begin ``submission`` on ``worker``."""

    @abstractmethod
    def wait(self) -> Finished | None:
        """The next evaluation to end (its row recorded); its worker is free again. None: the
        budget stopped every running evaluation before it trained anything (no row)."""


def drive(
    workers: Workers,
    propose: Callable[[], tuple[Mapping[str, Any], Any, dict[str, Any]] | None],
    tell: Callable[[Finished], None],
) -> None:
    """The loop of an ask/tell library on ``workers``: while a worker can start, ask the
    library (``propose``: parameters, its tag, evaluation options; None when it has nothing
    to propose until a running trial ends); then tell it the next evaluation to end; until
    nothing runs and nothing can start."""
    workers.begin()
    try:
        while True:
            while workers.can_start():
                with workers.library():
                    proposal = propose()
                if proposal is None:
                    break
                params, tag, options = proposal
                workers.submit(params, tag, **options)
            if not workers.running:
                return
            finished = workers.wait()
            if finished is not None:
                with workers.library():
                    tell(finished)
    finally:
        workers.close()


class RunningTrial(ABC):
    """One evaluation played epoch by epoch on a simulated clock (a table's lookups)."""

    @abstractmethod
    def next_epoch_seconds(self) -> float | None:
        """The simulated seconds of its next epoch; None once it has ended."""

    @abstractmethod
    def play_epoch(self) -> None:
        """Its next epoch, counted into the study's meter (a pruner may end it there)."""

    @abstractmethod
    def end(self) -> bool:
        """Stop it after the epochs it played (the budget is spent); False when it played
        none (it then writes no row)."""

    @abstractmethod
    def record(self, extra: Mapping[str, Any]) -> TrialResult:
        """Append its row (with ``extra`` cells); a row an earlier run of the study recorded
        is checked and kept instead (`tuning.core.ledger.ResumeLedger.replay`)."""


class EventClock:
    """A simulated study's clock: the simulated time of the event being played, plus the
    library's measured seconds charged so far."""

    def __init__(self) -> None:
        self.now = 0.0
        self.charged = 0.0

    def __call__(self) -> float:
        return self.now + self.charged


@dataclass(order=True)
class _Event:
    time: float
    proposal: int  # the tie rule: at equal times, the earlier proposal's epoch ends first
    worker: int = field(compare=False)


class SimulatedWorkers(Workers):
    """``size`` simulated workers on an event queue.

    Each running trial is a `RunningTrial`; its epochs end at the simulated times its table
    recorded (per-epoch seconds of that configuration on the machine that built the table).
    `wait` plays the earliest epoch end of any worker until a trial ends. The tie rule: at
    equal times the earlier proposal's epoch is played first, and a trial that ends there is
    told to the library (which may propose again) before the next epoch is played. The library's own decisions are measured and charged to the clock
    (``cum_seconds`` and a seconds budget read it) but do not move the events: their order is
    fixed by the table's times and the tie rule, so a simulated study's rows are the same on
    every run from its seed. A seconds budget ends the running trials at the moment it is
    spent, after the epochs they finished.

    Resuming: a simulated study is played again from its start (a lookup costs microseconds);
    the rows its earlier runs recorded are checked against the replay instead of written again
    (``start``'s trials do so when recording).
    """

    def __init__(
        self,
        size: int,
        meter: BudgetMeter,
        start_trial: Callable[[Submission], RunningTrial],
    ) -> None:
        super().__init__(size, meter)
        self.clock = EventClock()
        self.start_trial = start_trial
        # the event queue's own time (the simulator's overhead), and the lookups' it excludes
        self._queue_seconds = 0.0
        self._lookup_seconds = 0.0
        self._trials: dict[int, tuple[RunningTrial, float]] = {}  # worker -> trial, started
        self._events: list[_Event] = []
        self._ended: list[tuple[int, int]] = []  # (proposal, worker): ended, not yet returned

    def begin(self) -> None:
        """The study's meter on this clock, from zero: the replay spends it again."""
        self.meter.clock = self.clock
        self.meter.restore(0, 0, 0.0)

    def charge(self, seconds: float) -> None:
        self.clock.charged += seconds

    def report(self) -> dict[str, Any]:
        return {
            **super().report(),
            "simulated_seconds": round(self.clock.now, 4),
            "simulator_seconds": round(self._queue_seconds - self._lookup_seconds, 4),
        }

    @contextmanager
    def _timed(self, account: str) -> Iterator[None]:
        """Add the time of the block to ``account`` (``_queue_seconds``, ``_lookup_seconds``)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, account, getattr(self, account) + time.perf_counter() - started)

    def start(self, worker: int, submission: Submission) -> None:
        with self._timed("_queue_seconds"):
            with self._timed("_lookup_seconds"):
                trial = self.start_trial(submission)
            self._trials[worker] = (trial, self.clock.now)
            self._schedule(worker, trial, submission.number)

    def _schedule(self, worker: int, trial: RunningTrial, proposal: int) -> None:
        seconds = trial.next_epoch_seconds()
        if seconds is None:
            self._ended.append((proposal, worker))
        else:
            heapq.heappush(self._events, _Event(self.clock.now + seconds, proposal, worker))

    def wait(self) -> Finished | None:
        with self._timed("_queue_seconds"):
            return self._next_finished()

    def _next_finished(self) -> Finished | None:
        while not self._ended:
            if not self._events:
                if self.running:
                    raise RuntimeError("a running evaluation has no next epoch")
                return None  # (the budget stopped the last ones before their first epoch)
            event = self._events[0]
            if self._past_seconds_budget(event.time):
                self._end_all()
                continue
            heapq.heappop(self._events)
            self.clock.now = event.time
            trial, _ = self._trials[event.worker]
            with self._timed("_lookup_seconds"):
                trial.play_epoch()
            self._schedule(event.worker, trial, event.proposal)
            if self.meter.exhausted:  # the budget is spent: every running trial stops here
                self._end_all()
        self._ended.sort()
        proposal, worker = self._ended.pop(0)
        trial, started = self._trials.pop(worker)
        submission = self.running.pop(worker)
        with self._timed("_lookup_seconds"):
            result = trial.record(parallel_columns(submission, worker, started, self.clock.now))
        return Finished(submission, result, worker, started, self.clock.now)

    def _past_seconds_budget(self, time_: float) -> bool:
        budget = self.meter.budget
        if budget is None or budget.seconds is None:
            return False
        if time_ + self.clock.charged <= budget.seconds:
            return False
        self.clock.now = max(self.clock.now, budget.seconds - self.clock.charged)
        return True

    def _end_all(self) -> None:
        """The budget is spent: each running trial stops after the epochs it finished; one
        that finished none writes no row (as no trial starts then with one worker)."""
        for event in self._events:
            if self._trials[event.worker][0].end():
                self._ended.append((event.proposal, event.worker))
            else:
                del self._trials[event.worker], self.running[event.worker]
        self._events.clear()
