"""What `tuning compare` adds for tabular studies (``--objective tabular:TABLE``): each study's
regret, regret over the budget, the table's own landscape, and the report's section on them.

A study's **regret** is the test loss of its winner (the table's entry of the configuration it
would retrain) minus the lowest test loss in the table for the same table seed: 0 means the
search found the best model the grid holds. Over the budget, the winner is the incumbent: the
complete trial of lowest validation loss so far.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuning.analysis.plots import UNKNOWN, backend_colours, dataset_panels, plt, save_figure
from tuning.analysis.report import describe_configuration, fmt, markdown_table

log = logging.getLogger(__name__)
FRACTIONS = np.linspace(0.0, 1.0, 101)
REGRET_FLOOR = 1e-4
TASK_CLAIMS_FILE = "leaderboard_task_claims.csv"  # regrets are drawn on a log axis: 0 (the table's best found) shows here


def is_tabular(summaries: Mapping[str, dict]) -> bool:
    """True when every study of the folder looked its trials up in a table."""
    return bool(summaries) and all(
        (s.get("config") or {}).get("objective") for s in summaries.values()
    )


def regret_over_budget(trials: pd.DataFrame, summaries: Mapping[str, dict]) -> pd.DataFrame:
    """Each study's regret at each fraction of its epoch budget (`FRACTIONS`): the incumbent's
    table test loss minus the table's best for the study's table seed (NaN before its first
    complete trial). Columns: study, backend, dataset, seed, fraction, regret."""
    rows = []
    for study, group in trials.sort_values(["study", "trial"]).groupby("study", sort=True):
        summary = summaries.get(study) or {}
        best = summary.get("table_best_test_loss")
        limit = (summary.get("budget") or {}).get("epochs")
        if best is None or not limit:
            continue
        complete = group["status"] == "complete"
        val = group["val_loss"].where(complete, np.inf).to_numpy(dtype=float)
        test = group["table_test_loss"].to_numpy(dtype=float)
        incumbent = np.minimum.accumulate(val)
        # the row that holds the incumbent validation loss at each row: the last strict
        # improvement (the first row of the lowest loss so far, as argmin picks)
        improves = val < np.concatenate([[np.inf], incumbent[:-1]])
        holder = np.maximum.accumulate(np.where(improves, np.arange(len(val)), 0))
        regret = np.where(np.isfinite(incumbent), test[holder] - best, np.nan)
        spent = group["cum_epochs"].to_numpy(dtype=float) / float(limit)
        index = np.searchsorted(spent, FRACTIONS + 1e-9, side="right") - 1
        values = np.where(index >= 0, regret[np.clip(index, 0, None)], np.nan)
        first = group.iloc[0]
        rows.append(
            pd.DataFrame(
                {
                    "study": study,
                    "backend": first["backend"],
                    "dataset": first["dataset"],
                    "seed": first["seed"],
                    "fraction": FRACTIONS,
                    "regret": values,
                }
            )
        )
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def plot_regret_over_budget(curves: pd.DataFrame, path: Path) -> Path:
    """Regret against the fraction of the budget spent, per backend: median and quartiles over
    seeds (a study with no complete trial yet counts as infinitely bad)."""
    colours = backend_colours(curves["backend"])
    datasets = sorted(curves["dataset"].unique())
    fig, axes = dataset_panels(len(datasets))
    for ax, dataset in zip(axes[0], datasets, strict=True):
        shown = curves[curves["dataset"] == dataset]
        for backend, mine in shown.groupby("backend", sort=True):
            matrix = mine.pivot(index="study", columns="fraction", values="regret")
            # no complete trial yet: a finite stand-in for infinitely bad, masked after
            values = np.nan_to_num(matrix.to_numpy(dtype=float), nan=UNKNOWN)
            q25, median, q75 = np.percentile(values, [25, 50, 75], axis=0)
            x = matrix.columns.to_numpy(dtype=float)
            floor = REGRET_FLOOR

            def shown_values(v: np.ndarray, floor: float = floor) -> np.ndarray:
                return np.where(v < UNKNOWN * 1e-50, np.maximum(v, floor), np.nan)

            colour = colours[backend]
            label = f"{backend} (n={len(matrix)})"
            ax.step(x, shown_values(median), where="post", color=colour, label=label)
            ax.fill_between(
                x, shown_values(q25), shown_values(q75), step="post", alpha=0.15, color=colour
            )
        ax.set_yscale("log")
        ax.set(
            title=f"{dataset}: regret of the incumbent (median, quartiles over seeds)",
            xlabel="fraction of the epoch budget spent",
            ylabel=f"test loss - table's best (0 drawn at {REGRET_FLOOR:g})",
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def load_study_table(summaries: Mapping[str, dict]) -> Any:
    """The table the studies looked up (the first study's), or None when it is not there."""
    from tuning.evaluation.tabular.table import load_table

    folder = next((s.get("table") for s in summaries.values() if s.get("table")), None)
    if folder is None or not (Path(folder) / "table.csv").exists():
        log.warning("the studies' table %s is not there: no landscape figure", folder)
        return None
    return load_table(Path(folder))


def _tick(value: Any) -> str:
    return f"{value:.1e}" if isinstance(value, float) else str(value)


def plot_landscape(table: Any, path: Path) -> Path | None:
    """The table's own landscape: best validation loss (mean over its seeds) over a grid of
    three parameters: one panel per value of the one with fewest values, the other two as rows
    and columns (the one with the most values across). Other grids get no figure."""
    grid = table.grid
    if len(grid) != 3:
        return None
    panel_name, row_name, column_name = sorted(grid, key=lambda name: (len(grid[name]), name))
    rows = [
        {**entry.params, "seed": seed, "best_val_loss": entry.best_val_loss}
        for (_, seed), entry in table.entries.items()
    ]
    frame = pd.DataFrame(rows)
    panels = sorted(grid[panel_name])
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False, layout="constrained"
    )
    means = frame.groupby([panel_name, row_name, column_name])["best_val_loss"].mean()
    finite = means[np.isfinite(means)]
    low, high = float(finite.min()), float(finite.quantile(0.95))
    image = None
    for ax, value in zip(axes[0], panels, strict=True):
        panel = means.loc[value].unstack(column_name)
        values = np.clip(panel.to_numpy(dtype=float), low, high)
        image = ax.imshow(
            np.log10(values), origin="lower", aspect="auto", cmap="viridis_r",
            vmin=math.log10(low), vmax=math.log10(high),
        )  # fmt: skip
        columns, rows_ = panel.columns.to_numpy(), panel.index.to_numpy()
        ax.set_xticks(range(len(columns))[::2], [_tick(c) for c in columns[::2]], rotation=45)
        ax.set_yticks(range(len(rows_)), [_tick(r) for r in rows_])
        ax.set(title=f"{panel_name} = {value}", xlabel=column_name, ylabel=row_name)
    best, mean = table.best_overall()
    fig.suptitle(
        f"Table {table.folder.name}: validation loss (mean of {len(table.seeds)} seeds, "
        f"clipped at the 95th percentile); best by test loss: {describe_configuration(best)} "
        f"({mean:.4g})",
        fontsize=9,
    )
    fig.colorbar(image, ax=axes[0].tolist(), label="log10 best val_loss")
    return save_figure(fig, path)


