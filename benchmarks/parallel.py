"""Parallel speed-up of the grid runner: two studies one after the other, then side by side.

Both runs are `tuning.run.grid.run_grid` on the same two studies (random search, seeds 0 and 1, the full
California data, an epoch budget each, trials of at most 20 epochs): first with one worker process
at a time (each given every core), then two at once (each pinned to half the cores), on each
Keras backend. Wall time includes starting the worker processes, the search, the winner's
retraining and its test. The target is a speed-up of at least 1.7x on 2 cores.

    python benchmarks/parallel.py [--budget-epochs 300] [--keras-backend jax]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace

from _measure import machine

from tuning.core.config import StudyConfig
from tuning.evaluation.keras.environment import KERAS_BACKENDS
from tuning.run.grid import plan_grid, run_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-epochs", type=int, default=300)
    parser.add_argument("--keras-backend", choices=KERAS_BACKENDS)
    args = parser.parse_args()
    backends = [args.keras_backend] if args.keras_backend else list(KERAS_BACKENDS)
    seconds = {backend: grid_seconds(backend, args.budget_epochs) for backend in backends}

    print(f"machine: {machine()}")
    print(f"2 studies (random search, California, {args.budget_epochs} epochs each)\n")
    print(f"{'keras backend':<15}{'--jobs 1':>10}{'--jobs 2':>10}{'speed-up':>10}")
    for backend, (one, two) in seconds.items():
        print(f"{backend:<15}{one:>8.1f} s{two:>8.1f} s{one / two:>9.2f}x")
    print("target: two studies side by side >= 1.7x faster than one after the other")


def grid_seconds(keras_backend: str, budget_epochs: int) -> tuple[float, float]:
    """Wall seconds of the two studies with one worker, then with two."""
    os.environ["KERAS_BACKEND"] = keras_backend  # the workers inherit it; this process has no Keras
    seconds = []
    with tempfile.TemporaryDirectory(prefix="tuning-bench-") as tmp:
        base = StudyConfig(
            backend="random",
            dataset="california",
            budget_epochs=budget_epochs,
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
            seconds.append(result.seconds)
    return seconds[0], seconds[1]


if __name__ == "__main__":
    sys.exit(main())
