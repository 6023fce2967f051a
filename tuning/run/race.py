"""Racing: spend seeds where the verdict is undecided (F-Race).

``tuning benchmark ... --race`` runs the grid's seeds in rounds instead of all at once. The first
round runs ``first`` seeds of every task for every backend; after each round the backends still
in the race are ranked within each (task, seed) block by test loss (a study without a model
last) and tested as F-Race does (Birattari, Stützle, Paquete, Varrentrapp 2002; the procedure
of irace): the Friedman test of "they all rank alike" and, when it rejects at ``alpha``, each
backend's rank sum against the best one's, by one of three rules
(`tuning.analysis.posthoc.conover_vs_best`): Nemenyi's critical difference (the default),
Conover's t-test under Holm, or Conover's t-test uncorrected (irace's). With two backends left,
the paired signed-rank test (`tuning.analysis.signed_rank`, on losses scaled per task) decides,
and the backend it finds worse (its one-sided p) is dropped. The next round adds one seed for the
backends left; the race ends when one backend remains or the seeds run out.

Every round's studies are ordinary grid studies: finished ones are skipped, so a race that was
stopped resumes by running the same command, and its decisions, made from the same results, are
the same. Each decision is recorded in ``OUT/race.json`` (round, seeds, statistic, p, what was
dropped and by how much, the rule). `replay` runs the same decisions on finished results.

Error rates (measured by `benchmarks/calibration.py`, quoted in docs/comparison.md): the best is
itself the minimum of noisy rank sums, so comparisons against it drop a backend identical to it
far more often than ``alpha`` unless the rule bounds the largest gap (Nemenyi's studentized
range does); and each round tests anew, with no correction for the rounds before it, so the
chance over a whole race is larger than a round's. The survivors are "not shown worse", not
"shown best".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuning.analysis.blocks import block_ranks
from tuning.analysis.elimination import CORRECTION, decide
from tuning.core.atomic import write_json
from tuning.core.config import StudyConfig
from tuning.core.errors import StudyError

RACE_FILE = "race.json"
FIRST_SEEDS = 5  # irace's firstTest: no elimination before this many seeds
ALPHA = 0.05


@dataclass
class Round:
    """One round's decision."""

    round: int
    seeds: list[int]
    blocks: int
    alive: list[str]
    test: str  # "friedman", "wilcoxon" (two left) or "none" (too few blocks)
    statistic: float
    p: float
    critical: float  # the rank-sum gap beyond which a backend is dropped (Friedman rounds)
    rank_sums: dict[str, float] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    correction: str = CORRECTION  # of the comparisons against the best (Friedman rounds)


@dataclass
class RaceResult:
    rounds: list[Round]
    survivors: list[str]
    studies_run: int
    epochs_spent: int
    full_studies: int
    full_epochs: int | None
    seeds: list[int]


def race(
    tasks: Sequence[StudyConfig],
    backends: Sequence[str],
    seeds: Sequence[int],
    run: Callable[[list[StudyConfig]], list[Any]],
    *,
    first: int = FIRST_SEEDS,
    alpha: float = ALPHA,
    correction: str = CORRECTION,
    record: bool = True,
) -> RaceResult:
    """Race ``backends`` on ``tasks`` over at most ``seeds``; ``run(configs)`` runs a round's
    studies (skipping finished ones) and returns their `tuning.run.grid.StudyState`s. ``record``:
    write ``race.json`` into the tasks' ``out`` after each round."""
    from tuning.run.grid import plan_grid

    if first < 2 or first > len(seeds):
        raise StudyError(
            f"--race-first must be between 2 and the number of --seeds ({len(seeds)}), got {first}"
        )
    alive, used, rounds = list(backends), list(seeds[:first]), []
    summaries: dict[tuple[str, str, int], dict] = {}
    out = Path(tasks[0].out)
    while True:
        configs = [c for task in tasks for c in plan_grid(task, alive, used)]
        for state in run(configs):
            if state.state in ("failed", "held"):
                raise StudyError(
                    f"race: study {state.config.study} {state.state} ({state.error}): the round "
                    "cannot be decided without it; once it can run, run the same command again "
                    "(the finished studies are kept)"
                )
            key = (state.config.dataset, state.config.backend, state.config.seed)
            summaries[key] = state.summary
        losses = (
            pd.DataFrame(
                {
                    b: [_loss(summaries[(t.dataset, b, s)]) for t in tasks for s in used]
                    for b in alive
                },
                index=pd.MultiIndex.from_tuples([(t.dataset, s) for t in tasks for s in used]),
            )
            .astype(float)
            .fillna(np.inf)
        )
        test, statistic, p, critical, dropped = decide(losses, alpha, correction)
        if len(dropped) == len(alive):  # (every backend failed alike: nothing to tell apart)
            dropped = []
        rounds.append(
            Round(
                round=len(rounds) + 1,
                seeds=list(used),
                blocks=len(losses),
                alive=list(alive),
                test=test,
                statistic=statistic,
                p=p,
                critical=critical,
                rank_sums={b: float(v) for b, v in block_ranks(losses).sum().items()},
                dropped=dropped,
                correction=correction,
            )
        )
        alive = [b for b in alive if b not in dropped]
        if record:
            _record(out, rounds, alive, seeds, tasks, backends, summaries)
        if len(alive) == 1 or len(used) == len(seeds):
            break
        used.append(seeds[len(used)])
    return _result(rounds, alive, seeds, tasks, backends, summaries)


