"""Same math: the compiled trainer's epochs against Keras `fit`'s, on JAX.

1. Shuffling off, the same initial weights: per-epoch training and validation losses (and
   accuracies) of the compiled trainer against Keras `fit`, over 20 epochs, for several architectures (``n_hidden=0`` included) on
   California (full training split, regression) and digits (classification). Printed: the
   largest relative difference of any epoch's value.
2. Shuffling on: one configuration trained with 10 seeds (initial weights and batch order) by
   each trainer; the final validation losses' mean, standard deviation, the two-sample
   Kolmogorov-Smirnov p-value and the Mann-Whitney U p-value (the orders differ by design: Keras
   shuffles with NumPy's global generator, the compiled trainer with its own seeded one).

    python benchmarks/same_math.py [--epochs 20] [--seeds 10]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ARCHITECTURES = [
    {"n_hidden": 0, "n_neurons": 1, "learning_rate": 0.01},
    {"n_hidden": 1, "n_neurons": 30, "learning_rate": 0.01},
    {"n_hidden": 2, "n_neurons": 50, "learning_rate": 3e-3},
    {"n_hidden": 3, "n_neurons": 20, "learning_rate": 0.01},
    {"n_hidden": 2, "n_neurons": 20, "learning_rate": 1e-3, "optimizer": "adam"},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()

    import keras
    import numpy as np
    from scipy import stats

    from tuning.evaluation.data import load_dataset
    from tuning.evaluation.keras.between_trials import release_models
    from tuning.evaluation.keras.compiled import CompiledTrainer
    from tuning.evaluation.keras.model import build_model
    from tuning.evaluation.keras.seeded_build import build_seeded
    from tuning.evaluation.keras.trainer import KerasTrainer, TrainingProtocol

    if keras.backend.backend() != "jax":
        raise SystemExit("run on JAX: KERAS_BACKEND=jax")
    from _measure import machine

    def fit(make_trainer, data, params, protocol, seed):
        release_models()
        model = build_seeded(build_model, params, data, protocol, seed)
        return make_trainer(protocol, seed).fit(
            model, data.X_train, data.y_train, validation_data=(data.X_valid, data.y_valid)
        )

    trainers = {"compiled": CompiledTrainer}
    print(f"machine: {machine()}\n")
    print(f"1. shuffling off, {args.epochs} epochs: largest relative difference from Keras fit")
    exact = TrainingProtocol(max_epochs=args.epochs, patience=args.epochs, shuffle=False)
    worst = dict.fromkeys(trainers, 0.0)
    for name in ("california", "digits"):
        data = load_dataset(name, download=False)
        for params in ARCHITECTURES:
            reference = fit(KerasTrainer, data, params, exact, seed=1)
            cells = []
            for label, make in trainers.items():
                history = fit(make, data, params, exact, seed=1)
                difference = max(
                    float(np.max(np.abs(np.subtract(v, history[k])) / np.abs(v)))
                    for k, v in reference.items()
                )
                worst[label] = max(worst[label], difference)
                cells.append(f"{label} {difference:.1e}")
            print(f"   {name:<11} {str(params):<78} " + ", ".join(cells))
    print("   largest: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))

    print(f"\n2. shuffling on, {args.seeds} seeds, {args.epochs} epochs, California, 2x30 SGD:")
    shuffled = TrainingProtocol(max_epochs=args.epochs, patience=args.epochs)
    params = {"n_hidden": 2, "n_neurons": 30, "learning_rate": 3e-3}
    data = load_dataset("california", download=False)
    finals = {
        label: [
            fit(make, data, params, shuffled, seed)["val_loss"][-1] for seed in range(args.seeds)
        ]
        for label, make in (("keras fit", KerasTrainer), ("compiled", CompiledTrainer))
    }
    for label, values in finals.items():
        print(
            f"   {label:<10} final val_loss mean {np.mean(values):.4f} std {np.std(values, ddof=1):.4f}"
            f" min {np.min(values):.4f} max {np.max(values):.4f}"
        )
    a, b = finals["keras fit"], finals["compiled"]
    print(
        f"   Kolmogorov-Smirnov p = {stats.ks_2samp(a, b).pvalue:.3f}, "
        f"Mann-Whitney U p = {stats.mannwhitneyu(a, b).pvalue:.3f}"
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
