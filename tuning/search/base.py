"""The backend contract: translate the neutral space, drive the library's own loop, ask the
evaluator for each trial."""

from __future__ import annotations

import warnings
from abc import ABC
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from tuning.core.budget import Budget, BudgetMeter
from tuning.core.evaluator import Evaluator
from tuning.core.ledger import ResumeLedger, TrialResult
from tuning.core.space import SearchSpace
from tuning.core.workers import Workers


@dataclass(frozen=True)
class SearchTask:
    """What a backend's `SearchBackend.search` gets: the evaluator (the one way to evaluate a
    configuration), the study's budget meter and resume ledger, and the search's settings.
    ``max_epochs`` is the protocol's epoch cap (a multi-fidelity algorithm's top rung);
    ``workdir`` the study folder, where the library may keep its own state. A library that
    must fit the model through its own estimator (scikit-learn over scikeras) asks the
    evaluator for it (`tuning.core.evaluator.Evaluator.native_training`). ``workers``: the
    study's workers (``--workers N``, `tuning.core.workers.Workers`) for a backend whose
    algorithm has a parallel mode (`SearchBackend.parallel_mode`); None: one trial at a time."""

    evaluator: Evaluator
    meter: BudgetMeter
    ledger: ResumeLedger
    space: SearchSpace
    budget: Budget
    seed: int
    max_epochs: int
    workdir: Path
    workers: Workers | None = None


# Multi-fidelity algorithms (Optuna's pruners, scikit-learn's successive halving) keep one trial
# in REDUCTION_FACTOR at each rung, as Keras Tuner's Hyperband (factor 3) does.
REDUCTION_FACTOR = 3


