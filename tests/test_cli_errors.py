"""Bad input, corrupt files and faults: each case an adversarial test found, pinned by name.

Every refusal is one line naming the field or file, exit code 2, and comes before anything is
written; nothing a user owns is deleted; no secret is shown; workers end with their grid.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import BOOK_SPACE
from hypothesis import given, settings
from hypothesis import strategies as st

from tuning.cli import main
from tuning.core.atomic import create_json, is_temporary_of, write_atomically, write_json
from tuning.core.config import StudyConfig
from tuning.core.errors import StudyError
from tuning.core.files import read_toml
from tuning.core.space import SearchSpace, SpaceError
from tuning.core.urls import redact, without_password
from tuning.evaluation.tabular.build import read_grid
from tuning.evaluation.tabular.table_file import read_table, repair_table
from tuning.run.resume import clear_study, start_or_resume

pytestmark = pytest.mark.one_keras_backend  # files and messages, not Keras

TINY = ["--dataset", "iris", "--trials", "1", "--max-epochs", "1", "--max-rows", "40"]


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``tuning ARGV``; assert exit 2 (returned, or argparse's exit) and one error line;
    return that line."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's: its usage, then "tuning CMD: error: ..."
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error") or ": error: " in line]
    assert len(lines) == 1, err
    return lines[0]


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


# --- data loss -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".", "..", ".hidden", "a/b", "-x"])
def test_a_study_name_is_one_plain_folder(name: str) -> None:
    with pytest.raises(StudyError, match="one plain folder name"):
        StudyConfig(backend="random", study=name)


def test_study_dot_fresh_deletes_nothing_of_out(tmp_path: Path, capsys) -> None:
    (tmp_path / "other_study").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    before = files_under(tmp_path)
    line = refused(
        ["run", "--backend", "random", *TINY, "--out", str(tmp_path), "--study", ".", "--fresh"],
        capsys,
    )
    assert "'.'" in line and files_under(tmp_path) == before


def test_study_dotdot_fresh_deletes_nothing_above_out(tmp_path: Path, capsys) -> None:
    (tmp_path / "inner").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    before = files_under(tmp_path)
    argv = ["run", "--backend", "random", *TINY, "--out", str(tmp_path / "inner")]
    refused([*argv, "--study", "..", "--fresh"], capsys)
    assert files_under(tmp_path) == before


def test_fresh_refuses_to_empty_a_folder_the_harness_did_not_make(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "code.py").write_text("x = 1")
    with pytest.raises(StudyError, match="not a study's folder"):
        clear_study(folder)
    assert (folder / "code.py").exists()


def test_a_study_is_not_started_in_a_folder_of_the_users(tmp_path: Path) -> None:
    config = StudyConfig(backend="random", out=str(tmp_path), study="src")
    config.study_dir.mkdir()
    (config.study_dir / "code.py").write_text("x = 1")
    with pytest.raises(StudyError, match="already holds files that are not a study's"):
        start_or_resume(config)
    assert not (config.study_dir / "study.json").exists()  # so a later --fresh has no marker


def test_the_temporaries_of_a_study_settings_are_told_from_a_users_files(tmp_path, monkeypatch):
    seen: list[str] = []
    real_fsync = os.fsync

    def look(fd: int) -> None:  # mid-write: the temporary is in the folder
        seen.extend(e.name for e in tmp_path.iterdir() if e.name != "study.json")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", look)
    write_atomically(tmp_path / "study.json", "{}")
    (tmp_path / "study.json").unlink()
    assert create_json(tmp_path / "study.json", {}) and not create_json(tmp_path / "study.json", 1)
    assert len(seen) == 3 and all(is_temporary_of(name, "study.json") for name in seen)
    users = [".notes.settings.tmp", ".x.y.12345678.tmp", ".study.json.tmp", "study.json"]
    users += [".study.json.1234567.tmp", ".study.json.12345678.tmp.bak", ".study.jsonx12345678.tmp"]
    users += [".trials.csv.12345678.tmp", ".tmp12345678"]  # (another file's, a model's folder)
    assert not [name for name in users if is_temporary_of(name, "study.json")]
    assert json.loads((tmp_path / "study.json").read_text()) == {}  # the first one's


def test_a_process_sharing_a_study_finds_the_settings_another_recorded_first(
    tmp_path: Path, monkeypatch
) -> None:
    config = StudyConfig(backend="optuna", out=str(tmp_path), study="shared")
    config.study_dir.mkdir()
    real_link = os.link

    def another_first(source, target):  # another process creates study.json first
        write_json(Path(target), winner)
        real_link(source, target)

    monkeypatch.setattr(os, "link", another_first)
    winner = config.recorded()
    assert len(start_or_resume(config, shared=True)) == 0
    (config.study_dir / "study.json").unlink()
    winner = {**config.recorded(), "max_epochs": 7}
    with pytest.raises(StudyError, match="was started with other settings"):
        start_or_resume(config, shared=True)
    # ...or while this one looked at the folder: its study.json is not taken for a user's file
    monkeypatch.undo()
    (config.study_dir / "study.json").unlink()
    real_iterdir = Path.iterdir

    def another_meanwhile(folder):  # (after this one found no study.json)
        write_json(folder / "study.json", config.recorded())
        yield from real_iterdir(folder)

    monkeypatch.setattr(Path, "iterdir", another_meanwhile)
    assert len(start_or_resume(config, shared=True)) == 0


SHARING = """
import sys
from multiprocessing import get_context
from pathlib import Path

