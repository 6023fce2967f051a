"""Error rates and power of every verdict, measured by simulation through the real code.

Synthetic suites with a known truth (6 backends x 6 tasks x 10 seeds, as the small suite; noise
and block effects sized like the small suite's measured ones, see `NOISE`) go through the
harness's own functions: the per-task board against random search (`by_backend`), the suite's
Friedman/Nemenyi pairs and Bayesian signed-rank pairs, a race round and whole races (`race`,
with a fake grid), and the certificate (`agreement`). Each row of the table is one verdict in
one scenario: how often it said what it said, with a 95% Wilson interval over the simulations.

    python benchmarks/calibration.py [--simulations 200] [--seed 0] [--csv FILE]

Read "false" rows as error rates (the truth says the verdict is wrong) and "power" rows as the
chance of a right call. Family-wise rates count a simulation as wrong when *any* verdict in the
family is wrong. The script also runs against older versions of the harness (what a version
lacks is reported as n/a), which is how the before/after figures in `benchmarks/README.md` and
`docs/comparison.md` were made.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from tuning.analysis.aggregate import by_backend
from tuning.analysis.bayes_pairs import bayesian_pairs
from tuning.analysis.blocks import block_matrix, block_ranks
from tuning.analysis.suite_stats import (
    critical_difference,
    decide_pairs,
    friedman,
    normalized_scores,
    ranking_losses,
)
from tuning.core.config import StudyConfig
from tuning.run import race as racing
from tuning.run.certify import agreement
from tuning.run.grid import StudyState

BACKENDS = ["a", "b", "c", "d", "e", "random"]
TASKS = [f"task{i}" for i in range(6)]
SEEDS = 10
# Per-block noise and the block effect shared by a block's backends, in units of the noise; the
# small suite's normalized scores (2026-12-05, 360 studies) have a residual SD of 0.65-1.2 and a
# block SD of 0.27-0.64 of random search's distance: the generator's own are printed with the
# table (`measured_noise`).
NOISE = 1.0
BLOCK = 0.4
BAYES_SAMPLES = 4000


def synthetic_suite(
    rng: np.random.Generator,
    means: dict[str, float],
    *,
    fail: dict[str, float] | None = None,
    tasks: list[str] = TASKS,
    seeds: int = SEEDS,
) -> pd.DataFrame:
    """One study per (task, backend, seed): test loss ``exp(0.1 (mean + block + noise))`` with
    right-skewed noise (a gamma of shape 2, centred, SD ``NOISE``), NaN (no model) with the
    backend's ``fail`` probability."""
    rows = []
    fail = fail or {}
    for task in tasks:
        for seed in range(seeds):
            block = BLOCK * rng.normal()
            for backend, mean in means.items():
                noise = NOISE * (rng.gamma(2.0) - 2.0) / math.sqrt(2.0)
                loss = math.exp(0.1 * (mean + block + noise))
                if rng.random() < fail.get(backend, 0.0):
                    loss = math.nan
                rows.append(
                    {
                        "study": f"{task}_{backend}_s{seed}",
                        "dataset": task,
                        "backend": backend,
                        "seed": seed,
                        "test_loss": loss,
                        "best_val_loss": loss,
                        "epochs": 100,
                        "seconds": 1.0,
                        "trials": 5,
                    }
                )
    return pd.DataFrame(rows)


def measured_noise(rng: np.random.Generator) -> tuple[float, float]:
    """The generator's residual and block SD in normalized-score units (identical backends)."""
    studies = synthetic_suite(rng, dict.fromkeys(BACKENDS, 0.0))
    scores = block_matrix(normalized_scores(studies), "score")
    residual, block = [], []
    for _, g in scores.groupby(level=0):
        means = g.mean(axis=1)
        block.append(means.std())
        residual.append(g.sub(means, axis=0).sub(g.mean() - g.mean().mean(), axis=1).stack().std())
    return float(np.mean(residual)), float(np.mean(block))


