"""Nothing lost: a study killed or interrupted at any point continues when run again.

The fault-injection tests kill real `tuning run` processes (SIGKILL) and resume them; the
in-process ones interrupt a study after a given row and compare the resumed study with an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tuning.core.lock
import tuning.evaluation.keras.evaluator
from tuning.cli import main
from tuning.core.config import StudyConfig, StudyError
from tuning.core.ledger import ResumeLedger
from tuning.core.lock import LOCK_FILE, SHARED_OWNER, StudyLocked, is_running, study_lock
from tuning.core.results import TRIALS_FILE, TrialWriter, read_trials
from tuning.core.signals import StopSignals, Terminated
from tuning.run.study import run_study

# Files, processes and the libraries' own state: the same on either Keras backend.
pytestmark = pytest.mark.one_keras_backend
REPO = Path(__file__).resolve().parents[1]
TRIALS = 6
ROW_COLUMNS = ["trial", "status", "params", "val_loss", "epochs", "cum_epochs", "error"]
# runs the CLI and dies by SIGKILL right after a given row reached the table
KILL_AFTER_ROW = REPO / "benchmarks" / "kill_after_row.py"


def _args(backend: str, out: Path, trials: int = TRIALS) -> list[str]:
    args = ["run", "--backend", backend, "--dataset", "california", "--max-rows", "300"]
    args += ["--trials", str(trials), "--max-epochs", "4", "--patience", "2", "--out", str(out)]
    return args + (["--cv", "2"] if backend == "sklearn" else [])


def _study_dir(backend: str, out: Path) -> Path:
    return out / f"california_{backend}_s0"


def _rows(study_dir: Path) -> pd.DataFrame:
    table = study_dir / TRIALS_FILE
    return read_trials(table)[ROW_COLUMNS] if table.exists() else pd.DataFrame()


def _default_sigint() -> None:
    """In a child about to run: Python's own Ctrl-C, whatever the suite was started with (a
    background job or ``nohup`` starts it, and so its children, with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_rows(
    process: subprocess.Popen, table: Path, n: int, timeout: float = 240, poll: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the study ended before {n} rows: {process.communicate()}")
        if table.exists() and len(read_trials(table)) >= n:
            return
        time.sleep(poll)
    raise AssertionError(f"no {n} rows in {table} after {timeout} s")


def _assert_kept(before: pd.DataFrame, after: pd.DataFrame) -> None:
    """The rows finished before a fault are still there, unchanged, first."""
    pd.testing.assert_frame_equal(after.head(len(before)), before, check_dtype=False)


@contextlib.contextmanager
def _on_row(trial: int, then: Callable[[TrialWriter], None]) -> Iterator[None]:
    """Call ``then(writer)`` right after row ``trial`` is written (to interrupt the study there)."""
    append = TrialWriter.append

    def append_then(writer: TrialWriter, row: dict) -> dict:
        written = append(writer, row)
        if row["trial"] == trial:
            then(writer)
        return written

    TrialWriter.append = append_then
    try:
        yield
    finally:
        TrialWriter.append = append


def _interrupt(writer: TrialWriter) -> None:
    raise KeyboardInterrupt  # as Ctrl-C between two trials


class _ReplaySpy:
    """Counts the trials answered from the table and the trials trained in this process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.replayed = 0
        self.recorded = 0
        replay, record = (
            ResumeLedger.replay,
            tuning.evaluation.keras.evaluator.KerasEvaluator.record,
        )

        def spy_replay(ledger, params):
            result = replay(ledger, params)
            self.replayed += result is not None
            return result

        def spy_record(objective, params, **kwargs):
            self.recorded += 1
            return record(objective, params, **kwargs)

        monkeypatch.setattr(ResumeLedger, "replay", spy_replay)
        monkeypatch.setattr(tuning.evaluation.keras.evaluator.KerasEvaluator, "record", spy_record)


# How many of the finished trials each backend answers from the table after a kill that came
# right after a row was written: the libraries that keep their own state hold all but that one
# (Optuna settles it in its storage); random, sklearn, skopt (a new optimizer, seeded alike)
# and Hyperopt (new `Trials`, each step seeded by its number: nothing is unpickled from a
# results folder) propose every trial again.
REPLAYED_AFTER_ROW_KILL = {
    "hyperopt": lambda rows: rows,
    "keras_tuner": lambda rows: 1,
    "optuna": lambda rows: 0,
    "random": lambda rows: rows,
    "sklearn": lambda rows: rows,
    "skopt": lambda rows: rows,
}


@pytest.mark.parametrize("backend", sorted(REPLAYED_AFTER_ROW_KILL))
def test_a_killed_study_resumes_where_it_stopped(backend, tmp_path, monkeypatch, capsys):
    study_dir = _study_dir(backend, tmp_path)
    table = study_dir / TRIALS_FILE
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "tuning", *_args(backend, tmp_path)]

    # Fault 1: SIGKILL at a random moment after the first trial finished (mid-trial, mostly:
    # a later trial of these takes tens of milliseconds, its program compiled by the first).
    process = subprocess.Popen(
        cli, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _wait_for_rows(process, table, 1, poll=0.005)
    time.sleep(np.random.default_rng(len(backend)).uniform(0, 0.04))
    process.kill()
    process.communicate()
    after_kill = _rows(study_dir)
    assert 1 <= len(after_kill) <= TRIALS - 2  # room for the second fault, and a new trial
    assert after_kill["trial"].tolist() == list(range(len(after_kill)))

    # Fault 2: the same command resumes; SIGKILL right after its next row reaches the table.
    limit = len(after_kill) + 1
    killed = subprocess.run(
        [sys.executable, str(KILL_AFTER_ROW), str(limit), *_args(backend, tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    after_row_kill = _rows(study_dir)
    assert len(after_row_kill) == limit
    _assert_kept(after_kill, after_row_kill.head(len(after_kill)))

    # The same command again finishes the study.
    spy = _ReplaySpy(monkeypatch)
    assert main(_args(backend, tmp_path)) == 0, capsys.readouterr().err
    final = _rows(study_dir)
    _assert_kept(after_row_kill, final)
    assert final["trial"].tolist() == list(range(TRIALS))  # exactly the budget, numbers unique
    assert spy.replayed == REPLAYED_AFTER_ROW_KILL[backend](limit)
    assert spy.recorded == TRIALS - limit  # no finished trial trained again
    if backend != "keras_tuner":  # (Hyperband trains a configuration again when it promotes it)
        assert final["params"].is_unique  # a restarted library did not draw its first run again
    summary = json.loads((study_dir / "summary.json").read_text())
    assert summary["trials"] == TRIALS and summary["trials_from_earlier_runs"] == limit
    assert (study_dir / LOCK_FILE).read_text() == ""  # released


DETERMINISTIC = ["hyperopt", "keras_tuner", "random", "sklearn", "skopt"]


@pytest.mark.parametrize("backend", DETERMINISTIC)
def test_an_interrupted_study_resumed_equals_an_uninterrupted_one(
    backend, tmp_path, california_small, monkeypatch
):
    config = StudyConfig(
        backend=backend,
        trials=3,
        max_epochs=3,
        patience=2,
        out=str(tmp_path / "whole"),
        backend_options={"cv": 2} if backend == "sklearn" else {},
    )
    whole = run_study(config, dataset=california_small)
    resumed_config = dataclasses.replace(config, out=str(tmp_path / "resumed"))
    with pytest.raises(KeyboardInterrupt), _on_row(1, _interrupt):
        run_study(resumed_config, dataset=california_small)
    assert len(read_trials(resumed_config.study_dir)) == 2
    resumed = run_study(resumed_config, dataset=california_small)

    columns = ["trial", "status", "params", "val_loss", "epochs"]
    pd.testing.assert_frame_equal(
        read_trials(resumed_config.study_dir)[columns], read_trials(config.study_dir)[columns]
    )
    assert resumed["best_params"] == whole["best_params"]
    assert resumed["test_loss"] == pytest.approx(whole["test_loss"], rel=1e-6)


def test_a_torn_last_row_is_cut_off_before_the_study_appends(tmp_path, california_small, caplog):
    config = StudyConfig(backend="random", trials=3, max_epochs=2, out=str(tmp_path))

    def tear(writer: TrialWriter) -> None:
        with writer.path.open("a") as table:  # the start of a third row, killed mid-write
            table.write("california_random_s0,random,california,0,2,compl")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), _on_row(1, tear):
        run_study(config, dataset=california_small)
    with caplog.at_level(logging.WARNING):
        run_study(config, dataset=california_small)
    assert "cut off mid-write" in caplog.text
    text = (config.study_dir / TRIALS_FILE).read_text()
    assert "compl" not in text.replace("complete", "")
    assert read_trials(config.study_dir)["trial"].tolist() == [0, 1, 2]


def test_a_study_killed_while_retraining_its_winner_only_retrains(
    tmp_path, california_small, monkeypatch
):
    config = StudyConfig(backend="random", trials=2, max_epochs=2, out=str(tmp_path))
    first = run_study(config, dataset=california_small)
    (config.study_dir / "summary.json").unlink()  # as if killed before the summary was written
    spy = _ReplaySpy(monkeypatch)
    again = run_study(config, dataset=california_small)
    assert spy.recorded == 0 and spy.replayed == 0  # the budget was spent: no trial ran
    assert again["best_params"] == first["best_params"] and again["trials"] == 2


def test_resuming_with_other_settings_is_refused_naming_them(tmp_path, california_small):
    config = StudyConfig(backend="random", trials=3, max_epochs=2, out=str(tmp_path))
    with pytest.raises(KeyboardInterrupt), _on_row(0, _interrupt):
        run_study(config, dataset=california_small)
    other = dataclasses.replace(config, max_epochs=5)
    with pytest.raises(StudyError, match=r"started with other settings \(max_epochs: 2 -> 5\)"):
        run_study(other, dataset=california_small)
    assert len(read_trials(config.study_dir)) == 1  # nothing was touched
    assert run_study(other, dataset=california_small, fresh=True)["trials"] == 3


# -- locks -------------------------------------------------------------------------------------
HOLD_LOCK = """
import sys, time
from pathlib import Path
from tuning.core.lock import study_lock

with study_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_process_on_a_running_study_is_refused_and_a_dead_ones_lock_taken_over(
    tmp_path, california_small, caplog
):
    config = StudyConfig(backend="random", trials=2, max_epochs=2, out=str(tmp_path))
    config.study_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(config.study_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StudyLocked, match=rf"already running \(pid {holder.pid} on "):
            run_study(config, dataset=california_small)
        assert not (config.study_dir / TRIALS_FILE).exists()
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing anything: its lock file still names it.
    assert f"pid {holder.pid}" in (config.study_dir / LOCK_FILE).read_text()
    with caplog.at_level(logging.WARNING):
        assert run_study(config, dataset=california_small)["trials"] == 2
    assert f"taking over the lock of pid {holder.pid}" in caplog.text


def test_a_study_is_running_while_its_lock_is_held_whatever_its_lock_file_says(
    tmp_path, monkeypatch
):
    host = socket.gethostname()
    alone, shared, elsewhere = tmp_path / "alone", tmp_path / "shared", tmp_path / "elsewhere"
    for folder in (alone, shared, elsewhere):
        folder.mkdir()
    assert not is_running(alone)  # no lock file
    with study_lock(alone), study_lock(shared, shared=True), study_lock(shared, shared=True):
        assert is_running(alone) and is_running(shared)
    # Left behind: the shared owners' line naming their host, and a file naming a live process
    # (this one, as a pid reused after its owner was killed) that holds no lock.
    assert (shared / LOCK_FILE).read_text() == f"{SHARED_OWNER}, on {host}\n"
    (alone / LOCK_FILE).write_text(f"pid {os.getpid()} on {host}\n")
    assert not is_running(alone) and not is_running(shared)
    # Other hosts cannot be asked: a study run there, or shared with one, counts as running.
    (elsewhere / LOCK_FILE).write_text("pid 12 on another-host.example\n")
    assert is_running(elsewhere)
    with study_lock(elsewhere, shared=True):  # this host joins a study another host shares
        pass
    assert (elsewhere / LOCK_FILE).read_text() == f"{SHARED_OWNER}, on {host}\n"
    (elsewhere / LOCK_FILE).write_text(f"{SHARED_OWNER}, on another-host.example\n")
    with study_lock(elsewhere, shared=True):
        pass
    named = sorted([host, "another-host.example"])
    assert (elsewhere / LOCK_FILE).read_text() == f"{SHARED_OWNER}, on {', '.join(named)}\n"
    assert is_running(elsewhere)
    # A table that cannot be read, or that does not list the lock this reader takes on the
    # folder (devices named otherwise: btrfs, overlays): the file is all there is to go by.
    for table in (tmp_path / "no-such-table", tmp_path / "alone" / "study.lock"):
        monkeypatch.setattr(tuning.core.lock, "KERNEL_LOCKS", table)
        assert is_running(alone) and is_running(shared) and is_running(elsewhere)
    (alone / LOCK_FILE).write_text(f"pid 999999999 on {host}\n")
    assert not is_running(alone)


def test_the_cli_refuses_a_study_already_running_in_one_line(tmp_path, capsys):
    study_dir = _study_dir("random", tmp_path)
    study_dir.mkdir(parents=True)
    with study_lock(study_dir):  # held by this process: another open of the file conflicts
        assert main(_args("random", tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: study 'california_random_s0' is")
    assert f"pid {os.getpid()}" in err


# -- Ctrl-C and SIGTERM ------------------------------------------------------------------------
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_saves_its_trials_and_says_so(sig, code, tmp_path):
    study_dir = _study_dir("random", tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "tuning", *_args("random", tmp_path, trials=50)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    _wait_for_rows(process, study_dir / TRIALS_FILE, 1)
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code
    assert "stopping at the end of this epoch" in err
    assert "every finished trial is saved; run the same command again to resume" in err
    assert "Traceback" not in err
    text = (study_dir / TRIALS_FILE).read_text()
    assert text.endswith("\n")  # no half-written row
    rows = read_trials(study_dir)
    assert rows["trial"].tolist() == list(range(len(rows))) and 1 <= len(rows) < 50
    assert (study_dir / LOCK_FILE).read_text() == ""
    assert not (study_dir / "summary.json").exists()


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler for the test, whatever the suite was started with (a
    background job or ``nohup`` starts it with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_the_first_signal_is_kept_for_a_safe_point_and_a_second_raises_at_once(default_sigint):
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # handled at once: nothing raised here
        assert stop.received == signal.SIGINT
        assert copy.deepcopy([stop])[0] is stop  # scikit-learn's per-fold copies share it
        with pytest.raises(KeyboardInterrupt):
            stop.raise_if_stopped()
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_sigint_the_process_ignores_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup or `cmd &`
    try:
        with StopSignals() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stop._handle
            os.kill(os.getpid(), signal.SIGINT)
            stop.raise_if_stopped()  # nothing was received
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("backend", ["sklearn", "keras_tuner"])
def test_ctrl_c_stops_a_study_within_the_next_trial(
    backend, tmp_path, california_small, default_sigint
):
    config = StudyConfig(
        backend=backend,
        trials=4,
        max_epochs=3,
        out=str(tmp_path),
        backend_options={"cv": 2} if backend == "sklearn" else {},
    )

    def ctrl_c(writer: TrialWriter) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    with StopSignals() as stop, pytest.raises(KeyboardInterrupt), _on_row(0, ctrl_c):
        run_study(config, dataset=california_small, stop=stop)
    assert read_trials(config.study_dir)["trial"].tolist() == [0]  # the next one wrote nothing


# -- concurrent writers ------------------------------------------------------------------------
APPEND_ROWS = """
import sys
from tuning.core.results import StudyKey, TrialWriter

writer = TrialWriter(sys.argv[1], StudyKey("s", sys.argv[2], "d", 0))
for trial in range(int(sys.argv[3])):
    writer.append({"trial": trial, "status": "complete", "val_loss": 0.5, "error": "x" * 300})
"""


def test_two_processes_appending_to_one_table_never_tear_a_row(tmp_path):
    table, rows = tmp_path / TRIALS_FILE, 300
    writers = [
        subprocess.Popen([sys.executable, "-c", APPEND_ROWS, str(table), name, str(rows)], cwd=REPO)
        for name in ("a", "b")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    text = table.read_text()
    assert text.count("study,backend,") == 1  # one header
    frame = read_trials(table)
    assert len(frame) == 2 * rows and (frame["error"] == "x" * 300).all()
    for name in ("a", "b"):  # each writer's rows whole and in its order
        assert frame.loc[frame["backend"] == name, "trial"].tolist() == list(range(rows))
