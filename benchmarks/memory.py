"""Memory over many trials: the process's resident memory across 200 consecutive trials.

Each trial builds a new model of a different shape (the `SHAPES` below in turn) and trains it 2
epochs on 2,000 California rows. Four runs, each in a fresh process:

- `keras default` (TensorFlow): `build_model` + `model.fit` in a loop with Keras' defaults, the way
  a plain script does it (nothing freed between trials): the baseline.
- `harness` on TensorFlow (Keras `fit`) and on JAX (the compiled trainer): the study's
  `KerasEvaluator`, which frees the previous trial's models (`keras.backend.clear_session`) before
  building the next.
- `harness, new shapes` on JAX: the same, but every trial's model has a shape no earlier trial
  had (depth 1-3, width 1-67): each compiles its own program, so the compiled trainer must drop
  old ones (it keeps the 32 used last) for memory to stay flat.
- `harness, padded` on JAX: the new shapes built as a study builds them, padded to the book's
  space's largest width and depth (`study_padding`): one program, and JAX's own programs kept
  between trials instead of cleared.

Growth per 100 trials is the least-squares slope of resident memory over trials 51-N (the first 50
warm the allocators and the frameworks' caches), times 100; also printed: memory after the first
trial and after the last.

    python benchmarks/memory.py [--trials 200] [--variants padded,new-shapes]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from _measure import machine, rss_mb, run_child, write_result

SHAPES = [(1, 30), (2, 50), (3, 20), (2, 100), (1, 10)]
ROWS, EPOCHS, WARM_UP = 2000, 2, 50


def child(result_path: str, variant: str, trials: int) -> None:
    import keras

    from tuning.core.results import StudyKey, TrialWriter
    from tuning.core.space import default_space
    from tuning.evaluation.data import load_dataset
    from tuning.evaluation.keras.evaluator import KerasEvaluator
    from tuning.evaluation.keras.factory import study_padding
    from tuning.evaluation.keras.model import build_model
    from tuning.evaluation.keras.trainer import TrainingProtocol

    data = load_dataset("california", download=False).head(ROWS)
    rss: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        writer = TrialWriter(Path(tmp) / "trials.csv", StudyKey("bench", "none", data.name, 0))
        protocol = TrainingProtocol(max_epochs=EPOCHS, patience=EPOCHS)
        padding = None
        if variant == "padded":
            rows = len(data.X_train)
            padding = study_padding(build_model, default_space(), rows, EPOCHS, data.n_inputs)
        objective = KerasEvaluator(data, protocol, writer, 0, padding=padding)
        for trial in range(trials):
            n_hidden, n_neurons = SHAPES[trial % len(SHAPES)]
            if variant in ("new-shapes", "padded"):
                n_hidden, n_neurons = 1 + trial % 3, 1 + trial // 3
            params = {"n_hidden": n_hidden, "n_neurons": n_neurons, "learning_rate": 3e-3}
            if variant == "default":
                model = build_model(**params, input_shape=data.input_shape)
                with contextlib.redirect_stdout(io.StringIO()):
                    model.fit(
                        data.X_train,
                        data.y_train,
                        validation_data=(data.X_valid, data.y_valid),
                        epochs=EPOCHS,
                        callbacks=[keras.callbacks.EarlyStopping(restore_best_weights=True)],
                    )
            else:
                objective.evaluate(params)
            rss.append(rss_mb())
    write_result(result_path, {"backend": keras.backend.backend(), "rss": rss})


def growth_per_100(rss: list[float]) -> float:
    """Least-squares slope of memory over the trials after the warm-up, in MiB per 100 trials."""
    tail = np.asarray(rss[WARM_UP:])
    return float(np.polyfit(np.arange(tail.size), tail, 1)[0] * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="harness", help=argparse.SUPPRESS)
    parser.add_argument(
        "--variants",
        default="default,harness,new-shapes,padded",
        help="which runs, comma-separated (harness runs on TensorFlow and on JAX)",
    )
    args = parser.parse_args()
    if args.trials <= WARM_UP + 10:
        parser.error(f"--trials must be over {WARM_UP + 10}")
    if args.child:
        child(args.child, args.variant, args.trials)
        return

    common = ["--trials", str(args.trials)]
    with tempfile.TemporaryDirectory(prefix="tuning-jax-cache-") as cache:
        os.environ["TUNING_COMPILATION_CACHE"] = cache  # not the user's: it would fill up
        plan = [
            ("keras default", "default", "tensorflow"),
            ("harness", "harness", "tensorflow"),
            ("harness", "harness", "jax"),
            ("harness, new shapes", "new-shapes", "jax"),
            ("harness, padded", "padded", "jax"),
        ]
        wanted = set(args.variants.split(","))
        runs = [
            (label, run_child(__file__, [*common, "--variant", variant], backend))
            for label, variant, backend in plan
            if variant in wanted
        ]
    print(f"machine: {machine()}")
    print(
        f"{args.trials} consecutive trials, {len(SHAPES)} model shapes in turn, {EPOCHS} epochs "
        f"on {ROWS} California rows each; growth = slope over trials {WARM_UP + 1}-{args.trials}\n"
    )
    print(
        f"{'variant':<22}{'keras backend':<15}{'RSS trial 1':>12}{'RSS last':>10}"
        f"{'growth/100 trials':>19}"
    )
    for variant, run in runs:
        rss = run["rss"]
        print(
            f"{variant:<22}{run['backend']:<15}{rss[0]:>9.0f} MiB{rss[-1]:>6.0f} MiB"
            f"{growth_per_100(rss):>14.1f} MiB"
        )


if __name__ == "__main__":
    sys.exit(main())
