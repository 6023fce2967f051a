"""``OUT/report.md``: the comparison in words and tables, readable on its own."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tuning.analysis.aggregate import ALPHA, BASELINE
from tuning.analysis.bayes_pairs import pairs_in_words
from tuning.analysis.cost import cost_lines
from tuning.analysis.families import families_section, seeds_for_holm
from tuning.analysis.importance import importance_lines
from tuning.analysis.signed_rank import smallest_p
from tuning.analysis.suite_stats import SCORE_CAP, SuiteStatistics, verdict
from tuning.core.space import default_space, describe_space

REPORT_FILE = "report.md"
LOSSES = {"regression": "mean squared error", "classification": "cross-entropy"}
BOOK_MODEL = "the book's MLP, tuning.build_model"
FIGURES_HEADING = "## Figures"  # (report.html leaves this section out: it draws its own)


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(row[k]) for k in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _setup(studies: pd.DataFrame, summaries: Mapping[str, dict]) -> str:
    configs = [s["config"] for s in summaries.values()]
    first = summaries[studies["study"].iloc[0]]
    config = first["config"]
    budgets = sorted(set(studies["budget"]))
    unequal = [d for d, group in studies.groupby("dataset") if group["budget"].nunique() > 1]
    if len(budgets) == 1:
        budget_line = f"`{budgets[0]}` per study, the same for every study"
    elif not unequal:
        budget_line = "per task (below), the same for every study of a task"
    else:
        budget_line = (
            f"**not equal across the studies of {', '.join(unequal)}** "
            f"({', '.join(budgets)}): the comparison is not fair"
        )
    space = config.get("space") or {}
    space_line = (
        ", ".join(f"{name} {json.dumps(spec)}" for name, spec in space.items())
        if space
        else f"the book's: {describe_space(default_space())}"
    )
    protocols = {(c["max_epochs"], c["batch_size"], c["patience"]) for c in configs}
    max_epochs, batch, patience = sorted(protocols)[0]
    per_task = {
        d: {
            (summaries[n]["config"]["max_epochs"], summaries[n]["config"]["patience"])
            for n in group["study"]
        }
        for d, group in studies.groupby("dataset")
    }
    protocol_note = (
        ""
        if len(protocols) == 1
        else " (per task: see below)"
        if all(len(p) == 1 for p in per_task.values())
        else " **Protocols differ across the studies of a task.**"
    )
    lines = [
        *_dataset_lines(studies, summaries),
        f"- Backends: {', '.join(sorted(studies['backend'].unique()))}; "
        f"seeds: {', '.join(map(str, sorted(studies['seed'].unique())))} "
        f"({studies['study'].nunique()} studies).",
        f"- Budget: {budget_line}. Epochs count every epoch any trial (or fold) trained; "
        "seconds are the search's wall time.",
        f"- Training protocol of every trial: at most {max_epochs} epochs, batch {batch}, early "
        f"stopping on validation loss with patience {patience} (best weights kept), NaN "
        f"guard{protocol_note}.",
        "- Each study's best configuration is retrained once under the same protocol (outside "
        "the budget) and scored on the test split, which no search ever sees.",
        f"- Model: {config.get('model') or BOOK_MODEL}.",
        f"- Search space: {space_line}.",
    ]
    return "\n".join(lines) + "\n"


def _dataset_lines(studies: pd.DataFrame, summaries: Mapping[str, dict]) -> list[str]:
    """One line per dataset: its task, loss and split sizes."""
    lines = []
    for dataset, group in studies.groupby("dataset", sort=True):
        summary = summaries[group["study"].iloc[0]]
        sizes = "/".join(map(str, summary.get("split_sizes") or []))
        rows = summary["config"].get("max_rows")
        config = summary["config"]
        lines.append(
            f"- Dataset: {dataset} ({summary['task']}, loss {LOSSES.get(summary['task'], '?')}; "
            f"train/validation/test rows {sizes}"
            f"{'; first ' + str(rows) + ' rows of each split' if rows else ''}; budget "
            f"`{group['budget'].iloc[0]}`, at most {config['max_epochs']} epochs a trial, "
            f"patience {config['patience']})."
        )
    return lines


def _leaderboard_rows(board: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for rank, r in enumerate(board.itertuples(index=False), start=1):
        half = (r.test_loss_ci_high - r.test_loss_ci_low) / 2
        rows.append(
            {
                "#": rank,
                "backend": r.backend,
                "seeds": r.n_seeds,
                "test loss mean ± 95% CI": f"{fmt(r.test_loss_mean)} ± {fmt(half, 2)}",
                "test median": r.test_loss_median,
                "test std": r.test_loss_std,
                "best val mean": r.best_val_loss_mean,
                "mean rank": r.mean_rank,
                "wins": r.wins,
                "epochs": r.epochs_mean,
                "seconds": r.seconds_mean,
                "trials": r.trials_mean,
                "reached target": f"{r.reached_target}/{r.n_seeds}",
                "epochs to target": r.epochs_to_target_mean,
                "vs random (Wilcoxon p, Holm)": r.vs_random
                + (
                    ""
                    if math.isnan(r.wilcoxon_p)
                    else f" (p={r.wilcoxon_p:.3g}, Holm {r.wilcoxon_p_holm:.3g})"
                ),
            }
        )
    return rows


def _in_words(board: pd.DataFrame) -> str:
    lines = []
    best = board.iloc[0]
    lines.append(
        f"- Lowest mean rank: **{best.backend}** (mean rank {best.mean_rank:.2f}, "
        f"{best.wins} win(s) in {best.n_seeds} seed(s), mean test loss {fmt(best.test_loss_mean)})."
    )
    for r in board.itertuples(index=False):
        ci = (
            f" (95% CI {fmt(r.test_loss_ci_low)} to {fmt(r.test_loss_ci_high)})"
            if not math.isnan(r.test_loss_ci_low)
            else ""
        )
        if r.backend == BASELINE:
            lines.append(
                f"- {r.backend}: the baseline, mean test loss {fmt(r.test_loss_mean)}{ci}."
            )
            continue
        if r.n_pairs and not math.isnan(r.wilcoxon_p):
            leans = "lower" if r.wilcoxon_p_lower < r.wilcoxon_p_higher else "higher"
            failed = (
                f"; its {r.no_model_pairs} studies without a model count as its worst results"
                if r.no_model_pairs
                else ""
            )
            test = (
                f"paired over {r.n_pairs} seeds, the test leans to a {leans} test loss than "
                f"random search's (Hodges-Lehmann estimate of the difference "
                f"{fmt(r.test_loss_diff_hl, 3)}, median {fmt(r.test_loss_diff_median, 3)}{failed}); "
                f"Wilcoxon signed-rank p = {fmt(r.wilcoxon_p, 3)} (one-sided: lower "
                f"{fmt(r.wilcoxon_p_lower, 3)}, higher {fmt(r.wilcoxon_p_higher, 3)}; Holm-"
                f"adjusted {fmt(r.wilcoxon_p_holm, 3)}): **{r.vs_random}**"
            )
        elif r.n_pairs:
            test = f"**{r.vs_random}**"
        else:
            test = "no seed to pair it with random search"
        lines.append(f"- {r.backend}: mean test loss {fmt(r.test_loss_mean)}{ci}; {test}.")
    family = int(board["tests_in_family"].iloc[0]) if "tests_in_family" in board else 0
    if family:
        lines.append(
            f"- The tests against random search form one family of {family} across the report: "
            f'verdicts follow Holm-adjusted p-values, so the chance of any false "better" or '
            f'"worse" in this family is at most {ALPHA}.'
        )
    n = int(board["n_pairs"].max()) if len(board) else 0
    if n:
        floor = smallest_p(n)
        threshold = ALPHA / max(family, 1)  # Holm's first step
        lines.append(
            f"- With {n} paired seeds the smallest p-value the exact test can give is "
            f"{floor:.3g}"
            + (
                f", and Holm's first threshold over the family's {family} tests is "
                f"{threshold:.3g}: no difference can be called significant at this size; "
                f"{seeds_for_holm(family)} seeds or more are needed."
                if floor >= threshold
                else f": only a difference in the same direction in (nearly) every seed survives "
                f"Holm's first threshold, {threshold:.3g}."
            )
        )
    target = board["target_val_loss"].iloc[0]
    lines.append(
        f"- Target validation loss {fmt(target)} (random search's median final result): "
        + "; ".join(
            f"{r.backend} reached it in {r.reached_target}/{r.n_seeds} seeds"
            + (
                f" after {r.epochs_to_target_mean:.0f} epochs on average"
                if r.reached_target
                else ""
            )
            for r in board.itertuples(index=False)
        )
        + "."
    )
    if any(str(b).partition(":")[0] == "sklearn" for b in board["backend"]):
        lines.append(
            "- sklearn's validation loss is a cross-validation mean over folds of the training "
            "split, not the shared validation split: compare it with the others by test loss."
        )
    return "\n".join(lines) + "\n"


def _best_overall(studies: pd.DataFrame, summaries: Mapping[str, dict], out: Path) -> str:
    lines = []
    for dataset, group in studies.groupby("dataset", sort=True):
        ranked = group.dropna(subset=["test_loss"]).sort_values("test_loss")
        if ranked.empty:
            lines.append(f"- {dataset}: no study finished with a model.")
            continue
        top = ranked.iloc[0]
        s = summaries[top["study"]]
        if "model_file" in s:
            model = f"{top['folder']}/{s['model_file']}"
            saved = f"model saved as `{model}`"
        else:  # a tabular study: looked up, never trained here
            saved = f"looked up in table `{s.get('table')}` (no model file)"
        lines.append(
            f"- {dataset}: **{top['backend']}**, seed {top['seed']} (study `{top['study']}`): "
            f"test loss {fmt(s['test_loss'])}, best val loss {fmt(s['best_val_loss'])}, "
            f"parameters `{json.dumps(s['best_params'])}`; {saved}."
        )
    return "\n".join(lines) + "\n"


def _suite_section(suite: SuiteStatistics) -> list[str]:
    rows = [
        {
            "backend": r.backend,
            "mean rank": r.mean_rank,
            "wins": r.wins,
            "IQM score [95% CI]": f"{fmt(r.score_iqm, 3)} [{fmt(r.score_iqm_ci_low, 3)}, "
            f"{fmt(r.score_iqm_ci_high, 3)}]",
            "mean score [95% CI]": f"{fmt(r.score_mean, 3)} [{fmt(r.score_mean_ci_low, 3)}, "
            f"{fmt(r.score_mean_ci_high, 3)}]",
            "better than": r.better_than.replace(";", ", ") or "-",
        }
        for r in suite.board.itertuples(index=False)
    ]
    return [
        "## Suite verdict\n",
        verdict(suite),
        *(["\n".join(pairs_in_words(suite.pairs)) + "\n"] if suite.pairs else []),
        markdown_table(rows),
        "\nA study's **normalized score** is (its test loss - the lowest test loss any study "
        "reached on the task) / (random search's mean test loss on the task - that lowest): 0 is "
        "the best model found for the task, 1 is what random search finds on average; lower is "
        f"better. Scores are clipped to [0, {SCORE_CAP:g}]; a study without a model scores "
        f"{SCORE_CAP:g} and ranks last in its block; where random search's mean equals the best, "
        "the task's range (worst - best) is the scale, and a task on which every study tied "
        "scores 0. IQM is the mean of the middle half of the scores over every (task, seed); "
        "intervals are 95% stratified-bootstrap percentile intervals (seeds resampled within "
        "each task). Ranks are taken within each (task, seed) block by test loss; the Friedman "
        "test asks whether all backends rank alike, and two backends whose mean ranks differ by "
        "more than Nemenyi's critical difference are distinguishable (Demšar 2006). The Bayesian "
        "signed-rank test (Benavoli et al. 2017) gives each pair the posterior probability that "
        'the region "one ahead by more than the ROPE", "within it" or "the other ahead" '
        "holds the most of the blocks' differences (`bayesian_pairs.csv`; what that does and "
        "does not say: its caveat above). Table: `leaderboard_suite.csv`. The per-task sections "
        "follow.\n",
    ]


def _skipped_section(skipped: Sequence[Any], out: Path) -> list[str]:
    """The studies `tuning compare` could not read (`tuning.analysis.compare.Unreadable`), each with why."""
    if not skipped:
        return []
    return [
        f"**Left out: {len(skipped)} studies that could not be read** (the figures below are "
        "without them):\n",
        "\n".join(
            f"- `{Path(os.path.relpath(s.folder, out)).as_posix()}`: {s.reason}" for s in skipped
        )
        + "\n",
    ]


def describe_configuration(params: Mapping[str, Any] | None) -> str:
    """``name=value`` pairs of a configuration, floats to 4 significant digits."""
    if not params:
        return "-"
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def render_report(
    out: Path,
    studies: pd.DataFrame,
    board: pd.DataFrame,
    figures: Mapping[str, Path],
    summaries: Mapping[str, dict],
    suite: SuiteStatistics | None = None,
    importance: pd.DataFrame | None = None,
    tabular: Sequence[str] | None = None,
    skipped: Sequence[Any] = (),
    costs: pd.DataFrame | None = None,
    parallel: str | None = None,
    parallel_verdict: pd.DataFrame | None = None,
    unfinished: str | None = None,
) -> str:
    """The text of ``OUT/report.md`` (`REPORT_FILE`) from the two leaderboards, the figures and each study's summary
    (by study name); with ``suite`` (several tasks), it opens with the suite's verdict;
    ``importance`` (`tuning.analysis.importance.importance_table`) adds which hyperparameters mattered;
    ``tabular`` (`tuning.analysis.table_report.tabular_section`), the table and the regrets;
    ``costs`` (`tuning.analysis.cost.cost_table`), what each backend spent, compiling included;
    ``parallel`` (`tuning.analysis.parallel.parallel_section`), the verdict over worker counts,
    and ``parallel_verdict`` its table (`tuning.analysis.parallel.parallel_table`); ``unfinished``
    says how many studies of the folder were left out unfinished (running, or stopped)."""
    out = Path(out)
    parts = [
        f"# Tuning benchmark: {', '.join(sorted(studies['dataset'].unique()))}\n",
        f"Written by `tuning compare` on {time.strftime('%Y-%m-%d %H:%M')} from "
        f"{len(studies)} finished studies under `{out.name}/`. Tables: `leaderboard_by_backend.csv` "
        "(per backend) and `leaderboard.csv` (per study).\n",
        *([f"**{unfinished[0].upper()}{unfinished[1:]}.**\n"] if unfinished else []),
        *_skipped_section(skipped, out),
        *(_suite_section(suite) if suite is not None else []),
        *families_section(board, suite, parallel_verdict),
        *(tabular or []),
        *([parallel] if parallel else []),
        "## Setup\n",
        _setup(studies, summaries),
    ]
    for dataset, group in board.groupby("dataset", sort=True):
        parts += [
            f"## Leaderboard: {dataset}\n",
            "Backends by mean rank of test loss across seeds (1 = best in a seed).\n",
            markdown_table(_leaderboard_rows(group)),
            "\n### In plain words\n",
            _in_words(group.reset_index(drop=True)),
        ]
    if importance is not None and not importance.empty:
        parts += [
            "## Hyperparameters that mattered\n",
            "fANOVA importance of each searched parameter: the share of the variance of "
            "log(validation loss) it explains alone, over every complete trial of the task "
            "(all backends and seeds; Optuna's `FanovaImportanceEvaluator`; `importance.csv`).\n",
            "\n".join(importance_lines(importance)) + "\n",
        ]
    if costs is not None and not costs.empty:
        parts += ["## Cost\n", "\n".join(cost_lines(costs)) + "\n"]
    parts.append(FIGURES_HEADING + "\n")
    captions = {
        "importance": "Hyperparameter importance (fANOVA) per task",
        "exploration": "How each hyperparameter was explored, per backend",
        "best_so_far_epochs": "Best validation loss so far against epochs spent",
        "best_so_far_seconds": "Best validation loss so far against wall seconds",
        "test_loss": "Test loss of each study's best model",
        "hyperparameters": "Hyperparameters tried, coloured by validation loss",
        "regret_over_budget": "Regret of the incumbent over the budget (tabular)",
        "landscape": "The table's landscape: validation loss over width x learning rate",
    }
    for name, path in figures.items():
        rel = Path(os.path.relpath(path, out)).as_posix()
        parts.append(f"### {captions.get(name, name)}\n\n![{captions.get(name, name)}]({rel})\n")
    parts += [
        "## Best model overall\n",
        "The study whose retrained best configuration scored the lowest test loss.\n",
        _best_overall(studies, summaries, out),
    ]
    per_study = [
        {
            "study": r.study,
            "backend": r.backend,
            "seed": r.seed,
            "test loss": r.test_loss,
            "best val loss": r.best_val_loss,
            "trials": r.trials,
            "epochs": r.epochs,
            "seconds": r.seconds,
            "best configuration": describe_configuration(summaries[r.study].get("best_params")),
        }
        for r in studies.itertuples(index=False)
    ]
    parts += ["## Every study\n", markdown_table(per_study)]
    return "\n".join(parts)
