"""``OUT/report.html``: the comparison as one self-contained page, for looking rather than reading.

Plotly draws the figures: Optuna's own visualisations and optuna-dashboard use it, so a user
sees the same kind of plots there and here, and its Python package ships plotly.js, which the
page embeds whole: the page loads nothing (no CDN, no fonts), and works offline or mailed alone.
The page holds the leaderboards as tables sorted by a click on a column, switches that hide a
backend in every table and figure, the figures (`tuning.analysis.html_figures`), and the
report's words (``report.md`` without its static figures).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import markdown
import pandas as pd

from tuning.analysis.html_figures import (
    Figure,
    best_so_far_figures,
    critical_difference_figure,
    rank_over_budget_figure,
    test_loss_figure,
)
from tuning.analysis.html_trials import parallel_coordinates_figures, trials_scatter_figures
from tuning.analysis.report import FIGURES_HEADING, describe_configuration, fmt
from tuning.core.atomic import write_atomically

HTML_REPORT_FILE = "report.html"
# The leaderboard columns the page shows, with their headings (the CSV files hold them all).
BY_BACKEND = {
    "dataset": "task",
    "backend": "backend",
    "n_seeds": "seeds",
    "mean_rank": "mean rank",
    "wins": "wins",
    "test_loss_mean": "test loss, mean",
    "test_loss_ci_low": "95% CI low",
    "test_loss_ci_high": "95% CI high",
    "test_loss_median": "test loss, median",
    "best_val_loss_mean": "best val loss, mean",
    "epochs_mean": "epochs, mean",
    "seconds_mean": "seconds, mean",
    "wilcoxon_p_holm": "p vs random (Holm)",
    "vs_random": "vs random",
}
PER_STUDY = {
    "study": "study",
    "backend": "backend",
    "dataset": "task",
    "seed": "seed",
    "test_loss": "test loss",
    "best_val_loss": "best val loss",
    "trials": "trials",
    "epochs": "epochs",
    "seconds": "seconds",
}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 1em;
       color: #222; }
nav { position: sticky; top: 0; background: #fff; padding: .5em 0; border-bottom: 1px solid #ddd;
      z-index: 10; }
nav a { margin-right: 1em; }
#backends label { margin-right: 1em; white-space: nowrap; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; }
th.sortable { cursor: pointer; background: #f4f4f4; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.hidden-backend { display: none; }
.figure { margin: 1em 0 2em; }
.note { color: #555; }
"""

# Sorting: a click on a heading sorts its table by that column (numbers as numbers, "-" last),
# again to reverse. Switches: hide a backend's rows in every table and its traces in every figure.
SCRIPT = """
function cellValue(row, index) {
  const text = row.cells[index] ? row.cells[index].textContent.trim() : "";
  const number = parseFloat(text.replace(/^\\[/, ""));
  return isNaN(number) ? text : number;
}
function sortTable(table, index, th) {
  const body = table.tBodies[0];
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index), y = cellValue(b, index);
    const missing = (v) => v === "-" || v === "";
    if (missing(x) !== missing(y)) return missing(x) ? 1 : -1;
    let order = (typeof x === "number" && typeof y === "number") ? x - y
      : String(x).localeCompare(String(y));
    return ascending ? order : -order;
  });
  for (const row of rows) body.appendChild(row);
}
function backendColumn(table) {
  return Array.from(table.tHead.rows[0].cells).findIndex(
    (th) => th.textContent.trim().replace(/ [\\u25B2\\u25BC]$/, "") === "backend");
}
function showBackend(backend, visible) {
  for (const table of document.querySelectorAll("table")) {
    const column = backendColumn(table);
    if (column < 0) continue;
    for (const row of table.tBodies[0].rows) {
      if (row.cells[column] && row.cells[column].textContent.trim() === backend)
        row.classList.toggle("hidden-backend", !visible);
    }
  }
  for (const div of document.querySelectorAll(".figure")) {
    if (!div.data) continue;
    const traces = [];
    div.data.forEach((trace, i) => { if (trace.meta && trace.meta.backend === backend) traces.push(i); });
    if (traces.length) Plotly.restyle(div, {visible: visible}, traces);
    div.data.forEach((trace, i) => { if (trace.type === "parcoords") selectBackends(div, i); });
  }
}
function selectBackends(div, index) {
  // parallel coordinates: one trace for every backend, so the switches select on its backend
  // axis (backend j at value j); every backend shown: no selection
  const trace = div.data[index];
  if (!trace.meta || trace.meta.backendAxis === undefined) return;
  const dimensions = trace.dimensions, axis = trace.meta.backendAxis;
  const shown = new Set(Array.from(document.querySelectorAll("#backends input"))
    .filter((box) => box.checked).map((box) => box.dataset.backend));
  const ranges = dimensions[axis].ticktext.map((name, j) => [name, [j - 0.4, j + 0.4]])
    .filter(([name]) => shown.has(name)).map(([, range]) => range);
  const all = ranges.length === dimensions[axis].ticktext.length;
  // (no backend shown: the trace is hidden, as a range outside the axis would be moved onto it)
  Plotly.restyle(div, {visible: ranges.length > 0,
    [`dimensions[${axis}].constraintrange`]: [all || !ranges.length ? null : ranges]}, [index]);
}
document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table")) {
    if (!table.tHead || !table.tBodies.length) continue;
    Array.from(table.tHead.rows[0].cells).forEach((th, index) => {
      th.classList.add("sortable");
      th.addEventListener("click", () => sortTable(table, index, th));
    });
  }
  for (const box of document.querySelectorAll("#backends input")) {
    box.addEventListener("change", () => showBackend(box.dataset.backend, box.checked));
  }
  for (const div of document.querySelectorAll(".figure")) {
    const spec = JSON.parse(document.getElementById(div.id + "-spec").textContent);
    Plotly.newPlot(div, spec.data, spec.layout, {responsive: true, displaylogo: false});
  }
});
"""


