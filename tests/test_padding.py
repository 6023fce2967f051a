"""Padded widths: every model of one depth built at one shape, its unused units exact zeros.

A study on the compiled trainer builds the book's MLP at the space's largest width
(`tuning.evaluation.keras.factory.padding_arguments`) so that trials of every width share one
compiled program per depth. That is a speed setting only: the unused units must hold exact zeros
and receive no gradient, and the real units must compute what the unpadded model computes.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from scipy import stats

from tuning.core.space import default_space
from tuning.evaluation.keras.factory import study_padding
from tuning.evaluation.keras.model import GlorotBlock, UnitMask, build_model
from tuning.evaluation.keras.objective import build_seeded, release_models
from tuning.evaluation.keras.trainer import TrainingProtocol

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the compiled trainer runs on JAX only"
)
PADDED = 24


def _train(data, params, *, padded=None, seed=0, epochs=8, patience=8, trainer=None):
    """Build ``params`` (initial weights seeded with ``seed``) and train it with the compiled
    trainer (a new one shuffling with ``seed``, or ``trainer``); (history, model)."""
    from tuning.evaluation.keras.compiled import CompiledTrainer

    release_models()
    protocol = TrainingProtocol(max_epochs=epochs, patience=patience)
    options = {} if padded is None else {"padded_neurons": padded}
    model = build_seeded(build_model, params, data, protocol, seed, options)
    trainer = trainer or CompiledTrainer(protocol, seed)
    history = trainer.fit(
        model, data.X_train, data.y_train, validation_data=(data.X_valid, data.y_valid)
    )
    return history, model


def _dense(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_padded_units_are_still_exact_zeros_after_training(california_small, optimizer):
    params = {"n_hidden": 3, "n_neurons": 7, "learning_rate": 0.01, "optimizer": optimizer}
    history, model = _train(california_small, params, padded=PADDED)
    assert len(history["loss"]) == 8  # it trained
    dense = _dense(model)
    assert [d.units for d in dense] == [PADDED, PADDED, PADDED, 1]
    fan_in = california_small.X_train.shape[1]
    for index, layer in enumerate(dense):
        kernel, bias = (np.asarray(w) for w in layer.get_weights())
        real_out = 7 if index < 3 else 1
        real = kernel[:fan_in, :real_out]
        assert np.all(real != 0)  # the real units trained (and started from Glorot's draws)
        padded = kernel.copy()
        padded[:fan_in, :real_out] = 0
        assert np.all(padded == 0), f"layer {index}: a padded weight moved"
        assert np.all(bias[real_out:] == 0) and np.any(bias[:real_out] != 0)
        fan_in = 7
    masks = [np.asarray(layer.mask) for layer in model.layers if isinstance(layer, UnitMask)]
    assert len(masks) == 3 and all(list(m) == [1] * 7 + [0] * (PADDED - 7) for m in masks)


@pytest.mark.parametrize(
    "params",
    [
        {"n_hidden": 1, "n_neurons": 5, "learning_rate": 1e-3},
        {"n_hidden": 2, "n_neurons": 13, "learning_rate": 3e-3},
        {"n_hidden": 3, "n_neurons": 24, "learning_rate": 1e-3, "optimizer": "adam"},
    ],
)
def test_a_padded_model_trains_as_the_unpadded_one_to_float_rounding(california_small, params):
    plain_history, plain = _train(california_small, params)
    padded_history, padded = _train(california_small, params, padded=PADDED)
    # the same initial draws: the real block of each padded kernel is the unpadded kernel
    for a, b in zip(_dense(plain), _dense(padded), strict=True):
        rows, columns = a.kernel.shape
        assert b.kernel.shape[0] >= rows and b.kernel.shape[1] >= columns
    for key in ("loss", "val_loss"):
        a, b = np.asarray(plain_history[key]), np.asarray(padded_history[key])
        assert len(a) == len(b) == 8
        assert np.max(np.abs(a - b) / np.abs(a)) < 1e-5, key


def test_on_a_chaotic_configuration_the_final_losses_agree_in_distribution(california_small):
    # a learning rate at the edge of divergence: rounding differences grow epoch by epoch
    from tuning.evaluation.keras.compiled import CompiledTrainer

    params = {"n_hidden": 3, "n_neurons": 20, "learning_rate": 0.15}
    protocol = TrainingProtocol(max_epochs=10, patience=10)
    plain, padded = [], []
    for out, pad in ((plain, None), (padded, PADDED)):
        trainer = CompiledTrainer(protocol, 0)  # one program for all seeds' initial weights
        for seed in range(10):
            history, _ = _train(
                california_small, params, padded=pad, seed=seed, epochs=10, trainer=trainer
            )
            out.append(history["val_loss"][-1])
    plain, padded = np.asarray(plain), np.asarray(padded)
    assert np.isfinite(plain).sum() == np.isfinite(padded).sum()
    finite = np.isfinite(plain) & np.isfinite(padded)
    assert stats.ks_2samp(plain[finite], padded[finite]).pvalue > 0.05


def test_trials_of_every_width_share_one_program_per_depth(california_small):
    from tuning.evaluation.keras.compiled import CompiledTrainer

    protocol = TrainingProtocol(max_epochs=2, patience=2)
    trainer = CompiledTrainer(protocol, 0)
    for n_neurons in (3, 11, 24):
        for n_hidden in (1, 2):
            params = {"n_hidden": n_hidden, "n_neurons": n_neurons, "learning_rate": 1e-3}
            _train(california_small, params, padded=PADDED, epochs=2, trainer=trainer)
    assert trainer.programs_compiled == 2 and trainer.programs_reused == 4


def test_glorot_block_draws_the_real_shapes_distribution_on_the_host():
    first = GlorotBlock(8, 30, seed=3, layer=1)((8, 100), "float32")
    again = GlorotBlock(8, 30, seed=3, layer=1)((8, 100), "float32")
    np.testing.assert_array_equal(first, again)  # seeded: the same in any process
    real = first[:, :30]
    limit = math.sqrt(6 / (8 + 30))  # Glorot's, from the real fan-in and fan-out
    assert np.all(np.abs(real) <= limit) and np.abs(real).max() > 0.9 * limit
    assert stats.kstest(real.ravel() / limit, "uniform", args=(-1, 2)).pvalue > 0.01
    assert np.all(first[:, 30:] == 0)
    other_layer = GlorotBlock(8, 30, seed=3, layer=2)((8, 30), "float32")
    assert not np.allclose(other_layer, real)


def test_a_study_pads_to_the_largest_width_on_small_data_and_to_powers_of_two_on_large():
    # the book's n_neurons: np.arange(1, 100)
    small = study_padding(build_model, default_space(), rows=2000, max_epochs=20)
    assert small.one_width and small.arguments({"n_neurons": 5}) == {"padded_neurons": 99}
    large = study_padding(build_model, default_space(), rows=11_610, max_epochs=20)
    assert not large.one_width
    # what a library that builds every configuration alike (scikit-learn) gets
    assert small.fixed_arguments() == {"padded_neurons": 99} and large.fixed_arguments() == {}
    widths = [large.arguments({"n_neurons": n})["padded_neurons"] for n in (1, 16, 17, 64, 65, 99)]
    assert widths == [16, 16, 32, 64, 99, 99]  # powers of two from 16, at most the largest
    assert study_padding(lambda **_: None, default_space(), 10, 1).arguments({"n_neurons": 5}) == {}
    with pytest.raises(ValueError, match="padded_neurons must be >= n_neurons"):
        build_model(n_hidden=1, n_neurons=30, padded_neurons=20)


def test_a_padded_model_saves_and_loads(tmp_path, california_small):
    _, model = _train(california_small, {"n_hidden": 1, "n_neurons": 4}, padded=8, epochs=1)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = california_small.X_valid[:5]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_the_unpadded_model_a_study_saves_loads_with_keras_alone(tmp_path):
    import subprocess
    import sys

    build_model(n_hidden=2, n_neurons=5, seed=1).save(tmp_path / "plain.keras")
    code = (
        "import keras, sys; m = keras.models.load_model(sys.argv[1]); "
        "print([type(l).__name__ for l in m.layers])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "plain.keras")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "['Dense', 'Dense', 'Dense']"
