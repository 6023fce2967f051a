"""The interactive figures of ``report.html`` (Plotly figures, as their JSON specs).

Each trace that belongs to one backend carries ``meta.backend``: the page's backend switches
hide and show it (the critical-difference diagram's markers carry none: its ranks are among all
the backends). Hovering a point shows its study, trial and configuration.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.colors import to_hex

from tuning.analysis.plots import backend_colours, best_so_far
from tuning.analysis.report import describe_configuration

# The x axes of the best-so-far curves: a column of the trial rows, and its axis title.
SPEND_AXES = {
    "cum_epochs": "epochs spent",
    "cum_seconds": "seconds spent (the study's clock)",
    "ended": "wall-clock seconds (parallel studies: when the trial ended)",
}
LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "height": 450,  # (a figure sets its own height: the page's blocks have none)
}


@dataclass(frozen=True)
class Figure:
    """One figure of the page: its element id, its caption, and its Plotly spec."""

    key: str
    caption: str
    spec: dict[str, Any]


def configuration(params: str) -> str:
    """A trial's ``params`` JSON as ``name=value`` pairs in name order, for a hover."""
    try:
        values = json.loads(params)
    except (TypeError, ValueError):
        return "-"
    return describe_configuration(dict(sorted(values.items())))


def colours_of(backends: list[str]) -> dict[str, str]:
    """Each backend's colour in the static figures (`backend_colours`), as CSS hex."""
    return {b: to_hex(c) for b, c in backend_colours(backends).items()}


def spec_of(fig: go.Figure) -> dict[str, Any]:
    return json.loads(fig.to_json())


def best_so_far_figures(trials: pd.DataFrame) -> Iterator[Figure]:
    """Per task and spend axis, each study's best validation loss so far as a step line (its
    backend's colour); hovering a step shows the trial that set it and its configuration."""
    if trials.empty:
        return
    curves = best_so_far(trials).set_index(["study", "trial"])
    rows = trials.set_index(["study", "trial"])
    colours = colours_of(sorted(trials["backend"].unique()))
    for dataset, task in trials.groupby("dataset", sort=True):
        for axis, title in SPEND_AXES.items():
            if axis not in task or task[axis].isna().any():
                continue  # (wall-clock: parallel studies only)
            if axis == "ended" and task.get("worker", pd.Series(dtype=float)).isna().all():
                continue
            fig = go.Figure()
            shown: set[str] = set()
            for study, group in task.sort_values("trial").groupby("study", sort=True):
                backend = str(group["backend"].iloc[0])
                keys = list(zip(group["study"], group["trial"], strict=True))
                best = curves.loc[keys, "best_val_loss"].to_numpy(dtype=float)
                setter = _setters(group["val_loss"].to_numpy(dtype=float), best)
                x = rows.loc[keys, axis].to_numpy(dtype=float)
                if axis == "ended":  # (ended is the study's clock: the curve is in end order)
                    order = np.argsort(x, kind="stable")
                    x, best = (
                        x[order],
                        np.minimum.accumulate(np.nan_to_num(best[order], nan=np.inf)),
                    )
                    best = np.where(np.isinf(best), np.nan, best)
                    setter = setter[order]
                config = [configuration(p) for p in group["params"].to_numpy()[setter]]
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=best,
                        mode="lines+markers",
                        line={"shape": "hv", "color": colours[backend], "width": 1.5},
                        marker={"size": 4},
                        name=backend,
                        legendgroup=backend,
                        showlegend=backend not in shown,
                        meta={"backend": backend},
                        customdata=np.column_stack(
                            [
                                np.full(len(x), study),
                                group["trial"].to_numpy()[setter],
                                config,
                            ]
                        ),
                        hovertemplate=(
                            "%{customdata[0]}<br>best so far %{y:.4g} at %{x:.4g}<br>"
                            "set by trial %{customdata[1]}: %{customdata[2]}<extra></extra>"
                        ),
                    )
                )
                shown.add(backend)
            fig.update_layout(
                **LAYOUT,
                title=f"{dataset}: best validation loss so far, each study",
                xaxis_title=title,
                yaxis_title="best val_loss so far",
                yaxis_type="log",
            )
            yield Figure(
                f"best-{dataset}-{axis}", f"{dataset}: best so far against {title}", spec_of(fig)
            )


def _setters(losses: np.ndarray, best: np.ndarray) -> np.ndarray:
    """For each trial, the index of the trial whose loss is the best so far (itself or earlier;
    0 before any complete trial)."""
    setter = np.zeros(len(losses), dtype=int)
    for i in range(len(losses)):
        if i and losses[i] != best[i]:  # (NaN: a failed trial sets nothing)
            setter[i] = setter[i - 1]
        else:
            setter[i] = i
    return setter


def rank_over_budget_figure(over_budget: pd.DataFrame) -> Figure | None:
    """Each backend's mean rank (by best validation loss so far, per task and seed) at each
    tenth of the budget: `tuning.analysis.anytime.rank_over_budget`'s table."""
    if over_budget.empty:
        return None
    colours = colours_of(sorted(over_budget["backend"].unique()))
    fig = go.Figure()
    for backend, rows in over_budget.groupby("backend", sort=True):
        rows = rows.sort_values("fraction")
        fig.add_trace(
            go.Scatter(
                x=100 * rows["fraction"],
                y=rows["mean_rank"],
                mode="lines+markers",
                name=str(backend),
                line={"color": colours[backend]},
                meta={"backend": str(backend)},
                hovertemplate=f"{backend}<br>%{{x:.0f}}% of the budget: mean rank %{{y:.2f}}"
                "<extra></extra>",
            )
        )
    fig.update_layout(
        **LAYOUT,
        title="Rank over budget: best validation loss so far, ranked per (task, seed)",
        xaxis_title="% of each study's budget spent",
        yaxis_title="mean rank (1 = best)",
        yaxis_autorange="reversed",
    )
    return Figure("rank-over-budget", "Mean rank over the budget", spec_of(fig))


