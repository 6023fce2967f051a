"""The compiled trainer trains as Keras `fit` does: same losses epoch by epoch, same early stopping
and restored weights, same NaN guard; it compiles once per architecture; the trainer is a
recorded study setting."""

import json
import math
import pickle

import keras
import numpy as np
import pytest
from scipy import stats

from tuning.core.config import StudyConfig, StudyError
from tuning.core.results import read_trials
from tuning.evaluation.keras.between_trials import release_models
from tuning.evaluation.keras.model import build_model
from tuning.evaluation.keras.seeded_build import build_seeded
from tuning.evaluation.keras.trainer import KerasTrainer, TrainingProtocol
from tuning.evaluation.keras.trainer_choice import create_trainer

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the compiled trainer runs on JAX only"
)
EPOCHS = 20


def _trainers():
    from tuning.evaluation.keras.compiled import CompiledTrainer

    return KerasTrainer, CompiledTrainer


def _fit(trainer_class, data, params, protocol, seed=1, callbacks=()):
    """Build ``params`` with seeded weights and train it; returns (history, weights)."""
    release_models()
    model = build_seeded(build_model, params, data, protocol, seed)
    trainer = trainer_class(protocol, seed)
    history = trainer.fit(
        model,
        data.X_train,
        data.y_train,
        validation_data=(data.X_valid, data.y_valid),
        callbacks=callbacks,
    )
    return history, model.get_weights()


def _largest_relative_difference(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)))


@pytest.mark.parametrize(
    ("dataset", "params"),
    [
        ("california_small", {"n_hidden": 0, "n_neurons": 1, "learning_rate": 0.01}),
        ("california_small", {"n_hidden": 2, "n_neurons": 30, "learning_rate": 3e-3}),
        ("california_small", {"n_hidden": 3, "n_neurons": 7, "learning_rate": 0.02}),
        ("digits_small", {"n_hidden": 0, "n_neurons": 1, "learning_rate": 0.01}),
        ("digits_small", {"n_hidden": 1, "n_neurons": 40, "learning_rate": 0.02}),
        (
            "digits_small",
            {"n_hidden": 2, "n_neurons": 20, "learning_rate": 0.01, "optimizer": "adam"},
        ),
    ],
)
def test_compiled_epochs_equal_keras_fit_epoch_by_epoch(dataset, params, request):
    data = request.getfixturevalue(dataset)
    protocol = TrainingProtocol(max_epochs=EPOCHS, patience=EPOCHS, shuffle=False)
    (keras_history, keras_weights), (compiled_history, compiled_weights) = (
        _fit(trainer, data, params, protocol) for trainer in _trainers()
    )
    assert set(compiled_history) == set(keras_history)  # loss, val_loss (and accuracies)
    assert len(compiled_history["loss"]) == len(keras_history["loss"]) == EPOCHS
    for key, values in keras_history.items():
        assert _largest_relative_difference(values, compiled_history[key]) <= 1e-5, key
    for mine, theirs in zip(compiled_weights, keras_weights, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)


def test_early_stopping_stops_at_the_same_epoch_and_restores_the_same_weights(california_small):
    # a learning rate high enough that the validation loss stops improving within 20 epochs
    params = {"n_hidden": 1, "n_neurons": 20, "learning_rate": 0.15}
    protocol = TrainingProtocol(max_epochs=EPOCHS, patience=2, shuffle=False)
    (keras_history, keras_weights), (compiled_history, compiled_weights) = (
        _fit(trainer, california_small, params, protocol) for trainer in _trainers()
    )
    stopped = len(keras_history["val_loss"])
    assert stopped < EPOCHS  # early stopping did stop it
    assert len(compiled_history["val_loss"]) == stopped
    best = int(np.argmin(keras_history["val_loss"]))
    assert best < stopped - 1  # the restored weights are not the last epoch's
    for mine, theirs in zip(compiled_weights, keras_weights, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)


