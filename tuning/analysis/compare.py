"""Leaderboards, figures and the report of the studies found in a results folder."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tuning.analysis.bayes_pairs import ROPE
from tuning.analysis.blocks import DuplicateStudies, check_unique
from tuning.core.atomic import read_json, write_atomically
from tuning.core.files import CONFIG_FILE, SUMMARY_FILE, folders_holding
from tuning.core.lock import is_running
from tuning.core.results import TRIALS_FILE, parameters_in, read_trials
from tuning.core.space import SearchSpace, default_space

if TYPE_CHECKING:
    from tuning.analysis.suite_stats import SuiteStatistics

log = logging.getLogger(__name__)
LEADERBOARD_FILE = "leaderboard.csv"
REGRET_FILE = "regret.csv"  # tabular studies: regret and seconds per trial, per backend
# One task with this many seeds or more also gets the suite's statistics (ranks per seed,
# Friedman, Nemenyi's critical difference): enough blocks for them to say something.
SUITE_BLOCKS = 10
# The best trial's parameters follow test_loss, one column each (`leaderboard_columns`).
LEADING_COLUMNS = ("study", "backend", "dataset", "seed", "best_val_loss", "test_loss")
LEADERBOARD_COLUMNS = (
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
    "folder",  # the study's folder, relative to the compared one
    "library",  # the backend without its worker count
    "workers",  # trials at once (`tuning.analysis.parallel`)
)
LEADERBOARD_FIXED = frozenset(LEADING_COLUMNS + LEADERBOARD_COLUMNS)


def find_studies(out: Path) -> list[Path]:
    """Study folders under ``out`` (any depth) that hold a finished study's summary."""
    return folders_holding(out, SUMMARY_FILE)


@dataclass(frozen=True)
class Unfinished:
    """The study folders under a results folder that hold no summary yet: ``running`` (a live
    process holds their lock) and ``stopped`` (killed or interrupted: a rerun resumes them)."""

    running: list[Path]
    stopped: list[Path]

    def line(self) -> str | None:
        """What `tuning compare` says of them, or None where every study finished."""
        if not (self.running or self.stopped):
            return None
        return (
            f"{len(self.running)} studies still running and {len(self.stopped)} stopped "
            "unfinished: compared without them (compare again once they finish)"
        )


def unfinished_studies(out: Path) -> Unfinished:
    """Study folders under ``out`` that a run started (their settings or rows are there) and that
    have no summary yet, each told running or stopped by its lock (`tuning.core.lock.is_running`)."""
    started = {*folders_holding(out, CONFIG_FILE), *folders_holding(out, TRIALS_FILE)}
    waiting = sorted(d for d in started if not (d / SUMMARY_FILE).exists())
    running = [d for d in waiting if is_running(d)]
    return Unfinished(running, [d for d in waiting if d not in running])


@dataclass(frozen=True)
class FoundStudy:
    """A finished study read from its folder: its summary and its trial rows."""

    folder: Path
    summary: dict
    trials: pd.DataFrame


@dataclass(frozen=True)
class Unreadable:
    """A study folder `tuning compare` left out, and why (one line)."""

    folder: Path
    reason: str


SUMMARY_KEYS = {"study": str, "backend": str, "dataset": str, "seed": int}


def read_study(folder: Path) -> FoundStudy:
    """Read one finished study; a missing, corrupt or foreign file is a ``ValueError`` whose
    message names the file and what is wrong with it."""
    path = folder / SUMMARY_FILE
    for own in (path, folder / TRIALS_FILE):
        if own.is_symlink():  # the harness's own files are never links: this one could be anything
            raise ValueError(f"{own} is a symbolic link: not read as the study's")
    summary = read_json(path, "not a study's summary")
    for key, kind in SUMMARY_KEYS.items():
        value = summary.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{path}: {key} is {value!r}, not a {kind.__name__}")
    for key in ("best_val_loss", "test_loss", "wall_seconds", "search_seconds", "regret"):
        value = summary.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{path}: {key} is {value!r}, not a number")
    for key in ("config", "budget", "spent", "algorithm", "best_params"):
        if summary.get(key) is not None and not isinstance(summary[key], dict):
            raise ValueError(f"{path}: {key} is {summary[key]!r}, not a table")
    if not (folder / TRIALS_FILE).exists():
        raise ValueError(f"{folder / TRIALS_FILE} is missing: the study's rows are gone")
    try:
        trials = read_trials(folder)
    except OSError as exc:
        raise ValueError(f"{folder / TRIALS_FILE} cannot be read ({exc.strerror})") from None
    return FoundStudy(folder, summary, trials)