def start(root, barrier, folders):
    from tuning.core.config import StudyConfig
    from tuning.run.resume import start_or_resume
    errors = []
    for k in range(folders):
        config = StudyConfig(backend="optuna", out=root, study=f"s{k}")
        barrier.wait()
        try:
            start_or_resume(config, shared=True)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    print("\\n".join(errors), file=sys.stderr)
    sys.exit(1 if errors else 0)

if __name__ == "__main__":
    root, folders = sys.argv[1], int(sys.argv[2])
    for k in range(folders):
        Path(root, f"s{k}").mkdir(parents=True)
    context = get_context("spawn")
    barrier = context.Barrier(4)
    workers = [context.Process(target=start, args=(root, barrier, folders)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    sys.exit(max(w.exitcode for w in workers))
"""


def test_four_processes_starting_one_shared_study_together_all_start(tmp_path: Path) -> None:
    script = tmp_path / "sharing.py"
    script.write_text(SHARING)
    ran = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out"), "40"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert all((tmp_path / "out" / f"s{k}" / "study.json").exists() for k in range(40))


def test_fresh_empties_a_study_folder_the_harness_made(tmp_path: Path) -> None:
    (tmp_path / "study.json").write_text("{}")
    (tmp_path / "optuna.db").write_text("")
    (tmp_path / "study.lock").write_text("")
    clear_study(tmp_path)
    assert files_under(tmp_path) == ["study.lock"]


# --- refused before anything is written ------------------------------------------------------


@pytest.mark.parametrize("cv", ["1", "foo", "0"])
def test_a_bad_cv_is_refused_before_the_study_folder_exists(cv: str, tmp_path: Path, capsys):
    out = tmp_path / "out"
    line = refused(["run", "--backend", "sklearn", *TINY, "--out", str(out), "--cv", cv], capsys)
    assert "cv must be an integer >= 2 or 'holdout'" in line
    assert files_under(out) == []


@pytest.mark.parametrize(
    "url",
    ["notaurl", "postgresql://tuner@127.0.0.1:9/db?password=S3cret&sslmode=disable"],
)
def test_a_bad_storage_is_refused_before_the_study_folder_exists(url, tmp_path, capsys):
    out = tmp_path / "out"
    line = refused(
        ["run", "--backend", "optuna", *TINY, "--out", str(out), "--storage", url], capsys
    )
    assert line.startswith("error: --storage") and "S3cret" not in line
    assert files_under(out) == []


def test_a_suite_refused_for_an_unknown_dataset_leaves_no_folder(tmp_path: Path, capsys):
    suite = tmp_path / "suite.toml"
    suite.write_text("[tasks.iris]\n[tasks.nosuch]\n")
    out = tmp_path / "out"
    line = refused(["benchmark", "--suite", str(suite), "--out", str(out), "--seeds", "0"], capsys)
    assert "nosuch" in line and not out.exists()


# --- secrets ---------------------------------------------------------------------------------


def test_every_secret_of_a_storage_url_is_masked_by_what_its_parts_mean() -> None:
    url = "postgresql://tuner:pw1@db:5432/hpo?sslmode=require&password=S3cret&sslpassword=k%40y"
    masked = without_password(url)
    assert masked == (
        "postgresql://tuner:***@db:5432/hpo?sslmode=require&password=***&sslpassword=***"
    )
    message = f"could not connect to {url}: password S3cret refused; key k@y"
    shown = redact(message, url)
    assert "S3cret" not in shown and "pw1" not in shown and "k@y" not in shown
    assert without_password("sqlite:///study.db") == "sqlite:///study.db"


def test_a_query_password_is_not_written_into_study_json(tmp_path: Path) -> None:
    url = "postgresql://tuner@db/hpo?password=S3cret"
    config = StudyConfig(backend="optuna", backend_options={"storage": url})
    assert "S3cret" not in json.dumps(config.recorded())


# --- tracebacks and unclear messages ---------------------------------------------------------


def test_a_folder_given_as_a_suite_or_study_file_is_one_line(tmp_path: Path, capsys) -> None:
    line = refused(["benchmark", "--suite", str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert "is a folder" in line
    line = refused(["run", "--config", str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert "is a folder" in line


def test_a_binary_suite_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "suite.toml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(StudyError, match=rf"suite {path} is not text"):
        read_toml(path, "suite")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"lr": {"type": "float", "low": 0.1}}, r"space.lr \(float\): give high"),
        ({"n": {"type": "categorical", "choices": 3}}, r"space.n.choices must be a list"),
        ({"n": {"type": "int", "low": 0, "high": 2, "step": 1}}, r"unknown keys \['step'\]"),
    ],
)
def test_space_errors_name_the_entry_not_python(spec, message) -> None:
    with pytest.raises(SpaceError, match=message):
        SearchSpace.from_dict(spec)


def test_an_empty_space_table_is_refused_not_read_as_the_books(tmp_path: Path, capsys) -> None:
    study = tmp_path / "study.toml"
    study.write_text('dataset = "iris"\n[space]\n')
    line = refused(["run", "--backend", "random", "--config", str(study)], capsys)
    assert "[space] is empty" in line


def test_tabulate_into_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "afile"
    path.write_text("x")
    line = refused(["tabulate", "--dataset", "iris", "--out", str(path)], capsys)
    assert str(path) in line


def test_a_tabular_objective_naming_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "afile"
    path.write_text("x")
    argv = ["run", "--backend", "random", "--objective", f"tabular:{path}"]
    line = refused([*argv, "--out", str(tmp_path / "o")], capsys)
    assert "is a file" in line


def test_a_grid_that_repeats_a_value_is_refused(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text("[grid]\nn_hidden = [1, 1]\nn_neurons = [3]\n")
    with pytest.raises(StudyError, match=r"grid.n_hidden lists a value twice"):
        read_grid(grid)


TABLE_HEADER = (
    "config,seed,params,status,epochs,best_epoch,best_val_loss,test_loss,seconds,"
    "val_loss_curve,loss_curve\n"
)
TABLE_ROW = '"{""a"": 1}",0,"{""a"": 1}",complete,2,1,0.5,0.6,0.1,"[0.7, 0.5]","[0.9, 0.8]"\n'


def test_a_table_torn_mid_row_is_read_without_it_and_repaired_on_resume(tmp_path, caplog):
    path = tmp_path / "table.csv"
    path.write_text(TABLE_HEADER + TABLE_ROW + TABLE_ROW[:30])
    assert len(read_table(tmp_path)) == 1
    assert "cut off mid-write" in caplog.text
    repair_table(tmp_path)
    assert path.read_text() == TABLE_HEADER + TABLE_ROW


def test_a_line_that_is_not_a_table_row_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "table.csv").write_text(TABLE_HEADER + TABLE_ROW + "junk\n")
    with pytest.raises(StudyError, match=r"table.csv: line 3 is not a table row"):
        read_table(tmp_path)


def test_a_corrupt_table_json_is_named(tmp_path: Path, capsys) -> None:
    (tmp_path / "table.json").write_text("{oops")
    argv = ["run", "--backend", "random", "--objective", f"tabular:{tmp_path}"]
    line = refused([*argv, "--out", str(tmp_path / "o")], capsys)
    assert "table.json is corrupt" in line


def test_two_builds_of_one_table_are_not_run_at_once(tmp_path: Path, capsys) -> None:
    table = tmp_path / "table"
    table.mkdir()
    fd = os.open(table / "study.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a first build holds it
    try:
        argv = ["tabulate", "--dataset", "iris", "--max-epochs", "1", "--out", str(table)]
        line = refused(argv, capsys)
    finally:
        os.close(fd)
    assert "already running" in line


def test_a_factory_must_be_a_python_function_or_class(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "ran"
    study = tmp_path / "study.toml"
    study.write_text(
        f'model = "os:system"\ndataset = "iris"\n[space.command]\ntype = "categorical"\n'
        f'choices = ["touch {marker}"]\n'
    )
    line = refused(["run", "--backend", "random", "--config", str(study)], capsys)
    assert "not a Python function or class" in line
    assert not marker.exists()


def test_classification_of_a_continuous_target_is_refused(tmp_path: Path, capsys) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("a,y\n" + "".join(f"{i},{i * 0.37:.3f}\n" for i in range(30)))
    argv = ["run", "--backend", "random", "--dataset", f"csv:{csv}", "--target", "y"]
    line = refused([*argv, "--task", "classification", "--out", str(tmp_path / "o")], capsys)
    assert "non-integer numbers" in line


def test_backends_that_name_nothing_or_one_algorithm_twice_are_refused(tmp_path, capsys):
    argv = ["benchmark", *TINY, "--seeds", "0", "--out", str(tmp_path / "o")]
    assert "names no backend" in refused([*argv, "--backends", ","], capsys)
    line = refused([*argv, "--backends", "optuna,optuna:tpe"], capsys)
    assert "optuna is optuna:tpe" in line
    assert not (tmp_path / "o").exists()


def test_compare_refuses_a_target_that_is_not_a_number(tmp_path: Path, capsys) -> None:
    line = refused(["compare", str(tmp_path), "--target", "nan"], capsys)
    assert "--target must be a finite" in line


# --- corrupt results: compare reports each and goes on ---------------------------------------


def _summary(name: str, backend: str, loss: float, **more) -> dict:
    return {
        "study": name,
        "backend": backend,
        "dataset": "d",
        "seed": 0,
        "test_loss": loss,
        "best_val_loss": loss,
        "task": "regression",
        "config": {"max_epochs": 2, "batch_size": 32, "patience": 1, **more},
        "budget": {"trials": 1, "epochs": None, "seconds": None},
        "best_params": {"n_hidden": 1},
        "split_sizes": [10, 5, 5],
    }


TRIALS = (
    "study,backend,dataset,seed,trial,status,n_hidden,n_neurons,learning_rate,val_loss,epochs,"
    "fit_seconds,cum_epochs,cum_seconds,params,error,host,pid,compile_seconds,algorithm,"
    "table_test_loss\n"
    '{name},{backend},d,0,0,complete,1,3,0.01,{loss},2,0.1,2,0.2,"{{""n_hidden"": 1}}",,h,1,0,'
    "{backend},\n"
)


def make_study(out: Path, name: str, backend: str, loss: float, **more) -> Path:
    folder = out / name
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(_summary(name, backend, loss, **more)))
    (folder / "trials.csv").write_text(TRIALS.format(name=name, backend=backend, loss=loss))
    return folder


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: (f / "summary.json").write_text("[1, 2, 3]"), "holds list data, not a dict"),
        (lambda f: (f / "summary.json").write_text("{}"), "study is None"),
        (lambda f: (f / "summary.json").write_text("{oops"), "is corrupt (JSONDecodeError)"),
        (lambda f: (f / "summary.json").write_bytes(b"\xff\xfe\x00"), "(UnicodeDecodeError)"),
        (lambda f: (f / "trials.csv").unlink(), "trials.csv is missing"),
        (lambda f: (f / "trials.csv").open("a").write("not a row\n"), "line 3 is not a trial"),
    ],
)
def test_compare_reports_a_study_it_cannot_read_and_compares_the_rest(
    damage, reason, tmp_path: Path, capsys
) -> None:
    make_study(tmp_path, "a", "random", 1.0)
    make_study(tmp_path, "b", "optuna", 0.5)
    damage(make_study(tmp_path, "c", "hyperopt", 0.7))
    assert main(["compare", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"left out {tmp_path / 'c'}: " in err and reason in err
    board = (tmp_path / "leaderboard.csv").read_text()
    assert ",random," in board and ",optuna," in board and ",hyperopt," not in board
    report = (tmp_path / "report.md").read_text()
    assert "Left out: 1 studies that could not be read" in report and "`c`: " in report


def test_compare_refuses_two_runs_of_one_study_naming_both_folders(tmp_path, capsys) -> None:
    make_study(tmp_path / "run1", "a", "random", 1.0)
    make_study(tmp_path / "run2", "a", "random", 0.9)
    line = refused(["compare", str(tmp_path)], capsys)
    assert str(tmp_path / "run1" / "a") in line and str(tmp_path / "run2" / "a") in line


def test_compare_refuses_tabular_and_trained_studies_together(tmp_path, capsys) -> None:
    make_study(tmp_path, "a", "random", 1.0)
    make_study(tmp_path, "b", "optuna", 0.5, objective="tabular:t")
    line = refused(["compare", str(tmp_path)], capsys)
    assert "mixes 1 tabular studies" in line


# --- workers end with their grid --------------------------------------------------------------

ORPHAN_PARENT = textwrap.dedent(
    """
    import os, time
    from tuning.run.grid import _executor

    with _executor({scheduler!r}, 2) as pool:
        if {scheduler!r} is None:
            busy = [pool.submit(time.sleep, 600) for _ in range(2)]  # two workers started
            pids = list(pool._processes)
        else:
            pids = list(pool._client.run(os.getpid).values())
        print(" ".join(map(str, sorted(pids))), flush=True)
        time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    """A process that runs (a zombie left unreaped by a container's init counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.parametrize("scheduler", [None, "local:2"])
def test_the_grids_workers_end_when_its_parent_is_killed(scheduler) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_PARENT.format(scheduler=scheduler)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(p) for p in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(p) for p in workers)
    finally:
        parent.kill()


def test_a_study_held_by_another_grid_is_reported_held_not_run(tmp_path: Path) -> None:
    from tuning.run.grid import plan_grid, run_grid

    config = StudyConfig(
        backend="random", dataset="iris", trials=1, max_epochs=1, out=str(tmp_path)
    )
    (studies,) = [plan_grid(config, ["random"], [0])]
    studies[0].study_dir.mkdir(parents=True)
    fd = os.open(studies[0].study_dir / "study.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the first grid is running it
    try:
        result = run_grid(studies, jobs=1)
    finally:
        os.close(fd)
    (state,) = result.studies
    assert state.state == "held" and "already running" in state.error
    assert not (studies[0].study_dir / "trials.csv").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


def _denied(path, *_args, **_kwargs):
    raise PermissionError(13, "Permission denied", str(path))


def test_compare_into_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    make_study(tmp_path, "a", "random", 1.0)
    monkeypatch.setattr("tuning.analysis.compare.write_atomically", _denied)
    line = refused(["compare", str(tmp_path)], capsys)
    assert "Permission denied" in line and str(tmp_path) in line


def test_tabulate_into_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("tuning.evaluation.tabular.build.write_json", _denied)
    grid = tmp_path / "grid.toml"
    grid.write_text("[grid]\nn_hidden = [0]\nn_neurons = [2]\nlearning_rate = [0.01]\n")
    argv = ["tabulate", "--dataset", "iris", "--grid", str(grid), "--max-epochs", "1"]
    line = refused([*argv, "--out", str(tmp_path / "table")], capsys)
    assert line == f"error: {tmp_path / 'table' / 'table.json'}: Permission denied"


class StopAtOnce:
    """A `StopSignals` that has received SIGTERM before the grid's first look."""

    def raise_if_stopped(self) -> None:
        from tuning.core.signals import Terminated

        raise Terminated("terminated")


def test_a_stopped_grid_stops_its_workers_and_raises_the_stop(tmp_path: Path) -> None:
    from tuning.core.signals import Terminated
    from tuning.run.grid import plan_grid, run_grid

    config = StudyConfig(
        backend="random", dataset="iris", trials=50, max_epochs=50, out=str(tmp_path)
    )
    with pytest.raises(Terminated):
        run_grid(plan_grid(config, ["random"], [0, 1, 2]), jobs=2, stop=StopAtOnce())
    time.sleep(1)
    children = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(os.getpid())], capture_output=True, text=True
    ).stdout
    assert "spawn_main" not in children


