"""Statistics across tasks: what a suite says about the backends, from its studies' rows.

HPO benchmarks get their power from many tasks: each study's result is put on one scale per task
(a normalized score), aggregated over tasks and seeds with interval estimates, and the backends
are ranked within blocks and tested for differences. Here:

- **Normalized score** of a study (Bayesmark's): ``(L - best) / (reference - best)``, where ``L``
  is the study's test loss, ``best`` the lowest test loss any study reached on that task and
  ``reference`` random search's mean test loss on it (the mean over all studies when random
  search is not in the folder or none of its studies has a model). 0 is the best model found for
  the task, 1 is what random search finds on average; lower is better. The degenerate cases
  (`normalized_scores`): a scale that is no wider than rounding noise falls back to the task's
  range, and a task on which every study tied scores 0 everywhere; scores are clipped to
  ``[0, SCORE_CAP]`` so that one diverged but finite loss cannot dominate a mean; a study that
  produced no model scores ``SCORE_CAP``, worse than any study that has one.
- Per backend, the **mean** and the **interquartile mean** (IQM: the mean of the middle 50%) of
  its scores over every (task, seed), each with a 95% **stratified bootstrap** interval (seeds
  resampled within each task, as rliable's `StratifiedBootstrap` does (Agarwal et al. 2021,
  used by CARP-S); computed with `scipy.stats.bootstrap`, one sample per task).
- **Ranks**: within each (task, seed) block the backends are ranked by test loss (1 = best, ties
  share the mean rank; a study with no model ranks after every study that has one, ties among
  such studies averaged); the mean rank over blocks, the **Friedman** test of "all backends rank
  alike" (scipy), and the **Nemenyi** critical difference ``q_alpha * sqrt(k (k+1) / (6 N))``
  (Demšar 2006; ``q_alpha`` from scipy's studentized range): two backends whose mean ranks
  differ by more than it are distinguishable at level ``alpha``. Pairwise Nemenyi p-values come
  from scikit-posthocs. A **win** is a block in which a backend's loss is the lowest (a tie for
  first is a win for each backend in it).

A block is a (task, seed) that every backend ran: blocks some backend did not run (no study
folder at all) are left out of every figure, and the verdict names them. Each (task, backend,
seed) may have one study only (`check_unique`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from tuning.analysis.anytime import rank_over_budget
from tuning.analysis.bayes_pairs import ROPE, PairPosterior, bayesian_pairs
from tuning.analysis.blocks import (
    ALPHA,
    BLOCK,
    block_matrix,
    block_ranks,
    check_unique,
)
from tuning.analysis.intervals import BOOTSTRAP_REPS, interval_estimates, score_samples

log = logging.getLogger(__name__)
BASELINE = "random"
SUITE_FILE = "leaderboard_suite.csv"
# Bayesmark clips its normalized scores too: past a few times random search's distance from the
# best, how much worse a study is says nothing more about its search, and an unclipped diverged
# loss (1e6 against a best of 0.3) would decide every mean alone.
SCORE_CAP = 5.0
# A task's scale (reference - best) no wider than this share of the losses' size is rounding
# noise: dividing by it would blow two equal results apart.
SCALE_TOLERANCE = 1e-6


def task_scale(best: float, reference: float, worst: float) -> float:
    """The denominator of a task's scores: ``reference - best``; the task's range ``worst -
    best`` where that is within `SCALE_TOLERANCE` (random search's mean was as good as the
    best); NaN where the range is too (every study tied)."""
    size = max(abs(best), abs(reference), np.finfo(float).tiny)  # not the worst: it may diverge
    for scale in (reference - best, worst - best):
        if scale > SCALE_TOLERANCE * size:
            return float(scale)
    return math.nan


def normalized_scores(studies: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """``studies`` (the leaderboard: dataset, backend, seed, test_loss) with a ``score`` column
    and the task's ``best``, ``reference`` and ``scale`` (see the module's docstring)."""
    frames = []
    for _, group in studies.groupby("dataset", sort=True):
        group = group.copy()
        losses = group["test_loss"].astype(float)
        has_model = losses.notna() & np.isfinite(losses)
        found = losses[has_model]
        best = found.min() if len(found) else math.nan
        worst = found.max() if len(found) else math.nan
        reference_losses = found[group.loc[has_model, "backend"] == baseline]
        if reference_losses.empty:
            reference_losses = found
        reference = reference_losses.mean() if len(reference_losses) else math.nan
        scale = task_scale(best, reference, worst) if len(found) else math.nan
        group["best"], group["reference"], group["scale"] = best, reference, scale
        if math.isnan(scale):
            score = pd.Series(0.0, index=group.index)
        else:
            score = ((losses - best) / scale).clip(0.0, SCORE_CAP)
        group["score"] = score.where(has_model, SCORE_CAP)
        frames.append(group)
    if not frames:
        return studies.assign(score=[], best=[], reference=[], scale=[])
    return pd.concat(frames, ignore_index=True)


def ranking_losses(frame: pd.DataFrame, value: str = "test_loss") -> pd.DataFrame:
    """``frame`` with ``value`` NaN (no model) as +inf: such a study ranks after every study
    with a result, and is not mistaken for a missing study."""
    return frame.assign(**{value: frame[value].astype(float).fillna(np.inf)})


def missing_blocks(frame: pd.DataFrame) -> dict[tuple[str, int], list[str]]:
    """``{(dataset, seed): [backends with no study there]}`` for each block left out."""
    backends = sorted(frame["backend"].unique())
    missing = {}
    for (dataset, seed), group in frame.groupby(BLOCK, sort=True):
        absent = sorted(set(backends) - set(group["backend"]))
        if absent:
            missing[dataset, seed] = absent
    return missing


def block_wins(losses: pd.DataFrame) -> pd.Series:
    """Per backend (column), the blocks (rows) in which its loss is the lowest: a tie for first
    is a win for each backend in it; a block where no backend has a result has no winner."""
    losses = losses.astype(float)  # (a study without a model: None, and an object column)
    lowest = losses.min(axis=1)
    won = losses.eq(lowest, axis=0) & np.isfinite(losses)
    return won.sum().astype(int)


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


def beyond_critical_difference(rank: float, other: float, cd: float) -> bool:
    """Whether two mean ranks differ by more than the critical difference (strictly: a
    difference equal to it is not enough, as in Demšar's definition)."""
    return abs(other - rank) > cd


def decide_pairs(
    mean_ranks: pd.Series, cd: float, friedman_p: float, alpha: float = ALPHA
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Each pair of backends (``mean_ranks`` in order, best first) as distinguishable (the
    better first) or undecided: distinguishable only when the Friedman test rejects at
    ``alpha`` and their mean ranks differ by more than ``cd``."""
    rejects = not math.isnan(friedman_p) and friedman_p < alpha
    distinguishable, undecided = [], []
    for a, b in combinations(mean_ranks.index, 2):
        if rejects and beyond_critical_difference(mean_ranks[a], mean_ranks[b], cd):
            distinguishable.append((a, b))
        else:
            undecided.append((a, b))
    return distinguishable, undecided


def nemenyi_p_values(losses: pd.DataFrame) -> pd.DataFrame:
    """Pairwise p-values of the Nemenyi test after Friedman (scikit-posthocs), by backend."""
    import scikit_posthocs

    if losses.shape[1] < 2 or len(losses) < 2:
        return pd.DataFrame(index=losses.columns, columns=losses.columns, dtype=float)
    p_values = scikit_posthocs.posthoc_nemenyi_friedman(losses.fillna(np.inf).to_numpy())
    p_values.index = p_values.columns = list(losses.columns)
    return p_values


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
    seeds: list[int]  # the seeds of the ranked blocks
    tasks: list[str]  # the tasks of the ranked blocks
    over_budget: pd.DataFrame
    alpha: float = ALPHA
    distinguishable: list[tuple[str, str]] = field(default_factory=list)
    undecided: list[tuple[str, str]] = field(default_factory=list)
    # (dataset, seed) -> the backends with no study there: the blocks left out
    missing: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    # backend -> its studies without a model in the ranked blocks (ranked last, scored the cap)
    failed: dict[str, int] = field(default_factory=dict)
    # the Bayesian signed-rank test of each pair (`tuning.analysis.bayes_pairs`), best mean rank first
    pairs: list[PairPosterior] = field(default_factory=list)


def suite_statistics(
    studies: pd.DataFrame,
    trials: pd.DataFrame,
    budgets: dict[str, dict],
    *,
    alpha: float = ALPHA,
    reps: int = BOOTSTRAP_REPS,
    rope: float = ROPE,
) -> SuiteStatistics:
    """The suite's figures from the per-study leaderboard, the trial rows and each study's
    budget (by study name); ``rope``: the region of practical equivalence of the Bayesian pairs,
    in normalized-score units."""
    check_unique(studies)
    scores = normalized_scores(studies)
    losses = block_matrix(ranking_losses(scores), "test_loss")
    ranks = block_ranks(losses)
    k, n_blocks = ranks.shape[1], ranks.shape[0]
    statistic, p_value = friedman(ranks)
    cd = critical_difference(k, n_blocks, alpha)
    mean_ranks = ranks.mean()
    wins = block_wins(losses)
    intervals = interval_estimates(score_samples(scores), reps=reps)
    order = [] if ranks.empty else sorted(ranks.columns, key=lambda c: (mean_ranks[c], c))
    distinguishable, undecided = decide_pairs(mean_ranks[order], cd, p_value, alpha)
    better: dict[str, list[str]] = {b: [] for b in ranks.columns}
    same: dict[str, list[str]] = {b: [] for b in ranks.columns}
    for a, b in distinguishable:
        better[a].append(b)
    for a, b in undecided:
        same[a].append(b)
        same[b].append(a)
    rows = []
    for backend in order:
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
                "wins": int(wins[backend]),
                "no_model": int(np.isinf(losses[backend]).sum()),
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
    board = pd.DataFrame(rows)
    ranked = losses.index
    return SuiteStatistics(
        scores=scores,
        board=board,
        ranks=ranks,
        p_values=nemenyi_p_values(losses),
        critical_difference=cd,
        friedman_statistic=statistic,
        friedman_p=p_value,
        seeds=sorted(set(ranked.get_level_values("seed"))),
        tasks=sorted(set(ranked.get_level_values("dataset"))),
        over_budget=rank_over_budget(studies, trials, budgets),
        alpha=alpha,
        distinguishable=distinguishable,
        undecided=undecided,
        missing=missing_blocks(studies),
        failed={r["backend"]: r["no_model"] for r in rows if r["no_model"]},
        pairs=bayesian_pairs(block_matrix(scores, "score")[order], rope=rope) if order else [],
    )


def _interval(point: float, low: float, high: float) -> str:
    """``0.383 [0.307, 0.506]``, or the point alone where no interval could be drawn."""
    if math.isnan(low) or math.isnan(high):
        return f"{point:.3f} (no interval: one seed a task)"
    return f"{point:.3f} [{low:.3f}, {high:.3f}]"


def _left_out(missing: dict[tuple[str, int], list[str]]) -> str:
    """The blocks left out, in words: per task, which seeds lack which backends."""
    by_task: dict[str, list[str]] = {}
    for (dataset, seed), absent in sorted(missing.items()):
        by_task.setdefault(dataset, []).append(f"seed {seed} (no study of {', '.join(absent)})")
    return "; ".join(f"{task}: {', '.join(parts)}" for task, parts in by_task.items())


def verdict(result: SuiteStatistics) -> str:
    """The suite's verdict in plain words (Markdown bullets)."""
    board = result.board
    lines = []
    if result.missing:
        lines.append(
            f"- Left out of every figure: {len(result.missing)} (task, seed) blocks that not "
            f"every backend ran: {_left_out(result.missing)}."
        )
    if board.empty:
        lines.append("- No (task, seed) block holds a study of every backend: nothing to rank.")
        return "\n".join(lines) + "\n"
    n_blocks = int(board["blocks"].iloc[0])
    k = len(board)
    scored = board.dropna(subset=["score_iqm"]).sort_values(["score_iqm", "backend"])
    lines.insert(
        0,
        f"- {k} backends over {len(result.tasks)} tasks and {n_blocks} (task, seed) blocks. "
        f"Best mean rank: **{board['backend'].iloc[0]}** ({board['mean_rank'].iloc[0]:.2f}; "
        f"1 = best in a block, {k} = worst)"
        + (
            f"; best IQM normalized score: **{scored['backend'].iloc[0]}**." if len(scored) else "."
        ),
    )
    if result.failed:
        lines.append(
            "- Studies that produced no model (every trial failed, or none finished), ranked "
            f"last in their blocks and scored {SCORE_CAP:g}: "
            + ", ".join(f"{b} {n}" for b, n in sorted(result.failed.items()))
            + "."
        )
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
            f"{r.backend} {_interval(r.score_iqm, r.score_iqm_ci_low, r.score_iqm_ci_high)}"
            for r in scored.itertuples(index=False)
        )
        + "."
    )
    return "\n".join(lines) + "\n"