def write_html_report(
    out: Path,
    report_text: str,
    studies: pd.DataFrame,
    board: pd.DataFrame,
    trials: pd.DataFrame,
    summaries: Mapping[str, dict],
    suite: Any = None,
    over_budget: pd.DataFrame | None = None,
    unfinished: Sequence[str] = (),
) -> Path:
    """Write ``OUT/report.html`` from what `tuning.analysis.compare.compare` computed: the
    leaderboards (``board`` per backend, ``studies`` per study), every trial row, the suite's
    statistics if any, the mean rank over the budget, and ``report.md``'s text; ``unfinished`` names
    the studies of the folder that had not finished (left out, and said so)."""
    figures = [
        *([critical_difference_figure(suite)] if suite is not None else []),
        rank_over_budget_figure(over_budget if over_budget is not None else pd.DataFrame()),
        test_loss_figure(studies, dict(summaries)),
        *best_so_far_figures(trials),
        *trials_scatter_figures(trials),
        *parallel_coordinates_figures(trials),
    ]
    page = _page(
        title=f"Tuning benchmark: {', '.join(sorted(studies['dataset'].unique()))}",
        intro=_intro(studies, unfinished),
        backends=sorted(studies["backend"].unique()),
        per_backend=_per_backend(board),
        per_study=_per_study(studies, summaries),
        figures=[f for f in figures if f is not None],
        words=_words(report_text),
    )
    return write_atomically(Path(out) / HTML_REPORT_FILE, page)


def _intro(studies: pd.DataFrame, unfinished: Sequence[str]) -> str:
    text = (
        f"{len(studies)} finished studies, {studies['backend'].nunique()} backends, "
        f"{studies['dataset'].nunique()} task(s)."
    )
    if unfinished:
        text += (
            f" {len(unfinished)} more did not finish (running, or stopped): left out "
            f"({', '.join(sorted(unfinished)[:5])}{', ...' if len(unfinished) > 5 else ''})."
        )
    return f'<p class="note" id="intro">{html.escape(text)}</p>'


def _per_backend(board: pd.DataFrame) -> str:
    return _table(
        board[[c for c in BY_BACKEND if c in board]].rename(columns=BY_BACKEND),
        "leaderboard-backends",
    )


def _per_study(studies: pd.DataFrame, summaries: Mapping[str, dict]) -> str:
    table = studies[[c for c in PER_STUDY if c in studies]].rename(columns=PER_STUDY)
    table["best configuration"] = [
        describe_configuration(summaries.get(s, {}).get("best_params")) for s in studies["study"]
    ]
    return _table(table, "leaderboard-studies")


def _table(frame: pd.DataFrame, element: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f'<table id="{element}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _words(report_text: str) -> str:
    """``report.md`` as HTML, without its title and its section of static figures (the page
    draws its own)."""
    text = re.sub(r"\A# .*\n", "", report_text)
    start = text.find(FIGURES_HEADING + "\n")
    if start >= 0:
        end = text.find("\n## ", start + len(FIGURES_HEADING))
        text = text[:start] + (text[end + 1 :] if end >= 0 else "")
    # (raw HTML in the text, a task's or a parameter's name from the user, is shown, never run)
    escaped = html.escape(text, quote=False)
    return markdown.markdown(escaped, extensions=["tables"], output_format="html")


def _figure_blocks(figures: Iterable[Figure]) -> str:
    blocks, used = [], set()
    for figure in figures:
        # every "<" of the JSON (only ever inside its strings) escaped: no "</script>" nor
        # "<!--" from a name can end or swallow the block
        spec = json.dumps(figure.spec).replace("<", "\\u003c")
        element = re.sub(r"[^A-Za-z0-9_-]", "_", figure.key)
        while element in used:  # (two names that differ only by such characters)
            element += "_"
        used.add(element)
        blocks.append(
            f"<h3>{html.escape(figure.caption)}</h3>"
            f'<div class="figure" id="{element}"></div>'
            f'<script type="application/json" id="{element}-spec">{spec}</script>'
        )
    return "\n".join(blocks)


def _page(
    *,
    title: str,
    intro: str,
    backends: Sequence[str],
    per_backend: str,
    per_study: str,
    figures: Sequence[Figure],
    words: str,
) -> str:
    from plotly.offline import get_plotlyjs

    switches = "".join(
        f'<label><input type="checkbox" checked data-backend="{html.escape(b)}"> '
        f"{html.escape(b)}</label>"
        for b in backends
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script>{get_plotlyjs()}</script>
<script>{SCRIPT}</script>
</head>
<body>
<nav><a href="#leaderboard">Leaderboard</a><a href="#figures">Figures</a>
<a href="#studies">Studies</a><a href="#report">Report</a>
<span id="backends">Backends: {switches}</span></nav>
<h1>{html.escape(title)}</h1>
{intro}
<section id="leaderboard"><h2>Leaderboard</h2>
<p class="note">Click a column's heading to sort by it; again to reverse.</p>
{per_backend}</section>
<section id="figures"><h2>Figures</h2>
<p class="note">Hover a point for its study, trial and configuration; click a legend entry or a
backend's switch to hide it (the critical-difference diagram stays whole: its ranks are among
all the backends); drag to zoom (double-click to zoom out).</p>
{_figure_blocks(figures)}</section>
<section id="studies"><h2>Every study</h2>
{per_study}</section>
<section id="report"><h2>Report</h2>
{words}</section>
</body>
</html>
"""
