"""Parallel speed-up of the grid runner: two studies one after the other, then side by side.

Both runs are `tuning.grid.run_grid` on the same two studies (random search, seeds 0 and 1, the full
California data, an epoch budget each, trials of at most 20 epochs): first with one worker process
at a time (each given every core), then two at once (each pinned to half the cores). Wall time
includes starting the worker processes, the search, the winner's retraining and its test. The
target is a speed-up of at least 1.7x on 2 cores.

    python benchmarks/parallel.py [--budget-epochs 300] [--keras-backend jax]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace

from _measure import machine

from tuning.config import StudyConfig
from tuning.grid import plan_grid, run_grid
from tuning.keras_backend import KERAS_BACKENDS, resolve_keras_backend, use_keras_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-epochs", type=int, default=300)
    parser.add_argument("--keras-backend", choices=KERAS_BACKENDS)
    args = parser.parse_args()
    keras_backend = resolve_keras_backend(args.keras_backend)
    use_keras_backend(keras_backend)

    seconds = {}
    with tempfile.TemporaryDirectory(prefix="tuning-bench-") as tmp:
        base = StudyConfig(
            backend="random",
            dataset="california",
            budget_epochs=args.budget_epochs,
            max_epochs=20,
            patience=5,
            keras_backend=keras_backend,
            out=tmp,
        )
        for jobs in (1, 2):
            configs = [
                replace(c, out=os.path.join(tmp, f"jobs{jobs}"))
                for c in plan_grid(base, ["random"], [0, 1])
            ]
            result = run_grid(configs, jobs=jobs)
            failed = [s.config.study for s in result.studies if s.state != "done"]
            if failed:
                raise SystemExit(f"studies {failed} did not finish; see their study.log")
            seconds[jobs] = result.seconds

    print(f"machine: {machine()}")
    print(
        f"2 studies (random search, California, {args.budget_epochs} epochs each, "
        f"Keras on {keras_backend})\n"
    )
    print(f"one after the other (--jobs 1): {seconds[1]:7.1f} s")
    print(f"side by side        (--jobs 2): {seconds[2]:7.1f} s")
    print(f"parallel speed-up: {seconds[1] / seconds[2]:.2f}x (target >= 1.7x)")


if __name__ == "__main__":
    sys.exit(main())
