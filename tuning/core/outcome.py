"""A finished trial's status, loss and error: the one rule every evaluator and backend follows.

``complete``: the trial trained and its best validation loss is finite. ``failed``: it raised, a
loss became non-finite (diverged), or a fold of it did not fit. ``pruned``: the search stopped it
early (a pruner, or the budget running out between a candidate's folds); a pruned trial's loss
is its best so far, where it has one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Outcome:
    """A trial's ``status``, its score (``val_loss``, NaN where it has none) and ``error``."""

    status: str
    val_loss: float
    error: str = ""


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


def trained_outcome(history: Mapping[str, Sequence[float]], pruned_after: int | None) -> Outcome:
    """The outcome of a trial trained (or played) epoch by epoch: failed where its history has
    no finite score (`score_history`), else pruned where the search stopped it after epoch
    ``pruned_after``, else complete."""
    val_loss, error = score_history(history)
    if error:
        return Outcome("failed", val_loss, error)
    if pruned_after:
        return Outcome("pruned", val_loss, f"pruned by the search after epoch {pruned_after}")
    return Outcome("complete", val_loss)


def folds_outcome(losses: Sequence[float], n_splits: int, budget_spent: bool) -> Outcome:
    """The outcome of a cross-validated candidate from the validation ``losses`` of the folds
    that fitted (of ``n_splits``): its mean loss where every fold fitted and stayed finite;
    pruned where the budget ran out (``budget_spent``) before its last fold; else failed."""
    done = len(losses)
    if done < n_splits and budget_spent:
        return Outcome("pruned", math.nan, f"the budget ran out after {done} of {n_splits} folds")
    if done == 0:
        return Outcome("failed", math.nan, "every fold failed to fit")
    if done < n_splits:
        return Outcome("failed", math.nan, f"{n_splits - done} of {n_splits} folds failed to fit")
    if not all(math.isfinite(loss) for loss in losses):
        return Outcome("failed", math.nan, "validation loss became non-finite in a fold: diverged")
    return Outcome("complete", float(np.mean(losses)))