def regret_table(studies: pd.DataFrame, summaries: Mapping[str, dict]) -> pd.DataFrame:
    """Per backend: median, quartiles and mean of its studies' regret, the share of studies
    that found the table's best, and the real seconds its library took per trial."""
    rows = []
    frame = studies.assign(
        regret=[summaries[s].get("regret", math.nan) for s in studies["study"]],
        real_seconds=[summaries[s].get("search_seconds", math.nan) for s in studies["study"]],
    )
    for (dataset, backend), group in frame.groupby(["dataset", "backend"], sort=True):
        regret = group["regret"].to_numpy(dtype=float)
        rows.append(
            {
                "dataset": dataset,
                "backend": backend,
                "studies": len(group),
                "regret_median": float(np.nanmedian(regret)),
                "regret_q25": float(np.nanpercentile(regret, 25)),
                "regret_q75": float(np.nanpercentile(regret, 75)),
                "regret_mean": float(np.nanmean(regret)),
                "found_best": float(np.mean(regret <= 1e-12)),
                "trials_mean": float(group["trials"].mean()),
                "seconds_per_trial": float(group["real_seconds"].sum() / group["trials"].sum()),
            }
        )
    return pd.DataFrame(rows).sort_values(["dataset", "regret_mean"], ignore_index=True)


