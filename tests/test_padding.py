"""Padded shapes: every model of a study built at one shape, its unused units and layers exact
zeros.

A study on the compiled trainer builds the book's MLP at the space's largest width and depth
(`tuning.evaluation.keras.factory.study_padding`) so that trials of every width and depth share
one compiled program. That is a speed setting only: the unused units and layers must hold exact
zeros and receive no gradient, the real units must compute what the unpadded model computes, and
the model a study saves is the plain one (`tuning.evaluation.keras.export`).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from scipy import stats

from tuning.core.space import default_space
from tuning.evaluation.keras.between_trials import release_models
from tuning.evaluation.keras.export import ExportError, copy_real_units
from tuning.evaluation.keras.factory import study_padding
from tuning.evaluation.keras.model import GlorotBlock, SkippableDense, UnitMask, build_model
from tuning.evaluation.keras.seeded_build import build_seeded
from tuning.evaluation.keras.trainer import TrainingProtocol

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the compiled trainer runs on JAX only"
)
PADDED = 24
DEEPEST = 3


def _train(data, params, *, padded=None, depth=None, seed=0, epochs=8, patience=8, trainer=None):
    """Build ``params`` (initial weights seeded with ``seed``) and train it with the compiled
    trainer (a new one shuffling with ``seed``, or ``trainer``); (history, model)."""
    from tuning.evaluation.keras.compiled import CompiledTrainer

    release_models()
    protocol = TrainingProtocol(max_epochs=epochs, patience=patience)
    options = {} if padded is None else {"padded_neurons": padded}
    if depth is not None:
        options["padded_hidden"] = depth
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


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_padded_layers_pass_their_input_through_and_stay_exact_zeros(california_small, optimizer):
    params = {"n_hidden": 1, "n_neurons": 7, "learning_rate": 0.01, "optimizer": optimizer}
    history, model = _train(california_small, params, padded=PADDED, depth=DEEPEST)
    assert len(history["loss"]) == 8
    hidden = [layer for layer in model.layers if isinstance(layer, SkippableDense)]
    assert [float(layer.enabled) for layer in hidden] == [1.0, 0.0, 0.0]
    assert np.any(np.asarray(hidden[0].kernel) != 0)
    for layer in hidden[1:]:  # never used: still the zeros they started as
        assert np.all(np.asarray(layer.kernel) == 0) and np.all(np.asarray(layer.bias) == 0)
    # the values flowing out of the last padded layer are the first layer's (masked) outputs
    x = california_small.X_valid[:16]
    first = keras.Sequential(model.layers[:2])(x)
    np.testing.assert_array_equal(np.asarray(model.layers[-2](first)), np.asarray(first))
    # a model with no hidden layer passes its inputs through every layer
    _, linear = _train(california_small, {"n_hidden": 0, "n_neurons": 7}, padded=PADDED, depth=2)
    through = keras.Sequential(linear.layers[:-1])(x)
    assert np.asarray(through).shape == (16, PADDED)
    np.testing.assert_array_equal(np.asarray(through)[:, :8], x)
    assert np.all(np.asarray(through)[:, 8:] == 0)


ONE_LAYER = {"n_hidden": 1, "n_neurons": 5, "learning_rate": 1e-3}
TWO_LAYERS = {"n_hidden": 2, "n_neurons": 13, "learning_rate": 3e-3}
THREE_LAYERS_ADAM = {"n_hidden": 3, "n_neurons": 24, "learning_rate": 1e-3, "optimizer": "adam"}
LINEAR = {"n_hidden": 0, "n_neurons": 24, "learning_rate": 1e-2}


@pytest.mark.parametrize(
    "params, depth",
    [
        (ONE_LAYER, None),
        (TWO_LAYERS, None),
        (THREE_LAYERS_ADAM, None),
        (ONE_LAYER, DEEPEST),
        (TWO_LAYERS, DEEPEST),
        (LINEAR, DEEPEST),
    ],
)
def test_a_padded_model_trains_as_the_unpadded_one_to_float_rounding(
    california_small, params, depth
):
    plain_history, plain = _train(california_small, params)
    padded_history, padded = _train(california_small, params, padded=PADDED, depth=depth)
    # the same initial draws: the real block of each padded kernel is the unpadded kernel
    for a, b in zip(
        _dense(plain), _dense(padded)[: len(_dense(plain)) - 1] + _dense(padded)[-1:], strict=True
    ):
        rows, columns = a.kernel.shape
        assert b.kernel.shape[0] >= rows and b.kernel.shape[1] >= columns
    for key in ("loss", "val_loss"):
        a, b = np.asarray(plain_history[key]), np.asarray(padded_history[key])
        assert len(a) == len(b) == 8
        assert np.max(np.abs(a - b) / np.abs(a)) < 1e-5, key


@pytest.mark.parametrize(("n_hidden", "depth"), [(3, None), (2, DEEPEST)])
def test_on_a_chaotic_configuration_the_final_losses_agree_in_distribution(
    california_small, n_hidden, depth
):
    # a learning rate at the edge of divergence: rounding differences grow epoch by epoch
    from tuning.evaluation.keras.compiled import CompiledTrainer

    params = {"n_hidden": n_hidden, "n_neurons": 20, "learning_rate": 0.15}
    protocol = TrainingProtocol(max_epochs=10, patience=10)
    plain, padded = [], []
    for out, pad, padded_depth in ((plain, None, None), (padded, PADDED, depth)):
        trainer = CompiledTrainer(protocol, 0)  # one program for all seeds' initial weights
        for seed in range(10):
            history, _ = _train(
                california_small,
                params,
                padded=pad,
                depth=padded_depth,
                seed=seed,
                epochs=10,
                trainer=trainer,
            )
            out.append(history["val_loss"][-1])
    plain, padded = np.asarray(plain), np.asarray(padded)
    assert np.isfinite(plain).sum() == np.isfinite(padded).sum()
    finite = np.isfinite(plain) & np.isfinite(padded)
    assert stats.ks_2samp(plain[finite], padded[finite]).pvalue > 0.05


@pytest.mark.parametrize("depth, programs", [(None, 2), (DEEPEST, 1)])
def test_trials_of_every_width_share_one_program_per_depth_or_one_for_all(
    california_small, depth, programs
):
    from tuning.evaluation.keras.compiled import CompiledTrainer

    protocol = TrainingProtocol(max_epochs=2, patience=2)
    trainer = CompiledTrainer(protocol, 0)
    for n_neurons in (3, 11, 24):
        for n_hidden in (1, 2):
            params = {"n_hidden": n_hidden, "n_neurons": n_neurons, "learning_rate": 1e-3}
            _train(california_small, params, padded=PADDED, depth=depth, epochs=2, trainer=trainer)
    assert trainer.programs_compiled == programs and trainer.programs_reused == 6 - programs


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
    small = study_padding(build_model, default_space(), rows=2000, max_epochs=20, inputs=8)
    both = {"padded_neurons": 99, "padded_hidden": 3}
    assert small.one_width and small.arguments({"n_hidden": 0, "n_neurons": 5}) == both
    large = study_padding(build_model, default_space(), rows=11_610, max_epochs=20, inputs=8)
    assert not large.one_width and not large.depths
    # what a library that builds every configuration alike (scikit-learn) gets
    assert small.fixed_arguments() == both and large.fixed_arguments() == {}
    # the bounds: 100,000 row-epochs a trial is still small; inputs as wide as the layers fit
    edge = study_padding(build_model, default_space(), rows=5_000, max_epochs=20, inputs=99)
    assert edge.one_width and edge.fixed_arguments() == both
    assert not study_padding(build_model, default_space(), 5_001, 20, inputs=8).one_width
    # inputs wider than the layers cannot pass through them: every depth keeps its own shape
    wide = study_padding(build_model, default_space(), rows=200, max_epochs=20, inputs=100)
    assert wide.one_width and wide.fixed_arguments() == {"padded_neurons": 99}
    # only the parameters a configuration has
    assert small.arguments({"n_neurons": 5}) == {"padded_neurons": 99}
    widths = [large.arguments({"n_neurons": n})["padded_neurons"] for n in (1, 16, 17, 64, 65, 99)]
    assert widths == [16, 16, 32, 64, 99, 99]  # powers of two from 16, at most the largest
    undeclared = study_padding(lambda **_: None, default_space(), 10, 1, inputs=8)
    assert undeclared.arguments({"n_hidden": 1, "n_neurons": 5}) == {}
    with pytest.raises(ValueError, match="padded_neurons must be >= n_neurons"):
        build_model(n_hidden=1, n_neurons=30, padded_neurons=20)
    with pytest.raises(ValueError, match="padded_hidden must be >= n_hidden"):
        build_model(n_hidden=2, n_neurons=30, padded_hidden=1)
    with pytest.raises(ValueError, match="pad the width to at least 784"):
        build_model(n_hidden=0, input_shape=(28, 28), padded_neurons=99, padded_hidden=3)


def test_a_padded_model_saves_and_loads_whole_or_its_weights(tmp_path, california_small):
    params = {"n_hidden": 1, "n_neurons": 4}
    _, model = _train(california_small, params, padded=8, depth=DEEPEST, epochs=1)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = california_small.X_valid[:5]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # a warm start (Keras Tuner's) loads an earlier trial's weights into a new padded model
    model.save_weights(tmp_path / "w.weights.h5")
    _, other = _train(california_small, {**params, "n_hidden": 2}, padded=8, depth=DEEPEST)
    other.load_weights(tmp_path / "w.weights.h5")
    assert [float(layer.enabled) for layer in other.layers if hasattr(layer, "enabled")] == [
        1.0,
        0.0,
        0.0,
    ]
    np.testing.assert_allclose(other.predict(x, verbose=0), model.predict(x, verbose=0))


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


@pytest.mark.parametrize("n_hidden", [0, 2, 3])
def test_the_plain_model_takes_the_padded_ones_trained_values(california_small, n_hidden):
    params = {"n_hidden": n_hidden, "n_neurons": 6, "learning_rate": 1e-2, "optimizer": "adam"}
    _, padded = _train(california_small, params, padded=PADDED, depth=DEEPEST, epochs=3)
    plain = build_model(**params, seed=5)  # other initial values: all are replaced
    copy_real_units(padded, plain, california_small.X_train, california_small.y_train)
    assert len(_dense(plain)) == n_hidden + 1
    x = california_small.X_valid[:32]
    np.testing.assert_allclose(plain(x), padded(x), rtol=1e-5, atol=1e-6)
    # the optimizer's state too: Adam's moments and its step count continue where they were
    assert int(plain.optimizer.iterations) == int(padded.optimizer.iterations) > 0
    moments = padded.optimizer.variables[2:]
    assert len(moments) == 4 * (DEEPEST + 1)  # two moments of each kernel and bias
    for variable in plain.optimizer.variables[2:]:
        # a layer's moments: the padded model's of the same layer (a second Adam is "adam_1")
        name = variable.path.partition("/")[2]
        (match,) = [m for m in moments if m.path.partition("/")[2] == name]
        block = tuple(slice(0, n) for n in variable.shape)
        np.testing.assert_array_equal(variable, np.asarray(match)[block])
        assert np.any(np.asarray(variable) != 0) or "bias" in name


def test_values_outside_the_leading_block_are_refused_and_change_nothing(california_small):
    params = {"n_hidden": 1, "n_neurons": 6, "learning_rate": 1e-2}
    _, padded = _train(california_small, params, padded=PADDED, depth=DEEPEST, epochs=1)
    kernel = np.asarray(padded.layers[0].kernel).copy()
    kernel[:, -1] = 0.5  # a padded unit that holds values: the padding was not trailing
    padded.layers[0].kernel.assign(kernel)
    plain = build_model(**params, seed=5)
    before = [np.asarray(w).copy() for w in plain.weights]
    with pytest.raises(ExportError, match="hidden_1/kernel.*not zero"):
        copy_real_units(padded, plain, california_small.X_train, california_small.y_train)
    for old, new in zip(before, plain.weights, strict=True):
        np.testing.assert_array_equal(old, new)


NOT_TRAILING = """
import keras

