"""How much search a study may spend, and what it has spent so far.

A budget is a number of trials, of training epochs, of wall seconds, or any mix of the three: the
search ends at whichever runs out first. Epochs are the fair unit across backends that train every
configuration fully and those that stop most of them early (Hyperband): every epoch any trial trains
is counted, as it ends, into a `BudgetMeter` shared by the whole study, and the training loop stops at
the end of the epoch that spends the last of the budget (`tuning.evaluation.keras.evaluator.BudgetCallback`), so no
backend overshoots an epoch budget. No Keras import here: backends register without it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


class BudgetError(ValueError):
    """A budget that cannot be spent: none given, zero, negative or not a number."""


def check_count(name: str, value: Any) -> None:
    """A count of trials or epochs (a budget's, a study's epoch cap, ...) is an integer >= 1;
    `BudgetError` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BudgetError(f"{name} must be an integer >= 1, got {value!r}")


def check_seconds(name: str, value: Any) -> None:
    """A number of seconds to spend is a finite number > 0; `BudgetError` naming ``name``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise BudgetError(f"{name} must be a number > 0, got {value!r}")


@dataclass(frozen=True)
class Budget:
    """The search budget of one study; ``None`` means "no limit in this unit".

    Args:
        trials: configurations trained (for Hyperband: rounds run; for cross-validation: candidates).
        epochs: training epochs summed over every trial (and every fold).
        seconds: wall seconds since the search began, the library's own overhead included.
    """

    trials: int | None = None
    epochs: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("trials", "epochs"):
            if getattr(self, name) is not None:
                check_count(f"budget {name}", getattr(self, name))
        if self.seconds is not None:
            check_seconds("budget seconds", self.seconds)
        if self.trials is None and self.epochs is None and self.seconds is None:
            raise BudgetError("a budget needs trials, epochs or seconds (at least one)")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def expected_trials(self, max_epochs: int) -> int | None:
        """About how many trials the budget allows: ``trials``, or else an epoch budget over half
        the epoch cap (early stopping ends a typical trial about halfway); ``None`` if unknown."""
        estimates = []
        if self.trials is not None:
            estimates.append(self.trials)
        if self.epochs is not None:
            estimates.append(max(1, self.epochs * 2 // max_epochs))
        return min(estimates) if estimates else None

    def random_start(
        self, requested: int | None = None, max_epochs: int = 100, cap: int = 10
    ) -> int:
        """How many random trials a model-based sampler draws before it models the results.

        ``requested`` when given; else a third of the expected trials, at least one and at most
        ``cap`` (10, the default of Optuna's TPE and skopt's GP). A fixed 10 would leave a 10-trial
        budget with no model-based trial at all: plain random search under another library's name.
        """
        if requested is not None:
            return requested
        expected = self.expected_trials(max_epochs)
        return cap if expected is None else max(1, min(cap, expected // 3))


class BudgetMeter:
    """What one study has spent against its `Budget`, counted as it is spent.

    Shared by every trial of the study; ``budget=None`` never runs out. scikit-learn deep-copies an estimator's callbacks when it
    clones the estimator for a fold; a copy of the meter is the meter itself, so every fold counts
    into the one study total.
    """

    # Trials in a row that trained nothing (e.g. every configuration fails to build) end a search
    # that an epoch budget alone would never end.
    MAX_IDLE_TRIALS = 100

    def __init__(self, budget: Budget | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.clock = clock
        self.started = clock()
        self.epochs = 0
        self.trials = 0
        self.idle_trials = 0
        self._epochs_at_last_trial = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> BudgetMeter:
        return self

    def restore(self, trials: int, epochs: int, seconds: float, idle_trials: int = 0) -> None:
        """Continue from an earlier run of the study: what its finished trials had spent (the
        time between that run's end and this one's start is not counted)."""
        self.trials, self.epochs, self.idle_trials = trials, epochs, idle_trials
        self._epochs_at_last_trial = epochs
        self.started = self.clock() - seconds

    @property
    def seconds(self) -> float:
        return self.clock() - self.started

    def add_epoch(self, count: int = 1) -> None:
        self.epochs += count

    def add_trial(self) -> None:
        trained = self.epochs > self._epochs_at_last_trial
        self.idle_trials = 0 if trained else self.idle_trials + 1
        self._epochs_at_last_trial = self.epochs
        self.trials += 1

    @property
    def exhausted(self) -> bool:
        """True once any unit of the budget is spent: no new trial may start, no epoch be added."""
        b = self.budget
        if b is None:
            return False
        return (
            self.idle_trials >= self.MAX_IDLE_TRIALS
            or (b.trials is not None and self.trials >= b.trials)
            or (b.epochs is not None and self.epochs >= b.epochs)
            or (b.seconds is not None and self.seconds >= b.seconds)
        )

    @property
    def fraction_spent(self) -> float:
        """The largest fraction spent of any unit of the budget, at most 1 (for progress and ETA)."""
        return 0.0 if self.budget is None else fraction_spent(self.budget.as_dict(), self.spent())

    def spent(self) -> dict[str, Any]:
        return {"trials": self.trials, "epochs": self.epochs, "seconds": round(self.seconds, 3)}


def fraction_spent(budget: Mapping[str, Any], spent: Mapping[str, Any]) -> float:
    """The largest fraction spent of any unit of ``budget`` (`Budget.as_dict`), at most 1."""
    parts = [
        float(spent.get(unit) or 0) / float(limit)
        for unit, limit in budget.items()
        if limit is not None
    ]
    return min(1.0, max(parts)) if parts else 0.0


class BudgetSpent(RuntimeError):
    """Raised instead of fitting a fold once the study's budget is spent."""
