"""``--objective tabular:TABLE``: every backend searches a table's space, each trial looked up."""

from __future__ import annotations

import dataclasses
import math

import keras
import pandas as pd
import pytest
from conftest import interrupted_after_row

from tuning.analysis.compare import compare
from tuning.cli import main
from tuning.core.config import StudyConfig, StudyError
from tuning.core.results import read_trials
from tuning.core.space import SearchSpace, default_space
from tuning.evaluation.objectives import resolve
from tuning.evaluation.tabular.build import tabulate
from tuning.evaluation.tabular.table import load_table
from tuning.evaluation.tabular.table_file import TableSettings, config_id, configurations
from tuning.run.study import run_study
from tuning.search import default_backends

pytestmark = [
    pytest.mark.one_keras_backend,
    pytest.mark.skipif(keras.backend.backend() != "jax", reason="tables are built on JAX only"),
]
GRID = {"n_hidden": [0, 1], "n_neurons": [2, 5], "learning_rate": [0.003, 0.03]}
# the grid's own values, as a space: a real study draws exactly the configurations a table has
GRID_SPACE = {name: {"type": "categorical", "choices": values} for name, values in GRID.items()}
MAX_EPOCHS, PATIENCE = 6, 2


@pytest.fixture(scope="module")
def table(tmp_path_factory, california):
    folder = tmp_path_factory.mktemp("table")
    settings = TableSettings(
        dataset="california",
        max_rows=400,
        max_epochs=MAX_EPOCHS,
        batch_size=32,
        patience=PATIENCE,
        seeds=(0, 1),
        grid=GRID,
    )
    tabulate(settings, folder, dataset=california)
    return folder


def _config(table, tmp_path, **changes) -> StudyConfig:
    settings = {
        "backend": "random",
        "objective": f"tabular:{table}",
        "budget_epochs": 20,
        "seed": 1,
        "out": str(tmp_path),
    }
    return resolve(StudyConfig(**{**settings, **changes}))


def test_a_tabular_study_takes_its_tables_data_and_protocol_and_refuses_others(table, tmp_path):
    config = _config(table, tmp_path)
    assert (config.dataset, config.max_rows) == ("california", 400)
    assert (config.max_epochs, config.patience, config.batch_size) == (MAX_EPOCHS, PATIENCE, 32)
    with pytest.raises(StudyError, match=r"max_epochs 50 differs from the 6 table .* leave"):
        _config(table, tmp_path, max_epochs=50)
    with pytest.raises(StudyError, match="write tabular:TABLE"):
        _config(table, tmp_path, objective="table:x")
    with pytest.raises(StudyError, match="no table there .* tuning tabulate --out"):
        _config(table, tmp_path, objective=f"tabular:{tmp_path / 'none'}")


def test_a_setting_named_at_its_default_value_is_not_taken_as_left_out(table, tmp_path, capsys):
    named = dataclasses.replace(_config(table, tmp_path), resolved=False, max_epochs=100)
    with pytest.raises(StudyError, match=r"max_epochs 100 differs from the 6 table"):
        resolve(dataclasses.replace(named, given=frozenset({"max_epochs"})))
    assert resolve(dataclasses.replace(named, given=frozenset())).max_epochs == MAX_EPOCHS
    assert resolve(named).max_epochs == MAX_EPOCHS  # built in code: the default is "left out"
    argv = ["run", "--backend", "random", "--objective", f"tabular:{table}", "--trials", "1"]
    argv += ["--out", str(tmp_path / "out")]
    assert main([*argv, "--max-epochs", "100"]) == 2  # typed, though it is the default
    assert "max_epochs 100 differs from the 6 table" in capsys.readouterr().err
    study = tmp_path / "study.toml"
    study.write_text(f'backend = "random"\nobjective = "tabular:{table}"\nmax_epochs = 100\n')
    assert main(["run", "--config", str(study), "--out", str(tmp_path / "out")]) == 2
    assert "max_epochs 100 differs from the 6 table" in capsys.readouterr().err


