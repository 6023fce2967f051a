"""Which library degrades least with N workers: the parallel verdict of a results folder.

A folder holding each library's studies at several worker counts (``tuning benchmark
--workers 1,4,16``) is read per block (task, seed). Every study's incumbent (its best
validation loss so far) is scored on the block's scale::

    score = (incumbent - best) / (reference - best), clipped to [0, SCORE_CAP]

``best``: the lowest final validation loss of any study of the block; ``reference``: random
search's with one worker (the median of the block's one-worker finals where random search did
not run). 0 is the best any study found, 1 where one-worker random search ended; where that
was the best, the scale is the block's worst final instead (`suite_stats.task_scale`), and
where every study ended alike, every score is 0.

- **At the budget's end**: each study's final score (under an epoch or trial budget every
  worker count spends the same; under a seconds budget more workers train more). More
  workers propose with less known; a library that degrades scores higher.
- **At equal wall-clock**: each study's score when the block's quickest study of the largest
  worker count had finished (the study's elapsed time, ``cum_seconds``: on a table the
  simulated clock, the library's own decisions charged to it).
- **Speed-up**: the elapsed time one-worker random search took to reach its final result,
  over the time this study took to reach it (its geometric mean over the blocks where it did;
  the blocks where it never did are counted beside).

Each library's scores at N workers are tested against its own at one worker, block by block,
with the paired signed-rank test (`tuning.analysis.signed_rank.paired_test`), Holm-adjusted
over every (library, N) of both comparisons (`tuning.analysis.multiplicity.holm`); the words
follow the adjusted p and the test's direction.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from tuning.analysis.multiplicity import holm
from tuning.analysis.signed_rank import ALPHA, paired_test
from tuning.analysis.suite_stats import task_scale

PARALLEL_FILE = "parallel.csv"
BASELINE = "random"
SCORE_CAP = 5.0
COLUMNS = [
    "library",
    "workers",
    "studies",
    "score_equal_epochs",
    "score_equal_wall_clock",
    "speedup_to_random",
    "reached_random",
    "p_epochs_vs_1",
    "verdict_epochs",
    "p_wall_clock_vs_1",
    "verdict_wall_clock",
]


def is_parallel_grid(studies: pd.DataFrame) -> bool:
    """The leaderboard holds some library at more than one worker count."""
    if "workers" not in studies or "library" not in studies:
        return False
    return bool((studies.groupby("library")["workers"].nunique() > 1).any())


def incumbent_curves(trials: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per study: the elapsed time (``cum_seconds``) and the incumbent after each row, in the
    order the rows were written (a parallel study's: the order its trials ended)."""
    curves = {}
    for study, rows in trials.groupby("study", sort=False):
        rows = rows.sort_values("trial")
        complete = rows["val_loss"].astype(float).where(rows["status"] == "complete")
        curves[study] = pd.DataFrame(
            {
                "seconds": rows["cum_seconds"].astype(float).to_numpy(),
                "incumbent": complete.cummin().to_numpy(),
            }
        )
    return curves


def _at(curve: pd.DataFrame | None, seconds: float) -> float:
    """The incumbent by ``seconds`` (NaN before the first complete trial)."""
    if curve is None:
        return math.nan
    reached = curve["incumbent"][curve["seconds"] <= seconds + 1e-9].dropna()
    return float(reached.iloc[-1]) if len(reached) else math.nan


def _time_to(curve: pd.DataFrame | None, target: float) -> float:
    """The elapsed time at which the incumbent first reached ``target`` (NaN: never)."""
    if curve is None or math.isnan(target):
        return math.nan
    hit = curve["seconds"][curve["incumbent"] <= target + 1e-12]
    return float(hit.iloc[0]) if len(hit) else math.nan