def _trials(studies: pd.DataFrame) -> pd.DataFrame:
    """One trial per study (`tuning.analysis.aggregate.standing_trials`, written out here so that
    the script also runs against versions before it)."""
    return pd.DataFrame(
        {
            "study": studies["study"],
            "trial": 0,
            "status": "complete",
            "val_loss": studies["test_loss"],
            "cum_epochs": 100,
        }
    )


def board_calls(studies: pd.DataFrame) -> pd.DataFrame:
    """The per-task board's verdicts against random search: dataset, backend, vs_random."""
    board = by_backend(studies, _trials(studies))
    return board[board["backend"] != "random"][["dataset", "backend", "vs_random"]]


def suite_calls(studies: pd.DataFrame) -> tuple[list[tuple[str, str]], list]:
    """The suite's Nemenyi-distinguishable pairs (better first) and its Bayesian pairs."""
    scores = normalized_scores(studies)
    losses = block_matrix(ranking_losses(scores), "test_loss")
    ranks = block_ranks(losses)
    _, p = friedman(ranks)
    cd = critical_difference(ranks.shape[1], ranks.shape[0])
    mean_ranks = ranks.mean().sort_values()
    distinguishable, _ = decide_pairs(mean_ranks, cd, p)
    pairs = bayesian_pairs(block_matrix(scores, "score"), samples=BAYES_SAMPLES)
    return distinguishable, pairs


class FakeGrid:
    """`race`'s round runner: each study's test loss from a fixed synthetic suite."""

    def __init__(self, studies: pd.DataFrame) -> None:
        self.losses = studies.set_index(["dataset", "backend", "seed"])["test_loss"]

    def __call__(self, configs: list[StudyConfig]) -> list[StudyState]:
        states = []
        for c in configs:
            loss = self.losses[(c.dataset, c.backend, c.seed)]
            summary = {"test_loss": None if math.isnan(loss) else float(loss), "epochs": 100}
            states.append(StudyState(c, state="done", summary=summary))
        return states


def race_calls(studies: pd.DataFrame, correction: str | None, first: int) -> list[list[str]]:
    """The backends dropped in each round of a whole race over the suite's seeds."""
    with tempfile.TemporaryDirectory() as out:
        tasks = [
            StudyConfig(backend="random", dataset=t, budget_epochs=100, out=out) for t in TASKS
        ]
        options = {"first": first}
        if correction is not None:
            options["correction"] = correction
        result = racing.race(tasks, BACKENDS, list(range(SEEDS)), FakeGrid(studies), **options)
    return [r.dropped for r in result.rounds]


def first_round_calls(studies: pd.DataFrame, correction: str | None, first: int) -> list[str]:
    """What the race's first round drops (its first ``first`` seeds)."""
    frame = studies[studies["seed"] < first]
    losses = frame.pivot(index=["dataset", "seed"], columns="backend", values="test_loss")
    options = {} if correction is None else {"correction": correction}
    return racing.decide(losses.fillna(np.inf), racing.ALPHA, **options)[4]


def certificate_calls(table: pd.DataFrame, real: pd.DataFrame) -> tuple[str, list[str]]:
    """The certificate's verdict (n/a where the version has none) and its pairs' verdicts on
    the real side."""

    def matrix(studies: pd.DataFrame) -> pd.DataFrame:
        return studies.pivot(index=["dataset", "seed"], columns="backend", values="test_loss")

    winners = pd.DataFrame({"real_test_loss": [1.0], "table_test_loss": [1.0]})
    options = {}
    if "simulations" in inspect.signature(agreement).parameters:
        options["simulations"] = 0
    result = agreement(matrix(table), matrix(real), winners, reps=200, **options)
    ceiling = getattr(result, "ceiling", None)
    return (ceiling.verdict if ceiling else "n/a"), list(result.pairs["real_verdict"])


