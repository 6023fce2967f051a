"""N worker processes for a study that trains (`tuning.core.process_workers`): every trial
recorded once by the study's process, the budget one meter, nothing lost when the study or a
worker is killed, and a grid's ``--jobs`` counting the workers' processes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from tuning.core.config import StudyConfig
from tuning.core.errors import StudyError
from tuning.core.results import TRIALS_FILE, read_trials
from tuning.run.grid import studies_at_once
from tuning.run.study import run_study

# Processes, pipes and the libraries' parallel modes: the same on either Keras backend.
pytestmark = pytest.mark.one_keras_backend
REPO = Path(__file__).resolve().parents[1]
KILL_AFTER_ROW = REPO / "benchmarks" / "kill_after_row.py"
SMALL = {"dataset": "california", "max_rows": 300, "max_epochs": 4, "patience": 2}
# a model that kills its worker process the first time it is built there (not in the study's
# own process, which builds the user's model at every choice first to check it)
DYING_MODEL = """
import multiprocessing, os, signal
from pathlib import Path
from tuning import build_model

def build(**kwargs):
    marker = Path(os.environ["TUNING_TEST_MARKER"])
    if multiprocessing.current_process().name.startswith("tuning-worker") and not marker.exists():
        marker.write_text("died once")
        os.kill(os.getpid(), signal.SIGKILL)
    return build_model(**kwargs)
"""


# a model whose module ends any worker process that imports it (the study's own process checks
# the model first: there it builds)
EXITING_MODEL = """
import multiprocessing, os
from tuning import build_model

if multiprocessing.current_process().name.startswith("tuning-worker"):
    os._exit(3)

def build(**kwargs):
    return build_model(**kwargs)
