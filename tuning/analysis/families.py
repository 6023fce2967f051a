"""The families of tests a report makes, and how each controls its errors (its words)."""

from __future__ import annotations

import math

import pandas as pd

from tuning.analysis.blocks import ALPHA
from tuning.analysis.suite_stats import SuiteStatistics


def seeds_for_holm(tests: int, alpha: float = ALPHA) -> int:
    """The fewest paired seeds whose smallest exact two-sided p (2 / 2^n) is below Holm's first
    threshold ``alpha / tests``."""
    return math.floor(math.log2(2 * max(tests, 1) / alpha)) + 1


def families_section(
    board: pd.DataFrame, suite: SuiteStatistics | None, parallel: pd.DataFrame | None = None
) -> list[str]:
    """The report's families of tests and how each controls its errors; ``parallel``: the
    verdict over worker counts (`tuning.analysis.parallel.parallel_table`), where there is one."""
    family = int(board["tests_in_family"].iloc[0]) if len(board) else 0
    lines = [
        "## Families of tests\n",
        f"- **Each backend against random search, per task** (the leaderboards below): {family} "
        "paired signed-rank tests, one family: Holm-adjusted together, and the words "
        f'"better"/"worse" follow the adjusted p, so the chance of any false one among '
        f"them is at most {ALPHA}. A study without a model is the worst result of its seed.",
    ]
    if suite is not None:
        k = len(suite.board)
        lines += [
            f"- **Pairs across the suite** (the suite verdict): {k * (k - 1) // 2} pairs, decided "
            f"by Nemenyi's critical difference after the Friedman test, which holds the "
            f"family-wise error of all pairs at {ALPHA}.",
            "- **Bayesian pairs**: descriptions of the blocks, not tests; no error control (see "
            "their caveat).",
            "- Each family is controlled on its own: the chance of some false verdict somewhere in "
            "the report is larger than for any one of them.",
        ]
    if parallel is not None:
        tested = int(parallel[["p_epochs_vs_1", "p_wall_clock_vs_1"]].notna().to_numpy().sum())
        lines.append(
            f"- **Each worker count against the same library's one worker** (N workers per "
            f"study): {tested} paired signed-rank tests (equal epochs and equal wall-clock), one "
            "family, Holm-adjusted together; the sentence naming who degrades least is one more "
            "test, unadjusted."
        )
    if suite is None and parallel is not None:
        lines.append(
            "- Each family is controlled on its own: the chance of some false verdict somewhere in "
            "the report is larger than for any one of them."
        )
    lines.append(
        "- **Intervals** (t-intervals of mean losses, bootstrap intervals of scores): 95% each, "
        "not simultaneous. Error rates of every verdict, measured by simulation: "
        "`benchmarks/calibration.py` and docs/comparison.md.\n"
    )
    return lines
