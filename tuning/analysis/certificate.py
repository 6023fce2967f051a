"""How far a tabular comparison agrees with the same comparison trained for real, and whether
the runs made can tell.

Inputs: the test loss of each study, one row per block (a seed, or a (task, seed) across tasks),
one column per backend, for the table and for the real runs (NaN: no model, the worst result of
its block). What `agreement` computes:

- **Orders.** Each backend's mean rank over the blocks in each; Kendall's tau (tau-b) between the
  two orders, with a 95% percentile bootstrap interval over blocks (resampled within tasks).
- **Noise ceiling.** Two runs of the *same* real process do not give the same order either: the
  tau between the real order on one half of the blocks and on the other half (each task's seeds
  split in two) is what perfect agreement looks like at half the size. The table is held to the
  same standard at the same size: the tau between the table's order on one half and the real
  order on the other (disjoint seeds, so the shared search seed of a tabular study and its real
  twin cannot help). ``gap`` = ceiling - cross, averaged over random splits; its 95% interval
  from a bootstrap over blocks.
- **Verdict**, one of three: ``disagrees beyond noise`` (the gap's interval is above 0),
  ``agrees within noise`` (the interval lies below `MARGIN`), or ``cannot tell at this size``,
  with the number of seeds per task that would tell, from the interval's width shrinking as
  1/sqrt(blocks).
- **Power**: the share of tables unrelated to the real runs (the table's backends relabelled at
  random, the identity excluded) that this procedure calls ``disagrees beyond noise``, at the
  size run, on the data's own spread: a post-hoc figure, which says how much the runs made could
  have caught, not how likely the verdict is to be right.
- **Pairs**: each pair of backends tested in each by the paired signed-rank test
  (`tuning.analysis.signed_rank`: direction from the test, no model the worst result) on losses
  scaled per task to [0, 1]; Holm across the pairs of each side (`tuning.analysis.multiplicity`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tuning.analysis.blocks import block_ranks
from tuning.analysis.multiplicity import holm
from tuning.analysis.signed_rank import paired_test, scaled_per_task

ALPHA = 0.05
BOOTSTRAP_REPS = 2000
SPLITS = 20  # random half-splits averaged in each gap
GAP_REPS = 400  # bootstrap resamples of the gap
POWER_SIMULATIONS = 200
# The largest shortfall of tau, against the ceiling, still called agreement: a fifth of tau's
# range from 0 (unrelated orders) to 1 (the same order).
MARGIN = 0.2
AGREES, DISAGREES, CANNOT_TELL = (
    "agrees within noise",
    "disagrees beyond noise",
    "cannot tell at this size",
)


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the last axes of ``x`` and ``y`` (any leading shape, broadcast);
    NaN where either has no pair of distinct values. Equal to `scipy.stats.kendalltau`."""
    i, j = np.triu_indices(x.shape[-1], k=1)
    sx = np.sign(x[..., i] - x[..., j])
    sy = np.sign(y[..., i] - y[..., j])
    denominator = np.sqrt(np.abs(sx).sum(-1) * np.abs(sy).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (sx * sy).sum(-1) / denominator, np.nan)


def _groups(index: pd.Index) -> np.ndarray:
    """The task of each block (one task when the index is plain seeds)."""
    if isinstance(index, pd.MultiIndex):
        return pd.factorize(index.get_level_values(0))[0]
    return np.zeros(len(index), dtype=int)


def _resample(groups: np.ndarray, rng: np.random.Generator, reps: int) -> np.ndarray:
    """``reps`` bootstrap resamples of the block positions, drawn within each task."""
    columns = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        columns.append(rng.choice(members, size=(reps, len(members)), replace=True))
    return np.concatenate(columns, axis=1)


def _resample_counts(groups: np.ndarray, rng: np.random.Generator, reps: int) -> np.ndarray:
    """How often each block is drawn in each of ``reps`` resamples (reps x blocks)."""
    counts = np.zeros((reps, len(groups)))
    rows = _resample(groups, rng, reps)
    np.add.at(counts, (np.arange(reps)[:, None], rows), 1.0)
    return counts