def read_studies(out: Path) -> tuple[list[FoundStudy], list[Unreadable]]:
    """Every finished study under ``out``, and each one that could not be read (with why): one
    bad study does not stop the comparison of the others."""
    found, skipped = [], []
    for folder in find_studies(out):
        try:
            found.append(read_study(folder))
        except (OSError, ValueError) as exc:
            skipped.append(Unreadable(folder, str(exc)))
            log.warning("left out %s: %s", folder, exc)
    names: dict[str, Path] = {}
    for study in found:
        name = study.summary["study"]
        if name in names:
            raise DuplicateStudies(
                f"two studies named {name}: {names[name]} and {study.folder}; compare one of "
                "them (move the other out of the folder)"
            )
        names[name] = study.folder
    return found, skipped


def leaderboard(out: Path, found: list[FoundStudy] | None = None) -> pd.DataFrame:
    """One row per study, best test loss first within each dataset (``found``: the studies
    `read_studies` read, else read here)."""
    if found is None:
        found, _ = read_studies(out)
    rows = []
    parameters: dict[str, None] = {}  # every study's parameter columns, in order of appearance
    for study in found:
        summary, trials = study.summary, study.trials
        parameters.update(dict.fromkeys(parameters_in(trials.columns)))
        params = summary.get("best_params") or {}
        workers = study_workers(summary)
        rows.append(
            {
                "study": summary["study"],
                "backend": backend_label(summary["backend"], workers),
                "dataset": summary["dataset"],
                "seed": summary["seed"],
                "best_val_loss": summary.get("best_val_loss"),
                "test_loss": summary.get("test_loss"),
                **{n: v for n, v in params.items() if n not in LEADERBOARD_FIXED},
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
                "folder": Path(os.path.relpath(study.folder, out)).as_posix(),
                "library": summary["backend"],
                "workers": workers,
            }
        )
    columns = leaderboard_columns([p for p in parameters if p not in LEADERBOARD_FIXED])
    frame = pd.DataFrame(rows).reindex(columns=columns)
    if frame.empty:
        return frame
    check_unique(frame)
    return frame.sort_values(
        ["dataset", "test_loss", "best_val_loss"], na_position="last", ignore_index=True
    )


def study_workers(summary: dict[str, Any]) -> int:
    """The study's worker count (1 for a study of an earlier version, which had one)."""
    workers = (summary.get("config") or {}).get("workers", 1)
    return workers if isinstance(workers, int) and workers >= 1 else 1


def backend_label(backend: str, workers: int) -> str:
    """How the tables and figures name a backend: ``random``, or ``random@4w`` with 4 workers
    (each worker count of a library is an entry of its own in every ranking)."""
    return backend if workers == 1 else f"{backend}@{workers}w"


def leaderboard_columns(parameters: list[str]) -> list[str]:
    """The leaderboard's columns: `LEADING_COLUMNS`, one per searched parameter (those of the
    studies' ``trials.csv``), then `LEADERBOARD_COLUMNS`."""
    return [*LEADING_COLUMNS, *parameters, *LEADERBOARD_COLUMNS]


def budget_label(budget: dict[str, object]) -> str:
    """``{"trials": None, "epochs": 300, "seconds": None}`` -> ``"epochs=300"``."""
    return " ".join(f"{unit}={limit:g}" for unit, limit in budget.items() if limit is not None)


