"""Figures of a results folder (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def best_so_far(trials: pd.DataFrame) -> pd.DataFrame:
    """Per study, the best validation loss reached after each trial, against cumulative epochs."""
    frames = []
    for study, rows in trials.sort_values(["study", "trial"]).groupby("study", sort=True):
        best = rows["val_loss"].where(rows["status"] == "complete").cummin()
        frames.append(
            pd.DataFrame(
                {
                    "study": study,
                    "backend": rows["backend"].to_numpy(),
                    "dataset": rows["dataset"].to_numpy(),
                    "trial": rows["trial"].to_numpy(),
                    "cum_epochs": rows["epochs"].cumsum().to_numpy(),
                    "best_val_loss": best.to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_best_so_far(trials: pd.DataFrame, path: Path) -> Path:
    """One line per study: best-so-far validation loss against epochs spent (log scale)."""
    curves = best_so_far(trials)
    datasets = sorted(curves["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        shown = curves[curves["dataset"] == dataset]
        finals = shown.groupby("study")["best_val_loss"].last().dropna()
        if not finals.empty:
            # every study's final value in view; early losses far above them are clipped
            ax.set_ylim(shown["best_val_loss"].min() / 1.1, finals.max() * 1.5)
        for study, rows in shown.groupby("study"):
            # markers too: a study with a single finished trial is one point, which a step hides
            ax.step(
                rows["cum_epochs"],
                rows["best_val_loss"],
                where="post",
                marker="o",
                markersize=3,
                label=study,
            )
        ax.set(
            title=f"{dataset}: best validation loss so far",
            xlabel="epochs spent (cumulative)",
            ylabel="best val_loss",
        )
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
