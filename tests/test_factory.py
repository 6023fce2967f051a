"""A user's own Keras factory and search space, through every part of the harness."""

from __future__ import annotations

import json
import math
import textwrap

import keras
import pandas as pd
import pytest
from conftest import REPO, needs_fashion

from tuning.cli import main
from tuning.core.config import StudyConfig, StudyError
from tuning.core.results import read_trials
from tuning.evaluation.keras.factory import FactoryError, check_arguments, load_factory
from tuning.evaluation.keras.model import build_model
from tuning.evaluation.objectives import study_space
from tuning.run.study import run_study

# A factory of another shape than the book's: a categorical activation, a float dropout, a width,
# and the harness's own arguments taken by name (input_shape, n_outputs, seed; not task).
USER_MODULE = textwrap.dedent(
    """
    import keras

    def wide_and_shallow(width, dropout, activation="relu", *, input_shape, n_outputs, seed=None):
        inputs = keras.Input(shape=tuple(input_shape))
        x = keras.layers.Dense(int(width), activation=activation)(inputs)
        x = keras.layers.Dropout(dropout, seed=seed)(x)
        model = keras.Model(inputs, keras.layers.Dense(n_outputs)(x))
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
        return model

    def not_compiled(width, *, input_shape, n_outputs):
        inputs = keras.Input(shape=tuple(input_shape))
        return keras.Model(inputs, keras.layers.Dense(n_outputs)(inputs))

    def not_a_model(width):
        return "a model"
    """
)
SPACE = {
    "width": {"type": "int", "low": 2, "high": 16, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
}


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "user_models.py"


def test_a_factory_is_found_by_module_or_by_file(user_module):
    by_module = load_factory("user_models:wide_and_shallow")
    by_file = load_factory("user_models.py:wide_and_shallow")
    assert by_module.__name__ == by_file.__name__ == "wide_and_shallow"
    assert (
        load_factory(None) is build_model
        and load_factory("tuning.evaluation.keras.model:build_model") is build_model
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("user_models", "write package.module:function or path/to/file.py:function"),
        ("no_such_pkg.models:f", "cannot import no_such_pkg.models \\(ModuleNotFoundError"),
        ("user_models:missing", "user_models has no function 'missing'"),
        ("nowhere.py:f", "nowhere.py does not exist"),
    ],
)
def test_a_factory_that_cannot_be_imported_is_refused_naming_it(user_module, spec, message):
    with pytest.raises(FactoryError, match=message):
        load_factory(spec)


