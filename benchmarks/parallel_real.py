"""Real worker processes: one study of random search on California with 1 and with 2 workers
under the same epoch budget; prints each one's wall-clock, epochs and where the time went.

Target (issue 34): the `--workers 2` study spends the same epochs as `--workers 1` (3,000,
trials of at most 60) in <= 0.6x its wall-clock on 2 cores; the rest is accounted for: each
worker's time training, compiling (the `compile_seconds` of its rows), starting (before its
first trial's first epoch) and idle.

    python benchmarks/parallel_real.py [--epochs 3000] [--max-epochs 60] [--workers 1,2]
        [--max-rows N] [--backend random] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _measure import machine

from tuning.cli.parser import _count_list


def run(args: argparse.Namespace, workers: int, out: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "tuning",
        "run",
        "--backend",
        args.backend,
        "--budget-epochs",
        str(args.epochs),
        "--max-epochs",
        str(args.max_epochs),
        "--workers",
        str(workers),
        "--out",
        str(out / f"w{workers}"),
        "--fresh",
    ]
    if args.max_rows:
        command += ["--max-rows", str(args.max_rows)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    (study,) = (out / f"w{workers}").iterdir()
    summary = json.loads((study / "summary.json").read_text())
    trials = pd.read_csv(study / "trials.csv")
    search = summary["search_seconds"]
    figures = {
        "workers": workers,
        "process_seconds": round(wall, 1),
        "search_seconds": search,
        "epochs": int(trials["epochs"].sum()),
        "trials": len(trials),
        "best_val_loss": summary.get("best_val_loss"),
    }
    if workers > 1:  # where each worker's share of the search went
        busy = trials.groupby("worker")[["fit_seconds", "compile_seconds"]].sum()
        first = trials.groupby("worker")["started"].min()
        figures["per_worker"] = {
            int(w): {
                "training_s": round(float(busy.loc[w, "fit_seconds"]), 1),
                "compiling_s (in training)": round(float(busy.loc[w, "compile_seconds"]), 1),
                "first_trial_at_s": round(float(first.loc[w]), 1),
                "idle_s": round(search - float(busy.loc[w, "fit_seconds"]), 1),
            }
            for w in busy.index
        }
    else:
        figures["training_s"] = round(float(trials["fit_seconds"].sum()), 1)
        figures["compiling_s (in training)"] = round(float(trials["compile_seconds"].sum()), 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3000)
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--workers", type=_count_list, default=[1, 2])
    parser.add_argument("--max-rows", type=int)
    parser.add_argument("--backend", default="random")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="parallel_real_"))
    print(machine())
    results = [run(args, workers, out) for workers in args.workers]
    for figures in results:
        print(json.dumps(figures))
    base = results[0]
    for figures in results[1:]:
        print(
            f"{args.backend}, {args.epochs} epochs: {figures['workers']} workers "
            f"{figures['search_seconds']:.1f} s against {base['workers']} worker "
            f"{base['search_seconds']:.1f} s: {figures['search_seconds'] / base['search_seconds']:.2f}x "
            f"the search's wall-clock ({figures['process_seconds'] / base['process_seconds']:.2f}x "
            f"the whole command's); epochs {figures['epochs']} against {base['epochs']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