class StopAfter:
    """A `StopSignals` that receives SIGTERM at its ``looks``-th look."""

    def __init__(self, looks: int) -> None:
        self.looks, self.seen = looks, 0

    def raise_if_stopped(self) -> None:
        from tuning.core.signals import Terminated

        self.seen += 1
        if self.seen >= self.looks:
            raise Terminated("terminated")


@pytest.mark.parametrize("fresh", [False, True])  # while checking, or while submitting
def test_a_signal_stops_a_large_grid_within_one_study_of_planning(tmp_path, fresh) -> None:
    from tuning.core.signals import Terminated
    from tuning.run.grid import plan_grid, run_grid

    config = StudyConfig(backend="random", dataset="iris", trials=1, out=str(tmp_path))
    stop = StopAfter(looks=3)
    with pytest.raises(Terminated):
        run_grid(plan_grid(config, ["random"], range(2000)), jobs=1, fresh=fresh, stop=stop)
    assert stop.seen == 3  # not after the 2,000 checks or submissions
    assert list(tmp_path.iterdir()) == []  # no study was started


def test_a_study_file_cannot_claim_to_be_resolved(tmp_path, capsys) -> None:
    study = tmp_path / "study.toml"
    study.write_text('backend = "random"\nresolved = true\n')
    line = refused(["run", "--config", str(study), "--out", str(tmp_path / "out")], capsys)
    assert "unknown keys ['resolved']" in line