def test_a_searched_name_the_factory_lacks_is_refused_with_its_arguments(user_module):
    factory = load_factory("user_models:wide_and_shallow")
    with pytest.raises(FactoryError, match="'depth' is not an argument of model m; its arguments"):
        check_arguments(factory, "m", ["width", "depth"], [])
    with pytest.raises(FactoryError, match="'seed': the harness sets seed itself"):
        check_arguments(factory, "m", ["width", "seed"], [])
    config = StudyConfig(backend="random", model="user_models:wide_and_shallow")
    with pytest.raises(StudyError, match="give its search space"):
        study_space(config)  # the book's space does not fit another model


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("not_compiled", "returned a model that is not compiled: call model.compile"),
        ("not_a_model", "returned str, not a keras.Model"),
    ],
)
def test_the_cli_refuses_a_factory_that_returns_no_compiled_model_before_any_study(
    user_module, tmp_path, capsys, factory, message
):
    study = tmp_path / "study.toml"
    study.write_text('[space.width]\ntype = "int"\nlow = 2\nhigh = 4\n')
    for command in (["run", "--backend", "random"], ["benchmark", "--backends", "random,optuna"]):
        argv = [*command, "--config", str(study), "--model", f"user_models:{factory}"]
        argv += ["--trials", "2", "--out", str(tmp_path / "out")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: model user_models:") and message in err
        assert len(err.strip().splitlines()) == 1
        assert not list((tmp_path / "out").rglob("trials.csv"))


@pytest.mark.parametrize("backend", ["optuna", "keras_tuner", "sklearn"])
def test_a_users_factory_and_space_run_through_a_backend(
    user_module, tmp_path, california_small, backend
):
    config = StudyConfig(
        backend=backend,
        model="user_models.py:wide_and_shallow",
        space=SPACE,
        trials=3,
        max_epochs=2,
        out=str(tmp_path / "out"),
        backend_options={"cv": 2} if backend == "sklearn" else {},
    )
    summary = run_study(config, dataset=california_small)
    rows = read_trials(config.study_dir)
    assert len(rows) == 3 and set(rows["status"]) == {"complete"}
    # each of the space's parameters has its own column, in the space's order, after status;
    # the book's are not there; the params JSON holds the same values
    assert list(rows.columns[5:10]) == ["status", "width", "dropout", "activation", "val_loss"]
    assert not {"n_hidden", "n_neurons", "learning_rate"} & set(rows.columns)
    for (_, row), params in zip(rows.iterrows(), map(json.loads, rows["params"]), strict=True):
        assert set(params) == set(SPACE) and params["activation"] in ("relu", "tanh")
        assert 2 <= params["width"] <= 16 and 0.0 <= params["dropout"] <= 0.5
        assert (row["width"], row["activation"]) == (params["width"], params["activation"])
        assert row["dropout"] == pytest.approx(params["dropout"], rel=1e-12)
    assert set(summary["best_params"]) == set(SPACE) and math.isfinite(summary["test_loss"])
    saved = keras.models.load_model(config.study_dir / "best_model.keras")
    hidden = [layer for layer in saved.layers if isinstance(layer, keras.layers.Dense)][0]
    assert hidden.units == summary["best_params"]["width"]
    assert summary["config"]["model"] == "user_models.py:wide_and_shallow"


def test_compare_reports_which_parameters_of_any_space_mattered(
    user_module, tmp_path, california_small
):
    out = tmp_path / "out"
    for seed in (0, 1):
        config = StudyConfig(
            backend="random",
            model="user_models:wide_and_shallow",
            space=SPACE,
            trials=6,
            max_epochs=2,
            seed=seed,
            out=str(out),
        )
        run_study(config, dataset=california_small)
    assert main(["compare", str(out)]) == 0
    table = (out / "importance.csv").read_text().splitlines()
    assert table[0] == "dataset,parameter,importance,trials"
    rows = [line.split(",") for line in table[1:]]
    assert sorted(r[1] for r in rows) == sorted(SPACE)
    assert sum(float(r[2]) for r in rows) == pytest.approx(1.0, abs=1e-6)
    assert {r[3] for r in rows} == {"12"}
    report = (out / "report.md").read_text()
    assert "## Hyperparameters that mattered" in report and "figures/importance.png" in report
    assert "- Model: user_models:wide_and_shallow." in report
    assert (out / "figures" / "importance.png").stat().st_size > 0
    assert "figures/exploration.png" in report  # how each parameter was explored
    board = pd.read_csv(out / "leaderboard.csv")  # the best trial's parameters, a column each
    assert list(board.columns[6:9]) == ["width", "dropout", "activation"]
    assert board["activation"].isin(["relu", "tanh"]).all() and board["width"].between(2, 16).all()


@needs_fashion
def test_the_cnn_example_of_six_hyperparameters_trains_on_fashion_mnist(tmp_path, monkeypatch):
    from tuning.evaluation.data import load_dataset

    monkeypatch.chdir(REPO)  # the study file's model path is relative to the repository
    config = StudyConfig.from_toml(
        REPO / "studies" / "fashion_cnn.toml",
        backend="random",
        trials=2,
        max_epochs=1,
        max_rows=96,
        out=str(tmp_path),
    )
    assert len(study_space(config)) >= 5
    summary = run_study(config, dataset=load_dataset("fashion_mnist", download=False))
    rows = read_trials(config.study_dir)
    assert len(rows) == 2 and set(rows["status"]) == {"complete"}
    assert set(summary["best_params"]) == set(config.space)
    assert summary["best_params"]["optimizer"] in ("adam", "sgd", "rmsprop")
    # on JAX the compiled trainer trains it (convolutions, pooling, dropout), as the MLP
    expected = "compiled" if keras.backend.backend() == "jax" else "keras"
    assert summary["config"]["trainer"] == expected
    assert 0.0 <= summary["test_accuracy"] <= 1.0
