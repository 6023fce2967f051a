"""Figures of a results folder (matplotlib, PNG), one panel per dataset.

- best-so-far validation loss against cumulative epochs and against seconds: per backend, the
  median over its studies (seeds) with the interquartile band;
- the final test loss of each study, per backend;
- the hyperparameters every trial tried, coloured by the validation loss it reached.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from tuning.core.atomic import write_atomically  # noqa: E402
from tuning.core.files import refuse_link  # noqa: E402

X_LABELS = {"cum_epochs": "epochs spent (cumulative)", "cum_seconds": "seconds spent (wall)"}
GRID_POINTS = 300
UNKNOWN = 1e300  # the best-so-far of a study before its first finished trial


def best_so_far(trials: pd.DataFrame) -> pd.DataFrame:
    """Per study, the best validation loss reached after each trial, with its cumulative spend."""
    frames = []
    for study, rows in trials.sort_values(["study", "trial"]).groupby("study", sort=True):
        best = rows["val_loss"].where(rows["status"] == "complete").cummin()
        frames.append(
            pd.DataFrame(
                {
                    "study": study,
                    "backend": rows["backend"].to_numpy(),
                    "dataset": rows["dataset"].to_numpy(),
                    "seed": rows["seed"].to_numpy(),
                    "trial": rows["trial"].to_numpy(),
                    "cum_epochs": rows["cum_epochs"].to_numpy(),
                    "cum_seconds": rows["cum_seconds"].to_numpy(),
                    "best_val_loss": best.to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def band(curves: pd.DataFrame, x: str, grid: np.ndarray) -> np.ndarray:
    """Quartiles (25, 50, 75) over studies of the best-so-far step functions, on ``grid``.

    Before its first finished trial a study counts as infinitely bad, so each quartile only
    falls as spend grows and is NaN (not drawn) until enough studies have a result.
    """
    values = []
    for _, rows in curves.groupby("study"):
        xs = rows[x].to_numpy(dtype=float)
        ys = np.nan_to_num(rows["best_val_loss"].to_numpy(dtype=float), nan=UNKNOWN)
        index = np.searchsorted(xs, grid, side="right") - 1
        values.append(np.where(index >= 0, ys[np.clip(index, 0, None)], UNKNOWN))
    # a finite stand-in for infinity: interpolating next to it gives a huge number, not NaN
    quartiles = np.percentile(np.vstack(values), [25, 50, 75], axis=0)
    return np.where(quartiles < UNKNOWN * 1e-50, quartiles, np.nan)


def backend_colours(backends) -> dict[str, str]:
    """One colour per backend, the same in every figure (backends in name order)."""
    return {b: f"C{i % 10}" for i, b in enumerate(sorted(set(backends)))}


def dataset_panels(n: int, width: float = 6.5, height: float = 4.2):
    return plt.subplots(1, n, figsize=(width * n, height), squeeze=False)


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as an image at ``path`` (atomically) and close it."""
    if fig.get_layout_engine() is None:  # a constrained layout (shared colour bar) is kept
        fig.tight_layout()
    refuse_link(path.parent).mkdir(parents=True, exist_ok=True)
    image = io.BytesIO()
    fig.savefig(image, format=path.suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
    return write_atomically(path, image.getvalue())


def plot_best_so_far(trials: pd.DataFrame, path: Path, x: str = "cum_epochs") -> Path:
    """Best-so-far validation loss against ``x`` (cum_epochs or cum_seconds): median + IQR."""
    curves = best_so_far(trials)
    colours = backend_colours(curves["backend"])
    datasets = sorted(curves["dataset"].unique())
    fig, axes = dataset_panels(len(datasets))
    for ax, dataset in zip(axes[0], datasets, strict=True):
        shown = curves[curves["dataset"] == dataset]
        finals = shown.groupby("study")["best_val_loss"].last().dropna()
        for backend, mine in shown.groupby("backend", sort=True):
            grid = np.linspace(0, float(mine[x].max()), GRID_POINTS)
            q25, median, q75 = band(mine, x, grid)
            n = mine["study"].nunique()
            colour = colours[backend]
            ax.step(grid, median, where="post", label=f"{backend} (n={n})", color=colour)
            ax.fill_between(grid, q25, q75, step="post", alpha=0.2, color=colour)
            # each study's end: a backend that finished one trial still shows
            ends = mine.groupby("study").last()
            ax.plot(ends[x], ends["best_val_loss"], "o", markersize=3, color=colour)
        if not finals.empty:
            # every study's final value in view; early losses far above them are clipped
            ax.set_ylim(finals.min() / 1.15, finals.max() * 2.0)
        ax.set(
            title=f"{dataset}: best validation loss so far (median, IQR over seeds)",
            xlabel=X_LABELS.get(x, x),
            ylabel="best val_loss",
        )
        if (shown["best_val_loss"] > 0).any():  # (no trial completed: nothing to log-scale)
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_test_loss(studies: pd.DataFrame, path: Path) -> Path:
    """Each study's final test loss, per backend (box over seeds, one dot per seed)."""
    datasets = sorted(studies["dataset"].unique())
    colours = backend_colours(studies["backend"])
    fig, axes = dataset_panels(len(datasets))
    for ax, dataset in zip(axes[0], datasets, strict=True):
        shown = studies[(studies["dataset"] == dataset) & studies["test_loss"].notna()]
        order = shown.groupby("backend")["test_loss"].median().sort_values().index.tolist()
        data = [shown.loc[shown["backend"] == b, "test_loss"].to_numpy() for b in order]
        if data:
            # no outlier markers: every study is drawn as a dot
            ax.boxplot(data, tick_labels=order, widths=0.5, showfliers=False)
        rng = np.random.default_rng(0)  # jitter only, for the dots to stay apart
        for i, (backend, values) in enumerate(zip(order, data, strict=True), start=1):
            jitter = rng.uniform(-0.12, 0.12, len(values))
            ax.plot(i + jitter, values, "o", alpha=0.7, color=colours[backend])
        ax.set(title=f"{dataset}: test loss of each study's best model", ylabel="test loss")
        ax.grid(alpha=0.3, axis="y")
        ax.tick_params(axis="x", rotation=20)
    return save_figure(fig, path)


def searched_params(trials: pd.DataFrame) -> pd.DataFrame:
    """Each trial's parameters (its ``params`` JSON), one column per parameter."""
    return pd.DataFrame([json.loads(p) for p in trials["params"]], index=trials.index)


def numeric_params(params: pd.DataFrame) -> list[str]:
    """The searched parameters with numbers for values, those with the most distinct values
    first (a continuous rate before a width before a depth)."""
    numeric = [c for c in params.columns if pd.api.types.is_numeric_dtype(params[c])]
    return sorted(numeric, key=lambda c: -params[c].nunique())


def _spans_decades(values: pd.Series) -> bool:
    """Positive values over a decade or more: drawn on a log axis."""
    values = values.dropna()
    return bool(len(values)) and values.min() > 0 and values.max() >= 10 * values.min()


def integer_ticks(axis, values: pd.Series) -> None:
    """Ticks at whole numbers only, on a linear ``axis`` showing an integer parameter (a depth
    of 0 to 3 gets no ticks at 0.5)."""
    if pd.api.types.is_integer_dtype(values) and axis.get_scale() == "linear":
        axis.set_major_locator(MaxNLocator(integer=True))


def _panel_grid(
    n: int, size: tuple[float, float], extra_width: float = 0, **shared: bool
) -> tuple[plt.Figure, np.ndarray]:
    """A figure of ``n`` panels of ``size`` inches, three to a row, the unused ones hidden."""
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig, grid = plt.subplots(
        nrows,
        ncols,
        figsize=(size[0] * ncols + extra_width, size[1] * nrows),
        squeeze=False,
        layout="constrained",
        **shared,
    )
    axes = grid.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _loss_colours(trials: pd.DataFrame) -> tuple[pd.Series, LogNorm | None]:
    """Which trials have a loss to colour by (complete, positive), and the shared log colour
    scale of those losses, clipped at their 90th percentile."""
    ok = trials["status"].eq("complete") & trials["val_loss"].gt(0)
    losses = trials.loc[ok, "val_loss"]
    return ok, LogNorm(losses.min(), losses.quantile(0.9)) if len(losses) else None


def plot_hyperparameters(trials: pd.DataFrame, params: pd.DataFrame, path: Path) -> Path:
    """Every trial's two first numeric parameters (``params``: `searched_params`), coloured by its
    validation loss (one panel per backend and dataset, shared colour scale); failed trials are
    grey crosses."""
    names = numeric_params(params)
    x, y = (names + [None, None])[:2]
    panels = list(trials.groupby(["dataset", "backend"], sort=True))
    fig, axes = _panel_grid(len(panels), (4.2, 3.6), extra_width=1, sharex=True, sharey=True)
    ok, norm = _loss_colours(trials)
    points = None
    for ax, ((dataset, backend), rows) in zip(axes, panels, strict=False):
        good, bad = rows[ok.loc[rows.index]], rows[~ok.loc[rows.index]]
        ys = (lambda r: params.loc[r.index, y]) if y else (lambda r: r["val_loss"])
        points = ax.scatter(
            params.loc[good.index, x],
            ys(good),
            c=good["val_loss"],
            norm=norm,
            cmap="viridis_r",
            s=18,
            edgecolors="none",
        )
        ax.scatter(params.loc[bad.index, x], ys(bad), marker="x", color="0.6", s=18)
        ax.set(title=f"{dataset}: {backend} ({len(rows)} trials)", xlabel=x, ylabel=y or "val_loss")
        if _spans_decades(params[x]):
            ax.set_xscale("log")
        integer_ticks(ax.xaxis, params[x])
        if y:
            integer_ticks(ax.yaxis, params[y])
        ax.grid(alpha=0.3)
    if points is not None and norm is not None:
        fig.colorbar(points, ax=list(axes), label="val_loss (clipped at 90th pct)")
    return save_figure(fig, path)


def plot_exploration(trials: pd.DataFrame, params: pd.DataFrame, path: Path) -> Path:
    """How each searched parameter was explored: every trial's value (x; categories at their
    positions, a log axis for a range over a decade and a half) per backend (y, jittered),
    coloured by validation loss; one panel per task and parameter, three to a row."""
    panels = [
        (dataset, rows, name)
        for dataset, rows in trials.groupby("dataset", sort=True)
        for name in params.columns
        if params.loc[rows.index, name].notna().any()
    ]
    height = 1.0 + 0.32 * trials["backend"].nunique()
    fig, axes = _panel_grid(len(panels), (4.4, height), extra_width=1.5)
    ok, norm = _loss_colours(trials)
    rng = np.random.default_rng(0)
    points = None
    for ax, (dataset, rows, name) in zip(axes, panels, strict=False):
        backends = sorted(rows["backend"].unique())
        y = rows["backend"].map({b: i for i, b in enumerate(backends)}).to_numpy(dtype=float)
        y = y + rng.uniform(-0.25, 0.25, len(y))
        good = ok.loc[rows.index].to_numpy()
        values = params.loc[rows.index, name]
        if pd.api.types.is_numeric_dtype(values):
            x = values.to_numpy(dtype=float)
            positive = x[np.isfinite(x) & (x > 0)]
            if len(positive) == len(x) and positive.max() / positive.min() > 30:
                ax.set_xscale("log")
            integer_ticks(ax.xaxis, values)
        else:
            categories = sorted(values.dropna().astype(str).unique())
            x = values.astype(str).map({c: i for i, c in enumerate(categories)}).to_numpy(float)
            ax.set_xticks(range(len(categories)), categories)
        points = ax.scatter(
            x[good],
            y[good],
            c=rows.loc[good, "val_loss"],
            norm=norm,
            cmap="viridis_r",
            s=14,
            edgecolors="none",
        )
        ax.scatter(x[~good], y[~good], marker="x", color="0.6", s=14)
        ax.set_yticks(range(len(backends)), backends, fontsize=8)
        ax.set_title(f"{dataset}: {name}", fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    if points is not None and norm is not None:
        fig.colorbar(points, ax=list(axes), label="val_loss (clipped at 90th pct)")
    return save_figure(fig, path)


def plot_importance(table: pd.DataFrame, path: Path) -> Path:
    """fANOVA importance of each searched parameter (`tuning.analysis.importance`), one panel per task."""
    tasks = list(table.groupby("dataset", sort=True))
    fig, axes = plt.subplots(
        1,
        len(tasks),
        figsize=(4.2 * len(tasks) + 0.5, 0.6 + 0.4 * table["parameter"].nunique()),
        squeeze=False,
        layout="constrained",
    )
    for ax, (dataset, group) in zip(axes[0], tasks, strict=True):
        group = group.sort_values("importance")
        ax.barh(group["parameter"], group["importance"], color="tab:blue")
        ax.set(
            title=f"{dataset} ({int(group['trials'].iloc[0])} trials)",
            xlabel="fANOVA importance (share of variance of log val_loss)",
            xlim=(0, 1),
        )
        ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, path)


def plot_all(trials: pd.DataFrame, studies: pd.DataFrame, figures: Path) -> dict[str, Path]:
    """Every figure of a results folder, under ``figures``; returns them by name (the
    hyperparameter figure only when a searched parameter is numeric)."""
    made = {
        "best_so_far_epochs": plot_best_so_far(trials, figures / "best_so_far_epochs.png"),
        "best_so_far_seconds": plot_best_so_far(
            trials, figures / "best_so_far_seconds.png", x="cum_seconds"
        ),
        "test_loss": plot_test_loss(studies, figures / "test_loss.png"),
    }
    params = searched_params(trials)
    if numeric_params(params):
        made["hyperparameters"] = plot_hyperparameters(
            trials, params, figures / "hyperparameters.png"
        )
    if len(params.columns):
        made["exploration"] = plot_exploration(trials, params, figures / "exploration.png")
    return made