"""
SMALL_SPACE = {
    "n_hidden": {"type": "int", "low": 1, "high": 2},
    "n_neurons": {"type": "int", "low": 4, "high": 16},
    "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
}


def _with_model(tmp_path: Path, source: str, budget_epochs: int) -> StudyConfig:
    """A two-worker study of random search over the model factory ``source`` (a module's
    text, its factory ``build``) on the small space."""
    (tmp_path / "model.py").write_text(source)
    return StudyConfig(
        backend="random",
        budget_epochs=budget_epochs,
        workers=2,
        model=f"{tmp_path / 'model.py'}:build",
        space=SMALL_SPACE,
        out=str(tmp_path / "out"),
        **SMALL,
    )


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_two_worker_processes_train_the_study_and_its_process_records_each_trial_once(tmp_path):
    config = StudyConfig(backend="random", budget_epochs=30, workers=2, out=str(tmp_path), **SMALL)
    summary = run_study(config)

    rows = read_trials(config.study_dir)
    assert rows["trial"].tolist() == list(range(len(rows)))  # numbered as they ended
    assert sorted(rows["proposal"]) == list(range(len(rows)))  # every proposal once
    assert set(rows["worker"]) == {0, 1}
    pids = set(rows["pid"])
    assert len(pids) == 2 and os.getpid() not in pids  # trained in two other processes
    # one meter: the budget's 30 epochs, at most one more (an epoch the other worker was
    # training when it was spent); each row's cum_epochs counts every worker's
    assert 30 <= rows["epochs"].sum() <= 31
    assert rows["cum_epochs"].is_monotonic_increasing and rows["cum_epochs"].iloc[-1] >= 30
    for _, row in rows.iterrows():  # the curve the worker trained, epoch by epoch
        curve = json.loads(row["curve"])
        assert len(curve) == row["epochs"] and min(curve) == pytest.approx(row["val_loss"])
    assert any(json.loads(p) for p in rows["pending"])  # proposed while another ran
    assert summary["workers"]["workers"] == 2 and summary["workers"]["processes_restarted"] == 0
    assert summary["spent"]["epochs"] == rows["epochs"].sum()
    assert summary["test_loss"] > 0  # the winner retrained here
    assert all(_gone(pid) for pid in pids)  # the workers ended with the study
    assert not multiprocessing.active_children()


@pytest.mark.parametrize(
    "name", ["random", "optuna", "optuna:tpe+asha", "hyperopt", "skopt", "keras_tuner", "sklearn"]
)
def test_a_parallel_study_killed_mid_trial_resumes_with_nothing_lost_or_doubled(name, tmp_path):
    """Killed (-9) right after its third row, the other worker mid-trial: the workers end with
    it; run again, the earlier rows stay first and unchanged, each proposal has one row (the
    one that was running is trained again), and the study finishes."""
    args = ["run", "--backend", name, "--dataset", "california", "--max-rows", "300"]
    args += ["--max-epochs", "4", "--patience", "2", "--budget-epochs", "48"]
    args += ["--workers", "2", "--out", str(tmp_path)]
    killed = subprocess.run(
        [sys.executable, str(KILL_AFTER_ROW), "3", *args], capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    (study_dir,) = tmp_path.iterdir()
    before = read_trials(study_dir / TRIALS_FILE)
    assert len(before) == 3
    assert all(_gone(int(pid)) for pid in set(before["pid"]))  # no orphan went on training

    resumed = subprocess.run(
        [sys.executable, "-m", "tuning", *args], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = read_trials(study_dir / TRIALS_FILE)
    pd.testing.assert_frame_equal(after.head(3), before, check_dtype=False)
    assert after["trial"].tolist() == list(range(len(after)))
    proposals = after["proposal"].tolist()
    assert sorted(proposals) == list(range(len(after)))  # none lost, none twice
    # the proposals running at the kill (proposed before the third row, no row then) were
    # trained again after it
    running = set(range(int(before["proposal"].max()))) - set(before["proposal"])
    assert running <= set(after["proposal"].iloc[3:])
    assert 48 <= after["epochs"].sum() <= 49
    assert "summary.json" in {p.name for p in study_dir.iterdir()}


def test_a_worker_that_dies_mid_trial_leaves_a_failed_row_and_the_study_goes_on(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("TUNING_TEST_MARKER", str(tmp_path / "marker"))
    config = _with_model(tmp_path, DYING_MODEL, budget_epochs=24)
    with caplog.at_level(logging.WARNING):
        summary = run_study(config)

    rows = read_trials(config.study_dir)
    died = rows[rows["error"].fillna("").str.contains("worker process died")]
    assert len(died) == 1
    assert died["status"].iloc[0] == "failed"
    assert died["error"].iloc[0] == "its worker process died (signal 9)"
    assert summary["workers"]["processes_restarted"] == 1
    assert 24 <= rows["epochs"].sum() <= 25  # the budget spent all the same
    assert (rows["status"] == "complete").sum() >= 2
    assert "died (signal 9)" in caplog.text


def _configs(workers: int, objective: str | None = None, n: int = 4) -> list[StudyConfig]:
    return [
        StudyConfig(backend="random", trials=2, workers=workers, seed=s, objective=objective)
        for s in range(n)
    ]


def test_jobs_count_the_worker_processes_of_the_studies_that_train(caplog):
    assert studies_at_once(4, _configs(1)) == 4
    assert studies_at_once(4, _configs(2)) == 2  # 2 studies x 2 worker processes
    assert studies_at_once(5, _configs(2)) == 2
    table = "tabular:benchmarks/tables/california_small"
    assert studies_at_once(4, _configs(16, table)) == 4  # simulated workers: no process
    assert studies_at_once(4, [*_configs(1), *_configs(3)]) == 1  # the widest study decides
    with caplog.at_level(logging.WARNING):
        assert studies_at_once(2, _configs(4)) == 1
    assert "a study of 4 worker processes runs alone (--jobs 2 counts processes)" in caplog.text


def test_worker_processes_on_a_dask_cluster_are_refused_in_one_line_before_any_study(tmp_path):
    from tuning.run.grid import run_grid

    configs = [replace(c, out=str(tmp_path)) for c in _configs(2)]
    with pytest.raises(StudyError) as refused:
        run_grid(configs, jobs=2, scheduler="local:1")
    assert str(refused.value).startswith("--workers 2 with --scheduler: a study's worker processes")
    assert not any(tmp_path.iterdir())


def test_worker_processes_that_cannot_start_stop_the_study_in_one_line(tmp_path):
    """A worker that dies before its first word (killed as it loads, a module exiting) is not
    restarted for ever: after a few in a row the study stops, saying why."""
    config = _with_model(tmp_path, EXITING_MODEL, budget_epochs=40)
    with pytest.raises(StudyError) as refused:
        run_study(config)
    assert "worker processes in a row died before they said a word (exit code 3)" in str(
        refused.value
    )
    assert "\n" not in str(refused.value)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("name", ["random", "optuna"])
def test_a_study_killed_after_its_last_row_resumes_without_training_more(name, tmp_path):
    """Killed while the winner was retrained (every row written): run again, the replay sees
    the epochs every worker had trained when each row was told, as the first run did, and
    proposes nothing new: the same rows, nothing trained."""
    config = StudyConfig(backend=name, budget_epochs=30, workers=2, out=str(tmp_path), **SMALL)
    run_study(config)
    rows = read_trials(config.study_dir)
    (config.study_dir / "summary.json").unlink()  # as a kill before the summary is written

    summary = run_study(config)
    pd.testing.assert_frame_equal(read_trials(config.study_dir), rows)
    assert summary["trials"] == len(rows)
    assert summary["spent"]["epochs"] == rows["epochs"].sum()


def test_the_replay_decides_with_the_epochs_every_worker_had_trained_when_each_row_was_told(
    tmp_path,
):
    """Two trials ran together into an 8-epoch budget: when the first was told, the other had
    trained its epochs too (``cum_epochs`` 8), so nothing more was proposed. The replay must
    see the same 8, not the 4 its told rows add up to, or it proposes (and trains) a third."""
    from tuning.core.budget import Budget, BudgetMeter
    from tuning.core.process_workers import ProcessWorkers
    from tuning.core.results import StudyKey, TrialWriter
    from tuning.core.workers import drive

    table = tmp_path / TRIALS_FILE
    writer = TrialWriter(table, StudyKey("s", "random", "d", 0), ["x"])
    for number in (0, 1):
        params = {"x": float(number)}
        writer.append(
            {
                "trial": number,
                "status": "complete",
                "x": params["x"],
                "val_loss": 1.0 - number / 2,
                "epochs": 4,
                "fit_seconds": 1.0,
                "cum_epochs": 8,
                "cum_seconds": 2.0 + number,
                "params": json.dumps(params),
                "proposal": number,
                "started": 0.0,
                "ended": 2.0 + number,
                "pending": "[]",
                "curve": "[1.0, 1.0, 1.0, 1.0]",
            }
        )
    meter = BudgetMeter(Budget(epochs=8))
    workers = ProcessWorkers(2, meter, make_evaluator=None, record=None, table=table)
    proposed, told = [], []

    def propose():
        assert len(proposed) < 2, "the replay proposed a trial the study never ran"
        proposed.append(len(proposed))
        return {"x": float(proposed[-1])}, None, {}

    drive(workers, propose, lambda finished: told.append(finished.result.trial))
    assert told == [0, 1] and meter.epochs == 8 and meter.trials == 2