def write_leaderboard(
    out: Path, found: list[FoundStudy] | None = None
) -> tuple[pd.DataFrame, Path]:
    """Write ``OUT/leaderboard.csv`` atomically and return it with its path."""
    frame = leaderboard(out, found)
    if frame.empty:
        raise FileNotFoundError(f"no finished study (summary.json + trials.csv) under {out}")
    return frame, write_csv(frame, Path(out) / LEADERBOARD_FILE)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table atomically: readers never see half of it."""
    return write_atomically(path, frame.to_csv(index=False))


@dataclass
class Comparison:
    """What `compare` wrote: the two leaderboards and every file's path."""

    studies: pd.DataFrame
    by_backend: pd.DataFrame
    files: dict[str, Path]
    suite: SuiteStatistics | None = None  # when the folder holds several tasks
    skipped: list[Unreadable] = field(default_factory=list)  # studies that could not be read
    unfinished: Unfinished | None = None  # studies running, or stopped, when it compared


def compare(out: Path, target: float | None = None, rope: float = ROPE) -> Comparison:
    """Write ``leaderboard.csv``, ``leaderboard_by_backend.csv``, ``figures/*.png`` and
    ``report.md`` under ``out``; ``target`` is the validation loss for "epochs to target",
    ``rope`` the suite's region of practical equivalence (`tuning.analysis.bayes_pairs`).
    A folder of several tasks (a suite), or of one task with `SUITE_BLOCKS` seeds or more, also
    gets ``leaderboard_suite.csv`` and the suite's figures (`tuning.analysis.suite_stats`), and its report
    opens with the suite's verdict. Tabular studies add ``regret.csv``, the regret-over-budget
    and the table's landscape figures, and the report's section on them
    (`tuning.analysis.table_report`)."""
    from tuning.analysis.aggregate import BY_BACKEND_FILE, by_backend
    from tuning.analysis.anytime import rank_over_budget
    from tuning.analysis.bayes_pairs import PAIRS_FILE, pairs_table
    from tuning.analysis.cost import COST_FILE, cost_table
    from tuning.analysis.html_report import write_html_report
    from tuning.analysis.importance import IMPORTANCE_FILE, importance_table
    from tuning.analysis.parallel import (
        PARALLEL_FILE,
        block_scores,
        is_parallel_grid,
        parallel_section,
        parallel_table,
        plot_parallel,
    )
    from tuning.analysis.plots import plot_all, plot_importance
    from tuning.analysis.report import REPORT_FILE, render_report
    from tuning.analysis.suite_plots import plot_suite
    from tuning.analysis.suite_stats import SUITE_FILE, suite_statistics
    from tuning.analysis.table_report import (
        TASK_CLAIMS_FILE,
        is_tabular,
        load_study_table,
        plot_landscape,
        plot_regret_over_budget,
        regret_over_budget,
        regret_table,
        tabular_section,
        task_claims,
        task_claims_section,
    )

    out = Path(out)
    found, skipped = read_studies(out)
    unfinished = unfinished_studies(out)
    check_one_kind(found)
    check_one_setup(found)
    studies, per_study = write_leaderboard(out, found)
    trials = all_trials(found)
    parallel, verdict = None, None
    if is_parallel_grid(studies):  # the verdict over worker counts; the rest ranks the fewest
        scores = block_scores(studies, trials)
        verdict = parallel_table(scores)
        parallel_files = {
            "parallel": write_csv(verdict, out / PARALLEL_FILE),
            "parallel_figure": plot_parallel(verdict, out / "figures" / "parallel.png"),
        }
        parallel = parallel_section(verdict, scores, "figures/parallel.png")
        studies = studies[studies["workers"] == studies["workers"].min()].reset_index(drop=True)
        trials = trials[trials["study"].isin(studies["study"])].reset_index(drop=True)
    board = by_backend(studies, trials, target)
    files = {"leaderboard": per_study, "by_backend": write_csv(board, out / BY_BACKEND_FILE)}
    summaries = {s.summary["study"]: s.summary for s in found}
    figures: dict[str, Path] = {}
    suite = None
    budgets = {name: summary.get("budget") or {} for name, summary in summaries.items()}
    blocks = studies.groupby(["dataset", "seed"]).ngroups
    if studies["dataset"].nunique() > 1 or blocks >= SUITE_BLOCKS:
        suite = suite_statistics(studies, trials, budgets, rope=rope)
        files["suite"] = write_csv(suite.board, out / SUITE_FILE)
        files["bayesian_pairs"] = write_csv(pairs_table(suite.pairs), out / PAIRS_FILE)
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
        claims = task_claims(studies, summaries)
        files["task_claims"] = write_csv(claims, out / TASK_CLAIMS_FILE)
        tabular = tabular_section(table, regrets, summaries) + task_claims_section(claims)
    costs = cost_table(trials, studies)
    files["cost"] = write_csv(costs, out / COST_FILE)
    if parallel is not None:
        files.update(parallel_files)
    report = render_report(
        out,
        studies,
        board,
        figures,
        summaries,
        suite,
        importance,
        tabular,
        skipped,
        costs,
        parallel,
        verdict,
        unfinished.line(),
    )
    files["report"] = write_atomically(out / REPORT_FILE, report)
    files["report_html"] = write_html_report(
        out,
        report,
        studies,
        board,
        trials,
        summaries,
        suite,
        suite.over_budget if suite is not None else rank_over_budget(studies, trials, budgets),
        [d.name for d in unfinished.running + unfinished.stopped],
    )
    return Comparison(studies, board, {**files, **figures}, suite, skipped, unfinished)


