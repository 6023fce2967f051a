"""Budgets in trials, epochs and seconds: every backend stops where the budget says."""

import json
import math

import pytest

from tuning.cli import main
from tuning.core.budget import Budget, BudgetError, BudgetMeter, fraction_spent
from tuning.core.config import StudyConfig, StudyError
from tuning.core.results import read_trials
from tuning.run.study import run_study

BACKENDS = ["sklearn", "keras_tuner", "optuna", "hyperopt", "skopt", "random"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs trials, epochs or seconds"),
        ({"epochs": 0}, "budget epochs must be an integer >= 1, got 0"),
        ({"trials": -2}, "budget trials must be an integer >= 1, got -2"),
        ({"epochs": 2.5}, "budget epochs must be an integer"),
        ({"seconds": 0}, "budget seconds must be a number > 0, got 0"),
        ({"seconds": math.inf}, "budget seconds must be a number > 0"),
    ],
)
def test_a_budget_that_cannot_be_spent_is_refused(kwargs, message):
    with pytest.raises(BudgetError, match=message):
        Budget(**kwargs)


def test_the_meter_runs_out_at_the_first_unit_spent():
    now = [100.0]
    meter = BudgetMeter(Budget(trials=5, epochs=10, seconds=60), clock=lambda: now[0])
    for _ in range(9):
        meter.add_epoch()
    meter.add_trial()
    now[0] += 30
    assert not meter.exhausted
    assert meter.fraction_spent == pytest.approx(0.9)  # epochs: the unit furthest spent
    meter.add_epoch()
    assert meter.exhausted
    assert meter.spent() == {"trials": 1, "epochs": 10, "seconds": 30.0}
    assert not BudgetMeter(None).exhausted and BudgetMeter(None).fraction_spent == 0.0
    assert fraction_spent({"trials": None, "epochs": 300, "seconds": None}, {"epochs": 75}) == 0.25


@pytest.mark.parametrize(
    ("budget", "max_epochs", "expected"),
    [
        (Budget(trials=30), 100, 10),
        (Budget(epochs=600), 100, 4),  # about 12 trials of ~50 epochs: a third of them random
        (Budget(epochs=300), 50, 4),
        (Budget(trials=6, epochs=10_000), 100, 2),  # the tighter of the two estimates
        (Budget(seconds=60), 100, 10),  # no estimate: the libraries' default
    ],
)
def test_random_start_follows_the_trials_a_budget_allows(budget, max_epochs, expected):
    assert budget.random_start(max_epochs=max_epochs) == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_epoch_budget_stops_every_backend_at_exactly_that_many_epochs(
    backend, tmp_path, california_small
):
    config = StudyConfig(
        backend=backend,
        budget_epochs=10,
        max_epochs=4,
        patience=2,
        seed=2,
        out=str(tmp_path),
    )
    summary = run_study(config, dataset=california_small)

    rows = read_trials(config.study_dir)
    assert config.trials is None  # no trial budget: only the epochs stop it
    assert rows["epochs"].sum() == 10
    assert list(rows["cum_epochs"]) == list(rows["epochs"].cumsum())
    assert rows["cum_epochs"].iloc[-1] == 10 and (rows["cum_epochs"].iloc[:-1] < 10).all()
    assert rows["cum_seconds"].is_monotonic_increasing
    assert summary["budget"] == {"trials": None, "epochs": 10, "seconds": None}
    assert summary["spent"]["epochs"] == 10 and summary["spent"]["trials"] == len(rows)
    # the winner's retraining is outside the budget: a full protocol fit
    assert 1 <= summary["final_epochs"] <= 4


def test_cross_validation_stops_inside_a_candidate_and_prunes_it(tmp_path, california_small):
    config = StudyConfig(
        backend="sklearn", budget_epochs=6, max_epochs=4, patience=2, seed=2, out=str(tmp_path)
    )
    summary = run_study(config, dataset=california_small)

    rows = read_trials(config.study_dir)
    # fold 1 trains 4 epochs, fold 2 is stopped after 2, fold 3 never starts
    assert rows["epochs"].sum() == 6 and len(rows) == 1
    assert rows["status"].iloc[0] == "pruned"
    assert rows["error"].iloc[0] == "the budget ran out after 2 of 3 folds"
    assert summary["error"].startswith("no trial completed")


