"""Leaderboards and figures from real (tiny) studies, checked against the trial rows."""

import json

import numpy as np
import pandas as pd
import pytest

from tuning.analysis.compare import leaderboard, leaderboard_columns, write_leaderboard
from tuning.analysis.plots import band, best_so_far, plot_best_so_far
from tuning.core.config import StudyConfig
from tuning.core.results import read_trials
from tuning.run.study import run_study

pytestmark = pytest.mark.one_keras_backend  # tables and figures: no Keras backend


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory, california_small):
    out = tmp_path_factory.mktemp("compare")
    for backend, seed in (("optuna", 0), ("skopt", 1)):
        config = StudyConfig(backend=backend, trials=3, max_epochs=3, seed=seed, out=str(out))
        run_study(config, dataset=california_small)
    return out


def test_leaderboard_has_one_row_per_study_best_first(two_studies):
    board, path = write_leaderboard(two_studies)
    assert path.exists()
    on_disk = pd.read_csv(path)
    assert list(on_disk.columns) == leaderboard_columns(["n_hidden", "n_neurons", "learning_rate"])
    documented = ["study", "backend", "dataset", "seed", "best_val_loss", "test_loss"]
    documented += ["n_hidden", "n_neurons", "learning_rate", "trials", "epochs", "wall_seconds"]
    assert list(on_disk.columns[:12]) == documented  # the order the README gives; extras after
    assert set(on_disk["algorithm"]) == {"optuna:tpe", "skopt:gp"}
    assert sorted(board["study"]) == ["california_optuna_s0", "california_skopt_s1"]
    assert board["test_loss"].is_monotonic_increasing
    for _, row in board.iterrows():
        trials = read_trials(two_studies / row["study"])
        summary = json.loads((two_studies / row["study"] / "summary.json").read_text())
        complete = trials[trials["status"] == "complete"]
        assert row["best_val_loss"] == pytest.approx(complete["val_loss"].min())
        assert row["trials"] == len(trials) == 3
        assert row["epochs"] == trials["epochs"].sum()
        assert row["test_loss"] == pytest.approx(summary["test_loss"])
        assert row["seconds"] == summary["spent"]["seconds"] >= trials["cum_seconds"].iloc[-1]
        assert row["budget"] == "trials=3"
        assert row["n_neurons"] == summary["best_params"]["n_neurons"]


def test_best_so_far_is_a_running_minimum(two_studies):
    trials = pd.concat([read_trials(d) for d in sorted(two_studies.iterdir()) if d.is_dir()])
    curves = best_so_far(trials)
    for study, rows in curves.groupby("study"):
        losses = trials[trials["study"] == study].sort_values("trial")["val_loss"].to_numpy()
        assert list(rows["best_val_loss"]) == [min(losses[: i + 1]) for i in range(len(losses))]
        assert rows["cum_epochs"].is_monotonic_increasing


def test_band_is_the_quartiles_of_the_step_functions():
    curves = pd.DataFrame(
        {
            "study": ["a", "a", "b", "b", "c"],
            "cum_epochs": [2, 6, 4, 8, 5],
            "best_val_loss": [3.0, 1.0, 2.0, 2.0, 4.0],
        }
    )
    q25, median, q75 = band(curves, "cum_epochs", np.array([0, 2, 4, 5, 6, 8]))
    # a study without a result yet counts as infinitely bad: unknown until two of three have one
    assert np.isnan(median[:2]).all()
    assert list(median[2:]) == [3.0, 3.0, 2.0, 2.0]  # a,b,(c unknown); a,b,c; a improved; b
    assert (q25[2], q25[3], q75[3]) == (2.5, 2.5, 3.5) and np.isnan(q75[2])


def test_figure_is_a_real_png(two_studies, tmp_path):
    trials = pd.concat([read_trials(d) for d in sorted(two_studies.iterdir()) if d.is_dir()])
    path = plot_best_so_far(trials, tmp_path / "fig.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000


def test_leaderboard_of_nothing_is_empty(tmp_path):
    assert leaderboard(tmp_path).empty


def test_one_tasks_studies_run_under_other_settings_are_refused_naming_them(tmp_path):
    import json as json_

    from tuning.analysis.compare import compare

    for name, rows in (("iris_random_s0", 100), ("iris_optuna_s0", 50)):
        folder = tmp_path / name
        folder.mkdir()
        summary = {
            "study": name,
            "backend": name.split("_")[1],
            "dataset": "iris",
            "seed": 0,
            "test_loss": 0.5,
            "best_val_loss": 0.5,
            "best_params": {},
            "config": {"max_rows": rows, "max_epochs": 3},
        }
        (folder / "summary.json").write_text(json_.dumps(summary))
        (folder / "trials.csv").write_text(
            "study,backend,dataset,seed,trial,status,val_loss,epochs,fit_seconds,cum_epochs,"
            f"cum_seconds\n{name},x,iris,0,0,complete,0.5,1,0.1,1,0.1\n"
        )
    with pytest.raises(
        ValueError,
        match=r"task 'iris' holds studies run under different "
        r"settings \(max_rows: 50 in iris_optuna_s0, 100 in iris_random_s0\)",
    ):
        compare(tmp_path)


def test_integer_parameters_get_whole_number_ticks(monkeypatch, tmp_path):
    import tuning.analysis.plots as plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig) or path)
    rng = np.random.default_rng(0)
    params = [
        {"n_hidden": int(rng.integers(0, 4)), "learning_rate": float(10 ** rng.uniform(-4, -1))}
        for _ in range(12)
    ]
    trials = pd.DataFrame(
        {
            "dataset": "d",
            "backend": ["a", "b"] * 6,
            "status": "complete",
            "val_loss": rng.uniform(0.5, 2, 12),
            "params": [json.dumps(p) for p in params],
        }
    )
    table = plots.searched_params(trials)
    plots.plot_hyperparameters(trials, table, tmp_path / "h.png")  # x: learning_rate, y: n_hidden
    plots.plot_exploration(trials, table, tmp_path / "e.png")
    hyper, explore = drawn
    depth_axes = [hyper.axes[0].yaxis] + [
        ax.xaxis for ax in explore.axes if ax.get_title().endswith("n_hidden")
    ]
    assert len(depth_axes) == 2
    for axis in depth_axes:
        ticks = [t for t in axis.get_majorticklocs() if -0.5 <= t <= 3.5]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    rates = next(ax for ax in explore.axes if ax.get_title().endswith("learning_rate"))
    assert rates.get_xscale() == "log"  # (a rate over decades: log, not integer, ticks)