def refusal(url: str) -> str:
    from tuning.core.urls import SecretURLError, check_url

    with pytest.raises(SecretURLError) as caught:
        check_url(url)
    return str(caught.value)


# every character RFC 3986 reserves, the percent sign, space and a few others a password holds
RESERVED = ":/?#[]@!$&'()*+,;=% \"<>\\^`{|}~"


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)), deadline=None)
@given(
    password=st.text(alphabet=st.sampled_from(RESERVED + "Z9"), min_size=1, max_size=12).filter(
        lambda p: p != "***"  # the mask itself
    ),
    encoded=st.booleans(),
    query_secret=st.booleans(),
)
def test_a_password_of_any_reserved_characters_is_masked_or_refused(
    password: str, encoded: bool, query_secret: bool
) -> None:
    from urllib.parse import quote

    from sqlalchemy.engine import make_url

    from tuning.core.urls import SecretURLError, check_url, url_secrets

    written = quote(password, safe="") if encoded else password
    url = f"postgresql+psycopg://alice:{written}@db.example:5432/hpo"
    query = f"?sslmode=require&sslpassword={quote(password, safe='')}" if query_secret else ""
    url += query
    try:
        check_url(url)
    except SecretURLError as exc:  # refused in one line that quotes nothing of the URL
        messages = {
            refusal("postgresql://u:p@w@host/db"),
            refusal("postgresql://u:p@host:x/db"),
            refusal("postgresql://u:p?w@host/db"),  # an '@' after the '?'
        }
        assert str(exc) in messages
        return
    read = make_url(url)  # what the driver will use
    assert read.host == "db.example" and read.password  # the driver reads all of it
    assert without_password(url) == (
        "postgresql+psycopg://alice:***@db.example:5432/hpo"
        + ("?sslmode=require&sslpassword=***" if query_secret else "")
    )
    assert str(read.password) in url_secrets(url)
    for secret in {str(read.password), written, password}:
        shown = redact(f"QQQ{secret}QQQ refused", url)
        assert f"QQQ{secret}QQQ" not in shown


