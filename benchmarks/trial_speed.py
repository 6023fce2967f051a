"""Seconds per epoch and per trial: default Keras `fit`, the harness's two trainers, a bare scan.

The standard trial: the book's MLP (the `ARCHITECTURES` below in turn, learning rate 3e-3) on the
full California training split (11,610 rows, batch 32, SGD), 20 epochs with validation each
epoch (patience 20, so every trial trains all 20). Each variant runs in a fresh process, whose
first trial (another architecture) is a warm-up and is not counted; then every architecture is
trained twice: the first time it is new to the process (compilation included), the second time
it is not.

- `keras default`: `build_model` + `model.fit` with Keras' defaults on TensorFlow (one call per
  batch, progress output to an unread buffer): the baseline, 1.00x.
- `harness, keras fit`: an `KerasEvaluator` trial with ``trainer="keras"`` (Keras `fit`, one call per
  epoch), on TensorFlow and on JAX, without JAX's persistent compilation cache: the harness
  before the compiled trainer.
- `compiled`: an `KerasEvaluator` trial with the compiled trainer (JAX): first with an empty
  persistent compilation cache (`cold cache`), then in another process with the cache the first
  one filled (`warm cache`: a grid's later processes, or a later run). Both the epoch programs
  and what Keras compiles to build each model (its initializers, per shape) are cached.
- `bare jitted scan`: the same MLP, loss and SGD written directly in JAX, no Keras: one jitted
  function per epoch as the compiled trainer's (rows gathered in the epoch's shuffled order,
  `lax.scan` over the full batches, the last batch, validation in one pass), one host sync:
  the floor this design can reach.

s/epoch is the median time between two epoch ends (epochs 2-20), so it leaves compilation out;
s/trial is a whole trial, compilation included; compile s is the trainer's own measure.

Then a short study through the command line, `tuning run --backend random --dataset
california --trials 3 --max-epochs 40` on each trainer: its search seconds per trained epoch,
compilation, process start-up excluded, against default Keras `fit` per epoch.

    python benchmarks/trial_speed.py [--epochs 20] [--jax-only]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import machine, run_child, write_result

ARCHITECTURES = [(2, 30), (1, 60), (3, 20)]
WARM_UP = (2, 45)
LEARNING_RATE = 3e-3


def child(result_path: str, variant: str, epochs: int) -> None:
    import keras

    from tuning.core.results import StudyKey, TrialWriter
    from tuning.core.space import default_space
    from tuning.evaluation.data import load_dataset
    from tuning.evaluation.keras.evaluator import KerasEvaluator
    from tuning.evaluation.keras.factory import study_padding
    from tuning.evaluation.keras.model import build_model
    from tuning.evaluation.keras.trainer import TrainingProtocol

    data = load_dataset("california", download=False)
    if variant == "bare":
        write_result(result_path, bare_scan(data, epochs))
        return
    trainer = "keras" if variant in ("default", "keras") else "compiled"
    protocol = TrainingProtocol(max_epochs=epochs, patience=epochs, trainer=trainer)

    class EpochClock(keras.callbacks.Callback):
        reads_model = False

        def on_train_begin(self, logs=None):
            self.ends = []

        def on_epoch_end(self, epoch, logs=None):
            self.ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        writer = TrialWriter(Path(tmp) / "trials.csv", StudyKey("bench", "none", data.name, 0))
        # as a study builds its models: padded widths where the trainer shares programs by shape
        padding = study_padding(
            build_model, default_space(), len(data.X_train), epochs, data.n_inputs
        )
        objective = KerasEvaluator(data, protocol, writer, seed=0, padding=padding)

        def trial(n_hidden: int, n_neurons: int) -> dict[str, float]:
            params = {"n_hidden": n_hidden, "n_neurons": n_neurons, "learning_rate": LEARNING_RATE}
            clock = EpochClock()
            compiled_before = objective.trainer.compile_seconds
            started = time.perf_counter()
            if variant == "default":  # Keras' defaults: one call per batch, progress output
                keras.utils.set_random_seed(0)
                model = build_model(**params, input_shape=data.input_shape)
                with contextlib.redirect_stdout(io.StringIO()):
                    model.fit(
                        data.X_train,
                        data.y_train,
                        validation_data=(data.X_valid, data.y_valid),
                        batch_size=32,
                        epochs=epochs,
                        callbacks=[
                            keras.callbacks.EarlyStopping(
                                patience=epochs, restore_best_weights=True
                            ),
                            clock,
                        ],
                    )
            else:
                model = objective.build(params)
                objective.train(model, params, epochs=epochs, callbacks=[clock])
            return {
                "trial": time.perf_counter() - started,
                "epoch": statistics.median(b - a for a, b in itertools.pairwise(clock.ends)),
                "compile": objective.trainer.compile_seconds - compiled_before,
            }

        trial(*WARM_UP)
        new = [trial(*arch) for arch in ARCHITECTURES]
        seen = [trial(*arch) for arch in ARCHITECTURES]
    write_result(result_path, {"backend": keras.backend.backend(), "new": new, "seen": seen})


def bare_scan(data, epochs: int) -> dict:
    """The floor: the MLP, MSE and SGD in plain JAX, one jitted epoch (see the docstring)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    batch = 32

    def init(key, sizes):
        params = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            key, sub = jax.random.split(key)
            limit = (6 / (fan_in + fan_out)) ** 0.5
            params.append(
                (
                    jax.random.uniform(sub, (fan_in, fan_out), minval=-limit, maxval=limit),
                    jnp.zeros(fan_out),
                )
            )
        return params

    def predict(params, x):
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return (x @ w + b)[:, 0]

    def loss(params, x, y):
        return jnp.mean((predict(params, x) - y) ** 2)

    def step(params, rows, x, y):
        value, grads = jax.value_and_grad(loss)(params, x[rows], y[rows])
        return jax.tree.map(lambda p, g: p - LEARNING_RATE * g, params, grads), value

    @jax.jit
    def epoch(params, x, y, xv, yv, order):
        xs, ys = x[order], y[order]
        full = x.shape[0] // batch

        def body(carry, rows):
            params, total = carry
            params, value = step(params, rows, xs, ys)
            return (params, total + value * batch), None

        batches = jnp.arange(full * batch).reshape(full, batch)
        (params, total), _ = lax.scan(body, (params, 0.0), batches)
        tail = jnp.arange(full * batch, x.shape[0])
        params, value = step(params, tail, xs, ys)
        train_loss = (total + value * tail.shape[0]) / x.shape[0]
        return params, train_loss, loss(params, xv, yv)

    arrays = [jnp.asarray(a) for a in (data.X_train, data.y_train, data.X_valid, data.y_valid)]
    results = []
    for n_hidden, n_neurons in [WARM_UP, *ARCHITECTURES]:
        started = time.perf_counter()
        params = init(jax.random.key(0), [arrays[0].shape[1], *[n_neurons] * n_hidden, 1])
        ends = []
        for e in range(epochs):
            order = np.random.default_rng([0, e]).permutation(len(data.X_train)).astype(np.int32)
            params, train_loss, val_loss = epoch(params, *arrays, order)
            float(val_loss)  # one host sync per epoch, as the trainers do
            ends.append(time.perf_counter())
        results.append(
            {
                "trial": time.perf_counter() - started,
                "epoch": statistics.median(b - a for a, b in itertools.pairwise(ends)),
                "compile": 0.0,
            }
        )
    return {
        "backend": "jax",
        "device": jax.devices()[0].device_kind,
        "new": results[1:],
        "seen": [],
    }