def cliques(ranks: pd.Series, p_values: pd.DataFrame, alpha: float, rejected: bool) -> list:
    """The maximal runs of backends (in rank order) that no test tells apart: every pair in a run
    has a Nemenyi p-value at or above ``alpha`` (all of them, when the Friedman test did not
    reject). Runs inside a longer run are left out, as a critical-difference diagram draws."""
    names = list(ranks.sort_values().index)
    runs = []
    for start in range(len(names)):
        end = start
        while end + 1 < len(names) and (
            not rejected
            or all(
                not (float(p_values.loc[a, names[end + 1]]) < alpha) for a in names[start : end + 1]
            )
        ):
            end += 1
        if end > start and not any(s <= start and end <= e for s, e in runs):
            runs.append((start, end))
    return [names[s : e + 1] for s, e in runs]


def critical_difference_figure(suite: Any) -> Figure | None:
    """Mean ranks on an axis (1 = best), each run of backends the tests cannot tell apart joined
    by a bar below it, and Nemenyi's critical difference drawn to scale above."""
    if suite is None or suite.board.empty:
        return None
    ranks = suite.board.set_index("backend")["mean_rank"].astype(float)
    rejected = bool(suite.friedman_p < suite.alpha)
    runs = cliques(ranks, suite.p_values, suite.alpha, rejected)
    colours = colours_of(sorted(ranks.index))
    fig = go.Figure()
    for k, (backend, rank) in enumerate(ranks.sort_values().items()):
        fig.add_trace(
            go.Scatter(
                x=[rank],
                y=[0],
                mode="markers",
                marker={"size": 12, "color": colours[backend]},
                name=str(backend),  # (no meta.backend: the switches leave the diagram whole)
                hovertemplate=f"{backend}: mean rank %{{x:.2f}}<extra></extra>",
            )
        )
        # (labels at three heights: close ranks would write over each other)
        fig.add_annotation(x=rank, y=0, text=str(backend), ax=0, ay=-22 - 16 * (k % 3))
    for level, run in enumerate(runs, start=1):
        low, high = float(ranks[run].min()), float(ranks[run].max())
        fig.add_trace(
            go.Scatter(
                x=[low, high],
                y=[-0.25 * level] * 2,
                mode="lines",
                line={"color": "black", "width": 4},
                name="not told apart",
                showlegend=False,
                hovertemplate="not told apart: " + ", ".join(map(str, run)) + "<extra></extra>",
            )
        )
    cd = float(suite.critical_difference)
    if not math.isnan(cd):
        start = float(ranks.min())
        fig.add_trace(
            go.Scatter(
                x=[start, start + cd],
                y=[0.6, 0.6],
                mode="lines+text",
                line={"color": "grey", "width": 3},
                text=["", f"CD = {cd:.2f}"],
                textposition="middle right",
                showlegend=False,
                name="critical difference",
                hovertemplate=f"Nemenyi's critical difference {cd:.2f} at {suite.alpha}"
                "<extra></extra>",
            )
        )
    friedman = (
        "no Friedman test"
        if math.isnan(suite.friedman_p)
        else (f"Friedman p = {suite.friedman_p:.3g}")
    )
    blocks = int(suite.board["blocks"].iloc[0])
    fig.update_layout(
        **{**LAYOUT, "height": 260 + 30 * len(runs)},
        title=f"Mean rank over {blocks} (task, seed) blocks (1 = best); {friedman}",
        xaxis={"title": "mean rank", "range": [0.5, len(ranks) + 0.5], "dtick": 1},
        yaxis={"visible": False, "range": [-0.25 * (len(runs) + 1), 1]},
    )
    return Figure("critical-difference", "Critical-difference diagram", spec_of(fig))


def test_loss_figure(studies: pd.DataFrame, summaries: dict[str, dict]) -> Figure | None:
    """Each study's test loss, per task and backend; hovering a point shows its study, seed and
    best configuration."""
    if studies.empty:
        return None
    colours = colours_of(sorted(studies["backend"].unique()))
    fig = go.Figure()
    for backend, rows in studies.groupby("backend", sort=True):
        best = [
            describe_configuration(
                dict(sorted((summaries.get(s, {}).get("best_params") or {}).items()))
            )
            for s in rows["study"]
        ]
        fig.add_trace(
            go.Box(
                x=rows["dataset"],
                y=rows["test_loss"],
                name=str(backend),
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"color": colours[backend], "size": 6},
                meta={"backend": str(backend)},
                customdata=np.column_stack([rows["study"], rows["seed"], best]),
                hovertemplate=(
                    "%{customdata[0]} (seed %{customdata[1]})<br>test loss %{y:.4g}<br>"
                    "best configuration: %{customdata[2]}<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        **LAYOUT,
        title="Test loss of each study's best model",
        boxmode="group",
        yaxis_title="test loss",
    )
    return Figure("test-loss", "Test loss of each study", spec_of(fig))