def test_a_diverging_model_stops_at_the_same_epoch_as_with_keras(california_small):
    params = {"n_hidden": 2, "n_neurons": 30, "learning_rate": 50.0}
    protocol = TrainingProtocol(max_epochs=EPOCHS, patience=EPOCHS, shuffle=False)
    histories = [_fit(t, california_small, params, protocol)[0] for t in _trainers()]
    assert len(histories[0]["loss"]) == len(histories[1]["loss"]) < EPOCHS
    assert not math.isfinite(histories[0]["loss"][-1])
    assert not math.isfinite(histories[1]["loss"][-1])


def test_shuffled_epochs_differ_by_seed_and_agree_with_keras_in_distribution(california_small):
    params = {"n_hidden": 1, "n_neurons": 16, "learning_rate": 0.01}
    protocol = TrainingProtocol(max_epochs=5, patience=5)
    final = {
        trainer.name: [
            _fit(trainer, california_small, params, protocol, seed)[0] for seed in range(10)
        ]
        for trainer in _trainers()
    }
    compiled = [h["val_loss"][-1] for h in final["compiled"]]
    keras_fit = [h["val_loss"][-1] for h in final["keras"]]
    assert len(set(compiled)) == 10  # each seed its own order of batches (and weights)
    again = _fit(_trainers()[1], california_small, params, protocol, seed=3)[0]
    assert again == final["compiled"][3]  # the same seed, the same epochs
    assert stats.ks_2samp(compiled, keras_fit).pvalue > 0.05
    assert abs(np.mean(compiled) - np.mean(keras_fit)) < 2 * np.std(keras_fit)


def test_a_callback_that_reads_the_model_sees_each_epochs_weights(california_small):
    seen = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.get_weights()[0].copy())

    params = {"n_hidden": 1, "n_neurons": 8, "learning_rate": 0.01}
    protocol = TrainingProtocol(max_epochs=3, patience=3, shuffle=False)
    history, weights = _fit(
        _trainers()[1], california_small, params, protocol, callbacks=[Snapshot()]
    )
    assert len(seen) == 3
    assert not np.array_equal(seen[0], seen[1])
    # the model ends with the best epoch's weights, the ones the callback saw after it
    best = int(np.argmin(history["val_loss"]))
    np.testing.assert_array_equal(seen[best], weights[0])


def test_one_program_per_architecture_whatever_the_learning_rate(california_small):
    from tuning.evaluation.keras.compiled import CompiledTrainer

    trainer = CompiledTrainer(TrainingProtocol(max_epochs=2, patience=2))
    data = california_small
    for n_neurons, learning_rate in ((8, 0.01), (8, 0.002), (9, 0.01), (8, 0.05)):
        model = build_model(1, n_neurons, learning_rate, input_shape=data.input_shape, seed=0)
        trainer.fit(model, data.X_train, data.y_train, validation_data=(data.X_valid, data.y_valid))
    assert (trainer.programs_compiled, trainer.programs_reused) == (2, 2)
    assert trainer.compile_seconds > 0


@pytest.mark.parametrize("dataset", ["california_small", "digits_small"])
def test_compiled_evaluate_and_predict_equal_keras_and_compile_once_per_shape(dataset, request):
    from tuning.evaluation.keras.compiled import CompiledTrainer

    data = request.getfixturevalue(dataset)
    protocol = TrainingProtocol(max_epochs=2, patience=2)
    trainer = CompiledTrainer(protocol, 0)
    for seed in (1, 2):  # two models of one structure: one program of each kind
        release_models()
        params = {"n_hidden": 2, "n_neurons": 9, "learning_rate": 0.01}
        model = build_seeded(build_model, params, data, protocol, seed)
        trainer.fit(model, data.X_train, data.y_train, validation_data=(data.X_valid, data.y_valid))
        compiled_before = trainer.programs_compiled
        logs = trainer.evaluate(model, data.X_test, data.y_test)
        predicted = trainer.predict(model, data.X_test)
        keras_logs = model.evaluate(data.X_test, data.y_test, verbose=0, return_dict=True)
        assert set(logs) == set(keras_logs)
        for key, value in keras_logs.items():
            assert logs[key] == pytest.approx(float(value), rel=1e-5), key
        np.testing.assert_allclose(
            predicted, model.predict(data.X_test, verbose=0), rtol=1e-5, atol=1e-6
        )
        assert trainer.programs_compiled == compiled_before + (2 if seed == 1 else 0)