def replay(
    rows: pd.DataFrame,
    *,
    first: int = FIRST_SEEDS,
    alpha: float = ALPHA,
    correction: str = CORRECTION,
) -> RaceResult:
    """The race that finished results would have run: ``rows`` holds one study per (task,
    backend, seed) with its ``test_loss`` (NaN: no model), as a results page's data does; each
    round looks its studies up instead of running them. Nothing is written."""
    from tuning.run.grid import StudyState

    indexed = rows.set_index(["task", "backend", "seed"])
    losses, epochs = indexed["test_loss"].astype(float), indexed["epochs"].astype(int)

    def look_up(configs: list[StudyConfig]) -> list[Any]:
        states = []
        for c in configs:
            key = (c.dataset, c.backend, c.seed)
            loss = losses[key]
            summary = {"test_loss": None if math.isnan(loss) else loss, "epochs": int(epochs[key])}
            states.append(StudyState(c, state="done", summary=summary))
        return states

    budgets = rows.groupby("task")["epochs"].max()
    tasks = [
        StudyConfig(backend="random", dataset=str(t), budget_epochs=int(budgets[t]), out=".")
        for t in sorted(rows["task"].unique())
    ]
    backends = sorted(rows["backend"].unique())
    seeds = sorted(int(s) for s in rows["seed"].unique())
    return race(
        tasks,
        backends,
        seeds,
        look_up,
        first=first,
        alpha=alpha,
        correction=correction,
        record=False,
    )


def _loss(summary: dict) -> float:
    """A study's test loss; +inf for a study without a model (it ranks last)."""
    loss = summary.get("test_loss")
    return np.inf if loss is None else float(loss)


def _result(rounds, alive, seeds, tasks, backends, summaries) -> RaceResult:
    per_study = [t.budget_epochs for t in tasks]
    full_epochs = sum(e * len(backends) * len(seeds) for e in per_study) if all(per_study) else None
    return RaceResult(
        rounds=rounds,
        survivors=list(alive),
        studies_run=len(summaries),
        epochs_spent=int(sum(s.get("epochs", 0) for s in summaries.values())),
        full_studies=len(tasks) * len(backends) * len(seeds),
        full_epochs=full_epochs,
        seeds=list(seeds),
    )


def _record(out, rounds, alive, seeds, tasks, backends, summaries) -> None:
    result = _result(rounds, alive, seeds, tasks, backends, summaries)
    data = asdict(result)
    for item in data["rounds"]:  # JSON has no NaN
        for key in ("statistic", "p", "critical"):
            if isinstance(item[key], float) and math.isnan(item[key]):
                item[key] = None
    write_json(Path(out) / RACE_FILE, data)


def describe(result: RaceResult) -> list[str]:
    """The race in lines for the terminal."""
    lines = []
    for r in result.rounds:
        test = (
            f"Friedman chi2 {r.statistic:.2f}, p {r.p:.3g}"
            + (f", critical rank-sum gap {r.critical:.1f}" if not math.isnan(r.critical) else "")
            if r.test == "friedman"
            else f"Wilcoxon p {r.p:.3g}"
            if r.test == "wilcoxon"
            else "no test"
        )
        lines.append(
            f"round {r.round}: {len(r.seeds)} seeds, {r.blocks} blocks, {len(r.alive)} backends; "
            f"{test}; dropped: {', '.join(r.dropped) or 'none'}"
        )
    spent = f"{result.studies_run} of {result.full_studies} studies"
    if result.full_epochs:
        spent += f", {result.epochs_spent} of {result.full_epochs} training epochs"
    lines.append(f"survivors: {', '.join(result.survivors)}; spent {spent} of the full design")
    return lines
