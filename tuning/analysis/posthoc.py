"""Conover's post-hoc test after Friedman, each backend against the best: F-Race's elimination.

After a Friedman test rejects "every backend ranks alike" over ``n`` blocks and ``k`` backends,
F-Race (Birattari et al. 2002; irace) compares each backend's rank sum ``R_j`` with the best
(lowest) one's: the statistic ``(R_j - R_best) / s``, ``s = sqrt(2 (n A - sum R_j^2) / ((n-1)
(k-1)))`` with ``A`` the sum of the squared ranks, is Student's t with ``(n-1)(k-1)`` degrees of
freedom (Conover 1999). Each comparison's p-value is two-sided, as irace's critical gap
``t_{1-alpha/2} s`` is.

Those ``k - 1`` comparisons are a family, and the best is itself chosen as the minimum of noisy
rank sums, so uncorrected they drop a backend identical to the best far more often than
``alpha`` (measured in `benchmarks/calibration.py`). ``correction="holm"`` adjusts the family's
p-values by Holm (`tuning.analysis.multiplicity`), which covers the ``k - 1`` comparisons but not
the choice of the best; ``"nemenyi"`` drops a backend whose mean rank exceeds the best's by more
than Nemenyi's critical difference (`tuning.analysis.suite_stats.critical_difference`): the
studentized range bounds the largest gap among identical backends, the chosen best included;
``"none"`` is irace's rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from tuning.analysis.multiplicity import holm
from tuning.analysis.suite_stats import critical_difference, friedman

CORRECTIONS = ("holm", "nemenyi", "none")


@dataclass(frozen=True)
class ConoverResult:
    """One Friedman test and its post-hoc comparisons against the best rank sum."""

    statistic: float
    p: float
    critical: float  # the uncorrected rank-sum gap (irace's); NaN when Friedman does not reject
    dropped: list[str] = field(default_factory=list)
    p_vs_best: dict[str, float] = field(default_factory=dict)  # adjusted when corrected


def conover_vs_best(ranks: pd.DataFrame, alpha: float, correction: str = "holm") -> ConoverResult:
    """Friedman's test of ``ranks`` (blocks x backends) and, when it rejects at ``alpha``, the
    backends whose rank sum is worse than the best's at ``alpha`` after ``correction``."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    n, k = ranks.shape
    statistic, p = friedman(ranks)
    if math.isnan(p) or p >= alpha:
        return ConoverResult(statistic, p, math.nan)
    sums = ranks.sum()
    squares = float((ranks.to_numpy() ** 2).sum())
    dof = (n - 1) * (k - 1)
    spread = math.sqrt(max(2 * (n * squares - float((sums**2).sum())) / dof, 0.0))
    critical = float(stats.t.ppf(1 - alpha / 2, dof) * spread)
    best = sums.idxmin()
    others = [b for b in sums.index if b != best]
    if correction == "nemenyi":
        gap = critical_difference(k, n, alpha) * n  # in rank sums
        dropped = sorted(b for b in others if sums[b] - sums[best] > gap)
        return ConoverResult(statistic, p, float(gap), dropped, {})
    gaps = np.array([sums[b] - sums[best] for b in others], dtype=float)
    # (a spread of 0: every block ranks the same way, and any gap is certain)
    raw = 2 * stats.t.sf(gaps / spread, dof) if spread > 0 else np.where(gaps > 0, 0.0, 1.0)
    adjusted = holm(raw) if correction == "holm" else raw
    p_vs_best = {b: float(q) for b, q in zip(others, adjusted, strict=True)}
    dropped = sorted(b for b in others if p_vs_best[b] < alpha)
    return ConoverResult(statistic, p, critical, dropped, p_vs_best)
