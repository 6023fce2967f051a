"""Leaderboards, figures and the report of the studies found in a results folder."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tuning.atomic import write_atomically
from tuning.results import TRIALS_FILE, read_trials
from tuning.space import SearchSpace, default_space

if TYPE_CHECKING:
    from tuning.suite_stats import SuiteStatistics

log = logging.getLogger(__name__)
LEADERBOARD_FILE = "leaderboard.csv"
REGRET_FILE = "regret.csv"  # tabular studies: regret and seconds per trial, per backend
# One task with this many seeds or more also gets the suite's statistics (ranks per seed,
# Friedman, Nemenyi's critical difference): enough blocks for them to say something.
SUITE_BLOCKS = 10
LEADERBOARD_COLUMNS = (
    "study",
    "backend",
    "dataset",
    "seed",
    "best_val_loss",
    "test_loss",
    "n_hidden",
    "n_neurons",
    "learning_rate",
    "trials",
    "epochs",
    "wall_seconds",
    # more columns, after the documented ones
    "test_accuracy",
    "trials_failed",
    "trials_pruned",
    "search_seconds",
    "seconds",
    "budget",
    "algorithm",
    "regret",  # a tabular study's: its test loss minus the table's best
)


def find_studies(out: Path) -> list[Path]:
    """Study folders under ``out`` (any depth) that hold a finished study's summary."""
    return sorted(
        p.parent for p in Path(out).rglob("summary.json") if (p.parent / TRIALS_FILE).exists()
    )


def leaderboard(out: Path) -> pd.DataFrame:
    """One row per study, best test loss first within each dataset."""
    rows = []
    for study_dir in find_studies(out):
        summary = load_summary(study_dir)
        trials = read_trials(study_dir)
        params = summary.get("best_params") or {}
        rows.append(
            {
                "study": summary["study"],
                "backend": summary["backend"],
                "dataset": summary["dataset"],
                "seed": summary["seed"],
                "best_val_loss": summary.get("best_val_loss"),
                "test_loss": summary.get("test_loss"),
                "n_hidden": params.get("n_hidden"),
                "n_neurons": params.get("n_neurons"),
                "learning_rate": params.get("learning_rate"),
                "trials": len(trials),
                "epochs": int(trials["epochs"].sum()),
                # the search's wall seconds as its budget counted them
                "seconds": (summary.get("spent") or {}).get("seconds"),
                "budget": budget_label(summary.get("budget") or {}),
                "wall_seconds": summary.get("wall_seconds"),
                "test_accuracy": summary.get("test_accuracy"),
                "trials_failed": int((trials["status"] == "failed").sum()),
                "trials_pruned": int((trials["status"] == "pruned").sum()),
                "search_seconds": summary.get("search_seconds"),
                # the algorithm (studies of an earlier version: their backend's name)
                "algorithm": (summary.get("algorithm") or {}).get("name", summary["backend"]),
                "regret": summary.get("regret"),
            }
        )
    frame = pd.DataFrame(rows, columns=list(LEADERBOARD_COLUMNS))
    if frame.empty:
        return frame
    return frame.sort_values(
        ["dataset", "test_loss", "best_val_loss"], na_position="last", ignore_index=True
    )


def budget_label(budget: dict[str, object]) -> str:
    """``{"trials": None, "epochs": 300, "seconds": None}`` -> ``"epochs=300"``."""
    return " ".join(f"{unit}={limit:g}" for unit, limit in budget.items() if limit is not None)


def write_leaderboard(out: Path) -> tuple[pd.DataFrame, Path]:
    """Write ``OUT/leaderboard.csv`` atomically and return it with its path."""
    frame = leaderboard(out)
    if frame.empty:
        raise FileNotFoundError(f"no finished study (summary.json + trials.csv) under {out}")
    return frame, write_csv(frame, Path(out) / LEADERBOARD_FILE)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table atomically: readers never see half of it."""
    return write_atomically(path, frame.to_csv(index=False))


def load_summary(study_dir: Path) -> dict:
    return json.loads((Path(study_dir) / "summary.json").read_text(encoding="utf-8"))


@dataclass
class Comparison:
    """What `compare` wrote: the two leaderboards and every file's path."""

    studies: pd.DataFrame
    by_backend: pd.DataFrame
    files: dict[str, Path]
    suite: SuiteStatistics | None = None  # when the folder holds several tasks


