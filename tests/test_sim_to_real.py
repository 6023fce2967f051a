"""The sim-to-real certificate: snapping, the agreement's arithmetic, and one small real run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tuning.evaluation.keras.snapping import build_on_grid, snap_to_grid
from tuning.run.certify import build_on_grid as old_build_on_grid

GRID = {"n_hidden": [0, 1, 2], "n_neurons": [1, 10, 100], "learning_rate": [0.001, 0.01, 0.1]}


def test_proposals_snap_to_the_grid_as_a_tabular_study_snaps_them():
    snapped = snap_to_grid(
        {"n_hidden": 2, "n_neurons": 40, "learning_rate": 0.004, "seed": 3},
        GRID,
        log=["learning_rate", "n_neurons"],
    )
    # 40 is nearer 10 than 100 in log (log 40 - log 10 = 1.39 > log 100 - log 40 = 0.92): 100
    assert snapped == {"n_hidden": 2, "n_neurons": 100, "learning_rate": 0.01, "seed": 3}
    linear = snap_to_grid({"n_neurons": 40, "learning_rate": 0.004}, GRID)
    assert linear == {"n_neurons": 10, "learning_rate": 0.001}


@pytest.mark.parametrize("factory", ["grid", "table"])
def test_the_snapping_factory_builds_the_grid_configuration(tmp_path, factory):
    """Given the grid (the factory certificates now name), or the table's folder (the one
    earlier certificates' study files name, deprecated): the grid's nearest configuration."""
    (tmp_path / "table.json").write_text(json.dumps({"grid": GRID, "seeds": [0], "model": None}))
    arguments = {"n_hidden": 1, "n_neurons": 37, "learning_rate": 0.02, "input_shape": (4,)}
    if factory == "grid":
        model = build_on_grid(grid=GRID, log=["learning_rate"], seed=0, **arguments)
    else:
        with pytest.warns(DeprecationWarning, match="tuning.evaluation.keras.snapping"):
            model = old_build_on_grid(
                table=str(tmp_path), log=["learning_rate"], seed=0, **arguments
            )
    hidden = [layer for layer in model.layers if getattr(layer, "units", None)][:-1]
    assert [layer.units for layer in hidden] == [10]  # 37 -> 10 on the linear scale
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


def test_certify_runs_the_real_studies_and_writes_the_certificate(tmp_path):
    import keras

    from tuning.cli import main
    from tuning.core.config import StudyConfig
    from tuning.run.study import run_study

    if keras.backend.backend() != "jax":
        pytest.skip("tables are built on JAX")
    grid = tmp_path / "grid.toml"
    grid.write_text("[grid]\nn_hidden = [0, 1]\nn_neurons = [3]\nlearning_rate = [0.01, 0.1]\n")
    table = tmp_path / "table"
    common = ["--dataset", "iris", "--max-epochs", "3", "--patience", "2", "--max-rows", "60"]
    assert (
        main(["tabulate", *common, "--grid", str(grid), "--seeds", "0", "--out", str(table)]) == 0
    )
    space = {
        "n_hidden": {"type": "int", "low": 0, "high": 1},
        "n_neurons": {"type": "int", "low": 3, "high": 3},
        "learning_rate": {"type": "float", "low": 0.005, "high": 0.2, "log": True},
    }
    tabular = tmp_path / "tabular"
    for backend in ("random", "optuna"):
        for seed in (0, 1):
            config = StudyConfig(
                backend=backend,
                objective=f"tabular:{table}",
                trials=3,
                seed=seed,
                space=space,
                out=str(tabular),
            )
            run_study(config)
    real = tmp_path / "real"
    argv = ["certify", str(tabular), "--seeds", "0,1", "--out", str(real), "--jobs", "1"]
    assert main(argv) == 0
    backends = pd.read_csv(real / "sim_to_real.csv").set_index("backend")
    assert sorted(backends.index) == ["optuna", "random"]
    winners = pd.read_csv(real / "sim_to_real_winners.csv")
    assert len(winners) == 4
    # a real study searches with its tabular twin's seed but trains with noise of its own: were
    # it the table's draw, seed 0's winner would retrain to the table's very test loss
    summaries = [json.loads(p.read_text()) for p in real.rglob("summary.json")]
    assert {(s["seed"], s["config"]["training_seed"]) for s in summaries} == {
        (0, 1_000_000),
        (1, 1_000_001),
    }
    same = winners[winners["seed"] == 0]
    assert not np.allclose(same["real_test_loss"], same["table_test_loss"], rtol=1e-4)
    assert {s["config"]["model"] for s in summaries} == {
        "tuning.evaluation.keras.snapping:build_on_grid"
    }
    assert all(s["trials"] == 3 for s in summaries)
    assert "Kendall's tau" in (real / "sim_to_real.md").read_text()


def test_the_real_counterpart_of_a_parallel_tabular_study_runs_its_worker_count(tmp_path):
    """Sim-to-real for parallel studies: a table's `--workers 2` study is certified against real
    studies of 2 worker processes (`docs/parallel.md`)."""
    from tuning.core.config import StudyConfig
    from tuning.evaluation.objectives import resolve
    from tuning.run.certify import real_configs

    table = "benchmarks/tables/california_small"
    tabular = resolve(
        StudyConfig(backend="optuna", objective=f"tabular:{table}", budget_epochs=200, workers=2)
    )
    summary = {"config": tabular.recorded(), "algorithm": {}}
    (real,) = real_configs([summary], [3], tmp_path)
    assert (real.workers, real.objective, real.seed, real.budget_epochs) == (2, None, 3, 200)
    assert real.study.endswith("_w2")
