"""The race's elimination rule: which backends one round's results drop (F-Race, `tuning.run.race`).

The tests are the reports' own: the Friedman test with comparisons against the best
(`tuning.analysis.posthoc.conover_vs_best`) while three or more backends race, and the paired
signed-rank test (`tuning.analysis.signed_rank`) on losses scaled per task once two are left.
"""

from __future__ import annotations

import math

import pandas as pd

from tuning.analysis.blocks import block_ranks
from tuning.analysis.posthoc import conover_vs_best
from tuning.analysis.signed_rank import paired_test, scaled_per_task

# Nemenyi's critical difference against the best by default: irace's uncorrected rule ("none")
# and Holm across the comparisons ("holm") drop a backend identical to the best in a large share
# of rounds, because the best is itself the minimum of noisy rank sums (benchmarks/calibration.py).
CORRECTION = "nemenyi"


def wilcoxon_drop(losses: pd.DataFrame, alpha: float) -> tuple[float, float, list[str]]:
    """Two backends left: the paired signed-rank test of their losses, scaled to [0, 1] within
    each task (`tuning.analysis.signed_rank`: no model is the worst result of its block); when
    p < ``alpha`` the one the test finds worse (its one-sided p-value) is dropped."""
    a, b = losses.columns
    scaled = scaled_per_task(losses)  # blocks of several tasks: one scale
    test = paired_test(scaled[a], scaled[b])
    if not test.testable:
        return math.nan, math.nan, []
    worse = a if test.direction() == "higher" else b
    return test.statistic, test.p, [worse] if test.p < alpha else []


def decide(
    losses: pd.DataFrame, alpha: float, correction: str = CORRECTION
) -> tuple[str, float, float, float, list[str]]:
    """One round's test on ``losses`` (blocks x backends still racing; +inf: no model)."""
    if losses.shape[1] == 2:
        statistic, p, dropped = wilcoxon_drop(losses, alpha)
        return "wilcoxon", statistic, p, math.nan, dropped
    if losses.shape[0] < 2:
        return "none", math.nan, math.nan, math.nan, []
    result = conover_vs_best(block_ranks(losses), alpha, correction)
    return "friedman", result.statistic, result.p, result.critical, result.dropped
