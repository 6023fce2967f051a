"""Statistics across tasks: what a suite says about the backends, from its studies' rows.

HPO benchmarks get their power from many tasks: each study's result is put on one scale per task
(a normalized score), aggregated over tasks and seeds with interval estimates, and the backends
are ranked within blocks and tested for differences. Here:

- **Normalized score** of a study (Bayesmark's): ``(L - best) / (reference - best)``, where ``L``
  is the study's test loss, ``best`` the lowest test loss any study reached on that task and
  ``reference`` random search's mean test loss on it (the mean over all studies when random
  search is not in the folder). 0 is the best model found for the task, 1 is what random search
  finds on average; lower is better, and negative values cannot occur. A study that produced no
  model scores as the task's worst study.
- Per backend, the **mean** and the **interquartile mean** (IQM: the mean of the middle 50%) of
  its scores over every (task, seed), each with a 95% **stratified bootstrap** interval (seeds
  resampled within each task, as rliable's `StratifiedBootstrap` does (Agarwal et al. 2021,
  used by CARP-S); computed with `scipy.stats.bootstrap`, one sample per task).
- **Ranks**: within each (task, seed) block the backends are ranked by test loss (1 = best, ties
  share the mean rank); the mean rank over blocks, the **Friedman** test of "all backends rank
  alike" (scipy), and the **Nemenyi** critical difference ``q_alpha * sqrt(k (k+1) / (6 N))``
  (Demšar 2006; ``q_alpha`` from scipy's studentized range): two backends whose mean ranks
  differ by more than it are distinguishable at level ``alpha``. Pairwise Nemenyi p-values come
  from scikit-posthocs.

Only blocks in which every backend has a study are ranked, and only the seeds that every
backend ran on every task are bootstrapped (both say so when they drop any).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger(__name__)
ALPHA = 0.05
BASELINE = "random"
BOOTSTRAP_REPS = 5000
BOOTSTRAP_SEED = 0
SUITE_FILE = "leaderboard_suite.csv"
BUDGET_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(1, 11))


def normalized_scores(studies: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """``studies`` (the leaderboard: dataset, backend, seed, test_loss) with a ``score`` column
    and the task's ``best`` and ``reference`` test losses (see the module's docstring)."""
    frames = []
    for _, group in studies.groupby("dataset", sort=True):
        group = group.copy()
        losses = group["test_loss"].astype(float)
        worst = losses.max()
        losses = losses.fillna(worst)  # no model: as bad as the task's worst study
        best = losses.min()
        reference_losses = losses[group["backend"] == baseline]
        if reference_losses.empty:
            reference_losses = losses
        reference = reference_losses.mean()
        spread = reference - best
        group["best"], group["reference"] = best, reference
        group["score"] = (
            (losses - best) / spread if spread > 0 else np.where(losses > best, 1.0, 0.0)
        )
        frames.append(group)
    return pd.concat(frames, ignore_index=True) if frames else studies.assign(score=[])


def block_matrix(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """One row per (dataset, seed) block in which every backend has a study, one column per
    backend (sorted), holding ``value``."""
    table = frame.pivot_table(index=["dataset", "seed"], columns="backend", values=value)
    complete = table.dropna()
    if len(complete) < len(table):
        log.warning(
            "%d (task, seed) blocks lack a study of some backend: ranked without them",
            len(table) - len(complete),
        )
    return complete.sort_index(axis=1)


def block_ranks(losses: pd.DataFrame) -> pd.DataFrame:
    """Rank within each block (row): 1 = lowest loss; ties share their mean rank; a missing
    result (NaN) ranks last."""
    return losses.fillna(np.inf).rank(axis=1, method="average")


def friedman(ranks: pd.DataFrame) -> tuple[float, float]:
    """Friedman's chi-square statistic and p-value from the block ranks (k >= 3 backends,
    N >= 2 blocks; else NaN). Ties are corrected for as scipy does."""
    n_blocks, k = ranks.shape
    if k < 3 or n_blocks < 2:
        return math.nan, math.nan
    if (ranks.nunique(axis=1) == 1).all():  # every block a tie: no evidence of any difference
        return 0.0, 1.0
    result = stats.friedmanchisquare(*(ranks[c].to_numpy() for c in ranks.columns))
    return float(result.statistic), float(result.pvalue)


def critical_difference(k: int, n_blocks: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of mean ranks for ``k`` methods over ``n_blocks`` blocks:
    ``q_alpha * sqrt(k (k+1) / (6 N))``, ``q_alpha`` the studentized range quantile over
    sqrt(2) (Demšar 2006, Table 5: 2.569 for k = 4 at 0.05)."""
    if k < 2 or n_blocks < 1:
        return math.nan
    q_alpha = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q_alpha * math.sqrt(k * (k + 1) / (6 * n_blocks)))


