"""The leaderboard by backend: each backend's studies (one per seed) summarised and tested.

Per dataset and backend, over seeds: mean, standard deviation, 95% confidence interval (Student t)
and median of the test loss and of the best validation loss; mean rank and wins across seeds (the
backends of one seed are ranked by test loss); mean epochs, seconds and trials spent; the epochs
each study needed to first reach a target validation loss (by default the median final result of
random search); and a paired Wilcoxon signed-rank test of each backend's test losses against
random search's on the same seeds (`tuning.analysis.signed_rank`: a study without a model is the
worst result of its seed, and the direction comes from the one-sided p-values).

**The family.** Every test against random search in one comparison (each task, each backend) is
one family: ``wilcoxon_p_holm`` is its Holm-adjusted p (`tuning.analysis.multiplicity`), and the
verdict words (``vs_random``) follow it, so the chance of any false "better" or "worse" in this
family stays at or under 0.05. (A report holds other families too, each controlled on its own:
the suite's Nemenyi pairs, a tabular report's claims about the task.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from tuning.analysis.blocks import check_unique
from tuning.analysis.multiplicity import holm
from tuning.analysis.signed_rank import PairedTest, paired_test
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


def verdict(test: PairedTest, adjusted_p: float) -> str:
    """The paired test's answer in words: better, worse, not significant, or why no test. The
    words follow the family's Holm-adjusted p (`tuning.analysis.multiplicity`); the direction
    the test's one-sided p-values."""
    if test.n_pairs == 0:
        return "no paired seeds"
    if test.n_pairs == 1:
        return "no test: one paired seed"
    if not test.testable:
        return "no test: equal in every seed"
    if adjusted_p < ALPHA:
        return "better than random" if test.direction() == "lower" else "worse than random"
    return "not significant"


def standing_trials(studies: pd.DataFrame) -> pd.DataFrame:
    """One complete trial per study, standing for it where only its leaderboard row is known (a
    results page's data, pooled studies): its best validation loss after all its epochs."""
    return pd.DataFrame(
        {
            "study": studies["study"],
            "trial": 0,
            "status": "complete",
            "val_loss": studies["best_val_loss"],
            "cum_epochs": studies["epochs"],
        }
    )


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
    rows: list[dict[str, object]] = []
    tests: list[tuple[PairedTest | None, bool]] = []
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
                test = None
                row.update(
                    n_pairs=len(mine),
                    test_loss_diff_median=0.0,
                    test_loss_diff_hl=0.0,
                    wilcoxon_p=math.nan,
                    wilcoxon_p_lower=math.nan,
                    wilcoxon_p_higher=math.nan,
                    no_model_pairs=0,
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
                    no_model_pairs=test.failed_first,
                )
            rows.append(row)
            tests.append((test, len(base) > 0))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    adjusted = holm(frame["wilcoxon_p"].to_numpy())
    frame["wilcoxon_p_holm"] = adjusted
    frame["tests_in_family"] = int(np.count_nonzero(~np.isnan(adjusted)))
    frame["vs_random"] = [
        "baseline" if test is None else verdict(test, p) if has_baseline else "random did not run"
        for (test, has_baseline), p in zip(tests, adjusted, strict=True)
    ]
    return frame.sort_values(["dataset", "mean_rank", "test_loss_mean"], ignore_index=True)
