"""Suites: the shipped suite files, their errors, and a suite of two tiny tasks end to end."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tuning.cli import main
from tuning.evaluation.data import check_dataset
from tuning.run.suite import load_suite, suite_configs

pytestmark = pytest.mark.one_keras_backend  # files and processes, not Keras
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["small.toml", "book.toml"])
def test_the_shipped_suites_name_known_tasks_and_valid_settings(name):
    suite = load_suite(REPO / "suites" / name)
    configs = suite_configs(suite, {"backend": "random", "out": "x"})
    assert len(configs) == len(suite.tasks) >= 2
    for config in configs:
        check_dataset(config.dataset)
        assert config.budget_epochs is not None  # every task has an epoch budget
    if name == "small.toml":  # every offline tabular task
        assert {c.dataset for c in configs} == {
            "california",
            "diabetes",
            "digits",
            "wine",
            "breast_cancer",
            "iris",
        }


def test_a_task_overrides_the_defaults_and_the_command_line_overrides_both(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        "[defaults]\nmax_epochs = 5\npatience = 2\n"
        "[tasks.wine]\nmax_epochs = 7\n"
        "[tasks.houses]\ndataset = 'diabetes'\n"
    )
    suite = load_suite(path)
    configs = suite_configs(suite, {"backend": "random", "out": "o"})
    assert [(c.dataset, c.max_epochs, c.patience) for c in configs] == [
        ("wine", 7, 2),
        ("diabetes", 5, 2),
    ]
    configs = suite_configs(suite, {"backend": "random", "out": "o", "max_epochs": 3})
    assert [c.max_epochs for c in configs] == [3, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tasks]\n", "lists no task"),
        ("color = 1\n[tasks.wine]\n", "unknown keys ['color']"),
        ("[tasks.wine]\nepochs = 3\n", "[tasks.wine] has unknown settings ['epochs']"),
        ("[tasks.wine]\nbackend = 'optuna'\n", "has unknown settings ['backend']"),
        ("[tasks.wine]\n[tasks.w2]\ndataset = 'wine'\n", "both use dataset 'wine'"),
        ("[tasks.wine]\nmax_epochs = 0\n", "task 'wine': max_epochs must be an integer >= 1"),
        ("[tasks.wine\n", "is not valid TOML"),
    ],
)
def test_a_bad_suite_is_refused_in_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code = main(["benchmark", "--suite", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_suite_and_dataset_exclude_each_other(tmp_path, capsys):
    code = main(
        [
            "benchmark",
            "--suite",
            str(REPO / "suites/small.toml"),
            "--dataset",
            "wine",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "--dataset and --suite exclude each other" in capsys.readouterr().err


def test_a_suite_of_two_tiny_tasks_end_to_end(tmp_path, capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        "[defaults]\nmax_epochs = 2\npatience = 1\nbudget_epochs = 4\nmax_rows = 60\n"
        "[tasks.wine]\n[tasks.diabetes]\n"
    )
    out = tmp_path / "out"
    args = ["--suite", str(suite), "--seeds", "0", "--backends", "random,optuna,hyperopt"]
    assert main(["benchmark", *args, "--out", str(out), "--jobs", "2"]) == 0
    assert "6 studies: 6 run" in capsys.readouterr().out
    # run again: every study finished, nothing runs
    assert main(["benchmark", *args, "--out", str(out), "--jobs", "2"]) == 0
    assert "0 run, 6 finished before" in capsys.readouterr().out

    assert main(["compare", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "leaderboard_suite.csv" in printed
    board = pd.read_csv(out / "leaderboard_suite.csv")
    assert sorted(board["backend"]) == ["hyperopt", "optuna", "random"]
    assert set(board["tasks"]) == {2} and set(board["blocks"]) == {2}
    # the mean ranks, recomputed from each study's summary: rank by test loss in each task
    summaries = [json.loads(p.read_text()) for p in out.rglob("summary.json")]
    losses = pd.DataFrame(
        [{"task": s["dataset"], "backend": s["backend"], "loss": s["test_loss"]} for s in summaries]
    ).pivot(index="task", columns="backend", values="loss")
    expected = losses.rank(axis=1).mean()
    assert board.set_index("backend")["mean_rank"].to_dict() == pytest.approx(expected.to_dict())
    assert board["mean_rank"].sum() == pytest.approx(6.0)  # ranks 1..3 in each block, averaged
    pairs = pd.read_csv(out / "bayesian_pairs.csv")
    probabilities = pairs[["p_a_better", "p_equivalent", "p_b_better"]].sum(axis=1)
    assert len(pairs) == 3 and probabilities.to_numpy() == pytest.approx(1.0)
    for name in ("critical_difference", "normalized_scores", "rank_over_budget"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert (
        report.index("## Suite verdict")
        < report.index("## Setup")
        < report.index("## Leaderboard: diabetes")
    )
    assert "Friedman test" in report


def test_the_live_display_has_a_row_per_task_and_backend_in_a_suite():
    from tuning.core.config import StudyConfig
    from tuning.run.grid import StudyState
    from tuning.run.progress import StudyProgress, backend_rows

    studies = [
        StudyState(StudyConfig(backend=b, dataset=d, seed=s, out="o"))
        for d in ("wine", "diabetes")
        for b in ("random", "optuna")
        for s in (0, 1)
    ]
    progress = {
        s.config.study: StudyProgress(trials=2, epochs=4, best_val_loss=0.5) for s in studies
    }
    rows = backend_rows(studies, progress)
    assert [(r["task"], r["backend"], r["studies"]) for r in rows] == [
        ("wine", "random", "0/2"),
        ("wine", "optuna", "0/2"),
        ("diabetes", "random", "0/2"),
        ("diabetes", "optuna", "0/2"),
    ]
    one_task = backend_rows(studies[:4], progress)
    assert "task" not in one_task[0] and len(one_task) == 2
