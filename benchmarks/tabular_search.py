"""The tabular benchmark's searches: backends x seeds against a table, a budget of 30 full
trainings (30 x the table's epoch cap) each, in this machine's worker processes; prints the wall
time and, per algorithm, the real seconds its library took per trial. Targets (issue 17): the six
default backends x 100 seeds in <= 10 minutes; every installed algorithm x 100 seeds in <= 30.

    python benchmarks/tabular_search.py TABLE [--seeds 0-99] [--all-algorithms] [--out DIR]
        [--jobs 2] [--report-only]

A finished study is not run again: ``--report-only`` (or a second run) reports what ``--out``
holds, with the wall time of the run that ran its studies (``tabular_search.json`` in
``--out``; for a folder that `tuning benchmark` filled: its first study's start to its last
study's end, from the files' times).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from tuning.analysis.compare import find_studies, load_summary
from tuning.cli.parser import _seed_list
from tuning.core.config import StudyConfig
from tuning.evaluation.keras.environment import use_keras_backend
from tuning.evaluation.tabular.table import table_settings
from tuning.run.grid import plan_grid, run_grid
from tuning.search import available_backends, default_backends

FULL_TRAININGS = 30
RUN_FILE = "tabular_search.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path)
    parser.add_argument("--seeds", type=_seed_list, default=list(range(100)))
    parser.add_argument("--all-algorithms", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    backends = available_backends() if args.all_algorithms else default_backends()
    if args.all_algorithms:  # the bare names are aliases of listed algorithms
        backends = [b for b in backends if ":" in b or b == "random"]
    max_epochs = int(table_settings(args.table)["max_epochs"])
    out = args.out or Path("results") / ("tabular_all" if args.all_algorithms else "tabular")
    if not args.report_only:
        use_keras_backend("jax")
        base = StudyConfig(
            backend=backends[0],
            objective=f"tabular:{args.table}",
            budget_epochs=FULL_TRAININGS * max_epochs,
            out=str(out),
        )
        started = time.perf_counter()
        result = run_grid(plan_grid(base, backends, args.seeds), jobs=args.jobs)
        wall = time.perf_counter() - started
        for study in result.studies:
            if study.state == "failed":
                print(f"failed: {study.config.study}: {study.error}", file=sys.stderr)
        if result.count("done"):  # a run that found everything finished keeps the first time
            record = {"wall_seconds": wall, "studies": len(result.studies), "jobs": args.jobs}
            (out / RUN_FILE).write_text(json.dumps(record), encoding="utf-8")
    studies = find_studies(out)
    if (out / RUN_FILE).exists():
        run = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    else:  # a grid run by `tuning benchmark`: from its first study's start to its last end
        started = min((d / "study.json").stat().st_mtime for d in studies)
        ended = max((d / "summary.json").stat().st_mtime for d in studies)
        run = {"wall_seconds": ended - started, "studies": len(studies), "jobs": args.jobs}
    rows = []
    for study in studies:
        s = load_summary(study)
        rows.append(
            {
                "algorithm": s["algorithm"]["name"],
                "trials": s["trials"],
                "search_seconds": s["search_seconds"],
                "wall_seconds": s["wall_seconds"],
            }
        )
    frame = pd.DataFrame(rows)
    per = frame.groupby("algorithm").agg(
        studies=("trials", "size"),
        trials_per_study=("trials", "mean"),
        search_seconds=("search_seconds", "sum"),
        study_seconds=("wall_seconds", "sum"),
        trials=("trials", "sum"),
    )
    per["seconds_per_trial"] = per["search_seconds"] / per["trials"]
    per["seconds_per_study"] = per["study_seconds"] / per["studies"]
    per = per.sort_values("seconds_per_trial", ascending=False)
    target = 30 if args.all_algorithms else 10
    print(
        f"{run['studies']} studies of {len(per)} algorithms (budget {FULL_TRAININGS} x "
        f"{max_epochs} epochs) in {run['wall_seconds'] / 60:.1f} "
        f"min with {run['jobs']} worker processes (target <= {target} min); the studies' own "
        f"seconds sum to {frame['wall_seconds'].sum() / 60:.1f} min"
    )
    per_seed = frame.groupby("algorithm")["wall_seconds"].mean().sum()
    print(
        f"projected for 100 seeds from these studies' mean seconds: {per_seed * 100 / 60:.0f} "
        f"min of worker time, {per_seed * 100 / run['jobs'] / 60:.0f} min on {run['jobs']} "
        "worker processes"
    )
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(
            per[
                ["studies", "trials_per_study", "seconds_per_trial", "seconds_per_study"]
            ].to_string(float_format=lambda v: f"{v:.4g}")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