def short_study(trainer: str, cache: str, out: str) -> dict:
    """`tuning run` of 3 random-search trials of at most 40 epochs; its summary."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["TUNING_COMPILATION_CACHE"] = cache
    command = [
        sys.executable, "-m", "tuning", "run", "--backend", "random", "--dataset", "california",
        "--trials", "3", "--max-epochs", "40", "--trainer", trainer, "--out", out, "--fresh",
    ]  # fmt: skip
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((Path(out) / "california_random_s0" / "summary.json").read_text())
    return {"epochs": summary["spent"]["epochs"], "seconds": summary["spent"]["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="compiled", help=argparse.SUPPRESS)
    parser.add_argument(
        "--jax-only",
        action="store_true",
        help="leave out TensorFlow and the command-line study (a machine with JAX and Keras only, "
        "such as an accelerator's)",
    )
    args = parser.parse_args()
    if args.child:
        child(args.child, args.variant, args.epochs)
        return

    common = ["--epochs", str(args.epochs)]
    runs = []

    def measured(label: str, variant: str, keras_backend: str, cache: str) -> None:
        os.environ["TUNING_COMPILATION_CACHE"] = cache
        runs.append((label, run_child(__file__, [*common, "--variant", variant], keras_backend)))

    with tempfile.TemporaryDirectory(prefix="tuning-jax-cache-") as cache:
        if not args.jax_only:
            measured("keras default", "default", "tensorflow", "off")
            measured("harness, keras fit", "keras", "tensorflow", "off")
        measured("harness, keras fit", "keras", "jax", "off")  # the harness before this cache
        measured("compiled, cold cache", "compiled", "jax", cache)  # empty
        measured("compiled, warm cache", "compiled", "jax", cache)  # as the cold run left it
        measured("bare jitted scan", "bare", "jax", "off")
    studies = {}
    if not args.jax_only:
        with tempfile.TemporaryDirectory(prefix="tuning-bench-") as tmp:
            cache = str(Path(tmp) / "cache")
            studies = {
                "keras fit": short_study("keras", "off", str(Path(tmp) / "keras")),
                "compiled, cold cache": short_study("compiled", cache, str(Path(tmp) / "cold")),
                "compiled, warm cache": short_study("compiled", cache, str(Path(tmp) / "warm")),
            }

    def median(run: dict, part: str, key: str) -> float:
        return statistics.median(t[key] for t in run[part]) if run[part] else float("nan")

    print(f"machine: {machine()}; JAX device: {runs[-1][1].get('device', '?')}")
    print(
        f"trial: California, 11,610 rows, batch 32, {args.epochs} epochs with validation; "
        f"medians over {len(ARCHITECTURES)} architectures after a warm-up trial\n"
    )
    print(
        f"{'variant':<24}{'backend':<12}{'s/epoch':>9}{'s/trial new':>13}{'compile s':>11}"
        f"{'s/trial seen':>14}{'trial speed-up':>16}"
    )
    baseline = median(runs[0][1], "new", "trial")  # keras default, or keras fit on JAX
    figures = {}
    for variant, run in runs:
        epoch, new = median(run, "new", "epoch"), median(run, "new", "trial")
        figures[variant, run["backend"]] = (epoch, new)
        print(
            f"{variant:<24}{run['backend']:<12}{epoch:>9.4f}{new:>13.3f}"
            f"{median(run, 'new', 'compile'):>11.3f}{median(run, 'seen', 'trial'):>14.3f}"
            f"{baseline / new:>15.1f}x"
        )
    keras_jax = figures["harness, keras fit", "jax"]
    bare = figures["bare jitted scan", "jax"]
    print()
    for variant in ("compiled, cold cache", "compiled, warm cache"):
        epoch, trial = figures[variant, "jax"]
        print(
            f"{variant}: an epoch {keras_jax[0] / epoch:.1f}x faster than the harness with Keras "
            f"fit on JAX, {epoch / bare[0]:.2f}x the bare scan's; a new architecture's trial "
            f"{keras_jax[1] / trial:.1f}x faster (target >= 5x), {trial / (epoch * args.epochs):.1f}x "
            "its epochs alone (target <= 2x)"
        )
    if not studies:
        return
    default_epoch = median(runs[0][1], "new", "epoch")
    print("\n`tuning run --backend random --trials 3 --max-epochs 40` on JAX, search only:")
    for trainer, spent in studies.items():
        per_epoch = spent["seconds"] / spent["epochs"]
        print(
            f"  {trainer:<22}{spent['epochs']:>4} epochs in {spent['seconds']:6.2f} s: "
            f"{per_epoch:.4f} s/epoch, {default_epoch / per_epoch:5.1f}x faster than default "
            "Keras fit on TensorFlow (target >= 60x)"
        )


if __name__ == "__main__":
    sys.exit(main())