def tabular_section(table: Any, regrets: pd.DataFrame, summaries: Mapping[str, dict]) -> list[str]:
    """The report's section: the table, its best configuration, every backend's regret."""
    first = next(iter(summaries.values()))
    lines = ["## Tabular objective\n"]
    if table is not None:
        best, mean = table.best_overall()
        per_seed = ", ".join(
            f"seed {seed}: {describe_configuration(table.best(seed).params)} "
            f"({fmt(table.best(seed).test_loss)})"
            for seed in table.seeds
        )
        lines.append(
            f"Every trial was looked up in the table `{table.folder}` ({table.size} "
            f"configurations x {len(table.seeds)} seeds, trained once by `tuning tabulate`; "
            f"a study of seed s reads table seed s mod {len(table.seeds)}), not trained. The "
            f"table's best configuration (mean test loss over its seeds): "
            f"**{describe_configuration(best)}**, test loss {fmt(mean)}. Best per table seed: "
            f"{per_seed}.\n"
        )
    else:
        lines.append(f"Every trial was looked up in the table `{first.get('table')}`.\n")
    lines.append(
        "A study's **regret** is its winner's test loss (the table's entry of the configuration "
        "it retrains) minus the table's best test loss for its seed: 0 means it found the best "
        "model the grid holds. `found best`: the share of studies with regret 0. Seconds per "
        "trial are real seconds of the search (the library's own work and the lookups); the "
        "simulated clock (`seconds` in the leaderboards) adds the table's training time.\n"
    )
    lines.append(
        markdown_table(
            [
                {
                    "dataset": r.dataset,
                    "backend": r.backend,
                    "studies": r.studies,
                    "regret median [q25, q75]": f"{fmt(r.regret_median)} [{fmt(r.regret_q25)}, "
                    f"{fmt(r.regret_q75)}]",
                    "regret mean": fmt(r.regret_mean),
                    "found best": f"{r.found_best:.0%}",
                    "trials": fmt(r.trials_mean, 3),
                    "seconds per trial": fmt(r.seconds_per_trial, 3),
                }
                for r in regrets.itertuples(index=False)
            ]
        )
    )
    return lines


def task_claims(studies: pd.DataFrame, summaries: Mapping[str, dict]) -> pd.DataFrame:
    """The per-task board for claims about the *task*: one block per (task, table seed), each
    backend's studies that read that table seed pooled into one observation (the median of their
    test losses, a study without a model counted as the worst), tested against random search as
    the per-task board tests (`tuning.analysis.aggregate.by_backend`, Holm across the family).
    Search seeds that share a table seed repeat the same training noise: counted as separate
    blocks they would test a claim about the table as if it were about the task."""
    from tuning.analysis.aggregate import by_backend, standing_trials

    frame = studies.assign(
        table_seed=[int((summaries.get(s) or {}).get("table_seed", -1)) for s in studies["study"]],
        test_loss=studies["test_loss"].astype(float).fillna(np.inf),
    )
    pooled = (
        frame.groupby(["dataset", "backend", "table_seed"], as_index=False)
        .agg(
            test_loss=("test_loss", "median"),
            best_val_loss=("best_val_loss", "median"),
            epochs=("epochs", "mean"),
            seconds=("seconds", "mean"),
            trials=("trials", "mean"),
            studies=("study", "count"),
        )
        .rename(columns={"table_seed": "seed"})
    )
    pooled["test_loss"] = pooled["test_loss"].replace(np.inf, np.nan)
    pooled["study"] = (
        pooled["dataset"] + "_" + pooled["backend"] + "_t" + pooled["seed"].astype(str)
    )
    return by_backend(pooled, standing_trials(pooled))


def task_claims_section(claims: pd.DataFrame) -> list[str]:
    """The report's words on the two kinds of claim a tabular comparison supports."""
    from tuning.analysis.signed_rank import smallest_p

    draws = int(claims["n_seeds"].max()) if len(claims) else 0
    lines = [
        "### Claims about the table, and claims about the task\n",
        "The leaderboards below treat each search seed as a block: their tests are claims "
        "about **this table** (which library searches these recorded curves better). A claim "
        f"about **the task** (real training) has the table's {draws} training-noise draws as its "
        "unit: studies that read the same draw share its noise. Pooled per draw (the median of "
        "their test losses, no model the worst) and tested against random search, Holm across "
        "the family (`leaderboard_task_claims.csv`):\n",
    ]
    floor = smallest_p(draws)
    others = claims[claims["backend"] != "random"]
    for r in others.itertuples(index=False):
        p = (
            "no test"
            if math.isnan(r.wilcoxon_p)
            else f"p {r.wilcoxon_p:.3g}, Holm {r.wilcoxon_p_holm:.3g}"
        )
        lines.append(f"- {r.dataset}, {r.backend}: {r.vs_random} ({r.n_pairs} draws; {p}).")
    if draws and floor >= 0.05:
        lines.append(
            f"- With {draws} draws the smallest p-value a signed-rank test can give is "
            f"{floor:.3g}: no claim about the task can be significant at 0.05. Tabulate more "
            "draws (`tuning tabulate --seeds 0-9`; cheap tables get 10 by default)."
        )
    return ["\n".join(lines) + "\n"]
