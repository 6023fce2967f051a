"""Files are whole or absent: atomic replacement, and a row torn by a kill dropped on reading."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tuning.core.atomic import write_atomically
from tuning.core.config import StudyConfig
from tuning.core.results import StudyKey, TrialWriter, read_trials
from tuning.run.grid import StudyState
from tuning.run.progress import study_progress

pytestmark = pytest.mark.one_keras_backend  # no Keras in these


def _row(trial: int) -> dict:
    return {"trial": trial, "status": "complete", "val_loss": 0.5 + trial, "epochs": 3}


def test_a_row_torn_by_a_kill_is_dropped_with_a_warning(tmp_path, caplog):
    writer = TrialWriter(tmp_path / "trials.csv", StudyKey("s", "random", "california", 0))
    for trial in range(3):
        writer.append(_row(trial))
    whole = read_trials(tmp_path)
    with writer.path.open("a", encoding="utf-8") as handle:
        handle.write("s,random,california,0,3,compl")  # the kill came mid-row

    with caplog.at_level(logging.WARNING, logger="tuning.core.results"):
        rows = read_trials(tmp_path)

    assert list(rows["trial"]) == [0, 1, 2]
    assert rows.equals(whole)
    assert "last row was cut off" in caplog.text


def test_a_process_appending_after_another_was_killed_mid_row_cuts_that_row_off(tmp_path, caplog):
    # processes sharing a study append to one table: one killed mid-row, the next row of
    # another still starts a line of its own, and the rows before are kept
    writer = TrialWriter(tmp_path / "trials.csv", StudyKey("s", "optuna", "california", 0))
    writer.append(_row(0))
    whole = writer.path.read_bytes()
    long_torn = "s,optuna,california,0,1,complete," + "x" * 200_000  # (past several reads back)
    for torn in ["s,optuna,california,0,1,compl", long_torn]:
        with writer.path.open("a", encoding="utf-8") as handle:
            handle.write(torn)
        with caplog.at_level(logging.WARNING, logger="tuning.core.atomic"):
            TrialWriter(writer.path, writer.key).append(_row(2))
        assert writer.path.read_bytes().startswith(whole) and "last line was cut off" in caplog.text
        assert list(read_trials(tmp_path)["trial"]) == [0, 2]
        writer.path.write_bytes(whole)
    # a header torn before any row: cut whole, and the next writer writes the header again
    writer.path.write_text("study,backend,data")
    TrialWriter(writer.path, writer.key).append(_row(5))
    assert list(read_trials(tmp_path)["trial"]) == [5]


def test_a_table_torn_inside_its_header_reads_as_no_trials(tmp_path):
    (tmp_path / "trials.csv").write_text("study,backend,data")
    rows = read_trials(tmp_path)
    assert rows.empty and list(rows.columns)[:3] == ["study", "backend", "dataset"]


def test_a_whole_table_is_read_without_a_warning(tmp_path, caplog):
    writer = TrialWriter(tmp_path / "trials.csv", StudyKey("s", "random", "california", 0))
    writer.append(_row(0))
    with caplog.at_level(logging.WARNING, logger="tuning.core.results"):
        assert list(read_trials(tmp_path)["val_loss"]) == [0.5]
    assert caplog.text == ""


def test_an_atomic_write_replaces_the_content_and_keeps_the_file_readable(tmp_path):
    path = tmp_path / "report.md"
    write_atomically(path, "first\n")
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
    path.chmod(0o640)
    write_atomically(path, b"second\n")
    assert path.read_text(encoding="utf-8") == "second\n"
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_failed_replacement_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_atomically(path, '{"old": 1}\n')

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, '{"new": 2}\n')

    assert path.read_text(encoding="utf-8") == '{"old": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_concurrent_writers_leave_one_version_whole(tmp_path):
    path = tmp_path / "leaderboard.csv"
    versions = [f"writer {n}\n" * 20_000 for n in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda text: write_atomically(path, text), versions))

    assert path.read_text(encoding="utf-8") in versions
    assert [p.name for p in tmp_path.iterdir()] == ["leaderboard.csv"]


def test_the_progress_display_counts_only_whole_rows(tmp_path):
    config = StudyConfig(backend="random", budget_epochs=30, out=str(tmp_path))
    writer = TrialWriter(config.study_dir / "trials.csv", StudyKey(config.study, "random", "x", 0))
    for trial in range(2):
        writer.append({**_row(trial), "cum_epochs": 3 * (trial + 1), "cum_seconds": 1.0})
    with writer.path.open("a", encoding="utf-8") as handle:
        handle.write("s,random,x,0,2,complete,,,,0.1,3,0.5,9,2.")  # still being written

    progress = study_progress(StudyState(config))

    assert (progress.trials, progress.epochs, progress.best_val_loss) == (2, 6, 0.5)
