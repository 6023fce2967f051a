"""The trials views of ``report.html``: every complete trial as a point (by its most varied
parameter and its loss, one trace per backend) and as a line of parallel coordinates."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tuning.analysis.html_figures import LAYOUT, Figure, configuration, spec_of
from tuning.analysis.plots import numeric_params, searched_params


def trials_scatter_figures(trials: pd.DataFrame) -> Iterator[Figure]:
    """Per task, every trial at its most varied numeric parameter (x) and its validation loss
    (y), coloured by that loss on one scale, one trace per backend (its legend entry or switch
    filters it); failed and pruned trials are left out (they have no comparable loss)."""
    if trials.empty:
        return
    params = searched_params(trials)
    names = numeric_params(params)
    if not names:
        return
    x_name = names[0]
    for dataset, task in trials.groupby("dataset", sort=True):
        done = task[(task["status"] == "complete") & task["val_loss"].gt(0)]
        if done.empty:
            continue
        losses = done["val_loss"].astype(float)
        low, high = float(np.log10(losses.min())), float(np.log10(losses.quantile(0.9)))
        symbols = ["circle", "square", "diamond", "triangle-up", "x", "star", "cross", "hexagon"]
        fig = go.Figure()
        for i, (backend, rows) in enumerate(done.groupby("backend", sort=True)):
            fig.add_trace(
                go.Scatter(
                    x=params.loc[rows.index, x_name],
                    y=rows["val_loss"],
                    mode="markers",
                    name=str(backend),
                    meta={"backend": str(backend)},
                    marker={
                        "symbol": symbols[i % len(symbols)],
                        "size": 7,
                        "color": np.log10(rows["val_loss"].astype(float)),
                        "cmin": low,
                        "cmax": max(high, low + 1e-9),
                        "colorscale": "Viridis",
                        "reversescale": True,
                        "showscale": i == 0,
                        "colorbar": {"title": "log10 val_loss"},
                    },
                    customdata=np.column_stack(
                        [rows["study"], rows["trial"], [configuration(p) for p in rows["params"]]]
                    ),
                    hovertemplate=(
                        "%{customdata[0]}, trial %{customdata[1]}<br>val_loss %{y:.4g}<br>"
                        "%{customdata[2]}<extra></extra>"
                    ),
                )
            )
        spread = params.loc[done.index, x_name].astype(float)
        log_x = bool(spread.min() > 0 and spread.max() >= 10 * spread.min())
        integer = pd.api.types.is_integer_dtype(params[x_name])
        fig.update_layout(
            **LAYOUT,
            title=f"{dataset}: every complete trial ({len(done)}), by {x_name}",
            xaxis={"title": x_name, "type": "log" if log_x else "linear"}
            | ({"dtick": 1} if integer and not log_x else {}),
            yaxis={"title": "val_loss", "type": "log"},
            legend={"x": 1.15},
        )
        yield Figure(f"trials-{dataset}", f"{dataset}: every trial", spec_of(fig))


def parallel_coordinates_figures(trials: pd.DataFrame) -> Iterator[Figure]:
    """Per task, every complete trial as a line across its parameters, its backend and its
    validation loss (log10), coloured by that loss; dragging along an axis filters the lines
    (the backend axis filters by backend)."""
    if trials.empty:
        return
    params = searched_params(trials)
    for dataset, task in trials.groupby("dataset", sort=True):
        done = task[(task["status"] == "complete") & task["val_loss"].gt(0)]
        if done.empty:
            continue
        dimensions = []
        for name in params.columns:
            values = params.loc[done.index, name]
            if values.isna().all():
                continue
            dimensions.append(_dimension(name, values))
        backends = sorted(done["backend"].unique())
        dimensions.append(
            {
                "label": "backend",
                "values": done["backend"].map({b: i for i, b in enumerate(backends)}).tolist(),
                "tickvals": list(range(len(backends))),
                "ticktext": backends,
            }
        )
        loss = np.log10(done["val_loss"].astype(float))
        dimensions.append({"label": "log10 val_loss", "values": loss.tolist()})
        fig = go.Figure(
            go.Parcoords(
                line={
                    "color": loss.tolist(),
                    "colorscale": "Viridis",
                    "reversescale": True,
                    "showscale": True,
                    "colorbar": {"title": "log10 val_loss"},
                },
                dimensions=dimensions,
                # which axis the page's backend switches select on (a searched parameter may
                # be named "backend" too)
                meta={"backendAxis": len(dimensions) - 2},
            )
        )
        fig.update_layout(**LAYOUT, title=f"{dataset}: every complete trial, its parameters")
        fig.update_layout(margin={"l": 80, "r": 80, "t": 110, "b": 40}, height=520)
        yield Figure(f"parallel-{dataset}", f"{dataset}: parallel coordinates", spec_of(fig))


def _dimension(name: str, values: pd.Series) -> dict[str, Any]:
    """One parallel-coordinates axis: categories at integer positions, a range over a decade on a
    log10 axis (labelled in the parameter's units), integers with integer ticks."""
    if not pd.api.types.is_numeric_dtype(values):
        shown = values.map(lambda v: "-" if pd.isna(v) else str(v))  # (a trial without it: "-")
        categories = sorted(shown.unique())
        return {
            "label": name,
            "values": shown.map({c: i for i, c in enumerate(categories)}).tolist(),
            "tickvals": list(range(len(categories))),
            "ticktext": categories,
        }
    numbers = values.astype(float)
    if numbers.min() > 0 and numbers.max() >= 10 * numbers.min():
        exponents = range(
            math.floor(math.log10(numbers.min())), math.ceil(math.log10(numbers.max())) + 1
        )
        return {
            "label": f"{name} (log)",
            "values": np.log10(numbers).tolist(),
            "tickvals": list(exponents),
            "ticktext": [f"{10.0**e:g}" for e in exponents],
        }
    if pd.api.types.is_integer_dtype(values):
        ticks = sorted(int(v) for v in values.unique())
        return {"label": name, "values": numbers.tolist(), "tickvals": ticks}
    return {"label": name, "values": numbers.tolist()}
