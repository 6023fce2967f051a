"""What each backend's studies cost: trials, epochs, seconds, and the share spent compiling.

A trial's ``fit_seconds`` include compiling its programs (``compile_seconds``, the seconds the
trainer spent compiling since the previous row); a backend whose trials keep proposing new
shapes pays more of it. The search's own seconds (the library's work between trials, building
models) are the rest of ``search_seconds``.
"""

from __future__ import annotations

import pandas as pd

COST_FILE = "cost.csv"


def cost_table(trials: pd.DataFrame, studies: pd.DataFrame) -> pd.DataFrame:
    """One row per backend: studies, trials and epochs summed over its studies; the trials'
    fit and compile seconds; ``compile_share``, compile over fit seconds (NaN without fit
    seconds); and the studies' search seconds."""
    columns = ["fit_seconds", "compile_seconds"]
    if trials.empty:
        spent = pd.DataFrame(columns=["backend", "trials", *columns]).set_index("backend")
    else:
        rows = trials.assign(compile_seconds=trials.get("compile_seconds", 0.0))
        rows[columns] = rows[columns].apply(pd.to_numeric, errors="coerce").fillna(0.0)
        spent = rows.groupby("backend").agg(
            trials=("trial", "size"),
            fit_seconds=("fit_seconds", "sum"),
            compile_seconds=("compile_seconds", "sum"),
        )
    searched = studies.groupby("backend").agg(
        studies=("study", "size"),
        epochs=("epochs", "sum"),
        search_seconds=("search_seconds", "sum"),
    )
    table = searched.join(spent, how="left").fillna({"trials": 0, **dict.fromkeys(columns, 0.0)})
    fit = table["fit_seconds"].where(table["fit_seconds"] > 0)
    table["compile_share"] = table["compile_seconds"] / fit
    order = ["studies", "trials", "epochs", "fit_seconds", "compile_seconds", "compile_share"]
    return table[[*order, "search_seconds"]].reset_index()


def cost_lines(table: pd.DataFrame) -> list[str]:
    """The report's cost section: one line per backend, then the total."""
    lines = [
        "Seconds summed over each backend's studies. *Compiling* is the share of the trials' "
        "fit seconds spent compiling their programs; *search* is the studies' wall time "
        f"(`{COST_FILE}`).\n"
    ]
    for r in table.itertuples(index=False):
        share = "n/a" if pd.isna(r.compile_share) else f"{r.compile_share:.0%}"
        lines.append(
            f"- {r.backend}: {int(r.trials)} trials, {int(r.epochs)} epochs; fit "
            f"{r.fit_seconds:.1f} s, compiling {r.compile_seconds:.1f} s ({share}); search "
            f"{r.search_seconds:.1f} s."
        )
    fit, compiling = table["fit_seconds"].sum(), table["compile_seconds"].sum()
    share = f"{compiling / fit:.0%}" if fit > 0 else "n/a"
    lines.append(f"- All: fit {fit:.1f} s, compiling {compiling:.1f} s ({share}).")
    return lines
