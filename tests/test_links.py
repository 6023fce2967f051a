"""The link rule: the harness never writes through a symbolic link inside a results folder. Every
kind of file it writes goes through one of a few primitives; each is tested with a link planted
where the file would be, and the link's target must come out untouched."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from tuning.core.atomic import append_locked, write_atomically, write_json  # noqa: E402
from tuning.core.files import (  # noqa: E402
    LinkRefused,
    NoLinkFileHandler,
    replace_with,
    writable_folder,
)
from tuning.core.lock import study_lock  # noqa: E402

pytestmark = pytest.mark.one_keras_backend  # files only

OUTSIDE = "a file outside --out\n"


@pytest.fixture
def planted(tmp_path):
    """A target outside the results folder, and a function that plants a link to it."""
    target = tmp_path / "outside.txt"
    target.write_text(OUTSIDE)
    results = tmp_path / "results"
    results.mkdir()

    def plant(name: str, to: Path = target) -> Path:
        link = results / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(to)
        return link

    return target, results, plant


def _untouched(target: Path) -> None:
    assert target.read_text() == OUTSIDE


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda p: append_locked(p, lambda empty: "row\n"), id="trials.csv (rows)"),
        pytest.param(lambda p: write_atomically(p, "x"), id="report.md, leaderboards, tables"),
        pytest.param(lambda p: write_json(p, {"a": 1}), id="summary.json, study.json, race.json"),
        pytest.param(lambda p: replace_with(p, lambda t: t.write_text("m")), id="best_model"),
    ],
)
def test_no_file_is_written_through_a_link(planted, write):
    target, _, plant = planted
    link = plant("study/file")
    with pytest.raises(LinkRefused, match="is a symbolic link: the harness never writes"):
        write(link)
    _untouched(target)
    assert link.is_symlink()  # refused, not replaced either


def test_the_lock_is_never_opened_through_a_link(planted):
    target, results, plant = planted
    plant("study/study.lock")
    with pytest.raises(LinkRefused), study_lock(results / "study"):
        pass
    _untouched(target)  # before: truncated, and its first line printed as the lock's owner


def test_the_study_log_is_never_appended_through_a_link(planted):
    target, _, plant = planted
    link = plant("study/study.log")
    with pytest.raises(LinkRefused):
        NoLinkFileHandler(link, encoding="utf-8")
    _untouched(target)


def test_a_study_folder_or_figures_folder_that_is_a_link_is_refused(planted, tmp_path):
    _, _, plant = planted
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    study = plant("california_random_s0", elsewhere)
    with pytest.raises(LinkRefused):
        writable_folder(study, "--out results")
    assert writable_folder(study, "--out", link_allowed=True) == study  # a user's --out may be
    from tuning.analysis.plots import save_figure

    figures = plant("figures", elsewhere)
    fig = plt.figure()
    with pytest.raises(LinkRefused):
        save_figure(fig, figures / "test_loss.png")
    plt.close(fig)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("where", ["iris_random_s0/study.lock", "iris_random_s0"])
def test_a_whole_study_refuses_a_planted_link_in_one_line(planted, tmp_path, capsys, where):
    """End to end: a link where a study would take its lock, or as its folder."""
    from tuning.cli import main

    target, results, plant = planted
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plant(where, target if where.endswith(".lock") else elsewhere)
    argv = ["run", "--backend", "random", "--dataset", "iris", "--trials", "1"]
    code = main([*argv, "--max-epochs", "1", "--out", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and "symbolic link" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error")]) == 1
    _untouched(target)
    assert list(elsewhere.iterdir()) == []


def test_compare_leaves_out_a_study_whose_files_are_links(planted, tmp_path):
    """Found by the fuzzer: a study whose trials.csv linked to another file broke compare."""
    from tuning.analysis.compare import read_studies
    from tuning.core.results import cut_torn_tail

    target, results, plant = planted
    study = results / "iris_random_s0"
    study.mkdir()
    (study / "summary.json").write_text("{}")
    link = plant("iris_random_s0/trials.csv")
    found, skipped = read_studies(results)
    assert found == [] and "is a symbolic link: not read" in skipped[0].reason
    with pytest.raises(LinkRefused):  # a resumed study's table is never cut through a link
        cut_torn_tail(link)
    _untouched(target)


def test_keras_tuners_own_project_files_are_checked_for_links(planted, tmp_path, capsys):
    """Keras Tuner writes its project (oracle, trials) with plain ``open``: a link planted in it
    is refused before the library is handed the folder."""
    from conftest import interrupted_after_row

    from tuning.cli import main

    target, results, plant = planted
    argv = ["run", "--backend", "keras_tuner:random", "--dataset", "iris", "--trials", "3"]
    argv += ["--max-epochs", "1", "--max-rows", "40", "--out", str(results)]
    with interrupted_after_row(0):  # stopped after its first trial: the next run resumes it
        assert main(argv) == 130
    assert (results / "iris_keras_tuner-random_s0/keras_tuner/oracle.json").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plant("iris_keras_tuner-random_s0/keras_tuner/trial_1", elsewhere)  # the next trial's
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "keras_tuner/trial_1 is a symbolic link" in err and "Traceback" not in err
    assert list(elsewhere.iterdir()) == []


def test_a_library_save_goes_through_no_name_that_could_be_planted(planted) -> None:
    """Found by a hostile review: the library's file was written at ``.tmp<pid>.NAME``, a name
    a link could be planted at; it is now written in a new folder of an unknowable name."""
    import os

    target, results, plant = planted
    plant(f".tmp{os.getpid()}.best_model.keras")
    written = replace_with(results / "best_model.keras", lambda t: t.write_text("model"))
    assert written.read_text() == "model" and not written.is_symlink()
    _untouched(target)
    assert sorted(p.name for p in results.iterdir()) == [
        f".tmp{os.getpid()}.best_model.keras",  # the planted link, left as it was
        "best_model.keras",
    ]


@pytest.mark.parametrize("sidecar", ["optuna.db-journal", "optuna.db-wal", "optuna.db-shm"])
def test_sqlites_own_files_beside_optunas_database_are_checked_for_links(planted, sidecar):
    from tuning.search.optuna_search import OptunaBackend

    target, results, plant = planted
    plant(sidecar)
    with pytest.raises(LinkRefused, match=f"{sidecar} is a symbolic link"):
        OptunaBackend()._storage(results)
    _untouched(target)