def test_compiled_predict_hands_data_too_large_for_one_call_to_keras(california_small, monkeypatch):
    import tuning.evaluation.keras.compiled as compiled

    data = california_small
    protocol = TrainingProtocol(max_epochs=1, patience=1)
    trainer = compiled.CompiledTrainer(protocol, 0)
    model = build_seeded(build_model, {"n_hidden": 1, "n_neurons": 4}, data, protocol, 0)
    trainer.fit(model, data.X_train, data.y_train, validation_data=(data.X_valid, data.y_valid))
    one_call = trainer.predict(model, data.X_test)
    compiled_before = trainer.programs_compiled
    monkeypatch.setattr(compiled, "VALID_VALUES_PER_CALL", data.X_test.size - 1)
    np.testing.assert_allclose(trainer.predict(model, data.X_test), one_call, rtol=1e-5, atol=1e-6)
    assert trainer.programs_compiled == compiled_before  # Keras' predict, not a new program


def test_a_model_not_compiled_is_refused_in_one_line(california_small):
    from tuning.evaluation.keras.compiled import CompiledTrainer

    model = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(1)])
    d = california_small
    with pytest.raises(ValueError, match="not compiled"):
        CompiledTrainer(TrainingProtocol()).fit(
            model, d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid)
        )


def test_the_trainer_travels_to_another_process_as_a_fresh_one_of_the_same_protocol():
    protocol = TrainingProtocol(max_epochs=3, patience=2)
    trainer = create_trainer(protocol, seed=4)
    assert trainer.name == "compiled"  # the default on JAX
    copy = pickle.loads(pickle.dumps(trainer))
    assert type(copy) is type(trainer) and copy is not trainer
    assert (copy.protocol, copy.seed) == (protocol, 4)


def test_the_trainer_is_a_recorded_setting_and_checked_against_the_keras_backend(
    tmp_path, california_small
):
    from tuning.run.study import run_study

    assert StudyConfig(backend="random", keras_backend="jax").trainer == "compiled"
    assert StudyConfig(backend="random", keras_backend="tensorflow").trainer == "keras"
    with pytest.raises(StudyError, match="trainer 'compiled' runs on the JAX backend only"):
        StudyConfig(backend="random", keras_backend="tensorflow", trainer="compiled")
    with pytest.raises(StudyError, match="trainer 'fast' is not known"):
        StudyConfig(backend="random", trainer="fast")

    from tuning.evaluation.keras.trainer_choice import process_programs

    process_programs.cache_clear()  # (no program an earlier test of this process compiled)
    tables = {}
    for trainer in ("keras", "compiled"):
        config = StudyConfig(
            backend="random", trials=2, max_epochs=3, out=str(tmp_path / trainer), trainer=trainer
        )
        summary = run_study(config, dataset=california_small)
        assert summary["config"]["trainer"] == trainer
        recorded = json.loads((config.study_dir / "study.json").read_text())
        assert recorded["trainer"] == trainer
        tables[trainer] = read_trials(config.study_dir)
    # the same configurations, trained either way; only the compiled trainer reports compiling
    assert list(tables["keras"]["params"]) == list(tables["compiled"]["params"])
    assert (tables["keras"]["compile_seconds"] == 0).all()
    assert tables["compiled"]["compile_seconds"].iloc[0] > 0
    with pytest.raises(StudyError, match="trainer: 'keras' -> 'compiled'"):
        run_study(
            StudyConfig(
                backend="random",
                trials=2,
                max_epochs=3,
                out=str(tmp_path / "keras"),
                trainer="compiled",
            ),
            dataset=california_small,
        )