def test_the_cli_refuses_a_space_the_table_does_not_hold_in_one_line(table, tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(
        f'backend = "random"\nobjective = "tabular:{table}"\n'
        '[space.n_hidden]\ntype = "categorical"\nchoices = [0, 2]\n'
        '[space.n_neurons]\ntype = "int"\nlow = 1\nhigh = 9\n'
        '[space.learning_rate]\ntype = "float"\nlow = 0.001\nhigh = 0.1\nlog = true\n'
    )
    code = main(["run", "--config", str(study), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "space.n_hidden: choices [2] are not in the table's grid [0, 1]" in err


def test_a_sample_is_snapped_to_the_nearest_grid_value_on_its_own_scale(table):
    loaded = load_table(table)
    space = default_space()  # n_neurons linear 1-99, learning_rate log
    snapped = loaded.snap({"n_hidden": 1, "n_neurons": 4, "learning_rate": 0.009}, space)
    # 4 is nearer 5 than 2; 0.009 is nearer 0.003 than 0.03 in log (ratio 3 vs 3.33)
    assert snapped == {"n_hidden": 1, "n_neurons": 5, "learning_rate": 0.003}
    assert loaded.snap({"n_hidden": 1, "n_neurons": 3, "learning_rate": 0.01}, space) == {
        "n_hidden": 1,
        "n_neurons": 2,  # the tie 2 | 5 at 3.5 is not reached: 3 is nearer 2
        "learning_rate": 0.03,  # 0.01 is nearer 0.03 in log (ratio 3) than 0.003 (3.33)
    }


def test_a_tabular_trial_equals_a_real_trial_of_the_same_configuration_and_seed(
    table, tmp_path, california
):
    real = StudyConfig(
        backend="random",
        trials=3,
        seed=1,
        max_rows=400,
        max_epochs=MAX_EPOCHS,
        patience=PATIENCE,
        space=GRID_SPACE,
        out=str(tmp_path / "real"),
    )
    looked_up = _config(table, tmp_path / "tabular", trials=3, budget_epochs=None)
    looked_up = dataclasses.replace(looked_up, space=GRID_SPACE)
    real_summary = run_study(real, dataset=california)
    summary = run_study(looked_up)
    rows, real_rows = read_trials(looked_up.study_dir), read_trials(real.study_dir)
    assert list(rows["params"]) == list(real_rows["params"])  # the same draws
    assert list(rows["epochs"]) == list(real_rows["epochs"])
    assert list(rows["status"]) == list(real_rows["status"])
    for ours, theirs in zip(rows["val_loss"], real_rows["val_loss"], strict=True):
        assert ours == pytest.approx(theirs, rel=1e-5)
    assert summary["best_params"] == real_summary["best_params"]
    assert summary["test_loss"] == pytest.approx(real_summary["test_loss"], rel=1e-5)
    assert summary["final_epochs"] == real_summary["final_epochs"]
    # the rows carry each configuration's test loss in the table; the winner's is the summary's
    winner = rows[rows["trial"] == summary["best_trial"]].iloc[0]
    assert winner["table_test_loss"] == pytest.approx(summary["test_loss"], rel=1e-6)
    assert "model_file" not in summary and not (looked_up.study_dir / "best_model.keras").exists()
    best = load_table(table).best(1)
    assert summary["table_best_test_loss"] == pytest.approx(best.test_loss)
    assert summary["regret"] == pytest.approx(summary["test_loss"] - best.test_loss)
    assert summary["regret"] >= 0


@pytest.mark.parametrize(
    "name", [*default_backends(), "optuna:tpe+asha", "sklearn:halving", "keras_tuner:random"]
)
def test_every_backend_searches_the_table_under_the_epoch_budget(name, table, tmp_path):
    config = _config(table, tmp_path, backend=name, budget_epochs=30)
    summary = run_study(config)
    rows = read_trials(config.study_dir)
    assert rows["epochs"].sum() == 30 and rows["cum_epochs"].iloc[-1] == 30
    assert len(rows) == summary["trials"] > 1
    grid_points = {config_id(p) for p in configurations(GRID)}
    assert set(rows["params"]) <= grid_points  # every row is a configuration of the grid
    assert rows["table_test_loss"].notna().all()
    # simulated clock: each trial spends the table's seconds for its epochs, and the study's
    # clock holds them all
    looked_up = load_table(table)
    for row in rows.itertuples():
        key = (row.params, looked_up.table_seed(config.seed))
        epoch_seconds = looked_up.entries[key].epoch_seconds
        assert row.fit_seconds == pytest.approx(row.epochs * epoch_seconds, abs=1e-4)
    assert rows["cum_seconds"].iloc[-1] >= rows["fit_seconds"].sum()
    assert summary["regret"] >= 0 and math.isfinite(summary["test_loss"])
    if name.startswith("sklearn"):
        assert summary["algorithm"]["cv"] == "holdout"


def test_sklearn_cross_validation_cannot_be_looked_up(table, tmp_path):
    config = _config(table, tmp_path, backend="sklearn", backend_options={"cv": 3})
    with pytest.raises(ValueError, match="cv=3 cannot be looked up .* cv='holdout'"):
        run_study(config)


@pytest.mark.parametrize("name", ["hyperopt", "keras_tuner", "skopt"])
def test_a_killed_tabular_study_resumes_to_the_rows_of_an_uninterrupted_one(name, table, tmp_path):
    whole = _config(table, tmp_path / "whole", backend=name, budget_epochs=40)
    run_study(whole)
    resumed = _config(table, tmp_path / "resumed", backend=name, budget_epochs=40)
    with pytest.raises(KeyboardInterrupt), interrupted_after_row(2):
        run_study(resumed)
    assert len(read_trials(resumed.study_dir)) == 3
    summary = run_study(resumed)
    columns = ["trial", "status", "params", "val_loss", "epochs", "cum_epochs"]
    pd.testing.assert_frame_equal(
        read_trials(resumed.study_dir)[columns], read_trials(whole.study_dir)[columns]
    )
    assert summary["trials_from_earlier_runs"] == 3


def test_compare_reports_the_tables_best_configuration_and_every_studys_regret(table, tmp_path):
    out = tmp_path / "grid"
    for backend in ("random", "hyperopt"):
        for seed in (0, 1, 2):
            run_study(_config(table, out, backend=backend, seed=seed))
    result = compare(out)
    assert result.studies["regret"].notna().all() and (result.studies["regret"] >= 0).all()
    regrets = pd.read_csv(out / "regret.csv")
    assert set(regrets["backend"]) == {"random", "hyperopt"}
    assert (regrets["seconds_per_trial"] > 0).all()
    for backend, group in result.studies.groupby("backend"):
        mean = regrets.loc[regrets["backend"] == backend, "regret_mean"].iloc[0]
        assert mean == pytest.approx(group["regret"].mean())
    for figure in ("regret_over_budget", "landscape"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    best, mean = load_table(table).best_overall()
    assert "## Tabular objective" in report
    assert f"n_hidden={best['n_hidden']}" in report and "(no model file)" in report
    # three search seeds read the table's two draws (0, 1, 0): a claim about the task has 2
    claims = pd.read_csv(out / "leaderboard_task_claims.csv").set_index("backend")
    assert claims.loc["hyperopt", "n_pairs"] == 2 and claims.loc["random", "n_seeds"] == 2
    assert "no claim about the task can be significant at 0.05" in report


def test_the_table_space_check_names_missing_and_extra_parameters(table):
    loaded = load_table(table)
    space = SearchSpace.from_dict(
        {
            "n_hidden": {"type": "int", "low": 0, "high": 1},
            "dropout": {"type": "float", "low": 0, "high": 1},
        }
    )
    with pytest.raises(
        StudyError, match=r"search space \['dropout', 'n_hidden'\] is not the table's grid"
    ):
        loaded.check_space(space)
