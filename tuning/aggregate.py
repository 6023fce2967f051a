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

import numpy as np
import pandas as pd
from scipy import stats

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


def paired_test(losses: pd.Series, baseline: pd.Series) -> tuple[int, float, float]:
    """Wilcoxon signed-rank test of paired losses (indexed by seed) against the baseline's.

    Returns the number of pairs, the median difference (negative: lower loss than the baseline)
    and the two-sided p-value (1.0 when every difference is zero, NaN without pairs).
    """
    pairs = pd.concat([losses, baseline], axis=1, join="inner").dropna()
    if pairs.empty:
        return 0, math.nan, math.nan
    diff = (pairs.iloc[:, 0] - pairs.iloc[:, 1]).to_numpy()
    if not np.any(diff):
        return len(diff), 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that a small sample has low power
        p = float(stats.wilcoxon(diff, alternative="two-sided").pvalue)
    return len(diff), float(np.median(diff)), p


def smallest_p(n_pairs: int) -> float:
    """The smallest two-sided p-value an exact signed-rank test of ``n_pairs`` pairs can give."""
    return min(1.0, 2.0 / 2**n_pairs) if n_pairs else math.nan


def verdict(n_pairs: int, median_diff: float, p: float) -> str:
    if n_pairs == 0 or math.isnan(p):
        return "no paired seeds"
    if p < ALPHA:
        return "better than random" if median_diff < 0 else "worse than random"
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

    ``studies`` is the per-study leaderboard (`tuning.compare.leaderboard`), ``trials`` every
    trial row of those studies; ``target`` is the validation loss to reach (default per dataset:
    `default_target`).
    """
    rows = []
    for dataset, group in studies.groupby("dataset", sort=True):
        group = group.copy()
        by_seed = group.groupby("seed")["test_loss"]
        group["rank"] = by_seed.rank(method="average", na_option="bottom")
        group["win"] = group["test_loss"] == by_seed.transform("min")
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
                wins=int(mine["win"].sum()),
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
                    wilcoxon_p=math.nan,
                    vs_random="baseline",
                )
            else:
                n, diff, p = paired_test(mine.set_index("seed")["test_loss"], base)
                row.update(
                    n_pairs=n,
                    test_loss_diff_median=diff,
                    wilcoxon_p=p,
                    vs_random=verdict(n, diff, p) if len(base) else "random did not run",
                )
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["dataset", "mean_rank", "test_loss_mean"], ignore_index=True)