# The settings that make one task's studies comparable: the data, the model and its space, the
# training protocol and the budget. (The backend, its options, the seed and the folders differ by
# design.)
SETUP_FIELDS = (
    "max_rows",
    "target",
    "task",
    "model",
    "model_options",
    "space",
    "max_epochs",
    "batch_size",
    "patience",
    "trials",
    "budget_epochs",
    "budget_seconds",
    "objective",
    "keras_backend",
    "trainer",
)


def check_one_setup(found: list[FoundStudy]) -> None:
    """Refuse a folder in which one task's studies ran under different data, space, protocol or
    budget settings, naming the setting and one study of each value: pooled, they would be
    ranked as if alike, and the report would state the first one's setup for all."""
    by_task: dict[str, dict[str, tuple[Any, Path]]] = {}
    for study in found:
        config = study.summary.get("config") or {}
        seen = by_task.setdefault(study.summary.get("dataset", "?"), {})
        for name in SETUP_FIELDS:
            value = config.get(name)
            if name not in seen:
                seen[name] = (value, study.folder)
            elif seen[name][0] != value:
                first_value, first_folder = seen[name]
                raise ValueError(
                    f"task {study.summary.get('dataset')!r} holds studies run under different "
                    f"settings ({name}: {first_value!r} in {first_folder.name}, {value!r} in "
                    f"{study.folder.name}): compare each setup in a folder of its own"
                )


def check_one_kind(found: list[FoundStudy]) -> None:
    """Refuse a folder that mixes tabular studies (looked up in a table) with trained ones:
    their losses and seconds are not the same measurement, and ranking them together would
    hide it."""
    kinds: dict[bool, list[Path]] = {True: [], False: []}
    for study in found:
        kinds[bool((study.summary.get("config") or {}).get("objective"))].append(study.folder)
    if kinds[True] and kinds[False]:
        raise ValueError(
            f"the folder mixes {len(kinds[True])} tabular studies (e.g. {kinds[True][0]}) with "
            f"{len(kinds[False])} trained ones (e.g. {kinds[False][0]}): compare each kind in a "
            "folder of its own"
        )


def task_spaces(studies: pd.DataFrame, summaries: dict[str, dict]) -> dict[str, SearchSpace]:
    """Each task's search space, as its first study recorded it (the book's when none)."""
    spaces = {}
    for dataset, group in studies.groupby("dataset", sort=True):
        recorded = summaries[group["study"].iloc[0]].get("config", {}).get("space") or {}
        spaces[dataset] = SearchSpace.from_dict(recorded) if recorded else default_space()
    return spaces


def all_trials(found: list[FoundStudy]) -> pd.DataFrame:
    """Every trial row of the studies `read_studies` found, in one frame; ``backend`` as the
    leaderboard labels it (`backend_label`)."""
    frames = [
        s.trials.assign(backend=backend_label(s.summary["backend"], study_workers(s.summary)))
        for s in found
        if len(s.trials)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