def nemenyi_p_values(losses: pd.DataFrame) -> pd.DataFrame:
    """Pairwise p-values of the Nemenyi test after Friedman (scikit-posthocs), by backend."""
    import scikit_posthocs

    if losses.shape[1] < 2 or len(losses) < 2:
        return pd.DataFrame(index=losses.columns, columns=losses.columns, dtype=float)
    p_values = scikit_posthocs.posthoc_nemenyi_friedman(losses.fillna(np.inf).to_numpy())
    p_values.index = p_values.columns = list(losses.columns)
    return p_values


def score_matrices(scores: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[int], list[str]]:
    """Per backend a (seeds x tasks) matrix of normalized scores, over the seeds every backend
    ran on every task (rliable's layout); returns it with those seeds and the tasks."""
    tasks = sorted(scores["dataset"].unique())
    backends = sorted(scores["backend"].unique())
    seed_sets = [
        set(scores[(scores["dataset"] == t) & (scores["backend"] == b)]["seed"])
        for t in tasks
        for b in backends
    ]
    seeds = sorted(set.intersection(*seed_sets)) if seed_sets else []
    dropped = sorted(set(scores["seed"]) - set(seeds))
    if dropped:
        log.warning("seeds %s are not in every (task, backend): left out of the intervals", dropped)
    table = scores.set_index(["backend", "seed", "dataset"])["score"]
    matrices = {
        b: np.array([[table[b, s, t] for t in tasks] for s in seeds], dtype=float) for b in backends
    }
    return matrices, seeds, tasks


