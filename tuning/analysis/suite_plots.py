"""Figures of a suite (several tasks): critical-difference diagram, interval estimates of the
normalized score, and mean rank over the budget (matplotlib, PNG)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402

from tuning.analysis.plots import save_figure  # noqa: E402
from tuning.analysis.suite_stats import SuiteStatistics  # noqa: E402


def plot_suite(result: SuiteStatistics, folder: Path) -> dict[str, Path]:
    """Write the three suite figures under ``folder``; returns their paths by name."""
    folder = Path(folder)
    figures = {}
    if not result.board.empty:
        figures["critical_difference"] = save_figure(
            critical_difference_diagram(result), folder / "critical_difference.png"
        )
        figures["normalized_scores"] = save_figure(
            interval_estimates(result), folder / "normalized_scores.png"
        )
    if not result.over_budget.empty:
        figures["rank_over_budget"] = save_figure(
            rank_over_budget(result.over_budget), folder / "rank_over_budget.png"
        )
    return figures


def critical_difference_diagram(result: SuiteStatistics) -> plt.Figure:
    """Mean ranks on an axis, the backends the test cannot tell apart joined by a bar
    (scikit-posthocs' diagram, from the Nemenyi p-values; all joined when the Friedman test did
    not reject), and the critical difference drawn to scale."""
    import scikit_posthocs

    ranks = result.board.set_index("backend")["mean_rank"]
    p_values = result.p_values.loc[ranks.index, ranks.index].astype(float)
    if not (result.friedman_p < result.alpha):  # no difference may be claimed at all
        p_values = pd.DataFrame(1.0, index=ranks.index, columns=ranks.index)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * len(ranks)))
    cd = result.critical_difference
    scikit_posthocs.critical_difference_diagram(
        ranks, p_values.fillna(1.0), ax=ax, alpha=result.alpha
    )
    if not math.isnan(cd):  # drawn to scale above the rank axis's labels (scikit-posthocs'
        # own CD bar sits on them)
        above = offset_copy(ax.get_xaxis_transform(), fig=fig, y=26, units="points")
        start = float(ranks.min())
        ax.plot([start, start + cd], [1, 1], color="black", lw=2, transform=above, clip_on=False)
        ax.text(
            start + cd / 2,
            1,
            f"CD = {cd:.2f}",
            transform=offset_copy(ax.get_xaxis_transform(), fig=fig, y=30, units="points"),
            ha="center",
            va="bottom",
            fontsize=9,
            clip_on=False,
        )
    friedman = (
        f"Friedman p = {result.friedman_p:.3g}"
        if not math.isnan(result.friedman_p)
        else "no Friedman test"
    )
    ax.set_title(
        f"Mean rank over {int(result.board['blocks'].iloc[0])} (task, seed) blocks "
        f"(1 = best); Nemenyi CD = {cd:.2f} at {result.alpha}; {friedman}",
        fontsize=9,
        pad=48,  # above the CD bar
    )
    return fig


def interval_estimates(result: SuiteStatistics) -> plt.Figure:
    """Mean and IQM of each backend's normalized scores, with their 95% stratified-bootstrap
    intervals (0 = best found on the task, 1 = random search's mean)."""
    board = result.board.sort_values("score_iqm", ascending=False)
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.8 + 0.45 * len(board)), sharey=True)
    y = np.arange(len(board))
    for ax, name in zip(axes, ("iqm", "mean"), strict=True):
        point = board[f"score_{name}"].to_numpy(dtype=float)
        low = board[f"score_{name}_ci_low"].to_numpy(dtype=float)
        high = board[f"score_{name}_ci_high"].to_numpy(dtype=float)
        ax.hlines(y, np.nan_to_num(low, nan=point), np.nan_to_num(high, nan=point), lw=6, alpha=0.4)
        ax.plot(point, y, "k|", markersize=14)
        ax.axvline(1.0, color="grey", lw=0.8, ls="--")
        ax.axvline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(f"normalized score, {name.upper()} (lower is better)")
    axes[0].set_yticks(y, board["backend"])
    fig.suptitle(
        f"Normalized test loss over {len(result.tasks)} tasks x {len(result.seeds)} seeds, "
        "95% stratified-bootstrap intervals",
        fontsize=9,
    )
    return fig


def rank_over_budget(over_budget: pd.DataFrame) -> plt.Figure:
    """Each backend's mean rank (by best validation loss so far) at each tenth of the budget."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for backend, rows in over_budget.groupby("backend", sort=True):
        rows = rows.sort_values("fraction")
        ax.plot(100 * rows["fraction"], rows["mean_rank"], marker="o", label=backend)
    ax.set_xlabel("% of each study's budget spent")
    ax.set_ylabel("mean rank (1 = best)")
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    ax.set_title(
        "Rank over budget: best validation loss so far, ranked per (task, seed)", fontsize=9
    )
    return fig
