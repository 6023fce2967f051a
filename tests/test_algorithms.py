"""Every library's algorithms, named ``library:algorithm``: listed, budgeted, resumed, seeded."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json

import pandas as pd
import pytest
from conftest import interrupted_after_row

import tuning.evaluation.keras.evaluator
from tuning.cli import main
from tuning.core.config import StudyConfig
from tuning.core.errors import ResumeError
from tuning.core.results import read_trials
from tuning.run.study import run_study
from tuning.search import BackendError, available_backends, create_backend, default_backends

ALGORITHMS = {
    "optuna": ["tpe", "cmaes", "qmc", "random", "tpe+hyperband", "tpe+asha", "tpe+median"],
    "hyperopt": ["tpe", "anneal", "rand"],
    "skopt": ["gp", "forest", "extra_trees", "gbrt"],
    "keras_tuner": ["hyperband", "bayesian", "random"],
    "sklearn": ["randomized", "halving"],
}
NAMES = [f"{library}:{a}" for library, algorithms in ALGORITHMS.items() for a in algorithms]
ALIASES = {
    "optuna": "optuna:tpe",
    "hyperopt": "hyperopt:tpe",
    "skopt": "skopt:gp",
    "keras_tuner": "keras_tuner:hyperband",
    "sklearn": "sklearn:randomized",
}
# Optuna draws a resumed study's sampler from another seed (see `OptunaBackend._sampler_seed`):
# its resumed study differs from an uninterrupted one, and two uninterrupted ones are compared.
RESUMES_AS_IF_UNINTERRUPTED = [n for n in NAMES if not n.startswith("optuna:")]
COLUMNS = ["trial", "status", "params", "val_loss", "epochs"]
# Four architectures: trials compile few programs, so the many studies here take seconds each.
SMALL_SPACE = {
    "n_hidden": {"type": "int", "low": 0, "high": 1},
    "n_neurons": {"type": "int", "low": 2, "high": 3},
    "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True},
}


def test_every_library_lists_its_main_algorithms():
    installed = available_backends()
    assert set(NAMES) <= set(installed)
    assert default_backends() == ["hyperopt", "keras_tuner", "optuna", "random", "sklearn", "skopt"]
    for name in NAMES:
        assert create_backend(name).algorithm_name == name
    for alias, name in ALIASES.items():
        assert create_backend(alias).algorithm_name == name
    assert create_backend("random").algorithm_name == "random"
    # Optuna's GPSampler needs PyTorch: listed only where the gp extra is installed
    torch = importlib.util.find_spec("torch") is not None
    assert ("optuna:gp" in installed) == torch


def test_the_backends_command_lists_each_algorithm_with_its_library_and_version(capsys):
    assert main(["backends"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(NAMES) | set(ALIASES) <= set(lines)
    optuna_version = importlib.metadata.version("optuna")
    assert (
        f"optuna {optuna_version}" in lines["optuna:cmaes"]
        and "CmaEsSampler" in (lines["optuna:cmaes"])
    )
    assert "HalvingRandomSearchCV" in lines["sklearn:halving"]
    assert lines["optuna"].split()[1:] == ["=", "optuna:tpe"]


def test_an_unknown_algorithm_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(BackendError, match="'optuna:bohb' is unknown; choose one of"):
        create_backend("optuna:bohb")
    code = main(["run", "--backend", "skopt:tabu", "--trials", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'skopt:tabu' is unknown" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.one_keras_backend
@pytest.mark.parametrize("name", NAMES)
def test_each_algorithm_spends_its_epoch_budget_exactly_resumes_and_repeats_its_proposals(
    name, tmp_path, california_small, monkeypatch
):
    config = StudyConfig(
        backend=name,
        budget_epochs=12,
        max_epochs=4,
        patience=2,
        seed=3,
        space=SMALL_SPACE,
        out=str(tmp_path / "whole"),
        backend_options={"cv": 2} if name.startswith("sklearn:") else {},
    )
    summary = run_study(config, dataset=california_small)
    rows = read_trials(config.study_dir)
    assert config.study_dir.name == f"california_{name.replace(':', '-').replace('+', '-')}_s3"
    assert rows["epochs"].sum() == 12 and rows["cum_epochs"].iloc[-1] == 12
    assert (rows["cum_epochs"].iloc[:-1] < 12).all()
    assert set(rows["algorithm"]) == {name} and set(rows["backend"]) == {name}
    recorded = json.loads((config.study_dir / "study.json").read_text())["algorithm"]
    assert recorded["name"] == name == summary["algorithm"]["name"]

    # Killed after its first row, then run again: no finished trial is trained twice.
    resumed_config = dataclasses.replace(config, out=str(tmp_path / "resumed"))
    with pytest.raises(KeyboardInterrupt), interrupted_after_row(0):
        run_study(resumed_config, dataset=california_small)
    if name == "sklearn:halving":  # scikit-learn's successive halving keeps no state to resume
        with pytest.raises(
            ResumeError, match="sklearn:halving cannot resume .* to start that study over"
        ):
            run_study(resumed_config, dataset=california_small)
        return
    trained = []
    record = tuning.evaluation.keras.evaluator.KerasEvaluator.record
    monkeypatch.setattr(
        tuning.evaluation.keras.evaluator.KerasEvaluator,
        "record",
        lambda objective, params, **kw: trained.append(params) or record(objective, params, **kw),
    )
    run_study(resumed_config, dataset=california_small)
    resumed = read_trials(resumed_config.study_dir)
    assert resumed["epochs"].sum() == 12 and resumed["trial"].tolist() == list(range(len(resumed)))
    assert len(trained) == len(resumed) - 1
    monkeypatch.undo()

    # The same seed draws the same configurations (and so the same rows, on CPU).
    if name in RESUMES_AS_IF_UNINTERRUPTED:
        pd.testing.assert_frame_equal(resumed[COLUMNS], rows[COLUMNS])
    else:
        again = dataclasses.replace(config, out=str(tmp_path / "again"))
        run_study(again, dataset=california_small)
        pd.testing.assert_frame_equal(read_trials(again.study_dir)[COLUMNS], rows[COLUMNS])


@pytest.mark.parametrize("name", ["optuna:tpe+asha", "optuna:tpe+median"])
def test_a_pruner_stops_trials_per_epoch_and_the_budget_counts_their_epochs(
    name, tmp_path, california_small
):
    config = StudyConfig(
        backend=name,
        budget_epochs=45,
        max_epochs=9,
        patience=3,
        seed=0,
        space=SMALL_SPACE,
        out=str(tmp_path),
    )
    summary = run_study(config, dataset=california_small)
    rows = read_trials(config.study_dir)
    pruned = rows[rows["status"] == "pruned"]
    assert len(pruned) >= 2 and summary["trials_pruned"] == len(pruned)
    assert (pruned["epochs"] < 9).all() and pruned["val_loss"].notna().all()
    assert pruned["error"].str.match(r"pruned by the search after epoch \d+").all()
    assert rows["epochs"].sum() == 45  # pruned trials' epochs are spent too
    complete = rows[rows["status"] == "complete"]
    assert summary["best_val_loss"] == complete["val_loss"].min()  # never a pruned trial
    settings = summary["algorithm"]
    assert settings["sampler"] == "TPESampler" and settings["n_startup_trials"] >= 1
    pruner = settings["pruner_arguments"]
    if name == "optuna:tpe+asha":
        assert settings["pruner"] == "SuccessiveHalvingPruner"
        assert (pruner["min_resource"], pruner["reduction_factor"]) == (1, 3)
    else:
        assert settings["pruner"] == "MedianPruner" and pruner["n_warmup_steps"] == 1
