"""Practical equivalence: the Bayesian signed-rank test of each pair of backends.

The Friedman/Nemenyi verdict says which pairs differ and otherwise "cannot tell": it cannot say
that two backends are as good as each other. The Bayesian signed-rank test (Benavoli, Corani,
Demšar, Zaffalon, JMLR 2017, "Time for a change", section 5; the test of Benavoli et al., ICML
2014) can. For two backends A and B it takes their normalized scores (`tuning.analysis.suite_stats`) in
the blocks both ran, and gives the posterior probabilities that A is better (its scores lower
by more than the ROPE), that the two are practically equivalent (within the ROPE), and that B
is better: `baycomp`'s ``SignedRankTest`` (a Dirichlet process with its prior pseudo-observation
at 0 of strength 0.5, 50,000 posterior samples, seeded), written here in array form because
baycomp loops over the samples in Python (seconds a pair); the tests check that both give the
same probabilities.

The **ROPE** (region of practical equivalence) is in normalized-score units: 1 is random
search's distance from the best model found, so the default 0.1 calls two backends equivalent
when their scores differ by less than a tenth of what random search leaves on the table. A
pair is decided when one of the three probabilities reaches `DECISION` (0.95, as the paper
does); otherwise the evidence cannot settle it.

The observations are the (task, seed) blocks, as for the Friedman test; seeds of one task are
treated as exchangeable with other tasks' blocks (the paper's hierarchical test, which models
them apart, needs Stan).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

ROPE = 0.1
DECISION = 0.95
PRIOR = 0.5  # strength of the prior's pseudo-observation at 0 (baycomp's default)
SAMPLES = 50_000
SEED = 0
PAIRS_FILE = "bayesian_pairs.csv"


@dataclass(frozen=True)
class PairPosterior:
    """The posterior of one pair: P(a better), P(equivalent), P(b better), over ``blocks``."""

    a: str
    b: str
    p_a_better: float
    p_equivalent: float
    p_b_better: float
    blocks: int
    rope: float

    @property
    def verdict(self) -> str:
        """``a better``, ``b better``, ``equivalent`` or ``undecided`` (at `DECISION`)."""
        if self.p_a_better >= DECISION:
            return f"{self.a} better"
        if self.p_b_better >= DECISION:
            return f"{self.b} better"
        if self.p_equivalent >= DECISION:
            return "equivalent"
        return "undecided"


def pair_posterior(
    a: str,
    b: str,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    *,
    rope: float = ROPE,
    samples: int = SAMPLES,
    seed: int = SEED,
) -> PairPosterior:
    """The Bayesian signed-rank test of paired scores (lower is better).

    The posterior of the differences ``d = b - a`` is a Dirichlet process whose prior puts a
    pseudo-observation at 0 with strength `PRIOR`: each posterior sample weighs the
    observations ``w ~ Dirichlet(PRIOR, 1, ..., 1)``, and the mass of the pairs' Walsh sums
    ``d_i + d_j`` below ``-2 rope``, within it, and above it are the sample's probabilities of
    "b better", "equivalent" and "a better"; each posterior probability is the share of samples
    in which that region has the most mass. These are `baycomp.SignedRankTest`'s formulas and
    draws (the same generator and seed give the same samples), computed for all samples at once
    instead of one by one.
    """
    d = np.asarray(scores_b, dtype=float) - np.asarray(scores_a, dtype=float)
    d = np.concatenate([[0.0], d])  # the prior's pseudo-observation
    sums = d[:, None] + d[None, :]
    below = _step(-sums, 2 * rope)  # b lower: b better
    above = _step(sums, 2 * rope)
    concentration = np.ones(len(d))
    concentration[0] = PRIOR
    weights = np.random.RandomState(seed).dirichlet(concentration, samples)
    b_better = np.einsum("si,ij,sj->s", weights, below, weights)
    a_better = np.einsum("si,ij,sj->s", weights, above, weights)
    regions = np.stack([b_better, 1 - b_better - a_better, a_better], axis=1)
    winners = np.bincount(regions.argmax(axis=1), minlength=3) / samples
    return PairPosterior(
        a, b, float(winners[2]), float(winners[1]), float(winners[0]), len(d) - 1, rope
    )


def _step(values: np.ndarray, threshold: float) -> np.ndarray:
    """1 above ``threshold``, 1/2 at it, 0 below (the Heaviside step of the paper)."""
    return (values > threshold) + 0.5 * (values == threshold)


def bayesian_pairs(
    block_scores: pd.DataFrame, *, rope: float = ROPE, samples: int = SAMPLES, seed: int = SEED
) -> list[PairPosterior]:
    """Every pair of backends (columns of ``block_scores``: one row per (task, seed) block,
    normalized scores), in column order."""
    return [
        pair_posterior(
            a,
            b,
            block_scores[a].to_numpy(),
            block_scores[b].to_numpy(),
            rope=rope,
            samples=samples,
            seed=seed,
        )
        for a, b in combinations(block_scores.columns, 2)
    ]


def pairs_table(pairs: list[PairPosterior]) -> pd.DataFrame:
    """``bayesian_pairs.csv``: one row per pair."""
    return pd.DataFrame(
        [
            {
                "a": p.a,
                "b": p.b,
                "p_a_better": p.p_a_better,
                "p_equivalent": p.p_equivalent,
                "p_b_better": p.p_b_better,
                "verdict": p.verdict,
                "rope": p.rope,
                "blocks": p.blocks,
            }
            for p in pairs
        ],
        columns=["a", "b", "p_a_better", "p_equivalent", "p_b_better", "verdict", "rope", "blocks"],
    )


def pairs_in_words(pairs: list[PairPosterior]) -> list[str]:
    """The report's bullets: the pairs that differ, those practically equivalent, and those the
    evidence cannot settle."""
    if not pairs:
        return []
    differ = [p for p in pairs if p.verdict.endswith("better")]
    same = [p for p in pairs if p.verdict == "equivalent"]
    open_ = [p for p in pairs if p.verdict == "undecided"]
    rope, blocks = pairs[0].rope, pairs[0].blocks

    def better(p: PairPosterior) -> str:
        winner, loser, prob = (
            (p.a, p.b, p.p_a_better) if p.p_a_better >= DECISION else (p.b, p.a, p.p_b_better)
        )
        return f"**{winner}** better than **{loser}** (P = {prob:.3f})"

    lines = [
        f"- Bayesian signed-rank test of each pair on the normalized scores of {blocks} blocks, "
        f"ROPE {rope:g} (scores closer than that are practically equivalent), decided at "
        f"P >= {DECISION}:"
    ]
    lines.append(
        "  - Differ: " + ("; ".join(better(p) for p in differ) if differ else "no pair") + "."
    )
    lines.append(
        "  - Practically equivalent: "
        + (
            "; ".join(f"{p.a} / {p.b} (P = {p.p_equivalent:.3f})" for p in same)
            if same
            else "no pair"
        )
        + "."
    )
    lines.append(
        "  - The evidence cannot settle: "
        + (
            "; ".join(
                f"{p.a} / {p.b} (P {p.a} better {p.p_a_better:.2f}, equivalent "
                f"{p.p_equivalent:.2f}, {p.b} better {p.p_b_better:.2f})"
                for p in open_
            )
            if open_
            else "no pair"
        )
        + "."
    )
    return lines
