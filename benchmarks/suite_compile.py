"""The small suite from an empty compilation cache: its wall time and the share of the trials'
fit seconds spent compiling (issue 25's targets: <= 3 minutes, <= 15%).

    python benchmarks/suite_compile.py [--seeds 0] [--jobs 2] [--keep FOLDER]

Runs ``tuning benchmark --suite suites/small.toml`` into a temporary folder (or ``--keep``'s)
with a fresh JAX compilation cache, then sums the rows of every study's ``trials.csv``: fit and
compile seconds, and the trials that compiled a program, per backend.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _measure import machine

ROOT = Path(__file__).resolve().parent.parent
COMPILED_SECONDS = 0.05  # more than a trial's bookkeeping: it traced and compiled a program


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--jobs", default="2")
    parser.add_argument("--keep", type=Path, help="write the suite's results here (kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuning-suite-") as tmp:
        out = args.keep or Path(tmp) / "small"
        env = {
            **os.environ,
            "KERAS_BACKEND": "jax",
            "TUNING_COMPILATION_CACHE": str(Path(tmp) / "jax-cache"),
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        command = [
            sys.executable, "-m", "tuning", "benchmark", "--suite", "suites/small.toml",
            "--seeds", args.seeds, "--jobs", args.jobs, "--out", str(out),
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        rows = pd.concat(pd.read_csv(p) for p in glob.glob(f"{out}/*/trials.csv"))
        summaries = [json.loads(Path(p).read_text()) for p in glob.glob(f"{out}/*/summary.json")]
    fit, compiling = rows["fit_seconds"].sum(), rows["compile_seconds"].sum()
    search = sum(s["search_seconds"] for s in summaries)
    print(machine())
    print(f"tuning benchmark --suite suites/small.toml --seeds {args.seeds} --jobs {args.jobs}")
    print(
        f"{len(summaries)} studies, {len(rows)} trials, {int(rows['epochs'].sum())} epochs in "
        f"{wall:.0f} s wall (target <= 180 s for one seed)"
    )
    print(
        f"trials' fit seconds {fit:.0f}, of which compiling {compiling:.0f} "
        f"({compiling / fit:.0%}; target <= 15%); the studies' search seconds {search:.0f}"
    )
    # a trial that compiled (its row's compile seconds: those since the previous row)
    rows["compiled"] = rows["compile_seconds"] > COMPILED_SECONDS
    by_backend = rows.groupby("backend")[["fit_seconds", "compile_seconds", "compiled"]].sum()
    by_backend["compile_share"] = (by_backend["compile_seconds"] / by_backend["fit_seconds"]).round(
        2
    )
    print(by_backend.round(1).to_string())


if __name__ == "__main__":
    main()
