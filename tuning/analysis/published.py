"""Results pages that a reader can recompute: the compact data a page ships, and its tables.

A dated page in ``docs/results/`` ships the per-study rows it was computed from
(`compact_rows`: task, backend, seed, status, best validation loss, test loss, the budget spent;
a small CSV beside the page, in ``docs/results/data/``). Every table the page prints stands
between markers::

    <!-- generated: suite -->
    | backend | ... |
    <!-- end -->

and `page_tables` computes each of them again from the CSV alone, with the harness's own
statistics (`tuning.analysis.suite_stats`, `aggregate`, `bayes_pairs`); `tests/test_published.py`
checks that every marked block on every page equals its recomputation. The race's blocks come
from `tuning.run.pages`, which also fills a page: ``python -m tuning.run.pages PAGE``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from tuning.analysis.aggregate import by_backend, standing_trials
from tuning.analysis.bayes_pairs import pairs_table
from tuning.analysis.report import fmt, markdown_table
from tuning.analysis.suite_stats import suite_statistics

COMPACT_COLUMNS = [
    "task",
    "backend",
    "seed",
    "status",
    "best_val_loss",
    "test_loss",
    "trials",
    "epochs",
]
MARKER = re.compile(r"<!-- generated: (\w+) -->\n(.*?)<!-- end -->", re.DOTALL)


def compact_rows(leaderboard: pd.DataFrame) -> pd.DataFrame:
    """A page's data from ``leaderboard.csv``: one row per study, sorted; ``status`` is ``model``
    or ``no model``; ``epochs`` and ``trials`` are the budget the search spent."""
    rows = pd.DataFrame(
        {
            "task": leaderboard["dataset"],
            "backend": leaderboard["backend"],
            "seed": leaderboard["seed"].astype(int),
            "status": leaderboard["test_loss"].notna().map({True: "model", False: "no model"}),
            "best_val_loss": leaderboard["best_val_loss"],
            "test_loss": leaderboard["test_loss"],
            "trials": leaderboard["trials"].astype(int),
            "epochs": leaderboard["epochs"].astype(int),
        }
    )
    return rows.sort_values(["task", "backend", "seed"], ignore_index=True)[COMPACT_COLUMNS]


def _studies(rows: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's shape again, from compact rows."""
    return rows.rename(columns={"task": "dataset"}).assign(
        study=lambda f: f["dataset"] + "_" + f["backend"] + "_s" + f["seed"].astype(str),
        seconds=0.0,
    )


def page_tables(rows: pd.DataFrame) -> dict[str, str]:
    """Every generated table of a suite page, by name: ``suite`` (the suite's board),
    ``tests`` (Friedman, Nemenyi and the family of per-task tests, in words), ``per_task`` (each
    backend's Holm-adjusted verdicts against random search, counted over tasks) and ``bayes``
    (the Bayesian pairs)."""
    check_finite(rows)
    studies = _studies(rows)
    suite = suite_statistics(studies, pd.DataFrame(), {})
    board = suite.board
    suite_rows = [
        {
            "backend": r.backend,
            "mean rank": f"{r.mean_rank:.2f}",
            "wins": r.wins,
            "no model": r.no_model,
            "IQM score [95% CI]": f"{r.score_iqm:.3f} [{r.score_iqm_ci_low:.3f}, "
            f"{r.score_iqm_ci_high:.3f}]",
            "mean score [95% CI]": f"{r.score_mean:.3f} [{r.score_mean_ci_low:.3f}, "
            f"{r.score_mean_ci_high:.3f}]",
            "Nemenyi: ranks better than": r.better_than.replace(";", ", ") or "-",
        }
        for r in board.itertuples(index=False)
    ]
    per_task = by_backend(studies, standing_trials(studies))
    family = int(per_task["tests_in_family"].iloc[0])
    others = per_task[per_task["backend"] != "random"]
    verdicts = others.pivot(index="backend", columns="dataset", values="vs_random")
    counts = [
        {
            "backend": backend,
            "better than random (Holm)": int((calls == "better than random").sum()),
            "worse than random (Holm)": int((calls == "worse than random").sum()),
            "not significant": int((calls == "not significant").sum()),
            "raw p < 0.05 (uncorrected)": int(
                (others[others["backend"] == backend]["wilcoxon_p"] < 0.05).sum()
            ),
        }
        for backend, calls in verdicts.iterrows()
    ]
    tests = (
        f"{len(board)} backends, {len(suite.tasks)} tasks, {len(suite.seeds)} seeds a task: "
        f"{int(board['blocks'].iloc[0])} blocks. Friedman chi2 = {suite.friedman_statistic:.2f}, "
        f"p = {suite.friedman_p:.2g}; Nemenyi's critical difference {suite.critical_difference:.2f} "
        f"ranks. Per-task tests against random search: {family} in one family, Holm-adjusted.\n"
    )
    bayes = pairs_table(suite.pairs)
    bayes_rows = [
        {
            "pair": f"{r.a} / {r.b}",
            "P(first ahead)": fmt(r.p_a_better, 3),
            "P(within ROPE)": fmt(r.p_equivalent, 3),
            "P(second ahead)": fmt(r.p_b_better, 3),
            "verdict": r.verdict,
            "SD of differences": f"{r.difference_sd:.2f}",
        }
        for r in bayes.itertuples(index=False)
    ]
    return {
        "suite": markdown_table(suite_rows),
        "tests": tests,
        "per_task": markdown_table(counts),
        "bayes": markdown_table(bayes_rows),
    }