# --- sizes nobody bounded ------------------------------------------------------------------


def test_a_hundred_million_seeds_are_refused_before_any_list_is_made(capsys) -> None:
    started = time.monotonic()
    line = refused(["benchmark", "--dataset", "iris", "--seeds", "0-99999999"], capsys)
    assert time.monotonic() - started < 5  # counted, never listed (before: 16 GB and minutes)
    assert "'0-99999999' names 100,000,000 seeds; at most 10,000" in line


@pytest.mark.parametrize(
    ("seeds", "says"),
    [
        ("0-4294967295", "names 4,294,967,296 seeds"),
        ("2147483647", "largest every library"),
        ("4-0", "names no seed"),
    ],
)
def test_seed_lists_outside_what_the_libraries_take_are_refused(seeds, says, capsys) -> None:
    assert says in refused(["benchmark", "--dataset", "iris", "--seeds", seeds], capsys)


def test_jobs_beyond_the_machine_are_capped_with_a_notice(monkeypatch) -> None:
    from tuning.run import grid

    monkeypatch.setattr(grid.os, "cpu_count", lambda: 2)
    assert grid.capped_jobs(1000)[0] <= 2 and "--jobs 1000 capped at" in grid.capped_jobs(1000)[1]
    assert grid.capped_jobs(1) == (1, "")
    monkeypatch.setattr(grid, "WORKER_MEMORY", 2.0**60)  # no room for a second worker
    assert grid.capped_jobs(2)[0] == 1 and "GiB free memory" in grid.capped_jobs(2)[1]