def compare(out: Path, target: float | None = None) -> Comparison:
    """Write ``leaderboard.csv``, ``leaderboard_by_backend.csv``, ``figures/*.png`` and
    ``report.md`` under ``out``; ``target`` is the validation loss for "epochs to target".
    A folder of several tasks (a suite), or of one task with `SUITE_BLOCKS` seeds or more, also
    gets ``leaderboard_suite.csv`` and the suite's figures (`tuning.suite_stats`), and its report
    opens with the suite's verdict. Tabular studies add ``regret.csv``, the regret-over-budget
    and the table's landscape figures, and the report's section on them
    (`tuning.tabular_report`)."""
    from tuning.aggregate import BY_BACKEND_FILE, by_backend
    from tuning.importance import IMPORTANCE_FILE, importance_table
    from tuning.plots import plot_all, plot_importance
    from tuning.report import write_report
    from tuning.suite_plots import plot_suite
    from tuning.suite_stats import SUITE_FILE, suite_statistics
    from tuning.tabular_report import (
        is_tabular,
        load_study_table,
        plot_landscape,
        plot_regret_over_budget,
        regret_over_budget,
        regret_table,
        tabular_section,
    )

    out = Path(out)
    studies, per_study = write_leaderboard(out)
    trials = all_trials(out)
    board = by_backend(studies, trials, target)
    files = {"leaderboard": per_study, "by_backend": write_csv(board, out / BY_BACKEND_FILE)}
    summaries = {name: load_summary(out / name) for name in studies["study"]}
    figures: dict[str, Path] = {}
    suite = None
    blocks = studies.groupby(["dataset", "seed"]).ngroups
    if studies["dataset"].nunique() > 1 or blocks >= SUITE_BLOCKS:
        budgets = {name: summary.get("budget") or {} for name, summary in summaries.items()}
        suite = suite_statistics(studies, trials, budgets)
        files["suite"] = write_csv(suite.board, out / SUITE_FILE)
        figures.update(plot_suite(suite, out / "figures"))
    figures.update(plot_all(trials, studies, out / "figures"))
    importance = importance_table(trials, task_spaces(studies, summaries))
    if not importance.empty:
        files["importance"] = write_csv(importance, out / IMPORTANCE_FILE)
        figures["importance"] = plot_importance(importance, out / "figures" / "importance.png")
    tabular = None
    if is_tabular(summaries):
        regrets = regret_table(studies, summaries)
        files["regret"] = write_csv(regrets, out / REGRET_FILE)
        curves = regret_over_budget(trials, summaries)
        if not curves.empty:
            figures["regret_over_budget"] = plot_regret_over_budget(
                curves, out / "figures" / "regret_over_budget.png"
            )
        table = load_study_table(summaries)
        landscape = (
            None if table is None else plot_landscape(table, out / "figures" / "landscape.png")
        )
        if landscape is not None:
            figures["landscape"] = landscape
        tabular = tabular_section(table, regrets, summaries)
    files["report"] = write_report(
        out, studies, board, figures, summaries, suite, importance, tabular
    )
    return Comparison(studies, board, {**files, **figures}, suite)


def task_spaces(studies: pd.DataFrame, summaries: dict[str, dict]) -> dict[str, SearchSpace]:
    """Each task's search space, as its first study recorded it (the book's when none)."""
    spaces = {}
    for dataset, group in studies.groupby("dataset", sort=True):
        recorded = summaries[group["study"].iloc[0]].get("config", {}).get("space") or {}
        spaces[dataset] = SearchSpace.from_dict(recorded) if recorded else default_space()
    return spaces


def all_trials(out: Path) -> pd.DataFrame:
    """Every trial row of every finished study under ``out``, in one frame."""
    frames = [read_trials(d) for d in find_studies(out)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