def min_resource(max_epochs: int) -> int:
    """The epochs every trial trains before a multi-fidelity algorithm may stop it: the lowest
    rung of three reductions by `REDUCTION_FACTOR` (``max_epochs // 27``), at least one."""
    return max(1, max_epochs // REDUCTION_FACTOR**3)


class SearchBackend(ABC):
    """One hyperparameter-search library.

    The constructor only stores the backend's own options (scikit-learn style); `search` does
    the work. `search` must call ``task.evaluator.evaluate`` once per trial and start no new
    trial once ``task.meter.exhausted`` (the study's `Budget` in trials, epochs or seconds is
    spent; an evaluation running then stops at its epoch's end). It stops the library through
    the library's own means (a callback, a stop condition, its loop bound) and may keep its own
    state under ``task.workdir``. It reads and writes nothing else of the evaluator.

    Resuming: when a study is run again after it was interrupted, ``task.workdir`` holds what
    the library saved, ``task.ledger.finished`` the trials already in the table, and the meter
    their spend. The backend reloads its library's state and calls ``task.ledger.restored(n)``
    with the number of those trials the state holds; the evaluator answers the rest from the
    table when the library asks for them again, so they are not trained twice. A backend that
    draws a seeded stream and saves nothing needs no code for this: its stream asks for the
    same configurations again. One that cannot retrace them fails with
    `tuning.core.errors.ResumeError`, which tells the user to pass ``--fresh``.

    The first interface, ``run(objective, space, budget, seed, workdir)``, is deprecated: it
    is still called, with a `DeprecationWarning`, for a backend that defines `run` instead of
    `search`, handed a `FirstObjective` over the task.
    """

    name: ClassVar[str]
    # The library's algorithms this class drives (name -> one line for `tuning backends`), the
    # one a bare ``name`` means, and the distribution whose version is reported. A backend of
    # one algorithm leaves ``algorithms`` empty.
    algorithms: ClassVar[dict[str, str]] = {}
    default_algorithm: ClassVar[str] = ""
    # The options each algorithm uses (algorithm -> option names); an option given for an
    # algorithm that would ignore it is refused (`tuning.search.make_backend`). Empty: every
    # option the constructor takes applies to every algorithm.
    options_by_algorithm: ClassVar[dict[str, frozenset[str]]] = {}
    library: ClassVar[str] = ""
    algorithm: str = ""

    @property
    def algorithm_name(self) -> str:
        """``library:algorithm`` (``optuna:tpe`` also for a backend created as ``optuna``), or
        the bare name of a one-algorithm backend: what the rows and summary record."""
        algorithm = self.algorithm or self.default_algorithm
        return f"{self.name}:{algorithm}" if algorithm else self.name

    def _choose(self, algorithm: str | None) -> str:
        """The constructor's ``algorithm`` argument, checked (default: ``default_algorithm``)."""
        algorithm = algorithm or self.default_algorithm
        if algorithm not in self.algorithms:
            raise ValueError(
                f"{self.name}: no algorithm {algorithm!r}; choose one of {sorted(self.algorithms)}"
            )
        return algorithm

    def settings(self, budget: Budget, max_epochs: int) -> dict[str, Any]:
        """The options that matter for fairness, resolved for this budget (random start,
        a pruner's minimum resource and reduction factor, ...): written to ``study.json`` and
        the summary, so that no algorithm's advantage is hidden in a default."""
        return {}

    def settings_for(self, task: SearchTask) -> dict[str, Any]:
        """`settings` for this task, before the search starts; a backend whose settings depend
        on more of the task than its budget overrides this, and may refuse the task here in
        one line (`tuning.search.BackendError`) before the study writes anything."""
        return self.settings(task.budget, task.max_epochs)

    def check(self) -> None:
        """Check the options against the world outside (a storage that must be reachable)
        before the study writes anything: a study refused here leaves no file behind. Raise
        `tuning.backends.BackendError` in one line; by default there is nothing to check."""
        return None

    @property
    def warm_starts(self) -> bool:
        """True when the search continues earlier trials (`tuning.core.evaluator.WarmStart`):
        the evaluator then keeps each trial's weights."""
        return False

    # The library's own mechanism for proposing while trials run, per algorithm (one line for
    # `tuning backends`); an algorithm missing here has none, and `--workers > 1` is refused.
    parallel: ClassVar[dict[str, str]] = {}

    def parallel_mode(self) -> str | None:
        """How this algorithm proposes with several trials running (``parallel``), or None."""
        return self.parallel.get(self.algorithm or self.default_algorithm or "")

    @property
    def shares_study(self) -> bool:
        """True when several processes work on one study through the library's own shared
        storage (Optuna with ``storage``): each process then adds its trials, numbered by the
        library, to the one table, and none has the study to itself."""
        return False

    def __new__(cls, *args: Any, **kwargs: Any) -> SearchBackend:
        # As an abstract method would: a class of neither interface cannot be instantiated,
        # but may still be defined (a library's own intermediate base class).
        if cls.search is SearchBackend.search and cls.run is SearchBackend.run:
            raise TypeError(f"{cls.__name__} must define search(task) (or the first run(...))")
        return super().__new__(cls)

    def search(self, task: SearchTask) -> None:
        """Search until the budget is spent. By default: the first interface's `run`, handed
        a `FirstObjective`, with a `DeprecationWarning`."""
        warnings.warn(
            f"{type(self).__module__}.{type(self).__name__} defines run(objective, space, "
            "budget, seed, workdir), the first backend interface: define search(self, task) "
            "instead (tuning.search.base.SearchBackend; task.evaluator.evaluate(params) for "
            "objective(params))",
            DeprecationWarning,
            stacklevel=2,
        )
        self.run(FirstObjective(task), task.space, task.budget, task.seed, task.workdir)

    def run(
        self,
        objective: FirstObjective,
        space: SearchSpace,
        budget: Budget,
        seed: int,
        workdir: Path,
    ) -> None:
        """The first interface (see the class); a backend defines this or `search`."""
        raise NotImplementedError(f"{type(self).__name__} defines search(task), not run")


class FirstObjective:
    """What the first backend interface's ``run`` was handed as its objective, over a search
    task: ``objective(params)`` evaluates, ``meter``, ``finished`` and ``restored(n)`` are the
    task's, and ``protocol.max_epochs`` its epoch cap."""

    def __init__(self, task: SearchTask) -> None:
        self.task = task
        self.meter = task.meter
        self.protocol = SimpleNamespace(max_epochs=task.max_epochs)

    def __call__(self, params: Any, **options: Any) -> TrialResult:
        return self.task.evaluator.evaluate(params, **options)

    @property
    def finished(self) -> list[TrialResult]:
        return self.task.ledger.finished

    def restored(self, n_trials: int) -> None:
        self.task.ledger.restored(n_trials)