def test_two_tasks_that_would_share_a_study_folder_are_refused_naming_both(tmp_path, capsys):
    # a study folder is named after the data file's path, each run of other characters as "_":
    # "d/a/b_c.csv" and "d/a_b/c.csv" both make "..._d_a_b_c.csv_random_s0"
    rows = "\n".join(f"{i},{i % 3},{i * 0.5}" for i in range(40))
    files = [tmp_path / "d" / "a" / "b_c.csv", tmp_path / "d" / "a_b" / "c.csv"]
    for file in files:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("x1,x2,y\n" + rows + "\n")
    suite = tmp_path / "suite.toml"
    suite.write_text(
        "[defaults]\nmax_epochs = 1\ntrials = 1\ntarget = 'y'\n"
        f"[tasks.first]\ndataset = 'csv:{files[0]}'\n"
        f"[tasks.second]\ndataset = 'csv:{files[1]}'\n"
    )
    out = tmp_path / "out"
    argv = ["benchmark", "--suite", str(suite), "--seeds", "0", "--backends", "random"]
    line = refused([*argv, "--out", str(out)], capsys)
    assert str(files[0]) in line and str(files[1]) in line and "share the study folder" in line
    assert not out.exists()  # refused before anything ran or was written


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ('["a", "b"]', "cannot be built (TypeError: n_neurons must be an integer, got 'a')"),
        ("[[1, 2]]", "grid.n_neurons: choices must be strings, numbers or booleans"),
        ('[2, "x"]', "grid.n_neurons: choices mix integers and strings"),
    ],
)
def test_tabulate_refuses_grid_values_a_study_would_refuse_in_one_line(
    tmp_path, capsys, values, says
):
    grid = tmp_path / "grid.toml"
    grid.write_text(f"[grid]\nn_hidden = [0, 1]\nn_neurons = {values}\nlearning_rate = [0.01]\n")
    argv = ["tabulate", "--dataset", "iris", "--grid", str(grid), "--seeds", "0"]
    line = refused([*argv, "--max-epochs", "1", "--out", str(tmp_path / "t")], capsys)
    assert says in line


@pytest.mark.parametrize(
    ("backend", "option", "value"),
    [
        ("optuna:random", "n_startup_trials", "3"),
        ("hyperopt:anneal", "n_startup_jobs", "3"),
        ("keras_tuner:random", "factor", "2"),
        ("keras_tuner", "num_initial_points", "2"),
    ],
)
def test_an_option_the_algorithm_would_ignore_is_refused(tmp_path, capsys, backend, option, value):
    study = tmp_path / "study.toml"
    study.write_text(
        f"backend = '{backend}'\ndataset = 'iris'\ntrials = 1\nmax_epochs = 1\n"
        f"[backend_options]\n{option} = {value}\n"
    )
    line = refused(["run", "--config", str(study), "--out", str(tmp_path / "out")], capsys)
    assert f"would ignore option '{option}'" in line
    assert not (tmp_path / "out").exists()


# --- the user's code -----------------------------------------------------------------------

RAISING_FACTORY = """
from tuning import build_model
{prelude}
BUILDS = {{"n": 0}}


def build(n_hidden, n_neurons, learning_rate, **arguments):
    BUILDS["n"] += 1
    if BUILDS["n"] > {after}:
        raise {raised}
    return build_model(n_hidden, n_neurons, learning_rate, **arguments)
"""
BROKE = 'RuntimeError("the factory broke\\nits second line")'


def raising_study(
    folder: Path, backend: str, after: int, trials: int = 2, raised: str = BROKE, prelude: str = ""
) -> Path:
    """A study file whose factory (taking ``**arguments``, as users' often do) raises ``raised``
    (defined in ``prelude``) on every build after its ``after``-th (the harness's check builds it
    twice first: the space's lowest and highest values)."""
    factory = RAISING_FACTORY.format(after=after, raised=raised, prelude=prelude)
    (folder / "factory.py").write_text(factory)
    study = folder / "study.toml"
    study.write_text(
        f'backend = "{backend}"\ndataset = "iris"\ntrials = {trials}\nmax_epochs = 1\n'
        f'max_rows = 40\nmodel = "{folder / "factory.py"}:build"\n' + BOOK_SPACE
    )
    return study


@pytest.mark.parametrize(
    "backend",
    ["random", "optuna", "hyperopt", "skopt", "sklearn", "sklearn:halving", "keras_tuner"],
)
def test_a_factory_raising_at_every_search_build_gives_failed_rows_and_exit_1(
    tmp_path, capsys, backend
) -> None:
    from tuning.core.results import read_trials

    study = raising_study(tmp_path, backend, after=2)
    assert main(["run", "--config", str(study), "--out", str(tmp_path / "out")]) == 1
    printed = capsys.readouterr()
    err = printed.err + printed.out
    assert "Traceback" not in err and "its second line" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("no trial completed: no model to retrain; see the status and error columns")
    )
    rows = read_trials(next((tmp_path / "out").iterdir()))
    assert len(rows) >= 1 and set(rows["status"]) == {"failed"}
    for error in rows["error"]:  # the factory's first line, whoever called it
        assert error.endswith("RuntimeError: the factory broke"), error


