"""The benchmark grid on a real Dask cluster (a `LocalCluster` of 2 worker processes here)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tuning.cli import main
from tuning.core.config import StudyConfig
from tuning.core.results import read_trials
from tuning.run.grid import plan_grid, run_grid
from tuning.run.study import run_study

pytestmark = pytest.mark.one_keras_backend  # Dask and files: the same on either Keras backend
REPO = Path(__file__).resolve().parents[1]


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
    # and a study gives on a worker what it gives here
    here = replace(configs[-1], out=str(tmp_path / "here"))
    run_study(here)
    columns = ["trial", "status", "params", "epochs", "val_loss"]
    pd.testing.assert_frame_equal(
        read_trials(here.study_dir)[columns], tables[here.study][columns], rtol=1e-4
    )


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


# -- one Optuna study shared by several processes through PostgreSQL ------------------------------
@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of its own on loopback for this module (`.ci/run` installs Debian's
    postgresql); skipped, saying why, only where no server can be started here."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if not initdb[-1]:
        pytest.skip("no PostgreSQL server binaries here (initdb): apt-get install postgresql")
    bindir = Path(initdb[-1]).parent
    data = Path(tempfile.mkdtemp(prefix="tuning-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: as the package's own user
        shutil.chown(data, "postgres")
        # (in /usr/sbin, which a minimal PATH may leave out)
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
        as_postgres = [runuser or "runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [*as_postgres, str(bindir / "postgres"), "-D", str(data), "-p", port]
        + ["-h", "127.0.0.1", "-k", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        address = ["-h", "127.0.0.1", "-p", port, "-U", "postgres"]
        for _ in range(100):
            if (
                subprocess.run([bindir / "pg_isready", *address], capture_output=True).returncode
                == 0
            ):
                break
            time.sleep(0.2)
        else:
            pytest.skip(f"a PostgreSQL server started from {bindir} did not answer on port {port}")
        subprocess.run([bindir / "createdb", *address, "tuning"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/tuning"
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def test_two_processes_share_one_optuna_study_on_postgresql(postgres_url, tmp_path):
    args = ["run", "--backend", "optuna", "--storage", postgres_url, "--study", "shared"]
    args += ["--dataset", "california", "--max-rows", "300", "--trials", "8"]
    args += ["--max-epochs", "3", "--patience", "2", "--out", str(tmp_path)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tuning", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outputs]

    rows = read_trials(tmp_path / "shared")
    assert sorted(rows["trial"]) == list(range(8))  # Optuna's numbers: unique, exactly 8
    assert rows["pid"].nunique() == 2  # both processes trained trials
    assert set(rows["pid"]) == {w.pid for w in workers}
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trained = [t for t in study.trials if t.number < 8]
    assert len(trained) == 8 and all(t.state.is_finished() for t in trained)
    summary = json.loads((tmp_path / "shared" / "summary.json").read_text())
    assert summary["trials"] == 8  # whichever process wrote it last waited for the other


def test_a_storage_password_is_written_into_no_file_or_message(tmp_path, capsys):
    url = "postgresql://tuner:s3cret@127.0.0.1:9/tuning"  # port 9 (discard): nothing listens
    argv = ["run", "--backend", "optuna", "--storage", url, "--study", "shared"]
    assert main([*argv, "--dataset", "diabetes", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "--storage postgresql://tuner:***@127.0.0.1:9/tuning: " in error
    assert "s3cret" not in error
    # refused before the study wrote anything: no file holds the password, or anything
    assert not (tmp_path / "shared").exists()
    # the settings a study records hide it, and the hidden password is no setting: the same
    # command is still the same study
    config = StudyConfig(backend="optuna", dataset="diabetes", out=str(tmp_path), study="shared")
    config.backend_options["storage"] = url
    settings = json.dumps(config.recorded())
    assert "tuner:***@127.0.0.1:9" in settings and "s3cret" not in settings
    assert config.differences(json.loads(settings)) == []
    config.backend_options["storage"] = url.replace("127.0.0.1", "db")
    assert config.differences(json.loads(settings)) == [
        "backend_options: {'storage': 'postgresql://tuner:***@127.0.0.1:9/tuning'} -> "
        "{'storage': 'postgresql://tuner:***@db:9/tuning'}"
    ]


def test_sklearn_fits_its_folds_on_a_dask_cluster_with_the_same_candidates(
    tmp_path, california_small
):
    config = StudyConfig(
        backend="sklearn",
        trials=3,
        max_epochs=3,
        out=str(tmp_path / "here"),
        backend_options={"cv": 2},
    )
    on_dask = replace(
        config, out=str(tmp_path / "dask"), backend_options={"cv": 2, "scheduler": "local:2"}
    )
    run_study(config, dataset=california_small)
    run_study(on_dask, dataset=california_small)

    here, there = read_trials(config.study_dir), read_trials(on_dask.study_dir)
    # the same candidates, folds, epochs and losses (a worker's event loop draws from Python's
    # `random` while a fold builds its model: the weights are seeded explicitly)
    columns = ["trial", "status", "params", "epochs", "val_loss"]
    pd.testing.assert_frame_equal(there[columns], here[columns], rtol=1e-4)
    assert (here["pid"] == os.getpid()).all() and os.getpid() not in set(there["pid"])


def test_sklearn_on_a_cluster_refuses_an_epoch_budget(tmp_path, capsys):
    argv = ["run", "--backend", "sklearn", "--scheduler", "local:1", "--budget-epochs", "10"]
    assert main([*argv, "--dataset", "diabetes", "--out", str(tmp_path)]) == 2
    assert "cannot stop at the study's epoch budget" in capsys.readouterr().err