def _split_masks(groups: np.ndarray, rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Random splits of the blocks in two halves, each task's blocks split in two: True for the
    first half (``shape`` x blocks)."""
    masks = np.zeros((*shape, len(groups)), dtype=bool)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        order = np.argsort(rng.random((*shape, len(members))), axis=-1)
        first = np.zeros(order.shape, dtype=bool)
        np.put_along_axis(first, order[..., : len(members) // 2], True, axis=-1)
        masks[..., members] = first
    return masks


def split_half_taus(
    table: np.ndarray, real: np.ndarray, masks: np.ndarray, counts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per split (``masks``: ... x blocks, True for the first half): the ceiling's tau (the real
    order on one half against the other) and the cross tau (the table on one half against the
    real runs on the other, both ways, averaged). ``table`` and ``real`` are rank arrays (blocks
    x backends); ``counts`` (broadcast against ``masks``) weighs each block by how often a
    bootstrap resample drew it, so that a block's copies stay in one half."""
    weights = np.ones(masks.shape[-1]) if counts is None else counts
    # A half's order is that of its rank sums (one divisor for every backend, so no mean is
    # needed); counts times half-integer ranks sum exactly in floating point, so ties stay ties
    # in whatever order a BLAS sums them. (An empty half sums to all ties: tau NaN.)
    first, second = weights * masks, weights * ~masks
    t1, t2, r1, r2 = first @ table, second @ table, first @ real, second @ real
    return kendall_tau_b(r1, r2), (kendall_tau_b(t1, r2) + kendall_tau_b(t2, r1)) / 2


def _mean_gap(table, real, masks) -> tuple[float, float, float]:
    """Mean ceiling, cross and gap over the splits given (splits where a tau is undefined, a
    half whose ranks all tie, are left out)."""
    ceiling, cross = split_half_taus(table, real, masks)
    keep = ~np.isnan(ceiling) & ~np.isnan(cross)
    if not keep.any():
        return math.nan, math.nan, math.nan
    c, x = float(ceiling[keep].mean()), float(cross[keep].mean())
    return c, x, c - x


@dataclass(frozen=True)
class NoiseCeiling:
    """The split-half comparison of the table with the real runs' own noise."""

    ceiling: float  # tau between two halves of the real runs
    cross: float  # tau between the table on one half and the real runs on the other
    gap: float  # ceiling - cross
    gap_low: float
    gap_high: float
    ceiling_low: float  # the ceiling's 95% lower bound: above 0 where the real order repeats
    power: float  # share of unrelated tables called "disagrees beyond noise"
    verdict: str
    blocks: int
    tasks: int
    seeds_to_tell: int | None  # seeds per task that would tell, where this size cannot

    def in_words(self) -> str:
        if self.seeds_to_tell:
            tell = (
                f"; about {self.seeds_to_tell} seeds a task would tell (a rough projection: it "
                "holds the estimates fixed and narrows the interval as 1/sqrt(seeds))"
            )
        elif self.verdict == CANNOT_TELL and not self.ceiling > 0:
            tell = (
                ". The real runs' own order does not repeat from one half of the blocks to the "
                "other: in real training the backends are too close for any table to be checked "
                "at this size, and these data cannot size a study that would (the split-half "
                "agreement is not above 0)"
            )
        else:
            tell = ""
        return (
            f"**{self.verdict}**: over {self.blocks} blocks ({self.tasks} task(s)), two halves of "
            f"the real runs agree with tau {self.ceiling:.2f} (the noise ceiling at half size); "
            f"the table on one half and the real runs on the other, {self.cross:.2f}; the gap "
            f"{self.gap:+.2f} [95% {self.gap_low:+.2f}, {self.gap_high:+.2f}] (agreement: the "
            f"interval below {MARGIN} and a real order that repeats: the ceiling's lower bound, "
            f"{self.ceiling_low:+.2f}, above 0; disagreement: the interval above 0). Power to call "
            f"a table unrelated to the real runs (its backends relabelled) a disagreement at this "
            f"size and spread: {self.power:.0%}{tell}."
        )


def noise_ceiling(
    table_ranks: pd.DataFrame,
    real_ranks: pd.DataFrame,
    *,
    seed: int = 0,
    reps: int = GAP_REPS,
    splits: int = SPLITS,
    simulations: int = POWER_SIMULATIONS,
) -> NoiseCeiling:
    """The noise ceiling, gap, verdict and power of two rank frames on the same blocks."""
    groups = _groups(real_ranks.index)
    table, real = table_ranks.to_numpy(float), real_ranks.to_numpy(float)
    rng = np.random.default_rng(seed)
    tasks = len(np.unique(groups))
    ceiling, cross, gap, low, high, ceiling_low = _estimate(table, real, groups, rng, reps, splits)
    verdict = decide_agreement(low, high, ceiling_low)
    return NoiseCeiling(
        ceiling,
        cross,
        gap,
        low,
        high,
        ceiling_low,
        _power(table, real, groups, rng, simulations, splits),
        verdict,
        len(groups),
        tasks,
        seeds_to_tell(gap, high - gap, ceiling, ceiling - ceiling_low, len(groups) / tasks)
        if verdict == CANNOT_TELL
        else None,
    )


def decide_agreement(gap_low: float, gap_high: float, ceiling_low: float) -> str:
    """The verdict of the gap's interval and the ceiling's lower bound (see the module's
    docstring): no verdict of agreement where the real order itself does not repeat."""
    if gap_low > 0:
        return DISAGREES
    if gap_high < MARGIN and ceiling_low > 0:
        return AGREES
    return CANNOT_TELL


def seeds_to_tell(
    gap: float, half_width: float, ceiling: float, ceiling_half_width: float, seeds: float
) -> int | None:
    """The seeds a task at which intervals of the same centres, narrowed as 1/sqrt(seeds),
    would leave "cannot tell": the gap's above 0 (disagreement) or, for agreement, below
    `MARGIN` with the ceiling's above 0, whichever needs fewer; None where no size would (the
    real runs show no order to agree with, and the table does not disagree)."""
    if not half_width > 0:
        return None
    needed = []
    if gap > 0:
        needed.append(seeds * (half_width / gap) ** 2)
    if gap < MARGIN and ceiling > 0:
        needed.append(seeds * max(half_width / (MARGIN - gap), ceiling_half_width / ceiling) ** 2)
    return math.ceil(min(needed)) if needed else None


def _estimate(table, real, groups, rng, reps, splits):
    """The mean ceiling, cross and gap over ``splits`` random splits, the gap's 95% interval and
    the ceiling's lower bound: normal intervals around the estimates with standard errors from
    ``reps`` bootstrap resamples of the blocks (each split over a resample's distinct blocks, so
    that a block's copies stay in one half). The percentile interval would be biased: a
    resample's halves have noisier means, which pulls every tau toward 0."""
    ceiling, cross, gap = _mean_gap(table, real, _split_masks(groups, rng, (splits,)))
    counts = _resample_counts(groups, rng, reps)[:, None, :]
    masks = _split_masks(groups, rng, (reps, splits))
    ceilings, crosses = split_half_taus(table, real, masks, counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample whose halves all tie
        ceilings = np.nanmean(ceilings, axis=1)
        gaps = ceilings - np.nanmean(crosses, axis=1)
    keep = ~np.isnan(gaps)
    if keep.sum() < 2 or math.isnan(gap):
        return ceiling, cross, gap, math.nan, math.nan, math.nan
    z = float(stats.norm.ppf(1 - ALPHA / 2))
    gap_se, ceiling_se = float(gaps[keep].std(ddof=1)), float(ceilings[keep].std(ddof=1))
    return ceiling, cross, gap, gap - z * gap_se, gap + z * gap_se, ceiling - z * ceiling_se


def _power(table, real, groups, rng, simulations, splits) -> float:
    """The share of relabelled tables (each a random permutation of the table's backends other
    than the identity) called a disagreement, with a smaller bootstrap per simulation: a
    post-hoc figure, on the observed spread of these runs."""
    k = table.shape[1]
    if k < 3 or simulations < 1:
        return math.nan
    called = 0
    for _ in range(simulations):
        order = rng.permutation(k)
        while np.array_equal(order, np.arange(k)):
            order = rng.permutation(k)
        shuffled = table[:, order]
        *_, low, high, ceiling_low = _estimate(
            shuffled, real, groups, rng, GAP_REPS // 4, max(splits // 2, 1)
        )
        called += decide_agreement(low, high, ceiling_low) == DISAGREES
    return called / simulations


@dataclass
class Agreement:
    """What `agreement` found; the frames are the CSV files."""

    backends: pd.DataFrame
    pairs: pd.DataFrame
    winners: pd.DataFrame
    tau: float
    tau_low: float
    tau_high: float
    blocks: list[Any]
    ceiling: NoiseCeiling | None = None
    notes: list[str] = field(default_factory=list)


def _ranks(losses: pd.DataFrame) -> pd.DataFrame:
    """Ranks of each block (row) by test loss; no model ranks last."""
    return block_ranks(losses.astype(float).fillna(np.inf))


def pair_verdicts(losses: pd.DataFrame, backends: list[str]) -> list[dict[str, Any]]:
    """Each pair's signed-rank test on ``losses`` (one side), Holm across the pairs."""
    scaled = scaled_per_task(losses)
    tests = [(a, b, paired_test(scaled[a], scaled[b])) for a, b in combinations(backends, 2)]
    adjusted = holm([t.p for _, _, t in tests])
    rows = []
    for (a, b, test), p_holm in zip(tests, adjusted, strict=True):
        leans = test.direction()
        ahead = a if leans == "lower" else b if leans == "higher" else "tie"
        rows.append(
            {
                "ahead": ahead,
                "p": test.p,
                "p_holm": p_holm,
                "verdict": f"{ahead} better"
                if p_holm < ALPHA and ahead != "tie"
                else "not significant",
            }
        )
    return rows


def agreement(
    table_losses: pd.DataFrame,
    real_losses: pd.DataFrame,
    winners: pd.DataFrame,
    *,
    reps: int = BOOTSTRAP_REPS,
    seed: int = 0,
    simulations: int = POWER_SIMULATIONS,
) -> Agreement:
    """The agreement of a tabular comparison and its real counterpart: ``table_losses`` and
    ``real_losses`` hold the test loss of each (block: row, backend: column) study, NaN where a
    study has no model; ``winners`` one row per real study with ``table_test_loss`` and
    ``real_test_loss`` of its winner."""
    blocks = sorted(set(table_losses.index) & set(real_losses.index))
    backends = sorted(set(table_losses.columns) & set(real_losses.columns))
    table = table_losses.loc[blocks, backends]
    real = real_losses.loc[blocks, backends]
    table_ranks, real_ranks = _ranks(table), _ranks(real)
    tau = float(kendall_tau_b(table_ranks.mean().to_numpy(), real_ranks.mean().to_numpy()))
    rng = np.random.default_rng(seed)
    rows = _resample(_groups(table.index), rng, reps)
    taus = kendall_tau_b(
        table_ranks.to_numpy(float)[rows].mean(axis=1),
        real_ranks.to_numpy(float)[rows].mean(axis=1),
    )
    taus = taus[~np.isnan(taus)]
    low, high = np.percentile(taus, [2.5, 97.5]) if len(taus) else (math.nan, math.nan)
    columns = {
        "backend": backends,
        "table_mean_rank": table_ranks.mean().to_numpy(),
        "real_mean_rank": real_ranks.mean().to_numpy(),
    }
    if len(np.unique(_groups(table.index))) == 1:  # losses of several tasks do not average
        columns["table_test_loss_mean"] = table.mean().to_numpy()
        columns["real_test_loss_mean"] = real.mean().to_numpy()
    by_backend = pd.DataFrame(columns).sort_values("table_mean_rank", ignore_index=True)
    order = list(by_backend["backend"])
    sides = {"table": pair_verdicts(table, order), "real": pair_verdicts(real, order)}
    pairs = []
    for i, (a, b) in enumerate(combinations(order, 2)):
        row: dict[str, Any] = {"a": a, "b": b}
        for name, verdicts in sides.items():
            row.update({f"{name}_{key}": value for key, value in verdicts[i].items()})
        row["same_leader"] = row["table_ahead"] == row["real_ahead"]
        row["same_verdict"] = row["table_verdict"] == row["real_verdict"]
        pairs.append(row)
    ceiling = None
    if len(backends) >= 3 and all(n >= 4 for n in pd.Series(_groups(table.index)).value_counts()):
        ceiling = noise_ceiling(table_ranks, real_ranks, seed=seed, simulations=simulations)
    return Agreement(
        by_backend, pd.DataFrame(pairs), winners, tau, float(low), float(high), blocks, ceiling
    )