def block_scores(studies: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """One row per study: its block, library and workers, and its scores and speed-up."""
    curves = incumbent_curves(trials)
    rows = []
    for (dataset, seed), block in studies.groupby(["dataset", "seed"], sort=True):
        finals = block["best_val_loss"].astype(float)
        best = finals.min()
        baseline = block[(block["library"] == BASELINE) & (block["workers"] == 1)]
        reference = (
            float(baseline["best_val_loss"].iloc[0])
            if len(baseline) and pd.notna(baseline["best_val_loss"].iloc[0])
            else float(block.loc[block["workers"] == 1, "best_val_loss"].median())
        )
        scale = task_scale(best, reference, finals.max())
        widest = block["workers"].max()
        wall = min(
            (
                curves[s]["seconds"].max()
                for s in block.loc[block["workers"] == widest, "study"]
                if s in curves
            ),
            default=math.nan,
        )
        reference_time = (
            _time_to(curves.get(baseline["study"].iloc[0]), reference)
            if len(baseline)
            else math.nan
        )

        for study in block.itertuples(index=False):
            curve = curves.get(study.study)
            reached = _time_to(curve, reference)
            rows.append(
                {
                    "dataset": dataset,
                    "seed": seed,
                    "library": study.library,
                    "workers": int(study.workers),
                    "study": study.study,
                    "score_equal_epochs": _score(float(study.best_val_loss), best, scale),
                    "score_equal_wall_clock": _score(_at(curve, wall), best, scale),
                    "wall_clock": wall,
                    "speedup_to_random": (
                        reference_time / reached if reached > 0 and reference_time > 0 else math.nan
                    ),
                }
            )
    return pd.DataFrame(rows)


def _score(loss: float, best: float, scale: float) -> float:
    """``loss`` on the block's scale; no result yet is `SCORE_CAP`; a block whose studies
    all ended alike scores 0."""
    if math.isnan(loss):
        return SCORE_CAP
    if math.isnan(scale):
        return 0.0
    return float(np.clip((loss - best) / scale, 0.0, SCORE_CAP))


def parallel_table(scores: pd.DataFrame) -> pd.DataFrame:
    """The verdict's table (`COLUMNS`) from the studies' `block_scores`: per library and
    worker count, the mean scores, the speed-up, and each against the library's one-worker
    studies (Holm over the family)."""
    if scores.empty:
        return pd.DataFrame(columns=COLUMNS)
    tests, rows = [], []
    for (library, workers), group in scores.groupby(["library", "workers"], sort=True):
        speedups = group["speedup_to_random"].dropna()
        row = {
            "library": library,
            "workers": workers,
            "studies": len(group),
            "score_equal_epochs": float(group["score_equal_epochs"].mean()),
            "score_equal_wall_clock": float(group["score_equal_wall_clock"].mean()),
            "speedup_to_random": float(np.exp(np.log(speedups).mean()))
            if len(speedups)
            else math.nan,
            "reached_random": f"{len(speedups)}/{len(group)}",
        }
        one = scores[(scores["library"] == library) & (scores["workers"] == 1)]
        for measure in ("epochs", "wall_clock"):
            row[f"p_{measure}_vs_1"], row[f"verdict_{measure}"] = math.nan, ""
            if workers == 1 or one.empty:
                continue
            column = f"score_equal_{measure}"
            key = ["dataset", "seed"]
            test = paired_test(group.set_index(key)[column], one.set_index(key)[column])
            tests.append((len(rows), measure, test))
        rows.append(row)
    adjusted = holm([t.p for _, _, t in tests]) if tests else []
    for (index, measure, test), p in zip(tests, adjusted, strict=True):
        rows[index][f"p_{measure}_vs_1"] = float(p)
        rows[index][f"verdict_{measure}"] = _words(test, float(p))
    return pd.DataFrame(rows, columns=COLUMNS)


def _words(test, adjusted_p: float) -> str:
    """The test against one worker in words (its direction from the one-sided p-values)."""
    if not test.testable:
        return "no test: fewer than two differing blocks"
    if adjusted_p >= ALPHA or math.isnan(adjusted_p):
        return "no difference detected"
    return "worse than 1 worker" if test.direction() == "higher" else "better than 1 worker"


def least_degradation(scores: pd.DataFrame) -> str:
    """One sentence: which library's final score rose least from one worker to the largest
    count every library ran (the mean over the blocks both ran of each block's rise), and
    whether the first two's rises differ (one planned signed-rank test, unadjusted). A library
    without a result at either count in every block (all `SCORE_CAP`) is left out: it cannot
    degrade."""
    counts = scores.groupby("library")["workers"].apply(set)
    ran_one = [library for library, seen in counts.items() if 1 in seen and len(seen) > 1]
    common = set.intersection(*(counts[library] for library in ran_one)) - {1} if ran_one else set()
    if not common:
        return ""
    widest = max(common)
    rises: dict[str, pd.Series] = {}
    for library in ran_one:
        mine = scores[(scores["library"] == library) & scores["workers"].isin([1, widest])]
        by_block = mine.pivot_table(
            index=["dataset", "seed"], columns="workers", values="score_equal_epochs"
        ).dropna()
        if by_block.empty or (by_block == SCORE_CAP).all().all():
            continue
        rises[library] = by_block[widest] - by_block[1]
    if not rises:
        return ""
    ordered = sorted(rises, key=lambda name: rises[name].mean())
    first = ordered[0]
    rise = rises[first].mean()
    text = (
        f"At the budget's end, {first} degraded least from 1 to {widest} workers (its score "
        f"{'rose' if rise >= 0 else 'fell'} by {abs(rise):.3f} on average over "
        f"{len(rises[first])} blocks)"
    )
    if len(ordered) > 1:
        runner = ordered[1]
        test = paired_test(rises[first], rises[runner])
        told = (
            f"p = {test.p:.3g}, one signed-rank test over {test.n_pairs} blocks, unadjusted"
            if test.testable
            else "no test: fewer than two differing blocks"
        )
        text += f"; next {runner} ({rises[runner].mean():+.3f}; the two rises compared: {told})"
    return (
        text + ". (Random search, and scikit-learn's randomized search, propose the same "
        "whatever N: their rise is only which trials the budget's end cuts.)"
    )


def parallel_section(table: pd.DataFrame, scores: pd.DataFrame, figure: str | None) -> str:
    """The report's section (Markdown)."""
    lines = [
        "## With N workers: which library degrades least",
        "",
        "Scores per block (task, seed): 0 is the best validation loss any study found, 1 where "
        "random search with one worker ended (lower is better). *Budget's end*: each study's "
        "final score (under an epoch or trial budget, the same spend whatever N; under a "
        "seconds budget N workers train more). *Equal wall-clock*: its score when the block's "
        f"quickest study with the most workers had finished ({SCORE_CAP:g}: no result yet). "
        "*Speed-up*: one-worker random search's time to its final result over this study's "
        "time to reach it (geometric mean over the blocks where it did: *reached*). Each N is "
        "tested against the same library's one worker, block by block (signed-rank; p "
        "Holm-adjusted over the whole table). The other sections of this report rank the "
        "studies of the fewest workers only.",
        "",
        verdict_table(table, scores),
    ]
    if figure:
        lines += ["", f"![score and speed-up as workers grow]({figure})"]
    return "\n".join(lines) + "\n"


def verdict_table(table: pd.DataFrame, scores: pd.DataFrame) -> str:
    """The verdict's table in Markdown, and its sentence on which library degrades least."""
    lines = [
        "| library | workers | studies | score, budget's end | vs 1 worker | score, equal "
        "wall-clock | vs 1 worker | speed-up to random | reached |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: |",
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"| {row.library} | {row.workers} | {row.studies} | {row.score_equal_epochs:.3f} | "
            f"{_cell(row.verdict_epochs, row.p_epochs_vs_1)} | {row.score_equal_wall_clock:.3f} | "
            f"{_cell(row.verdict_wall_clock, row.p_wall_clock_vs_1)} | "
            f"{_number(row.speedup_to_random)} | {row.reached_random} |"
        )
    sentence = least_degradation(scores)
    return "\n".join(lines + (["", sentence] if sentence else [])) + "\n"


def _cell(verdict: str, p: float) -> str:
    return "" if not verdict else f"{verdict} (p = {p:.3g})" if not math.isnan(p) else verdict


def _number(value: float) -> str:
    return "not reached" if math.isnan(value) else f"{value:.2f}x"


def plot_parallel(table: pd.DataFrame, path: Path) -> Path:
    """Two panels against the worker count (log scale): each library's mean score at equal
    epochs (flat: no degradation), and its speed-up to random search's final result (the
    diagonal: N workers, N times as fast)."""
    from tuning.analysis.plots import backend_colours, plt, save_figure

    colours = backend_colours(table["library"])
    fig, (scores, speed) = plt.subplots(1, 2, figsize=(12, 4.2))
    for library, group in table.groupby("library", sort=True):
        group = group.sort_values("workers")
        style = {"color": colours[library], "marker": "o", "label": library}
        scores.plot(group["workers"], group["score_equal_epochs"], **style)
        speed.plot(group["workers"], group["speedup_to_random"], **style)
        for row in group.itertuples(index=False):  # over how many blocks each mean is
            speed.annotate(row.reached_random, (row.workers, row.speedup_to_random), fontsize=7)
    counts = sorted(table["workers"].unique())
    speed.plot(counts, counts, color="grey", linestyle=":", label="N times as fast")
    for ax in (scores, speed):
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.minorticks_off()
        ax.set_xlabel("workers")
        ax.grid(alpha=0.3)
    scores.set(
        title="score at the budget's end (0 best found, 1 random with 1 worker)",
        ylabel="mean score (lower is better)",
    )
    speed.set_yscale("log", base=2)
    speed.set(
        title="speed-up to random search's final result (blocks reached)",
        ylabel="x one-worker random",
    )
    speed.legend(fontsize=8)
    return save_figure(fig, path)