@dataclass
class Rate:
    """A count of events over simulations, with its Wilson interval."""

    scenario: str
    verdict: str
    kind: str  # "false" (an error rate) or "power"
    events: int = 0
    runs: int = 0

    def add(self, event: bool | None) -> None:
        if event is None:  # the version under test has no such verdict
            return
        self.events += bool(event)
        self.runs += 1

    def row(self) -> dict[str, object]:
        if not self.runs:
            return {**self._labels(), "rate": "n/a", "95% interval": "", "runs": 0}
        low, high = wilson(self.events, self.runs)
        return {
            **self._labels(),
            "rate": f"{self.events / self.runs:.3f}",
            "95% interval": f"[{low:.3f}, {high:.3f}]",
            "runs": self.runs,
        }

    def _labels(self) -> dict[str, str]:
        return {"scenario": self.scenario, "verdict": self.verdict, "kind": self.kind}


def wilson(events: int, runs: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a binomial proportion."""
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    p = events / runs
    centre = (p + z * z / (2 * runs)) / (1 + z * z / runs)
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / (1 + z * z / runs)
    return max(0.0, centre - half), min(1.0, centre + half)


def _better(verdict: str) -> bool:
    """A verdict that one of a pair is ahead: "x better" (the certificate's pairs, the
    Bayesian pairs before they were reworded) or "x ahead" (the Bayesian pairs now)."""
    return verdict.endswith(("better", "ahead"))


DISAGREES, AGREES = "disagrees beyond noise", "agrees within noise"


def _is(verdict: str, expected: str) -> bool | None:
    """None where the version under test gives no such verdict."""
    return None if verdict == "n/a" else verdict == expected


def _has_correction() -> bool:
    return "correction" in inspect.signature(racing.race).parameters


def scenarios(simulations: int, seed: int) -> list[Rate]:
    """Every scenario's rates (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    rates: dict[tuple[str, str], Rate] = {}

    def rate(scenario: str, verdict: str, kind: str) -> Rate:
        return rates.setdefault((scenario, verdict), Rate(scenario, verdict, kind))

    null = dict.fromkeys(BACKENDS, 0.0)
    corrections: list[str | None] = [None]
    if _has_correction():
        from tuning.analysis.posthoc import CORRECTIONS

        corrections = list(CORRECTIONS)
    for _ in range(simulations):
        # 1. all identical
        studies = synthetic_suite(rng, null)
        calls = board_calls(studies)
        scenario = "identical (6 x 6 x 10)"
        rate(scenario, "per-task board: any 'better'/'worse' than random (family)", "false").add(
            (calls["vs_random"].str.contains("than random")).any()
        )
        distinguishable, pairs = suite_calls(studies)
        rate(scenario, "Nemenyi: any pair distinguishable", "false").add(bool(distinguishable))
        rate(scenario, "Bayesian: any pair 'ahead' ('better' before)", "false").add(
            any(_better(p.verdict) for p in pairs)
        )
        within = [p.verdict in ("equivalent", "within the ROPE") for p in pairs]
        rate(scenario, "Bayesian: every pair 'within the ROPE'", "power").add(all(within))
        rate(scenario, "Bayesian: any pair 'within the ROPE'", "power").add(any(within))
        verdict, pair_verdicts = certificate_calls(studies, synthetic_suite(rng, null))
        rate(scenario, "certificate pairs: any 'better' (family)", "false").add(
            any(_better(v) for v in pair_verdicts)
        )

        # 2. one backend fails 3 seeds in 10 and is otherwise identical
        studies = synthetic_suite(rng, null, fail={"a": 0.3})
        calls = board_calls(studies)
        scenario = "a fails 30%, else identical"
        rate(scenario, "per-task board: a 'better than random' on some task", "false").add(
            (calls[calls["backend"] == "a"]["vs_random"] == "better than random").any()
        )
        distinguishable, pairs = suite_calls(studies)
        rate(scenario, "Bayesian: a 'ahead' of some backend", "false").add(
            any(_better(p.verdict) and p.verdict.startswith("a ") for p in pairs)
        )

        # 3. one backend better by half the noise, and by the whole noise
        for shift in (0.5, 1.0):
            studies = synthetic_suite(rng, {**null, "a": -shift * NOISE})
            scenario = f"a better by {shift:g} noise SD"
            calls = board_calls(studies)
            a_calls = calls[calls["backend"] == "a"]["vs_random"]
            for call in a_calls:
                rate(scenario, "per-task board: a 'better than random' (per task)", "power").add(
                    call == "better than random"
                )
            others = calls[calls["backend"] != "a"]["vs_random"]
            rate(scenario, "per-task board: any identical one called different", "false").add(
                others.str.contains("than random").any()
            )
            distinguishable, pairs = suite_calls(studies)
            rate(scenario, "Nemenyi: a distinguishable from random", "power").add(
                ("a", "random") in distinguishable
            )
            rate(scenario, "Bayesian: a 'ahead' of random", "power").add(
                any(
                    _better(p.verdict) and p.verdict.startswith("a ") and "random" in (p.a, p.b)
                    for p in pairs
                )
            )
            rate(scenario, "Bayesian: a pair of identical ones 'ahead'", "false").add(
                any(_better(p.verdict) and "a" not in (p.a, p.b) for p in pairs)
            )

        # 4. racing: four identical, two worse by two noise SD
        studies = synthetic_suite(rng, {**null, "d": 2.0, "e": 2.0})
        scenario = "race: 4 identical, 2 worse by 2 SD"
        for correction in corrections:
            label = correction or "as released"
            dropped = first_round_calls(studies, correction, first=3)
            rate(scenario, f"round 1 (18 blocks), {label}: drops an identical one", "false").add(
                bool(set(dropped) - {"d", "e"})
            )
            rounds = race_calls(studies, correction, first=3)
            gone = {b for r in rounds for b in r}
            rate(scenario, f"whole race, {label}: drops an identical one", "false").add(
                bool(gone - {"d", "e"})
            )
            rate(scenario, f"whole race, {label}: drops both worse ones", "power").add(
                {"d", "e"} <= gone
            )

        # 4b. the first round when the worse ones are closer: one noise SD
        studies = synthetic_suite(rng, {**null, "d": 1.0, "e": 1.0})
        scenario = "race: 4 identical, 2 worse by 1 SD"
        for correction in corrections:
            label = correction or "as released"
            dropped = set(first_round_calls(studies, correction, first=3))
            rate(scenario, f"round 1 (18 blocks), {label}: drops an identical one", "false").add(
                bool(dropped - {"d", "e"})
            )
            rate(scenario, f"round 1 (18 blocks), {label}: drops both worse ones", "power").add(
                {"d", "e"} <= dropped
            )

        # 5. the certificate: a table of the same process, and a table in another order
        truth = dict(zip(BACKENDS, np.linspace(0.0, 2.0, len(BACKENDS)), strict=True))
        real = synthetic_suite(rng, truth)
        same, _ = certificate_calls(synthetic_suite(rng, truth), real)
        scenario = "certificate: table = the same process"
        rate(scenario, "'disagrees beyond noise'", "false").add(_is(same, DISAGREES))
        rate(scenario, "'agrees within noise'", "power").add(_is(same, AGREES))
        shuffled = dict(zip(BACKENDS, rng.permutation(list(truth.values())), strict=True))
        other, _ = certificate_calls(synthetic_suite(rng, shuffled), real)
        scenario = "certificate: table in a random order"
        rate(scenario, "'disagrees beyond noise'", "power").add(_is(other, DISAGREES))
        rate(scenario, "'agrees within noise'", "false").add(_is(other, AGREES))
    return list(rates.values())


def markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    started = time.monotonic()
    residual, block = measured_noise(np.random.default_rng(args.seed))
    frame = pd.DataFrame([r.row() for r in scenarios(args.simulations, args.seed)])
    print(
        f"{args.simulations} simulations a scenario, seed {args.seed}; the generator's noise in "
        f"normalized-score units: residual SD {residual:.2f}, block SD {block:.2f}; "
        f"{time.monotonic() - started:.0f} s"
    )
    print(markdown(frame))
    if args.csv:
        frame.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
