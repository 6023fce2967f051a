"""Every library's trials in the tools people keep open: an Optuna storage read back by
optuna.load_study and served by optuna-dashboard, and MLflow runs logged to a real tracking
server, read back with MLflow's own client; twice, with nothing duplicated."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tuning.core.results import read_trials

pytestmark = pytest.mark.one_keras_backend  # files, storages and servers: no Keras backend

TABLE = Path(__file__).resolve().parents[1] / "benchmarks" / "tables" / "california_small"
BACKENDS = ["hyperopt", "keras_tuner", "optuna", "optuna:tpe+asha", "random", "sklearn", "skopt"]


def _tuning(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuning", *argv], capture_output=True, text=True, check=check
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """Seven algorithms of six libraries on the shipped small table, one seed; one row given a
    per-epoch curve, and one a failure, as trained rows have."""
    out = tmp_path_factory.mktemp("export") / "results"
    _tuning(
        "benchmark", "--objective", f"tabular:{TABLE}", "--budget-epochs", "40",
        "--backends", ",".join(BACKENDS), "--seeds", "0", "--jobs", "1", "--out", str(out),
    )  # fmt: skip
    table = out / "california_random_s0" / "trials.csv"
    rows = pd.read_csv(table, dtype={"curve": object, "error": object})
    rows.loc[0, "curve"] = "[0.9, 0.7, NaN, 0.6]"
    rows.loc[1, ["status", "val_loss", "error"]] = ["failed", None, "ValueError: diverged"]
    rows.to_csv(table, index=False)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float = 120) -> bytes:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _serve(argv: list[str], log: Path):
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT)


def test_every_library_as_an_optuna_study_read_back_and_served_by_the_dashboard(results, tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    for _ in range(2):  # again: replaced, not doubled
        ran = _tuning("export", "optuna", str(results), "--storage", storage)
    assert ran.stdout.startswith(f"exported {len(BACKENDS)} studies")
    names = sorted(p.parent.name for p in results.glob("*/summary.json"))
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(storage)) == names
    for name in names:
        rows = read_trials(results / name)
        study = optuna.load_study(study_name=name, storage=storage)
        assert len(study.trials) == len(rows)
        assert study.user_attrs["seed"] == 0 and study.user_attrs["finished"] is True
        assert study.user_attrs["backend"] == rows["backend"].iloc[0]
        for trial, row in zip(study.trials, rows.to_dict("records"), strict=True):
            assert trial.user_attrs["trial"] == row["trial"]
            assert trial.params == json.loads(row["params"])
            state = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}[row["status"]]
            assert trial.state.name == state
            if state == "COMPLETE":
                assert trial.value == pytest.approx(row["val_loss"])
        assert set(study.trials[0].distributions) == {"n_hidden", "n_neurons", "learning_rate"}
    asha = optuna.load_study(study_name="california_optuna-tpe-asha_s0", storage=storage)
    assert any(t.state.name == "PRUNED" for t in asha.trials)
    floor = optuna.load_study(study_name="california_random_s0", storage=storage)
    assert floor.trials[0].intermediate_values == {1: 0.9, 2: 0.7, 4: 0.6}  # (NaN left out)
    assert floor.trials[1].state.name == "FAIL" and floor.trials[1].user_attrs["error"]
    # optuna-dashboard lists every library's study, with its backend
    port = _free_port()
    dashboard = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    assert dashboard, "optuna-dashboard is installed with the project's dev extra"
    server = _serve(
        [dashboard, storage, "--host", "127.0.0.1", "--port", str(port)], tmp_path / "d.log"
    )
    try:
        listed = json.loads(_wait_for(f"http://127.0.0.1:{port}/api/studies"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    served = {
        s["study_name"]: {a["key"]: a["value"] for a in s["user_attrs"]}
        for s in listed["study_summaries"]
    }
    assert sorted(served) == names
    assert sorted(attrs["backend"] for attrs in served.values()) == sorted(BACKENDS)


def test_an_export_never_replaces_a_study_it_did_not_write(results, tmp_path):
    storage = f"sqlite:///{tmp_path / 'own.db'}"
    optuna.create_study(study_name="california_random_s0", storage=storage)
    ran = _tuning("export", "optuna", str(results), "--storage", storage, check=False)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert "already holds an Optuna study named 'california_random_s0' that no export wrote" in (
        ran.stderr
    )
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == [
        "california_random_s0"
    ]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    server = _serve(
        [
            mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
        ],
        folder / "server.log",
    )  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_every_study_and_trial_in_a_real_mlflow_server_once(results, mlflow_server):
    from mlflow.tracking import MlflowClient

    for _ in range(2):  # logged twice: nothing doubled
        ran = _tuning("compare", str(results), "--mlflow", mlflow_server)
    assert "mlflow: 0 new study runs, 0 new trial runs, 0 studies finished" in ran.stdout
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name(str(results.resolve()))
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    studies = {
        r.data.tags["tuning_study"]: r for r in runs if r.data.tags["tuning_kind"] == "study"
    }
    trials = [r for r in runs if r.data.tags["tuning_kind"] == "trial"]
    names = sorted(p.parent.name for p in results.glob("*/summary.json"))
    assert sorted(studies) == names
    rows = pd.concat(read_trials(results / name) for name in names)
    assert len(trials) == len(rows)
    for name, run in studies.items():
        summary = json.loads((results / name / "summary.json").read_text())
        assert run.data.params["seed"] == "0" and run.data.params["backend"] == summary["backend"]
        assert run.data.params["algorithm"] == summary["algorithm"]["name"]
        assert "version.optuna" in run.data.params
        assert run.data.metrics["test_loss"] == pytest.approx(summary["test_loss"])
        assert run.info.status == "FINISHED"
        files = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert {"summary.json", "trials.csv"} <= files
        children = [t for t in trials if t.data.tags["mlflow.parentRunId"] == run.info.run_id]
        assert len(children) == summary["trials"]
    floor = studies["california_random_s0"].info.run_id
    first = next(
        t for t in trials
        if t.data.tags["mlflow.parentRunId"] == floor and t.data.tags["tuning_trial"] == "0"
    )  # fmt: skip
    steps = client.get_metric_history(first.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in sorted(steps, key=lambda m: m.step)] == [
        (1, 0.9), (2, 0.7), (4, 0.6)
    ]  # fmt: skip
    rows = read_trials(results / "california_random_s0")
    looked_up = next(
        t for t in trials
        if t.data.tags["mlflow.parentRunId"] == floor and t.data.tags["tuning_trial"] == "2"
    )  # fmt: skip
    steps = client.get_metric_history(looked_up.info.run_id, "val_loss")
    assert len(steps) == rows["epochs"][2] > 1  # a sequential study's trial: every epoch
    assert min(m.value for m in steps) == pytest.approx(rows["val_loss"][2])
    assert looked_up.data.metrics["best_val_loss"] == pytest.approx(rows["val_loss"][2])
    assert first.data.params == {
        k: str(v)
        for k, v in json.loads(read_trials(results / "california_random_s0")["params"][0]).items()
    }
    statuses = {t.data.tags["status"]: t.info.status for t in trials}
    assert statuses == {"complete": "FINISHED", "failed": "FAILED", "pruned": "KILLED"}


def test_a_running_benchmark_is_logged_while_it_runs(results, tmp_path):
    from tuning.analysis.compare import find_studies
    from tuning.export.folders import study_records
    from tuning.export.mlflow_runs import LiveLog, MlflowLog

    out = tmp_path / "live"
    out.mkdir()
    target = MlflowLog(out)  # the default: a local store in the folder
    assert target.uri == f"sqlite:///{out / 'mlflow' / 'mlflow.db'}"
    with LiveLog(target, interval=0.2):
        shutil.copytree(results / "california_skopt_s0", out / "california_skopt_s0")
        client, deadline = target.client, time.monotonic() + 60
        while time.monotonic() < deadline:  # logged before the block ends
            runs = client.search_runs([target.experiment])
            if len(runs) == 1 + len(read_trials(out / "california_skopt_s0")):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the running folder's study was not logged while it ran")
    # the store's own copies of a study's files are not studies: compare and export skip them
    assert list((out / "mlflow").rglob("trials.csv"))
    assert [r.name for r in study_records(out)] == ["california_skopt_s0"]
    assert find_studies(out) == [out / "california_skopt_s0"]


def test_an_export_that_cannot_be_whole_touches_nothing(results, tmp_path):
    storage = f"sqlite:///{tmp_path / 'kept.db'}"
    _tuning("export", "optuna", str(results), "--storage", storage)
    before = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    # a row outside its study's space: refused before the storage is touched
    broken = tmp_path / "broken"
    shutil.copytree(results, broken, ignore=shutil.ignore_patterns("mlflow"))
    table = broken / "california_random_s0" / "trials.csv"
    rows = pd.read_csv(table, dtype={"params": object, "curve": object, "error": object})
    rows.loc[2, "params"] = json.dumps({**json.loads(rows.loc[2, "params"]), "n_neurons": 100000})
    rows.to_csv(table, index=False)
    for folder, message in [
        (broken, "trial 2 cannot be an Optuna trial"),
        (results.parent, "two studies named 'california_hyperopt_s0'"),  # (results and a copy)
    ]:
        if folder == results.parent:
            shutil.copytree(results, results.parent / "again", dirs_exist_ok=True)
        ran = _tuning("export", "optuna", str(folder), "--storage", storage, check=False)
        assert ran.returncode == 2 and "Traceback" not in ran.stderr, ran.stderr
        assert message in ran.stderr
    after = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    assert after == before
    shutil.rmtree(results.parent / "again")
    # the same study names from another folder: not replaced
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(results, elsewhere, ignore=shutil.ignore_patterns("mlflow"))
    other = _tuning("export", "optuna", str(elsewhere), "--storage", storage, check=False)
    assert other.returncode == 2 and "exported from" in other.stderr, other.stderr


def test_a_sync_repairs_a_cut_off_run_and_a_row_that_changed(results, tmp_path, monkeypatch):
    from tuning.core.errors import StudyError
    from tuning.export.mlflow_runs import MlflowLog

    out = tmp_path / "repaired"
    shutil.copytree(results / "california_skopt_s0", out / "california_skopt_s0")
    target = MlflowLog(out)
    rows = len(read_trials(out / "california_skopt_s0"))
    assert target.sync().trials == rows and target.sync().trials == 0

    def trial_runs():
        runs = target.client.search_runs([target.experiment], "tags.tuning_kind = 'trial'")
        return {r.data.tags["tuning_trial"]: r for r in runs}

    target.client.update_run(trial_runs()["0"].info.run_id, status="RUNNING")  # (cut off)
    table = out / "california_skopt_s0" / "trials.csv"
    changed = pd.read_csv(table, dtype={"curve": object, "error": object})
    changed.loc[1, "val_loss"] = 0.123  # (the study run again with --fresh)
    changed.to_csv(table, index=False)
    assert target.sync().trials == 2
    runs = trial_runs()
    assert len(runs) == rows and runs["0"].info.status == "FINISHED"
    assert runs["1"].data.metrics["best_val_loss"] == pytest.approx(0.123)
    # a server that cannot be reached: one line, its password not in it
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(StudyError) as refused:
        MlflowLog(out, f"http://alice:s3cret@127.0.0.1:{_free_port()}")
    assert "s3cret" not in str(refused.value) and "alice:***@" in str(refused.value)