def unmasked(n_units, learning_rate=0.01, *, input_shape, padded_units=None, seed=None):
    # declares padded widths but neither masks nor zeroes them: the padding is not trailing
    model = keras.Sequential(
        [
            keras.Input(shape=tuple(input_shape)),
            keras.layers.Dense(padded_units or int(n_units), activation="relu", name="hidden"),
            keras.layers.Dense(1, name="output"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse")
    return model

unmasked.padded_widths = {"n_units": "padded_units"}
"""


def test_a_winner_whose_padding_does_not_fit_is_retrained_plain(
    tmp_path, california_small, monkeypatch, caplog
):
    from tuning.core.config import StudyConfig
    from tuning.core.results import read_trials
    from tuning.run.study import run_study

    (tmp_path / "not_trailing.py").write_text(NOT_TRAILING)
    monkeypatch.chdir(tmp_path)
    config = StudyConfig(
        backend="random",
        model="not_trailing.py:unmasked",
        space={"n_units": {"type": "int", "low": 2, "high": 12}},
        trials=2,
        max_epochs=2,
        out=str(tmp_path / "out"),
    )
    summary = run_study(config, dataset=california_small)
    assert "do not fit the unpadded model" in caplog.text and "not zero" in caplog.text
    saved = keras.models.load_model(config.study_dir / "best_model.keras")
    assert saved.get_layer("hidden").units == summary["best_params"]["n_units"]
    test = saved.evaluate(california_small.X_test, california_small.y_test, verbose=0)
    assert test == pytest.approx(summary["test_loss"], rel=1e-5)  # the saved model's own
    assert len(read_trials(config.study_dir)) == 2
