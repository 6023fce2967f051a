"""`tuning tabulate`: every configuration of a grid trained once per seed, vmapped, resumable."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import tuning.evaluation.keras.vmapped
import tuning.evaluation.tabular.build
from tuning.cli import main
from tuning.core.config import StudyError
from tuning.core.results import StudyKey, TrialWriter
from tuning.core.space import default_grid
from tuning.evaluation.keras.evaluator import KerasEvaluator
from tuning.evaluation.keras.trainer import TrainingProtocol
from tuning.evaluation.tabular.build import tabulate
from tuning.evaluation.tabular.table_file import (
    TABLE_FILE,
    TableSettings,
    config_id,
    configurations,
    read_table,
)

pytestmark = [
    pytest.mark.one_keras_backend,
    pytest.mark.skipif(keras.backend.backend() != "jax", reason="tabulate trains on JAX only"),
]
GRID = {"n_hidden": [0, 1], "n_neurons": [2, 5], "learning_rate": [3e-3, 3e-2]}
SEEDS = (0, 1)


def _settings(**changes) -> TableSettings:
    settings = {
        "dataset": "california",
        "max_rows": 400,
        "max_epochs": 6,
        "batch_size": 32,
        "patience": 2,
        "seeds": SEEDS,
        "grid": GRID,
    }
    return TableSettings(**{**settings, **changes})


def test_the_default_grid_is_the_books_space_discretized():
    grid = default_grid()
    assert grid["n_hidden"] == [0, 1, 2, 3]
    widths, rates = grid["n_neurons"], grid["learning_rate"]
    assert len(widths) == 10 and widths[0] == 1 and widths[-1] == 99
    assert len(rates) == 12 and rates[0] == pytest.approx(3e-4) and rates[-1] == pytest.approx(3e-2)
    ratios = np.diff(np.log(rates))
    assert np.allclose(ratios, ratios[0], rtol=1e-4)  # log-spaced
    assert len(configurations(grid)) == 480
    # the float parameter varies fastest: an architecture's configurations are neighbours
    first = configurations(grid)[:12]
    assert {(c["n_hidden"], c["n_neurons"]) for c in first} == {(0, 1)}


def test_every_configuration_and_seed_gets_its_curve_and_test_loss(tmp_path, california_small):
    grid = {**GRID, "learning_rate": [3e-3, 3e-2, 0.3]}  # 0.3: early stops, and divergence
    settings = _settings(grid=grid, patience=1, max_epochs=10)
    summary = tabulate(settings, tmp_path, dataset=california_small)
    rows = read_table(tmp_path)
    assert summary["rows"] == len(rows) == 12 * len(SEEDS)
    assert {(r["config"], r["seed"]) for r in rows} == {
        (config_id(c), s) for c in configurations(grid) for s in SEEDS
    }
    # depth 0 ignores the width: one structure for its 12 models; depth 1: one per width
    assert summary["groups"] == 3
    for row in rows:
        assert len(row["val_loss_curve"]) == len(row["loss_curve"]) == row["epochs"]
        assert 1 <= row["epochs"] <= 10 and 1 <= row["best_epoch"] <= row["epochs"]
        assert row["seconds"] > 0
        if row["status"] == "failed":  # diverged: the NaN guard stopped it, no test loss
            assert None in row["loss_curve"] + row["val_loss_curve"]
            assert math.isnan(row["test_loss"])
            continue
        assert row["best_val_loss"] == pytest.approx(min(row["val_loss_curve"]), rel=1e-6)
        assert row["val_loss_curve"][row["best_epoch"] - 1] == pytest.approx(row["best_val_loss"])
        assert math.isfinite(row["test_loss"])
    # early stopping stopped each model on its own: some at the cap, some before it
    assert {r["epochs"] for r in rows} >= {2, 10}
    assert [r["status"] for r in rows].count("complete") >= 20


def test_a_table_entry_equals_a_real_trial_of_that_configuration_and_seed(
    tmp_path, california_small
):
    tabulate(_settings(), tmp_path / "table", dataset=california_small)
    rows = {(r["config"], r["seed"]): r for r in read_table(tmp_path / "table")}
    protocol = TrainingProtocol(6, 32, 2)
    for params, seed in (
        ({"n_hidden": 1, "n_neurons": 5, "learning_rate": 3e-2}, 1),
        ({"n_hidden": 0, "n_neurons": 2, "learning_rate": 3e-3}, 0),
    ):
        writer = TrialWriter(tmp_path / f"trials{seed}.csv", StudyKey("s", "random", "c", seed))
        objective = KerasEvaluator(california_small, protocol, writer, seed)
        model = objective.build(params)
        history, _ = objective.fit(model, metered=False)
        test_loss = model.evaluate(california_small.X_test, california_small.y_test, verbose=0)
        row = rows[(config_id(params), seed)]
        assert row["epochs"] == len(history["val_loss"])
        np.testing.assert_allclose(row["val_loss_curve"], history["val_loss"], rtol=1e-5)
        np.testing.assert_allclose(row["loss_curve"], history["loss"], rtol=1e-5)
        assert row["test_loss"] == pytest.approx(test_loss, rel=1e-5)


def test_a_killed_build_resumes_without_training_a_group_again(
    tmp_path, california_small, monkeypatch
):
    append = tuning.evaluation.tabular.build._append_rows
    calls = []

    def append_then_die(path, rows):
        append(path, rows)
        calls.append(len(rows))
        if len(calls) == 1:
            raise KeyboardInterrupt  # as a kill right after the first group's rows

    monkeypatch.setattr(tuning.evaluation.tabular.build, "_append_rows", append_then_die)
    with pytest.raises(KeyboardInterrupt):
        tabulate(_settings(), tmp_path, dataset=california_small)
    first = read_table(tmp_path)
    assert len(first) == calls[0] == 8  # the depth-0 group
    trained = []
    run = tuning.evaluation.keras.vmapped.VmappedTraining.run
    monkeypatch.setattr(
        tuning.evaluation.keras.vmapped.VmappedTraining,
        "run",
        lambda self, models, seeds: trained.append(len(models)) or run(self, models, seeds),
    )
    summary = tabulate(_settings(), tmp_path, dataset=california_small)
    assert summary["trained"] == sum(trained) == 8 and summary["rows"] == 16
    keys = [(r["config"], r["seed"]) for r in read_table(tmp_path)]
    assert len(keys) == len(set(keys)) == 16
    text = (tmp_path / TABLE_FILE).read_text()
    assert text.count("config,seed,params") == 1  # one header


def test_a_table_built_with_other_settings_is_refused(tmp_path, california_small):
    tabulate(_settings(max_epochs=2), tmp_path, dataset=california_small)
    with pytest.raises(StudyError, match="other settings \\(max_epochs\\)"):
        tabulate(_settings(max_epochs=3), tmp_path, dataset=california_small)


def test_the_cli_builds_a_table_from_a_grid_file(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text("[grid]\nn_hidden = [1]\nn_neurons = [3]\nlearning_rate = [0.001, 0.01]\n")
    argv = ["tabulate", "--grid", str(grid), "--seeds", "0-1", "--max-epochs", "2"]
    argv += ["--max-rows", "200", "--out", str(tmp_path / "table")]
    assert main(argv) == 0
    assert "4 rows (4 trained now in 1 vmapped groups" in capsys.readouterr().out
    assert len(read_table(tmp_path / "table")) == 4
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\ndepth = [1, 2]\n")
    assert main(["tabulate", "--grid", str(bad), "--out", str(tmp_path / "t2")]) == 2
    assert "'depth' is not an argument of model" in capsys.readouterr().err
    assert not (tmp_path / "t2").exists()  # nothing written: the fixed grid may use that folder


def test_cheap_tables_get_ten_training_noise_draws_by_default():
    from argparse import Namespace

    from tuning.cli.commands import default_table_seeds

    def seeds(dataset, max_epochs, max_rows=None):
        args = Namespace(dataset=dataset, max_epochs=max_epochs, max_rows=max_rows)
        return default_table_seeds(args)

    assert seeds("iris", 100) == list(range(10))  # under 150 rows x 100 epochs
    assert seeds("california", 100) == [0, 1, 2]  # 11,610 rows x 100 epochs: 1.2 million
    assert seeds("california", 20, max_rows=2000) == list(range(10))  # 40,000 row-epochs
    assert seeds("california", 51, max_rows=2000) == [0, 1, 2]  # 102,000: just past the bound
