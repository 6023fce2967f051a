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
search's distance from the best model found; the default 0.1 is a tenth of what random search
leaves on the table. A pair is decided when one of the three probabilities reaches `DECISION`
(0.95, as the paper does); otherwise the evidence cannot settle it.

**What it computes, and how to read it.** Each posterior probability is the chance that one of
three regions (A ahead by more than the ROPE, within it, B ahead by more) holds the *largest
share of the Walsh averages* of the blocks' score differences. That is a statement about the
typical block-to-block difference, not about the mean shift: when the per-block noise of the
differences exceeds the ROPE, as in every suite measured here (SD 0.6-1.7 against 0.1), even
identical backends put little mass within the ROPE, and one of the outer regions wins by chance.
Measured (`benchmarks/calibration.py`, 6 identical backends x 60 blocks, 200 suites): some pair
is called "ahead" in 61% of suites, and no pair "within the ROPE" in any. So the verdicts are named for what
they say: ``x ahead`` (the region "x ahead by more than the ROPE" holds the most mass, with
posterior probability >= 0.95) and ``within the ROPE``; they are descriptions of the blocks,
not tests of "better", and carry no error control. Claims that one backend is better rest on
the Friedman/Nemenyi and the Holm-adjusted signed-rank tests. Each pair's ``difference_sd``
(the SD of its blocks' score differences) says when the caveat applies: above the ROPE.

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
    difference_sd: float = float("nan")  # SD of the blocks' score differences

    @property
    def verdict(self) -> str:
        """``a ahead``, ``b ahead``, ``within the ROPE`` or ``undecided`` (at `DECISION`): which
        region holds the most of the differences' Walsh averages (see the module's docstring)."""
        if self.p_a_better >= DECISION:
            return f"{self.a} ahead"
        if self.p_b_better >= DECISION:
            return f"{self.b} ahead"
        if self.p_equivalent >= DECISION:
            return "within the ROPE"
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
    spread = float(d.std(ddof=1)) if len(d) > 1 else float("nan")
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
        a, b, float(winners[2]), float(winners[1]), float(winners[0]), len(d) - 1, rope, spread
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
                "difference_sd": p.difference_sd,
            }
            for p in pairs
        ],
        columns=[
            "a",
            "b",
            "p_a_better",
            "p_equivalent",
            "p_b_better",
            "verdict",
            "rope",
            "blocks",
            "difference_sd",
        ],
    )


def pairs_in_words(pairs: list[PairPosterior]) -> list[str]:
    """The report's bullets: what the test computes, the pairs one side of which holds the most
    mass, those within the ROPE, and those the evidence cannot settle."""
    if not pairs:
        return []
    ahead = [p for p in pairs if p.verdict.endswith(" ahead")]
    within = [p for p in pairs if p.verdict == "within the ROPE"]
    open_ = [p for p in pairs if p.verdict == "undecided"]
    rope, blocks = pairs[0].rope, pairs[0].blocks
    noisy = [p.difference_sd for p in pairs if p.difference_sd > rope]

    def leader(p: PairPosterior) -> str:
        first, second, prob = (
            (p.a, p.b, p.p_a_better) if p.p_a_better >= DECISION else (p.b, p.a, p.p_b_better)
        )
        return f"**{first}** ahead of **{second}** (P = {prob:.3f})"

    lines = [
        f"- Bayesian signed-rank test of each pair on the normalized scores of {blocks} blocks, "
        f"ROPE {rope:g}, at P >= {DECISION}. It says which of three regions (one ahead by more "
        "than the ROPE, within it, the other ahead) holds the most of the Walsh averages of the "
        "blocks' score differences: a description of the typical block, not a test of which "
        "backend is better, and not controlled for errors (claims of better or worse rest on "
        "the tests above)."
    ]
    if noisy:
        lines.append(
            f"  - Caveat: in {len(noisy)} of {len(pairs)} pairs the blocks' differences vary by "
            f"more than the ROPE (SD up to {max(noisy):.2f} against {rope:g}). There, identical "
            'backends are called "ahead" in most simulated suites and never "within the '
            'ROPE" (benchmarks/calibration.py): read "ahead" as "more blocks lean this way", '
            'and the absence of "within the ROPE" as no evidence of a difference.'
        )
    lines.append(
        "  - One side holds the most mass: "
        + ("; ".join(leader(p) for p in ahead) if ahead else "no pair")
        + "."
    )
    lines.append(
        "  - Within the ROPE: "
        + (
            "; ".join(f"{p.a} / {p.b} (P = {p.p_equivalent:.3f})" for p in within)
            if within
            else "no pair"
        )
        + "."
    )
    lines.append(
        "  - The evidence cannot settle: "
        + (
            "; ".join(
                f"{p.a} / {p.b} (P {p.a} ahead {p.p_a_better:.2f}, within "
                f"{p.p_equivalent:.2f}, {p.b} ahead {p.p_b_better:.2f})"
                for p in open_
            )
            if open_
            else "no pair"
        )
        + "."
    )
    return lines