def interquartile_mean(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """The mean of the middle 50% of ``scores`` (25% trimmed from each end), as rliable's
    ``aggregate_iqm``."""
    return stats.trim_mean(scores, 0.25, axis=axis)


AGGREGATES = {"mean": np.mean, "iqm": interquartile_mean}


def interval_estimates(
    matrices: dict[str, np.ndarray], reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Mean and IQM of each backend's scores (a seeds x tasks matrix) with 95% percentile
    intervals from a stratified bootstrap: `scipy.stats.bootstrap` given one sample per task
    resamples each task's seeds on their own, which is rliable's `StratifiedBootstrap`.
    ``{backend: {"mean": (point, low, high), "iqm": (...)}}``."""
    estimates: dict[str, dict[str, tuple[float, float, float]]] = {}
    for backend, matrix in matrices.items():
        if not matrix.size:
            continue
        per_task = tuple(matrix.T)  # one sample of seeds per task
        estimates[backend] = {}
        for name, aggregate in AGGREGATES.items():

            def statistic(*samples: np.ndarray, axis: int = -1, _f=aggregate) -> np.ndarray:
                return _f(np.concatenate(samples, axis=axis), axis=axis)

            point = float(aggregate(matrix.ravel()))
            if matrix.shape[0] < 2:  # one seed: nothing to resample
                estimates[backend][name] = (point, math.nan, math.nan)
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                result = stats.bootstrap(
                    per_task,
                    statistic,
                    n_resamples=reps,
                    confidence_level=1 - ALPHA,
                    method="percentile",
                    vectorized=True,
                    rng=np.random.default_rng(seed),
                )
            low, high = result.confidence_interval
            estimates[backend][name] = (point, float(low), float(high))
    return estimates


def rank_over_budget(
    trials: pd.DataFrame, budgets: dict[str, dict], fractions=BUDGET_FRACTIONS
) -> pd.DataFrame:
    """Mean rank of each backend at each fraction of its studies' budget: within each (task,
    seed) block, backends ranked by the best validation loss their study had reached when it
    had spent that fraction (of its epoch budget, by ``cum_epochs``; a budget in trials or
    seconds by trial count or ``cum_seconds``). A study with no result yet ranks last."""
    rows = []
    if trials.empty:
        return pd.DataFrame(columns=["fraction", "backend", "mean_rank"])
    for study, group in trials.groupby("study", sort=True):
        group = group.sort_values("trial")
        spent, limit = _spent(budgets.get(study) or {}, group)
        best = group["val_loss"].where(group["status"] == "complete").cummin().to_numpy()
        first = group.iloc[0]
        for fraction in fractions:
            reached = best[spent <= fraction * limit + 1e-9]
            value = reached[-1] if len(reached) else np.nan
            rows.append(
                {
                    "dataset": first["dataset"],
                    "seed": first["seed"],
                    "backend": first["backend"],
                    "fraction": fraction,
                    "best_val_loss": value,
                }
            )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["fraction", "backend", "mean_rank"])
    out = []
    for fraction, at in frame.groupby("fraction"):
        table = at.pivot_table(
            index=["dataset", "seed"], columns="backend", values="best_val_loss", dropna=False
        )
        ranks = block_ranks(table)
        for backend, value in ranks.mean().items():
            out.append({"fraction": fraction, "backend": backend, "mean_rank": float(value)})
    return pd.DataFrame(out)


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


@dataclass
class SuiteStatistics:
    """Everything `suite_statistics` found; `board` is ``leaderboard_suite.csv``."""

    scores: pd.DataFrame
    board: pd.DataFrame
    ranks: pd.DataFrame
    p_values: pd.DataFrame
    critical_difference: float
    friedman_statistic: float
    friedman_p: float
    seeds: list[int]
    tasks: list[str]
    over_budget: pd.DataFrame
    alpha: float = ALPHA
    distinguishable: list[tuple[str, str]] = field(default_factory=list)
    undecided: list[tuple[str, str]] = field(default_factory=list)


def suite_statistics(
    studies: pd.DataFrame,
    trials: pd.DataFrame,
    budgets: dict[str, dict],
    *,
    alpha: float = ALPHA,
    reps: int = BOOTSTRAP_REPS,
) -> SuiteStatistics:
    """The suite's figures from the per-study leaderboard, the trial rows and each study's
    budget (by study name)."""
    scores = normalized_scores(studies)
    losses = block_matrix(scores, "test_loss")
    ranks = block_ranks(losses)
    k, n_blocks = ranks.shape[1], ranks.shape[0]
    statistic, p_value = friedman(ranks)
    cd = critical_difference(k, n_blocks, alpha)
    mean_ranks = ranks.mean()
    matrices, seeds, tasks = score_matrices(scores)
    intervals = interval_estimates(matrices, reps=reps)
    friedman_rejects = not math.isnan(p_value) and p_value < alpha
    better: dict[str, list[str]] = {b: [] for b in ranks.columns}
    same: dict[str, list[str]] = {b: [] for b in ranks.columns}
    distinguishable, undecided = [], []
    for a, b in combinations(sorted(ranks.columns, key=lambda c: mean_ranks[c]), 2):
        if friedman_rejects and mean_ranks[b] - mean_ranks[a] > cd:
            better[a].append(b)
            distinguishable.append((a, b))
        else:
            same[a].append(b)
            same[b].append(a)
            undecided.append((a, b))
    rows = []
    for backend in sorted(ranks.columns, key=lambda c: mean_ranks[c]):
        own = scores[scores["backend"] == backend]
        estimate = intervals.get(backend, {})
        mean = estimate.get("mean", (math.nan,) * 3)
        iqm = estimate.get("iqm", (math.nan,) * 3)
        rows.append(
            {
                "backend": backend,
                "tasks": own["dataset"].nunique(),
                "studies": len(own),
                "mean_rank": float(mean_ranks[backend]),
                "wins": int((ranks[backend] == 1).sum()),
                "score_mean": mean[0],
                "score_mean_ci_low": mean[1],
                "score_mean_ci_high": mean[2],
                "score_iqm": iqm[0],
                "score_iqm_ci_low": iqm[1],
                "score_iqm_ci_high": iqm[2],
                "blocks": n_blocks,
                "friedman_chi2": statistic,
                "friedman_p": p_value,
                "critical_difference": cd,
                "better_than": ";".join(better[backend]),
                "not_distinguishable_from": ";".join(same[backend]),
            }
        )
    return SuiteStatistics(
        scores=scores,
        board=pd.DataFrame(rows),
        ranks=ranks,
        p_values=nemenyi_p_values(losses),
        critical_difference=cd,
        friedman_statistic=statistic,
        friedman_p=p_value,
        seeds=seeds,
        tasks=tasks,
        over_budget=rank_over_budget(trials, budgets),
        alpha=alpha,
        distinguishable=distinguishable,
        undecided=undecided,
    )


def verdict(result: SuiteStatistics) -> str:
    """The suite's verdict in plain words (Markdown bullets)."""
    board = result.board
    if board.empty:
        return "- No (task, seed) block holds a study of every backend: nothing to rank.\n"
    n_blocks = int(board["blocks"].iloc[0])
    k = len(board)
    lines = [
        f"- {k} backends over {len(result.tasks)} tasks and {n_blocks} (task, seed) blocks. "
        f"Best mean rank: **{board['backend'].iloc[0]}** ({board['mean_rank'].iloc[0]:.2f}; "
        f"1 = best in a block, {k} = worst); best IQM normalized score: "
        f"**{board.sort_values('score_iqm')['backend'].iloc[0]}**."
    ]
    if math.isnan(result.friedman_p):
        lines.append(
            "- The Friedman test needs at least 3 backends and 2 blocks: no test of differences."
        )
    elif result.friedman_p >= result.alpha:
        lines.append(
            f"- Friedman test: chi2 = {result.friedman_statistic:.2f}, p = "
            f"{result.friedman_p:.3g} >= {result.alpha}: the backends' ranks are **not "
            "distinguishable** from each other at this size; no pair is called different."
        )
    else:
        lines.append(
            f"- Friedman test: chi2 = {result.friedman_statistic:.2f}, p = "
            f"{result.friedman_p:.3g} < {result.alpha}: the backends do not all rank alike. "
            f"Nemenyi critical difference of mean ranks at {result.alpha}: "
            f"{result.critical_difference:.2f}."
        )
        if result.distinguishable:
            ranks = dict(zip(board["backend"], board["mean_rank"], strict=True))
            lines.append(
                "- Distinguishable (mean ranks differ by more than the critical difference): "
                + "; ".join(
                    f"**{a}** ranks better than **{b}** ({ranks[a]:.2f} vs {ranks[b]:.2f})"
                    for a, b in result.distinguishable
                )
                + "."
            )
        else:
            lines.append(
                "- Yet no pair of mean ranks differs by more than the critical difference."
            )
    if result.undecided:
        lines.append(
            f"- Not resolved by the test ({len(result.undecided)} pairs): "
            + ", ".join(f"{a} / {b}" for a, b in result.undecided)
            + ". More seeds or tasks narrow the critical difference (it shrinks as "
            "1/sqrt(blocks))."
        )
    lines.append(
        "- Normalized scores (0 = the best model any study found on the task, 1 = random "
        "search's mean; lower is better), IQM with 95% stratified-bootstrap intervals: "
        + "; ".join(
            f"{r.backend} {r.score_iqm:.3f} [{r.score_iqm_ci_low:.3f}, {r.score_iqm_ci_high:.3f}]"
            for r in board.sort_values("score_iqm").itertuples(index=False)
        )
        + "."
    )
    return "\n".join(lines) + "\n"
