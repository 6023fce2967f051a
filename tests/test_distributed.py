"""The benchmark grid on a real Dask cluster (a `LocalCluster` of 2 worker processes here)."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest

from tuning.cli import main
from tuning.config import StudyConfig
from tuning.grid import plan_grid, run_grid
from tuning.results import read_trials

pytestmark = pytest.mark.one_keras_backend  # Dask and files: the same on either Keras backend


def _base(tmp_path, trials: int) -> StudyConfig:
    return StudyConfig(
        backend="random",
        dataset="california",
        max_rows=300,
        trials=trials,
        max_epochs=3,
        patience=2,
        out=str(tmp_path),
    )


def test_a_grid_on_a_local_dask_cluster_runs_on_both_workers_and_every_row_arrives_once(
    tmp_path,
):
    configs = plan_grid(_base(tmp_path, trials=3), ["random", "skopt"], [0, 1])
    result = run_grid(configs, jobs=2, scheduler="local:2")

    assert [s.state for s in result.studies] == ["done"] * 4
    tables = {s.config.study: read_trials(s.study_dir) for s in result.studies}
    for study, rows in tables.items():
        assert rows["trial"].tolist() == [0, 1, 2], study  # each row once, none lost
        assert rows["pid"].nunique() == 1  # a study runs in one worker
    pids = {int(rows["pid"].iloc[0]) for rows in tables.values()}
    assert len(pids) == 2 and os.getpid() not in pids  # both workers ran studies, not the client


def test_a_dask_worker_killed_mid_study_loses_nothing_its_study_resumes_on_a_worker(tmp_path):
    configs = plan_grid(_base(tmp_path, trials=8), ["random"], [0])
    table = configs[0].study_dir / "trials.csv"
    killed: dict[str, object] = {}

    def kill_the_worker_after_its_first_rows(studies, _elapsed):
        if killed or not table.exists():
            return
        rows = read_trials(table)
        if len(rows) >= 2:
            killed["rows"] = rows
            os.kill(int(rows["pid"].iloc[0]), signal.SIGKILL)

    result = run_grid(
        configs,
        jobs=1,
        scheduler="local:2",
        watch=kill_the_worker_after_its_first_rows,
        refresh_seconds=0.05,
    )

    assert result.studies[0].state == "done", result.studies[0].error
    before, after = killed["rows"], read_trials(table)
    pd.testing.assert_frame_equal(after.head(len(before)), before)  # kept, unchanged
    assert after["trial"].tolist() == list(range(8))  # exactly the budget, numbers unique
    assert after["pid"].nunique() == 2  # finished by another worker process
    assert result.studies[0].summary["trials_from_earlier_runs"] >= len(before)


@pytest.mark.parametrize("scheduler", ["local:0", "local", "127.0.0.1:8786", "http://x:1"])
def test_a_bad_scheduler_is_one_line_and_exit_code_2(scheduler, tmp_path, capsys):
    argv = ["benchmark", "--backends", "random", "--dataset", "diabetes", "--out", str(tmp_path)]
    assert main([*argv, "--scheduler", scheduler]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --scheduler must be local:N") and err.count("\n") == 1
