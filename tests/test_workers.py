"""N workers per study: the simulated event queue, and every library's own parallel mode on a
table (`tuning.core.workers`, each backend's parallel driver)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import interrupted_after_row

from tuning.cli import main
from tuning.core.budget import Budget, BudgetMeter
from tuning.core.config import StudyConfig
from tuning.core.ledger import TrialResult
from tuning.core.results import read_trials
from tuning.core.workers import (
    PARALLEL_COLUMNS,
    RunningTrial,
    SimulatedWorkers,
    drive,
)
from tuning.evaluation.objectives import resolve
from tuning.run.grid import plan_grid
from tuning.run.study import run_study
from tuning.search import BackendError, available_backends, create_backend, default_backends

pytestmark = pytest.mark.one_keras_backend
TABLE = Path(__file__).resolve().parents[1] / "benchmarks" / "tables" / "california_small"
PARALLEL = [n for n in available_backends() if create_backend(n).parallel_mode() is not None]
# each library's main algorithm, and a pruner that listens to every worker's epochs
ONE_EACH = [n for n in default_backends() if n in PARALLEL] + ["optuna:tpe+asha"]
# the measured columns: the libraries' own time, and what it is charged to
MEASURED = {"cum_seconds", "library_seconds", "pid", "host"}


# -- the event queue, with trials of known lengths ------------------------------------------
class _Fixed(RunningTrial):
    """``epochs`` epochs of ``seconds`` each, counted into ``meter``."""

    def __init__(self, meter: BudgetMeter, epochs: int, seconds: float, log: list) -> None:
        self.meter, self.left, self.seconds, self.log = meter, epochs, seconds, log
        self.played = 0

    def next_epoch_seconds(self) -> float | None:
        return self.seconds if self.left and not self.meter.exhausted else None

    def play_epoch(self) -> None:
        self.left -= 1
        self.played += 1
        self.meter.add_epoch()

    def end(self) -> bool:
        self.left = 0
        return self.played > 0

    def record(self, extra: Mapping[str, Any]) -> TrialResult:
        self.meter.add_trial()
        self.log.append(dict(extra))
        return TrialResult(len(self.log) - 1, {}, "complete", 1.0, self.played, 0.0)


def _simulate(budget: Budget, lengths: list[tuple[int, float]], size: int) -> list[dict]:
    """Trials of (epochs, seconds per epoch) in turn on ``size`` simulated workers."""
    meter, log = BudgetMeter(budget), []
    queue = list(lengths)
    workers = SimulatedWorkers(size, meter, lambda s: _Fixed(meter, *s.params["length"], log=log))
    drive(workers, lambda: ({"length": queue.pop(0)}, None, {}) if queue else None, lambda f: None)
    return log


def test_epochs_end_in_simulated_time_order_and_ties_go_to_the_earlier_proposal():
    # three workers: trials of 3 x 1 s, 1 x 2 s, 2 x 1 s start together; the next two take
    # the first workers to come free. At 2 s two end: proposal 1 first (the tie rule), and
    # proposal 3 is made before proposal 2's end is played (so 2 is pending for it)
    rows = _simulate(Budget(trials=5), [(3, 1.0), (1, 2.0), (2, 1.0), (1, 1.0), (1, 0.5)], 3)
    ended = [(r["proposal"], r["worker"], r["started"], r["ended"]) for r in rows]
    assert ended == [
        (1, 1, 0.0, 2.0),
        (2, 2, 0.0, 2.0),
        (4, 2, 2.0, 2.5),
        (0, 0, 0.0, 3.0),
        (3, 1, 2.0, 3.0),
    ]
    assert [json.loads(r["pending"]) for r in rows] == [[0], [0, 1], [0, 3], [], [0, 2]]


def test_an_epoch_budget_stops_every_running_trial_at_its_last_finished_epoch():
    meter_rows = _simulate(Budget(epochs=7), [(5, 1.0), (5, 1.5), (5, 2.0)], 3)
    # by 4 s: 4 + 2 + 2 epochs would be 8; the 7th epoch ends at 4.0 (worker 0, ahead on ties)
    assert sorted(r["ended"] for r in meter_rows) == [4.0, 4.0, 4.0]


def test_a_seconds_budget_ends_the_running_trials_when_it_is_spent():
    rows = _simulate(Budget(seconds=2.5), [(5, 1.0), (1, 1.0), (5, 2.0)], 2)
    # proposal 2 started at 1 s; its first epoch would have ended at 3 s: no row
    assert [(r["proposal"], r["ended"]) for r in rows] == [(1, 1.0), (0, 2.5)]


def test_a_trial_budget_never_starts_more_trials_than_it_allows():
    rows = _simulate(Budget(trials=4), [(1, 1.0)] * 9, 3)
    assert len(rows) == 4 and max(r["proposal"] for r in rows) == 3


# -- every library's parallel mode, on a table ------------------------------------------------
def _config(tmp_path: Path, backend: str, workers: int = 3, **changes: Any) -> StudyConfig:
    settings = {
        "backend": backend,
        "objective": f"tabular:{TABLE}",
        "budget_epochs": 120,
        "workers": workers,
        "out": str(tmp_path),
    }
    return resolve(StudyConfig(**{**settings, **changes}))


def _deterministic(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[[c for c in rows.columns if c not in MEASURED]]


@pytest.mark.parametrize("name", PARALLEL)
def test_a_parallel_study_spends_the_budget_exactly_and_its_rows_say_what_ran_when(name, tmp_path):
    config = _config(tmp_path, name)
    summary = run_study(config)
    rows = read_trials(config.study_dir)
    assert rows["epochs"].sum() == 120 == rows["cum_epochs"].max()
    assert set(PARALLEL_COLUMNS) <= set(rows.columns) and rows["worker"].between(0, 2).all()
    assert summary["algorithm"]["parallel"] == create_backend(name).parallel_mode()
    # at no moment more than three trials ran
    events = sorted([(t, 1) for t in rows["started"]] + [(t, -1) for t in rows["ended"]])
    running = pd.Series([step for _, step in events]).cumsum()
    assert running.max() <= 3 and (rows["ended"] >= rows["started"]).all()
    # each proposal was made with only earlier proposals pending, none of them finished yet
    ended_by_proposal = dict(zip(rows["proposal"], rows["ended"], strict=True))
    for _, row in rows.iterrows():
        for pending in json.loads(row["pending"]):
            assert pending < row["proposal"]
            assert ended_by_proposal.get(pending, math.inf) >= row["started"]
    # the rows are in order of their end on the simulated clock
    assert rows["ended"].is_monotonic_increasing


@pytest.mark.parametrize("name", ONE_EACH)
def test_a_simulated_parallel_study_is_the_same_on_every_run_and_resumes_to_it(name, tmp_path):
    whole = _config(tmp_path / "whole", name)
    again = _config(tmp_path / "again", name)
    resumed = _config(tmp_path / "resumed", name)
    run_study(whole)
    run_study(again)
    rows = _deterministic(read_trials(whole.study_dir))
    pd.testing.assert_frame_equal(_deterministic(read_trials(again.study_dir)), rows)
    with pytest.raises(KeyboardInterrupt), interrupted_after_row(3):
        run_study(resumed)
    assert len(read_trials(resumed.study_dir)) == 4
    summary = run_study(resumed)
    pd.testing.assert_frame_equal(_deterministic(read_trials(resumed.study_dir)), rows)
    assert summary["trials_from_earlier_runs"] == 4


def test_more_workers_spend_the_same_epochs_in_less_simulated_time(tmp_path):
    one = run_study(_config(tmp_path, "random", workers=1))
    four = run_study(_config(tmp_path, "random", workers=4))
    rows = {n: read_trials(Path(tmp_path) / s["study"]) for n, s in ((1, one), (4, four))}
    assert rows[1]["epochs"].sum() == rows[4]["epochs"].sum() == 120
    elapsed = {n: r["cum_seconds"].max() for n, r in rows.items()}
    assert elapsed[4] < elapsed[1] / 2  # four at once: far less than one after another


def test_an_algorithm_without_a_parallel_mode_is_refused_in_one_line(tmp_path, capsys):
    assert create_backend("sklearn:halving").parallel_mode() is None
    with pytest.raises(BackendError, match="sklearn:halving has no parallel mode"):
        run_study(_config(tmp_path, "sklearn:halving"))
    assert not (tmp_path / "california_sklearn-halving_s0_w3").exists()
    code = main(
        ["run", "--backend", "sklearn:halving", "--objective", f"tabular:{TABLE}"]
        + ["--workers", "2", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "drop --workers" in err


def test_workers_is_a_count_and_a_grid_makes_a_study_of_each(tmp_path, capsys):
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        StudyConfig(backend="random", workers=0)
    with pytest.raises(SystemExit):
        main(["benchmark", "--workers", "1,x", "--out", str(tmp_path)])
    assert "not a list of worker counts" in capsys.readouterr().err
    base = StudyConfig(backend="random", out=str(tmp_path))
    names = [c.study for c in plan_grid(base, ["random", "optuna"], [0], [1, 4])]
    assert names == [
        "california_random_s0",
        "california_optuna_s0",
        "california_random_s0_w4",
        "california_optuna_s0_w4",
    ]


@pytest.mark.parametrize("name", ONE_EACH)
def test_one_worker_of_the_parallel_driver_proposes_what_the_sequential_loop_does(
    name, tmp_path, monkeypatch
):
    """So that a library's change from 1 to N workers is its parallel mode's doing alone."""
    driven = run_study(_config(tmp_path / "driver", name, workers=1))
    monkeypatch.setattr("tuning.run.study.ONE_WORKER_SIMULATED", False)
    sequential = run_study(_config(tmp_path / "loop", name, workers=1))
    assert driven["workers"]["workers"] == 1 and "workers" not in sequential
    columns = ["trial", "status", "params", "val_loss", "epochs", "cum_epochs"]
    loop = read_trials(Path(tmp_path) / "loop" / sequential["study"])
    pd.testing.assert_frame_equal(
        read_trials(Path(tmp_path) / "driver" / driven["study"])[columns], loop[columns]
    )


@pytest.mark.parametrize("name", ["optuna", "sklearn"])
def test_a_study_interrupted_at_the_row_that_spent_its_budget_resumes_to_the_whole(name, tmp_path):
    whole = _config(tmp_path / "whole", name, workers=4)
    run_study(whole)
    rows = read_trials(whole.study_dir)
    spent = int((rows["cum_epochs"] >= 120).idxmax())  # the row at which the budget ran out
    assert spent < len(rows) - 1  # trials were still running then, and ended after it
    resumed = _config(tmp_path / "resumed", name, workers=4)
    with pytest.raises(KeyboardInterrupt), interrupted_after_row(spent):
        run_study(resumed)
    run_study(resumed)
    pd.testing.assert_frame_equal(
        _deterministic(read_trials(resumed.study_dir)), _deterministic(rows)
    )


def test_a_trial_the_budget_stopped_before_its_first_epoch_writes_no_row(tmp_path):
    config = _config(tmp_path, "optuna", workers=64, budget_epochs=20)
    run_study(config)
    rows = read_trials(config.study_dir)
    assert (rows["epochs"] >= 1).all() and (rows["status"] != "failed").all()
    assert rows["epochs"].sum() == 20
