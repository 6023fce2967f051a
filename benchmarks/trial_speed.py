"""Seconds per trial: plain default Keras `fit` against the harness's trials, on each Keras backend.

The standard trial: the book's MLP (the `PARAMS` below in turn) on the full California training
split (11,610 rows, batch 32), 20 epochs with validation each epoch (patience 20, so every trial
trains all 20). Each variant runs in a fresh process; the first trial of each is a warm-up and is
not counted. Printed, from one run:

- `keras default`: `build_model` + `model.fit` with Keras' defaults (TensorFlow, one call per
  batch, progress output to an unread buffer): the baseline, 1.00x.
- `bare fast`: the previous models freed, then `build_model` + `model.fit` with the protocol's
  settings (one call per epoch, no progress output, its early stopping), nothing else.
- `harness`: one `Objective` trial (the same, plus the NaN guard, the budget's epoch counter, the
  history kept and its row written to trials.csv), alternating with `bare fast` in one process,
  each first every other trial.

Speed-up = keras default s/trial / variant s/trial; overhead = harness / bare fast - 1. The script
also checks that a harness trial's loss history equals the bare fit's, bit for bit.

    python benchmarks/trial_speed.py [--trials 5] [--epochs 20]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _measure import machine, run_child, write_result

PARAMS = [
    {"n_hidden": 2, "n_neurons": 30, "learning_rate": 3e-3},
    {"n_hidden": 1, "n_neurons": 60, "learning_rate": 1e-2},
    {"n_hidden": 3, "n_neurons": 20, "learning_rate": 5e-3},
]


def child(result_path: str, variant: str, trials: int, epochs: int) -> None:
    import keras

    from tuning.data import load_dataset
    from tuning.model import build_model
    from tuning.objective import Objective, TrainingProtocol, release_models
    from tuning.results import StudyKey, TrialWriter

    data = load_dataset("california", download=False)
    protocol = TrainingProtocol(max_epochs=epochs, patience=epochs)

    def bare_fit(params: dict, fast: bool) -> tuple[float, dict]:
        started = time.perf_counter()
        if fast:
            release_models()  # as the harness does: its cost is not counted as overhead
        keras.utils.set_random_seed(0)
        if fast:
            steps = protocol.steps_per_execution(len(data.X_train))
            model = build_model(**params, input_shape=data.input_shape, steps_per_execution=steps)
            callbacks = protocol.callbacks()
            verbose: int | str = 0
        else:  # Keras' defaults: one call per batch, progress output
            model = build_model(**params, input_shape=data.input_shape)
            callbacks = [keras.callbacks.EarlyStopping(patience=epochs, restore_best_weights=True)]
            verbose = "auto"
        with contextlib.redirect_stdout(io.StringIO()):
            fitted = model.fit(
                data.X_train,
                data.y_train,
                validation_data=(data.X_valid, data.y_valid),
                batch_size=32,
                epochs=epochs,
                callbacks=callbacks,
                verbose=verbose,
            )
        return time.perf_counter() - started, fitted.history

    def harness_trial(params: dict) -> tuple[float, dict]:
        started = time.perf_counter()
        trial_result = objective(params)
        return time.perf_counter() - started, trial_result.history

    def bare_fast_fit(params: dict) -> tuple[float, dict]:
        return bare_fit(params, fast=True)

    seconds: dict[str, list[float]] = {}
    same_losses = True
    with tempfile.TemporaryDirectory() as tmp:
        writer = TrialWriter(Path(tmp) / "trials.csv", StudyKey("bench", "none", data.name, 0))
        objective = Objective(data, protocol, writer, seed=0)
        for trial in range(trials + 1):
            params = PARAMS[trial % len(PARAMS)]
            if variant == "default":
                runs = {"keras default": bare_fit(params, fast=False)}
            else:  # each first every other trial, so that neither gains from the order
                pair = [("bare fast", bare_fast_fit), ("harness", harness_trial)]
                if trial % 2:
                    pair.reverse()
                runs = {name: measure(params) for name, measure in pair}
                same_losses &= runs["harness"][1] == runs["bare fast"][1]
            if trial == 0:
                continue  # warm-up: the process's first compilation
            for name, (spent, _) in runs.items():
                seconds.setdefault(name, []).append(spent)
    write_result(
        result_path, {"backend": keras.backend.backend(), "seconds": seconds, "same": same_losses}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="measured trials per variant")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="fast", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.variant, args.trials, args.epochs)
        return

    common = ["--trials", str(args.trials), "--epochs", str(args.epochs)]
    runs = [
        ("tensorflow", run_child(__file__, [*common, "--variant", "default"], "tensorflow")),
        ("tensorflow", run_child(__file__, common, "tensorflow")),
        ("jax", run_child(__file__, common, "jax")),
    ]
    baseline = statistics.median(runs[0][1]["seconds"]["keras default"])
    print(f"machine: {machine()}")
    print(
        f"trial: California, 11,610 rows, batch 32, {args.epochs} epochs with validation; "
        f"median of {args.trials} trials after a warm-up\n"
    )
    print(f"{'keras backend':<14}{'variant':<15}{'s/trial':>9}{'s/epoch':>9}{'speed-up':>10}")
    medians: dict[tuple[str, str], float] = {}
    for backend, run in runs:
        for variant, seconds in run["seconds"].items():
            median = medians[backend, variant] = statistics.median(seconds)
            print(
                f"{backend:<14}{variant:<15}{median:>9.2f}{median / args.epochs:>9.3f}"
                f"{baseline / median:>9.2f}x"
            )
    print()
    for backend, run in runs[1:]:
        overhead = medians[backend, "harness"] / medians[backend, "bare fast"] - 1
        same = "identical" if run["same"] else "DIFFERENT"
        print(
            f"{backend}: harness overhead per trial over a bare fast fit {overhead:+.1%}; "
            f"loss histories harness vs bare fit: {same}"
        )
    for backend, _ in runs[1:]:
        print(
            f"{backend}: a harness trial is {baseline / medians[backend, 'harness']:.1f}x faster "
            "than a default Keras fit on TensorFlow (target >= 5x)"
        )


if __name__ == "__main__":
    sys.exit(main())
