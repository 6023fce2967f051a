"""Ranks over the budget: each backend's mean rank, at each fraction of the budget, by the best
complete result its study had reached by then (an anytime view of a suite)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tuning.analysis.blocks import block_matrix, block_ranks

BUDGET_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(1, 11))


def rank_over_budget(
    studies: pd.DataFrame,
    trials: pd.DataFrame,
    budgets: dict[str, dict],
    fractions=BUDGET_FRACTIONS,
) -> pd.DataFrame:
    """Mean rank of each backend at each fraction of its studies' budget: within each (task,
    seed) block of ``studies`` (the leaderboard), backends ranked by the best validation loss of
    a complete trial their study had reached when it had spent that fraction (of its epoch
    budget, by ``cum_epochs``; a budget in trials or seconds by trial count or ``cum_seconds``).
    A pruned or failed trial changes nothing; a study with no complete trial yet ranks last. The
    blocks are the suite's (`block_matrix`)."""
    columns = ["fraction", "backend", "mean_rank"]
    if studies.empty:
        return pd.DataFrame(columns=columns)
    by_study = dict(iter(trials.groupby("study", sort=False))) if len(trials) else {}
    rows = []
    for study in studies.itertuples(index=False):
        group = by_study.get(study.study)
        if group is None or group.empty:
            best, spent, limit = np.array([]), np.array([]), 1.0
        else:
            group = group.sort_values("trial")
            spent, limit = _spent(budgets.get(study.study) or {}, group)
            complete = group["val_loss"].astype(float).where(group["status"] == "complete")
            best = complete.cummin().ffill().to_numpy()  # the incumbent after each trial
        for fraction in fractions:
            reached = best[spent <= fraction * limit + 1e-9]
            value = reached[-1] if len(reached) else np.nan
            rows.append(
                {
                    "dataset": study.dataset,
                    "seed": study.seed,
                    "backend": study.backend,
                    "fraction": fraction,
                    "best_val_loss": np.inf if np.isnan(value) else value,
                }
            )
    frame = pd.DataFrame(rows)
    out = []
    for fraction, at in frame.groupby("fraction"):
        ranks = block_ranks(block_matrix(at, "best_val_loss"))
        for backend, value in ranks.mean().items():
            out.append({"fraction": fraction, "backend": backend, "mean_rank": float(value)})
    return pd.DataFrame(out, columns=columns)


def _spent(budget: dict, trials: pd.DataFrame) -> tuple[np.ndarray, float]:
    """What a study (its trials in order) had spent after each trial, in the unit its budget
    was given in (epochs first), and that budget's limit."""
    if budget.get("epochs"):
        return trials["cum_epochs"].to_numpy(dtype=float), float(budget["epochs"])
    if budget.get("trials"):
        return np.arange(1, len(trials) + 1, dtype=float), float(budget["trials"])
    if budget.get("seconds"):
        return trials["cum_seconds"].to_numpy(dtype=float), float(budget["seconds"])
    epochs = trials["cum_epochs"].to_numpy(dtype=float)
    return epochs, float(epochs.max()) if len(epochs) else 1.0
