"""The contract between a search library and a trial: one narrow evaluator.

A search backend proposes configurations; an `Evaluator` turns one into a `TrialResult` and
records it as a row of the study's table. Training a Keras model and looking a trial up in a
table of learning curves are two implementations: a backend never knows which it talks to.
Beside the evaluator a backend gets the study's budget meter (`tuning.core.budget.BudgetMeter`:
start no trial once it is exhausted) and its resume ledger (`tuning.core.ledger.ResumeLedger`),
as separate small objects.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuning.core.ledger import TrialResult

# Called at the end of each epoch with (epochs trained so far, that epoch's validation loss);
# answers True to stop the trial there (a pruner: the trial is recorded "pruned").
Report = Callable[[int, float], bool]


@dataclass(frozen=True)
class WarmStart:
    """Continue the model an earlier trial ended with (row ``trial`` of the study's table, its
    best weights restored) from epoch ``epochs`` on, as Hyperband promotes a trial: the new
    trial trains epochs ``epochs`` to its own ``epochs`` argument."""

    trial: int
    epochs: int


class Evaluator(ABC):
    """Evaluates configurations of one study under its protocol, and records each."""

    @abstractmethod
    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        epochs: int | None = None,
        warm_start: WarmStart | None = None,
        report: Report | None = None,
        number: int | None = None,
    ) -> TrialResult:
        """Evaluate ``params`` and append its row; a failure is recorded, never raised.

        ``epochs``: the fidelity, at most this many epochs (default: the protocol's cap).
        ``warm_start``: continue an earlier trial's model (`WarmStart`); the evaluator keeps
        what that needs for a backend whose ``warm_starts`` is set.
        ``report``: called after each epoch; a True answer stops the trial (recorded pruned).
        ``number``: the row's trial number when the library numbers the trials of a study
        shared by several processes; by default the rows are numbered in order. A trial the
        study's earlier run finished is answered from its table (the resume ledger) instead.
        """


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