CERTIFICATE_COLUMNS = ["task", "backend", "seed", "table_test_loss", "real_test_loss"]


def certificate_rows(table: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    """A certificate page's data: one row per (task, backend, seed), its tabular and its real
    study's test loss (NaN: no model); ``table`` and ``real`` are the two folders' leaderboards."""

    def losses(board: pd.DataFrame, name: str) -> pd.Series:
        return board.set_index(["dataset", "backend", "seed"])["test_loss"].rename(name)

    both = pd.concat(
        [losses(table, "table_test_loss"), losses(real, "real_test_loss")], axis=1, join="inner"
    )
    both.index.names = ["task", "backend", "seed"]
    return both.reset_index().sort_values(["task", "backend", "seed"], ignore_index=True)


def certificate_tables(rows: pd.DataFrame) -> dict[str, str]:
    """The certificate's blocks from its rows: ``verdict`` (the ceiling, gap, power and verdict
    in words), ``orders`` (each backend's mean rank in each) and ``pairs`` (each pair's tests)."""
    from tuning.analysis.certificate import agreement

    def matrix(column: str) -> pd.DataFrame:
        return rows.pivot(index=["task", "seed"], columns="backend", values=column)

    winners = pd.DataFrame({"real_test_loss": [], "table_test_loss": []})
    result = agreement(matrix("table_test_loss"), matrix("real_test_loss"), winners)
    verdict = result.ceiling.in_words() if result.ceiling else "no verdict (too few seeds a task)"
    orders = [
        {
            "backend": r.backend,
            "table mean rank": f"{r.table_mean_rank:.2f}",
            "real mean rank": f"{r.real_mean_rank:.2f}",
        }
        for r in result.backends.itertuples(index=False)
    ]
    pairs = [
        {
            "pair": f"{r.a} / {r.b}",
            "table: ahead (p, Holm)": f"{r.table_ahead} ({r.table_p:.3g}, {r.table_p_holm:.3g})",
            "table verdict": r.table_verdict,
            "real: ahead (p, Holm)": f"{r.real_ahead} ({r.real_p:.3g}, {r.real_p_holm:.3g})",
            "real verdict": r.real_verdict,
        }
        for r in result.pairs.itertuples(index=False)
    ]
    return {
        "verdict": f"{verdict}\n\nKendall's tau of the two orders over all blocks: "
        f"{result.tau:.2f} [95% {result.tau_low:.2f}, {result.tau_high:.2f}].\n",
        "orders": markdown_table(orders),
        "pairs": markdown_table(pairs),
    }


def generated_blocks(page: str) -> dict[str, str]:
    """The marked blocks of a page, by name."""
    return {name: body for name, body in MARKER.findall(page)}


def fill_page(page: str, tables: dict[str, str]) -> str:
    """``page`` with each marked block replaced by the table of its name."""

    def replace(match: re.Match) -> str:
        body = tables[match.group(1)]
        return f"<!-- generated: {match.group(1)} -->\n{body.rstrip()}\n<!-- end -->"

    return MARKER.sub(replace, page)


def page_data(page: Path) -> Path:
    """The CSV a page ships: ``data/<the page's name>.csv`` beside it."""
    return page.parent / "data" / f"{page.stem}.csv"


def check_finite(rows: pd.DataFrame) -> None:
    """Refuse data whose rows say "model" but hold no finite test loss: the page would hide a
    failure, or count one twice."""
    losses = rows["test_loss"].astype(float)
    bad = rows[(rows["status"] == "model") != losses.map(math.isfinite)]
    if len(bad):
        raise ValueError(f"{len(bad)} rows' status disagrees with their test loss")
