"""The leaderboard by backend: each backend's studies (one per seed) summarised and tested.

Per dataset and backend, over seeds: mean, standard deviation, 95% confidence interval (Student t)
and median of the test loss and of the best validation loss; mean rank and wins across seeds (the
backends of one seed are ranked by test loss); mean epochs, seconds and trials spent; the epochs
each study needed to first reach a target validation loss (by default the median final result of
random search); and a paired Wilcoxon signed-rank test of each backend's test losses against
random search's on the same seeds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from tuning.analysis.blocks import check_unique
from tuning.analysis.suite_stats import block_wins

BASELINE = "random"
ALPHA = 0.05
METRICS = ("test_loss", "best_val_loss")
BY_BACKEND_FILE = "leaderboard_by_backend.csv"


def summary_stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation, 95% t-interval of the mean, and median (NaNs dropped)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return dict.fromkeys(("mean", "std", "ci_low", "ci_high", "median"), math.nan)
    mean, median = float(x.mean()), float(np.median(x))
    if n == 1:
        return {
            "mean": mean,
            "std": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "median": median,
        }
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * std / math.sqrt(n)
    return {
        "mean": mean,
        "std": std,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "median": median,
    }


def epochs_to_target(trials: pd.DataFrame, target: float) -> float:
    """Cumulative epochs at the first finished trial whose validation loss is <= ``target``."""
    rows = trials.sort_values("trial")
    hit = rows[(rows["status"] == "complete") & (rows["val_loss"] <= target)]
    return float(hit["cum_epochs"].iloc[0]) if len(hit) else math.nan


@dataclass(frozen=True)
class PairedTest:
    """A Wilcoxon signed-rank test of paired losses against the baseline's (differences: the
    backend's loss minus the baseline's, by seed).

    ``p`` is two-sided; ``p_lower`` and ``p_higher`` are the one-sided p-values of "its losses
    are lower" and "higher" than the baseline's: the verdict's direction comes from them, never
    from a plain median (a few large differences of one sign can outweigh many small ones of
    the other). ``hodges_lehmann`` is the estimate of the shift that goes with the test: the
    median of the Walsh averages of the differences."""

    n_pairs: int
    median_diff: float = math.nan
    hodges_lehmann: float = math.nan
    p: float = math.nan
    p_lower: float = math.nan
    p_higher: float = math.nan

    @property
    def testable(self) -> bool:
        """Two pairs or more, not all equal: a signed-rank test can be made."""
        return not math.isnan(self.p)


def hodges_lehmann(diff: np.ndarray) -> float:
    """The one-sample Hodges-Lehmann estimate: the median of every Walsh average
    ``(d_i + d_j) / 2``, ``i <= j``."""
    d = np.asarray(diff, dtype=float)
    if not len(d):
        return math.nan
    i, j = np.triu_indices(len(d))
    return float(np.median((d[i] + d[j]) / 2))


def paired_test(losses: pd.Series, baseline: pd.Series) -> PairedTest:
    """Wilcoxon signed-rank test of paired losses (indexed by seed) against the baseline's.

    No test (NaN p-values) with fewer than two pairs or when every difference is zero: the
    verdict then says why instead of printing a p-value that no test gave."""
    pairs = pd.concat([losses, baseline], axis=1, join="inner").dropna()
    diff = (pairs.iloc[:, 0] - pairs.iloc[:, 1]).to_numpy(dtype=float)
    n = len(diff)
    if n == 0:
        return PairedTest(0)
    estimates = {"median_diff": float(np.median(diff)), "hodges_lehmann": hodges_lehmann(diff)}
    if n < 2 or not np.any(diff):
        return PairedTest(n, **estimates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that a small sample has low power
        p = {
            name: float(stats.wilcoxon(diff, alternative=alternative).pvalue)
            for name, alternative in (
                ("p", "two-sided"),
                ("p_lower", "less"),
                ("p_higher", "greater"),
            )
        }
    return PairedTest(n, **estimates, **p)


def smallest_p(n_pairs: int) -> float:
    """The smallest two-sided p-value an exact signed-rank test of ``n_pairs`` pairs can give."""
    return 2.0 / 2**n_pairs if n_pairs else math.nan


def verdict(test: PairedTest) -> str:
    """The paired test's answer in words: better, worse, not significant, or why no test."""
    if test.n_pairs == 0:
        return "no paired seeds"
    if test.n_pairs == 1:
        return "no test: one paired seed"
    if not test.testable:
        return "no test: equal in every seed"
    if test.p < ALPHA:
        return "better than random" if test.p_lower < test.p_higher else "worse than random"
    return "not significant"


def default_target(studies: pd.DataFrame) -> float:
    """Random search's median final best validation loss (all backends' if random did not run)."""
    pool = studies[studies["backend"] == BASELINE]
    if pool["best_val_loss"].notna().sum() == 0:
        pool = studies
    return float(pool["best_val_loss"].median())


def by_backend(
    studies: pd.DataFrame, trials: pd.DataFrame, target: float | None = None
) -> pd.DataFrame:
    """The aggregated leaderboard: one row per (dataset, backend), best mean rank first.

    ``studies`` is the per-study leaderboard (`tuning.analysis.compare.leaderboard`), ``trials`` every
    trial row of those studies; ``target`` is the validation loss to reach (default per dataset:
    `default_target`).
    """
    check_unique(studies)
    rows = []
    for dataset, group in studies.groupby("dataset", sort=True):
        group = group.copy()
        by_seed = group.groupby("seed")["test_loss"]
        group["rank"] = by_seed.rank(method="average", na_option="bottom")
        won = block_wins(group.pivot(index="seed", columns="backend", values="test_loss"))
        goal = default_target(group) if target is None else float(target)
        base = group[group["backend"] == BASELINE].set_index("seed")["test_loss"]
        for backend, mine in group.groupby("backend", sort=True):
            row: dict[str, object] = {"dataset": dataset, "backend": backend, "n_seeds": len(mine)}
            for metric in METRICS:
                for key, value in summary_stats(mine[metric].tolist()).items():
                    row[f"{metric}_{key}"] = value
            reached = [
                epochs_to_target(trials[trials["study"] == study], goal) for study in mine["study"]
            ]
            reached = [e for e in reached if not math.isnan(e)]
            row.update(
                mean_rank=float(mine["rank"].mean()),
                wins=int(won.get(backend, 0)),
                epochs_mean=float(mine["epochs"].mean()),
                seconds_mean=float(mine["seconds"].mean()),
                trials_mean=float(mine["trials"].mean()),
                target_val_loss=goal,
                reached_target=len(reached),
                epochs_to_target_mean=float(np.mean(reached)) if reached else math.nan,
            )
            if backend == BASELINE:
                row.update(
                    n_pairs=len(mine),
                    test_loss_diff_median=0.0,
                    test_loss_diff_hl=0.0,
                    wilcoxon_p=math.nan,
                    wilcoxon_p_lower=math.nan,
                    wilcoxon_p_higher=math.nan,
                    vs_random="baseline",
                )
            else:
                test = paired_test(mine.set_index("seed")["test_loss"], base)
                row.update(
                    n_pairs=test.n_pairs,
                    test_loss_diff_median=test.median_diff,
                    test_loss_diff_hl=test.hodges_lehmann,
                    wilcoxon_p=test.p,
                    wilcoxon_p_lower=test.p_lower,
                    wilcoxon_p_higher=test.p_higher,
                    vs_random=verdict(test) if len(base) else "random did not run",
                )
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["dataset", "mean_rank", "test_loss_mean"], ignore_index=True)