def test_a_seconds_budget_starts_no_trial_after_the_deadline(tmp_path, california_small):
    config = StudyConfig(
        backend="random",
        budget_seconds=1.0,
        max_epochs=300,
        patience=300,
        seed=0,
        out=str(tmp_path),
    )
    summary = run_study(config, dataset=california_small)

    rows = read_trials(config.study_dir)
    # every trial but the last ended before the deadline, so none started after it; the study
    # spent its second (the last trial was cut at an epoch's end, or the deadline passed between
    # its row and the search's check before the next trial)
    assert (rows["cum_seconds"].iloc[:-1] < 1.0).all()
    assert summary["spent"]["seconds"] >= 1.0
    if rows["cum_seconds"].iloc[-1] >= 1.0:  # (the usual case) cut by the clock, not its cap
        assert rows["epochs"].iloc[-1] < 300
    assert summary["budget"]["seconds"] == 1.0


def test_trials_and_epochs_together_stop_at_whichever_comes_first(tmp_path, california_small):
    config = StudyConfig(
        backend="optuna", trials=2, budget_epochs=1000, max_epochs=3, seed=0, out=str(tmp_path)
    )
    run_study(config, dataset=california_small)
    assert len(read_trials(config.study_dir)) == 2


def test_a_search_that_trains_nothing_ends_under_an_epoch_budget(
    tmp_path, california_small, monkeypatch
):
    monkeypatch.setattr(BudgetMeter, "MAX_IDLE_TRIALS", 6)  # 100 failed builds take ~30 s
    # (the check before the study would refuse the activation: the budget is what is tested)
    monkeypatch.setattr("tuning.evaluation.keras.kind.check_model", lambda *_args: None)
    config = StudyConfig(
        backend="random",
        budget_epochs=10,
        space={"n_hidden": {"type": "int", "low": 1, "high": 3}},
        model_options={"activation": "no_such_activation"},  # every build fails
        out=str(tmp_path),
    )
    summary = run_study(config, dataset=california_small)

    rows = read_trials(config.study_dir)
    assert len(rows) == BudgetMeter.MAX_IDLE_TRIALS and set(rows["status"]) == {"failed"}
    assert rows["error"].str.startswith("build failed").all()
    assert summary["spent"]["epochs"] == 0 and "no trial completed" in summary["error"]


def test_study_budget_fields_are_checked_with_their_names():
    with pytest.raises(StudyError, match="budget_epochs must be an integer >= 1, got 0"):
        StudyConfig(backend="random", budget_epochs=0)
    with pytest.raises(StudyError, match="budget_seconds must be a number > 0, got -1"):
        StudyConfig(backend="random", budget_seconds=-1)
    # the budget's own rule (a study's config once let an endless budget through to the search)
    with pytest.raises(StudyError, match="budget_seconds must be a number > 0, got inf"):
        StudyConfig(backend="random", budget_seconds=math.inf)
    assert StudyConfig(backend="random").trials == 20  # no budget given: 20 trials
    assert StudyConfig(backend="random", budget_epochs=50).trials is None


def test_cli_refuses_a_zero_budget_in_one_line(capsys, tmp_path):
    code = main(["run", "--backend", "random", "--budget-epochs", "0", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: budget_epochs must be an integer >= 1, got 0\n"


def test_the_budget_is_recorded_in_the_summary_of_a_cli_run(tmp_path, capsys):
    args = ["run", "--backend", "random", "--budget-epochs", "5", "--max-epochs", "2"]
    assert main([*args, "--max-rows", "200", "--out", str(tmp_path)]) == 0
    (summary_path,) = tmp_path.glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["config"]["budget_epochs"] == 5 and summary["spent"]["epochs"] == 5