def test_models_share_a_program_only_when_their_epoch_is_the_same_computation():
    from tuning.evaluation.keras.structure import structure_key
    from tuning.evaluation.keras.trainer import build_training_state

    def key(n_neurons=8, learning_rate=0.01, seed=0, optimizer="sgd", l2=None, dropout=None):
        layers = [keras.layers.Input((4,))]
        layers.append(
            keras.layers.Dense(
                n_neurons,
                activation="relu",
                kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
                kernel_initializer=keras.initializers.GlorotUniform(seed),
            )
        )
        if dropout:
            layers.append(keras.layers.Dropout(dropout, seed=seed))
        layers.append(keras.layers.Dense(1))
        model = keras.Sequential(layers)
        model.compile(
            loss="mse",
            optimizer=keras.optimizers.get(
                {"class_name": optimizer, "config": {"learning_rate": learning_rate}}
            ),
        )
        build_training_state(model, np.zeros((2, 4), "float32"), np.zeros(2, "float32"))
        return structure_key(model)

    assert key() == key(learning_rate=0.3, seed=5)  # the learning rate is a variable
    assert key(dropout=0.2) == key(dropout=0.2, seed=9)
    for other in (
        key(n_neurons=9),
        key(optimizer="adam"),
        key(l2=0.01),
        key(dropout=0.2),
    ):
        assert other != key()
    assert key(l2=0.01) != key(l2=0.02)
    assert key(dropout=0.2) != key(dropout=0.3)


def test_a_model_that_loaded_weights_runs_the_program_of_one_that_did_not(tmp_path):
    # Keras Tuner's warm starts load the weights of an earlier trial into a new model
    from tuning.evaluation.keras.structure import structure_key
    from tuning.evaluation.keras.trainer import build_training_state

    def built(seed):
        model = build_model(n_hidden=2, n_neurons=6, input_shape=(4,), seed=seed)
        build_training_state(model, np.zeros((2, 4), "float32"), np.zeros(2, "float32"))
        return model

    first = built(0)
    first.save_weights(tmp_path / "w.weights.h5")
    second = built(1)
    second.load_weights(tmp_path / "w.weights.h5")
    assert structure_key(second) == structure_key(first)


@pytest.mark.parametrize(
    ("backend", "fits"),
    [
        ("sklearn", 2 * 3 + 1),  # 2 candidates x 3 folds, then the winner's retraining
        ("keras_tuner", 2 + 1),  # 2 rounds
        ("optuna", 2 + 1),
        ("hyperopt", 2 + 1),
        ("skopt", 2 + 1),
        ("random", 2 + 1),
    ],
)
def test_every_backend_trains_every_model_through_the_compiled_trainer(
    backend, fits, tmp_path, california_small, monkeypatch
):
    from tuning.evaluation.keras.compiled import CompiledTrainer
    from tuning.run.study import run_study

    calls = {"compiled": 0, "keras": 0}
    for trainer in (CompiledTrainer, KerasTrainer):

        def counted(self, *args, _fit=trainer.fit, **kwargs):
            calls[self.name] += 1
            return _fit(self, *args, **kwargs)

        monkeypatch.setattr(trainer, "fit", counted)
    config = StudyConfig(backend=backend, trials=2, max_epochs=2, out=str(tmp_path))
    summary = run_study(config, dataset=california_small)
    assert "test_loss" in summary
    assert calls == {"compiled": fits, "keras": 0}


CACHED_TRIAL = """
import sys
from pathlib import Path
import jax
from tuning.evaluation.data import load_dataset
from tuning.evaluation.keras.evaluator import KerasEvaluator
from tuning.evaluation.keras.trainer import TrainingProtocol
from tuning.core.results import StudyKey, TrialWriter
data = load_dataset("california", download=False).head(100)
writer = TrialWriter(Path(sys.argv[1]) / "trials.csv", StudyKey("s", "test", data.name, 0))
objective = KerasEvaluator(data, TrainingProtocol(max_epochs=2), writer, seed=0)
print(objective.evaluate({"n_hidden": 1, "n_neurons": 3}).status, jax.config.jax_compilation_cache_dir)
"""


@pytest.mark.parametrize("setting", ["folder", "off"])
def test_studies_on_jax_keep_compiled_programs_in_the_persistent_cache(tmp_path, setting):
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "TUNING_COMPILATION_CACHE": str(cache) if setting == "folder" else "off",
    }
    done = subprocess.run(
        [sys.executable, "-c", CACHED_TRIAL, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    status, folder = done.stdout.split()[-2:]
    assert status == "complete"
    if setting == "folder":
        assert folder == str(cache)
        assert any(p.name.startswith("jit__epoch") for p in cache.iterdir())
    else:
        assert folder == "None" and not cache.exists()
