"""Simulated workers: the default backends x seeds x worker counts on a table, then the
parallel verdict; prints the wall time and, per worker count, the simulator's own seconds per
simulated trial against the libraries' seconds per proposal.

Targets (issue 34): 6 default backends x 10 seeds x N in {1, 4, 16} on the California table in
<= 10 minutes on 2 cores; the simulator's overhead per simulated trial <= 10% of the libraries'
proposal time.

    python benchmarks/parallel_simulated.py [TABLE] [--seeds 0-9] [--workers 1,4,16]
        [--full-trainings 30] [--jobs 2] [--out DIR]

TABLE defaults to the repository's small California table. One-worker studies run the
sequential loop, which keeps no simulator: the overhead is measured over N > 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _measure import machine

from tuning.analysis.compare import compare, find_studies
from tuning.cli.parser import _count_list, _seed_list
from tuning.core.config import StudyConfig
from tuning.evaluation.keras.environment import use_keras_backend
from tuning.evaluation.tabular.table import table_settings
from tuning.run.grid import plan_grid, run_grid
from tuning.search import default_backends

REPOSITORY = Path(__file__).resolve().parents[1]
TABLE = REPOSITORY / "benchmarks" / "tables" / "california_small"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path, nargs="?", default=TABLE)
    parser.add_argument("--seeds", type=_seed_list, default=list(range(10)))
    parser.add_argument("--workers", type=_count_list, default=[1, 4, 16])
    parser.add_argument("--full-trainings", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    use_keras_backend("jax")
    out = args.out or Path(tempfile.mkdtemp(prefix="parallel_simulated_"))
    max_epochs = table_settings(args.table)["max_epochs"]
    base = StudyConfig(
        backend="random",
        objective=f"tabular:{args.table}",
        budget_epochs=args.full_trainings * max_epochs,
        out=str(out),
    )
    configs = plan_grid(base, default_backends(), args.seeds, args.workers)
    started = time.perf_counter()
    result = run_grid(configs, jobs=args.jobs)
    grid_seconds = time.perf_counter() - started
    started = time.perf_counter()
    comparison = compare(out)
    compare_seconds = time.perf_counter() - started
    print(machine())
    print(
        f"{len(configs)} studies ({len(default_backends())} backends x {len(args.seeds)} seeds x "
        f"workers {args.workers}, {base.budget_epochs} epochs each) on {args.table}: "
        f"{result.count('done')} run, {result.count('failed')} failed, in {grid_seconds:.0f} s "
        f"with --jobs {args.jobs}; compare {compare_seconds:.0f} s"
    )
    summaries = [json.loads((p / "summary.json").read_text()) for p in find_studies(out)]
    print("workers  studies  proposals  library s/proposal  simulator s/trial  simulator/library")
    for count in args.workers:
        parts = [
            s["workers"] for s in summaries if (s.get("workers") or {}).get("workers") == count
        ]
        if not parts:
            print(f"{count:>7}  {'(sequential loop: no simulator)':>40}")
            continue
        proposals = sum(p["proposals"] for p in parts)
        library = sum(p["library_seconds"] for p in parts) / proposals
        simulator = sum(p["simulator_seconds"] for p in parts) / proposals
        print(
            f"{count:>7}  {len(parts):>7}  {proposals:>9}  {library:>18.6f}  {simulator:>17.6f}  "
            f"{simulator / library:>16.1%}"
        )
    print(f"verdict: {comparison.files.get('parallel')}, report: {comparison.files['report']}")
    return 0 if not result.count("failed") else 1


if __name__ == "__main__":
    sys.exit(main())
