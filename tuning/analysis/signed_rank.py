"""The paired Wilcoxon signed-rank test: the one implementation every verdict of the harness uses.

The per-task leaderboard (each backend against random search), the race's last step (two
backends left) and the certificate's pairs all call `paired_test`. Two rules hold everywhere:

- **The direction comes from the test.** ``p_lower`` and ``p_higher`` are the one-sided p-values
  of "the first's losses are lower" and "higher"; a verdict says "better" or "worse" by the
  smaller of them, never by a mean rank, median or mean printed beside it (a few large
  differences of one sign can outweigh many small ones of the other). The Hodges-Lehmann
  estimate (the median of the Walsh averages) is the shift that goes with the test: computed,
  as the test is, on the non-zero differences, its sign agrees with the one-sided p-values (the
  signed-rank statistic counts the positive Walsh averages), Walsh averages tied at 0 aside.
- **A study with no model is the worst result of its block** (`failures_as_worst`): it is given a
  loss past every finite loss of the comparison, by more than their range, so its difference
  against any model is the largest of its sign and it counts as a loss for the backend that
  failed; two failures in one block are a tie (a zero difference, left out as Wilcoxon does).
  No backend gains by failing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05


@dataclass(frozen=True)
class PairedTest:
    """A Wilcoxon signed-rank test of paired losses (differences: first minus second, by block).

    ``p`` is two-sided; ``p_lower`` and ``p_higher`` one-sided; ``hodges_lehmann`` the estimate
    of the shift; ``failed_first`` and ``failed_second`` the blocks in which each had no model
    (counted as its worst result)."""

    n_pairs: int
    statistic: float = math.nan  # the two-sided test's (scipy's: the smaller signed-rank sum)
    median_diff: float = math.nan
    hodges_lehmann: float = math.nan
    p: float = math.nan
    p_lower: float = math.nan
    p_higher: float = math.nan
    failed_first: int = 0
    failed_second: int = 0

    @property
    def testable(self) -> bool:
        """Two pairs or more, not all equal: a signed-rank test can be made."""
        return not math.isnan(self.p)

    def direction(self) -> str:
        """``lower`` or ``higher``: the side the test leans to (the smaller one-sided p); ``""``
        when no test was made or neither side is favoured."""
        if not self.testable or self.p_lower == self.p_higher:
            return ""
        return "lower" if self.p_lower < self.p_higher else "higher"


def hodges_lehmann(diff: np.ndarray) -> float:
    """The one-sample Hodges-Lehmann estimate: the median of every Walsh average
    ``(d_i + d_j) / 2``, ``i <= j``, of the non-zero differences (the test leaves zeros out, as
    Wilcoxon's own rule does; counting them could give the estimate the other sign than the
    test's one-sided p-values)."""
    d = np.asarray(diff, dtype=float)
    d = d[d != 0]
    if not len(d):
        return math.nan
    i, j = np.triu_indices(len(d))
    return float(np.median((d[i] + d[j]) / 2))


def failure_loss(finite: np.ndarray) -> float:
    """The loss a study without a model takes: past the largest finite loss by more than the
    losses' range (and by at least their size, or 1), so that its difference against any model
    is larger than any difference between two models."""
    values = np.asarray(finite, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return 1.0
    worst, best = float(values.max()), float(values.min())
    return worst + max(worst - best, abs(worst), 1.0)


def failures_as_worst(losses: pd.DataFrame) -> pd.DataFrame:
    """``losses`` (blocks x backends) with every missing result (NaN or +inf: no model) replaced
    by `failure_loss` of the frame's finite losses."""
    values = losses.to_numpy(dtype=float)
    penalty = failure_loss(values)
    return losses.astype(float).where(np.isfinite(values), penalty)


# A scaled loss past this many times the task's typical distance from its best says nothing more
# about the search (the normalized scores' cap, `tuning.analysis.suite_stats.SCORE_CAP`).
SCALE_CAP = 5.0


def scaled_per_task(losses: pd.DataFrame) -> pd.DataFrame:
    """``losses`` (blocks x backends; blocks indexed by (task, seed)) on one scale per task, so
    that one signed-rank test can pair blocks of tasks whose losses differ in scale (a
    regression's 3000 beside a classifier's 0.1 would otherwise decide every rank of the
    differences): ``(loss - the task's lowest) / (the task's median - its lowest)``, clipped at
    `SCALE_CAP`, as the suite's normalized scores are. The median and the clip keep one diverged
    but finite loss from squeezing its task's other differences to nothing: making a loss worse
    never makes its backend look better. Where the median is the lowest, the range is the scale;
    within one task a positive affine map changes no test. NaN and +inf stay as they are."""
    if not isinstance(losses.index, pd.MultiIndex):
        return losses
    parts = []
    for _, part in losses.groupby(level=0, sort=False):
        values = part.to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        low = float(finite.min()) if len(finite) else 0.0
        scale = 1.0
        for spread in (
            (float(np.median(finite)) - low, float(finite.max()) - low) if len(finite) else ()
        ):
            if spread > 0:
                scale = spread
                break
        scaled = ((part - low) / scale).clip(upper=SCALE_CAP)
        parts.append(scaled.where(np.isfinite(values), part))
    return pd.concat(parts).loc[losses.index]


def paired_test(first: pd.Series, second: pd.Series) -> PairedTest:
    """The signed-rank test of ``first`` against ``second`` (losses indexed by block; NaN or
    +inf: no model, counted as the worst result). Blocks that only one of them ran are left out.

    No test (NaN p-values) with fewer than two pairs or when every difference is zero: the
    verdict then says why instead of printing a p-value that no test gave."""
    pairs = pd.concat([first.rename("first"), second.rename("second")], axis=1, join="inner")
    failed = pairs.isna() | np.isinf(pairs.to_numpy(dtype=float))
    counts = {
        "failed_first": int(failed["first"].sum()),
        "failed_second": int(failed["second"].sum()),
    }
    pairs = failures_as_worst(pairs)
    diff = (pairs["first"] - pairs["second"]).to_numpy(dtype=float)
    n = len(diff)
    if n == 0:
        return PairedTest(0)
    estimates = {"median_diff": float(np.median(diff)), "hodges_lehmann": hodges_lehmann(diff)}
    if n < 2 or not np.any(diff):
        return PairedTest(n, **estimates, **counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that a small sample has low power
        two_sided = stats.wilcoxon(diff)
        p = {
            name: float(stats.wilcoxon(diff, alternative=alternative).pvalue)
            for name, alternative in (("p_lower", "less"), ("p_higher", "greater"))
        }
    return PairedTest(
        n, float(two_sided.statistic), **estimates, p=float(two_sided.pvalue), **p, **counts
    )


def smallest_p(n_pairs: int) -> float:
    """The smallest two-sided p-value an exact signed-rank test of ``n_pairs`` pairs can give."""
    return 2.0 / 2**n_pairs if n_pairs else math.nan