def test_a_factory_raising_when_the_winner_is_built_again_ends_the_study_in_one_line(
    tmp_path, capsys
) -> None:
    from tuning.core.results import read_trials

    study = raising_study(tmp_path, "random", after=4, trials=2)  # the check's 2, 2 trials
    assert main(["run", "--config", str(study), "--out", str(tmp_path / "out")]) == 1
    printed = capsys.readouterr()
    last = (printed.err + printed.out).strip().splitlines()[-1]
    assert last.endswith(
        "the winner (trial 1) failed to build again for its final training: RuntimeError: "
        "the factory broke"
    ) or last.endswith(
        "the winner (trial 0) failed to build again for its final training: RuntimeError: "
        "the factory broke"
    )
    folder = next((tmp_path / "out").iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert "model_file" not in summary and summary["best_trial"] in (0, 1)
    assert list(read_trials(folder)["status"]) == ["complete", "complete"]  # the trials kept


def test_scikeras_extras_are_not_passed_to_a_factory_taking_keyword_arguments(tmp_path) -> None:
    from tuning.core.results import read_trials

    study = raising_study(tmp_path, "sklearn", after=100)  # never raises
    assert main(["run", "--config", str(study), "--out", str(tmp_path / "out")]) == 0
    rows = read_trials(next((tmp_path / "out").iterdir()))
    assert list(rows["status"]) == ["complete", "complete"], list(rows["error"])


def test_scikit_learns_all_fits_failed_message_becomes_the_first_line_of_the_cause() -> None:
    from tuning.search.sklearn_search import every_fit_failed

    message = (
        "\nAll the 3 fits failed.\nIt is very likely that your model is misconfigured.\n\n"
        "2 fits failed with the following error:\nTraceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n    raise KeyError("a")\nKeyError: \'a\'\n\n'
        "1 fits failed with the following error:\nTraceback (most recent call last):\n"
        '  File "x.py", line 2, in g\n    raise RuntimeError("b\\nc")\nRuntimeError: b\nc\n'
    )
    assert every_fit_failed(ValueError(message)) == "every fold failed to fit: RuntimeError: b"
    assert every_fit_failed(ValueError("All the 3 fits failed.")) == "every fold failed to fit"
    assert every_fit_failed(ValueError("Cannot have number of splits n_splits=5")) is None


@pytest.mark.parametrize("command", ["run", "benchmark"])
def test_a_choice_that_cannot_build_is_refused_before_any_trial(tmp_path, capsys, command):
    study = tmp_path / "study.toml"
    study.write_text(  # "bogus" builds only where there is a hidden layer to use it
        'dataset = "iris"\ntrials = 2\nmax_epochs = 1\nmax_rows = 40\n[space.n_hidden]\n'
        'type = "int"\nlow = 0\nhigh = 1\n[space.activation]\ntype = "categorical"\n'
        'choices = ["relu", "bogus"]\n'
    )
    grid = ["--seeds", "0", "--backends", "random"] if command == "benchmark" else ["--backend"]
    grid += [] if command == "benchmark" else ["random"]
    line = refused([command, "--config", str(study), *grid, "--out", str(tmp_path / "o")], capsys)
    assert "'activation': 'bogus'" in line and "Could not interpret activation" in line
    assert not (tmp_path / "o").exists()


def test_a_study_file_without_a_backend_run_without_one_is_one_line(tmp_path, capsys) -> None:
    study = tmp_path / "study.toml"
    study.write_text('dataset = "iris"\n')
    line = refused(["run", "--config", str(study), "--out", str(tmp_path / "o")], capsys)
    assert line.endswith(
        'names no backend: add backend = "NAME" to it, or give --backend NAME '
        "(see `tuning backends`)"
    )


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"]
)
def test_a_storage_in_memory_is_refused_it_cannot_be_shared(url, tmp_path, capsys) -> None:
    from tuning.core.urls import in_memory

    assert in_memory(url) and not in_memory("sqlite:///a.db") and not in_memory("postgresql://h/d")
    out = tmp_path / "out"
    line = refused(
        ["run", "--backend", "optuna", *TINY, "--storage", url, "--out", str(out)], capsys
    )
    assert "is a database in memory, which no other process can share" in line
    assert files_under(out) == []


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/s.db?password=SEKRETX@SEKRETY",
        "postgresql://127.0.0.1:5432/tuning?sslpassword=SEKRETQ@SEKRETR",
        "postgresql:///tuning?host=127.0.0.1&password=SEKRETQ@SEKRETR",
    ],
)
def test_an_at_sign_in_a_query_value_is_refused_without_quoting_it(url, tmp_path, capsys):
    out = tmp_path / "out"
    line = refused(
        ["run", "--backend", "optuna", *TINY, "--storage", url, "--out", str(out)], capsys
    )
    assert "unencoded '@' after its '?'" in line and "SEKRET" not in line
    assert files_under(out) == []


RAISES = {
    "an exception whose message cannot be read": (
        "class E(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\n",
        "E()",
        "E: <its message could not be read>",
    ),
    "GeneratorExit": ("", "GeneratorExit('gen')", "GeneratorExit: gen"),
    "a BaseException of the user's": (
        "class Stop(BaseException):\n    pass\n",
        "Stop('halt')",
        "Stop: halt",
    ),
    "SystemExit": ("", "SystemExit(0)", "SystemExit: 0"),
}


@pytest.mark.parametrize("backend", ["random", "optuna", "sklearn"])
@pytest.mark.parametrize("kind", sorted(RAISES))
def test_whatever_a_factory_raises_is_a_failed_row_not_the_end(tmp_path, capsys, kind, backend):
    from tuning.core.results import read_trials

    prelude, raised, recorded = RAISES[kind]
    study = raising_study(tmp_path, backend, after=2, raised=raised, prelude=prelude)
    assert main(["run", "--config", str(study), "--out", str(tmp_path / "out")]) == 1
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err + printed.out
    rows = read_trials(next((tmp_path / "out").iterdir()))
    assert len(rows) == 2 and set(rows["status"]) == {"failed"}
    for error in rows["error"]:
        assert error.endswith(recorded), error


def test_a_pickle_in_a_results_folder_is_never_loaded(tmp_path) -> None:
    """A results folder is data: Hyperopt's state is rebuilt from the table, never unpickled."""
    import pickle

    from conftest import interrupted_after_row

    argv = ["run", "--backend", "hyperopt", *TINY[:2], "--trials", "3", "--max-epochs", "1"]
    argv += ["--max-rows", "40", "--out", str(tmp_path / "out")]
    with interrupted_after_row(0):
        assert main(argv) == 130
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (tmp_path / "out" / "iris_hyperopt_s0" / "hyperopt_trials.pkl").write_bytes(
        pickle.dumps(Payload())
    )
    assert main(argv) == 0
    assert not marker.exists()


@pytest.mark.parametrize(
    "table",
    [
        b"study,trial,status,vl,cum_epochs,cum_seconds\ns,0,complete,0.5,1,0.1\n",  # a header
        b"study,trial,status,val_loss,cum_epochs,cum_seconds\ns,0,complete,abc,1,0.1\n",
        bytes(range(256)),
        b"study,trial,status,val_loss,cum_epochs,cum_seconds\ns,0,complete,0.5,x,0.1\n",
    ],
)
def test_the_grids_progress_display_reads_past_a_table_it_cannot_read(tmp_path, table) -> None:
    """Found by a hostile review: the display read every study's table unguarded, so one bad
    trials.csv stopped the whole grid (a KeyError traceback, or a one-line error naming no
    study)."""
    from tuning.run.grid import StudyState
    from tuning.run.progress import StudyProgress, study_progress

    config = StudyConfig(backend="random", dataset="iris", out=str(tmp_path))
    config.study_dir.mkdir(parents=True)
    (config.study_dir / "trials.csv").write_bytes(table)
    assert study_progress(StudyState(config)) == StudyProgress()
    (config.study_dir / "trials.csv").unlink()
    (config.study_dir / "trials.csv").mkdir()  # a folder where the table should be
    assert study_progress(StudyState(config)) == StudyProgress()


@pytest.mark.parametrize("how", ["nested", "folder"])
def test_a_summary_nested_too_deep_or_a_folder_is_set_aside(tmp_path, how, caplog) -> None:
    from tuning.run.resume import finished_summary

    config = StudyConfig(backend="random", dataset="iris", out=str(tmp_path))
    summary = config.study_dir / "summary.json"
    config.study_dir.mkdir(parents=True)
    if how == "nested":
        summary.write_text("[" * 100_000 + "]" * 100_000)
    else:
        summary.mkdir()
    assert finished_summary(config) is None  # to be finished again from its rows
    assert not summary.exists() and (config.study_dir / "summary.json.unreadable").exists()
    assert "is corrupt (RecursionError)" in caplog.text or "is a folder, not a file" in caplog.text


def test_compare_reads_a_study_in_which_no_trial_completed(tmp_path, capsys) -> None:
    study = raising_study(tmp_path, "random", after=2)
    assert main(["run", "--config", str(study), "--out", str(tmp_path / "out")]) == 1
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err and (tmp_path / "out" / "report.md").exists()


def _signalled_then_slow(*_args, **_kwargs):
    """A stage that receives SIGTERM, then would go on for 30 s."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)


@pytest.mark.parametrize(
    ("command", "stage"),
    [
        (["compare", "."], "tuning.analysis.compare.compare"),
        (["backends"], "tuning.search.describe_backends"),
        (["datasets"], "tuning.evaluation.data.describe_datasets"),
    ],
)
def test_sigterm_stops_a_command_with_no_step_to_finish_at_once(
    command, stage, monkeypatch, tmp_path, capsys
) -> None:
    monkeypatch.setattr(stage, _signalled_then_slow)
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    assert main(command) == 143
    assert time.monotonic() - started < 10  # not after the stage's 30 s
    assert "terminated" in capsys.readouterr().err


def test_loading_a_users_factory_writes_nothing_beside_it(tmp_path, monkeypatch) -> None:
    """Found by the fuzzer, in a fresh clone whose shell did not set PYTHONDONTWRITEBYTECODE:
    importing the factory's file wrote ``__pycache__`` into the user's folder."""
    from tuning.evaluation.keras.factory import load_factory

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    (tmp_path / "mine.py").write_text("def build(**arguments):\n    return None\n")
    assert callable(load_factory(f"{tmp_path / 'mine.py'}:build"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.py"]


@pytest.mark.parametrize("stage", ["load_dataset", "check_model"])
def test_sigterm_while_a_study_loads_its_data_or_checks_its_model_writes_nothing(
    stage, monkeypatch, tmp_path, capsys
) -> None:
    """A study stops right after the stage a signal arrived in: before its folder, its
    settings or a first model exist (it would otherwise stop before its first trial only)."""
    import tuning.evaluation.keras.kind as kind

    real = getattr(kind, stage)

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(kind, stage, signalled)
    argv = ["run", "--backend", "random", "--dataset", "iris", "--trials", "2"]
    argv += ["--max-epochs", "2", "--out", str(tmp_path / "out")]
    if stage == "check_model":  # (checked for a user's model or space only)
        argv += ["--model", "tuning.evaluation.keras.model:build_model"]
        study = tmp_path / "study.toml"
        study.write_text('[space.n_hidden]\ntype = "int"\nlow = 0\nhigh = 1\n')
        argv += ["--config", str(study)]
    assert main(argv) == 143
    assert "terminated" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
