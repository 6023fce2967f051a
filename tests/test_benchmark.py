"""A real, tiny benchmark grid (2 backends x 2 seeds, in worker processes), then its comparison."""

import contextlib
import io
import itertools
import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuning.analysis.aggregate import by_backend
from tuning.analysis.families import seeds_for_holm
from tuning.cli import main
from tuning.cli.parser import _seed_list
from tuning.core.config import StudyConfig, StudyError
from tuning.core.results import read_trials
from tuning.run.grid import StudyState, plan_grid
from tuning.run.progress import LiveDisplay, LogDisplay, eta_seconds, headline

BACKENDS, SEEDS, BUDGET = ("random", "hyperopt"), (0, 1), 9
GRID = [
    "benchmark",
    "--dataset",
    "california",
    "--backends",
    ",".join(BACKENDS),
    "--seeds",
    ",".join(map(str, SEEDS)),
    "--max-rows",
    "300",
    "--max-epochs",
    "3",
    "--patience",
    "2",
    "--budget-epochs",
    str(BUDGET),
    "--jobs",
    "2",
]
STUDIES = [f"california_{b}_s{s}" for b in BACKENDS for s in SEEDS]


@pytest.fixture(scope="module")
def grid(tmp_path_factory, california):
    """Run the grid once through the CLI; return its folder and what the CLI printed."""
    out = tmp_path_factory.mktemp("grid")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([*GRID, "--out", str(out)])
    return out, code, stdout.getvalue(), stderr.getvalue()


def test_every_study_of_the_grid_runs_to_its_epoch_budget(grid):
    out, code, printed, progress = grid
    assert code == 0, progress
    assert "4 studies: 4 run, 0 finished before, 0 failed" in printed
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(STUDIES)
    for study in STUDIES:
        rows = read_trials(out / study)
        summary = json.loads((out / study / "summary.json").read_text())
        assert rows["epochs"].sum() == BUDGET and rows["cum_epochs"].iloc[-1] == BUDGET
        assert summary["budget"] == {"trials": None, "epochs": BUDGET, "seconds": None}
        assert "test_loss" in summary
        # the worker's own log holds its records; the progress display says it ended
        assert "INFO tuning.core.recorder: trial 0" in (out / study / "study.log").read_text()
        assert f"{study} done: best val_loss" in progress


def test_a_grid_run_again_skips_the_finished_studies(grid, capsys):
    out = grid[0]
    before = {s: (out / s / "trials.csv").stat().st_mtime_ns for s in STUDIES}
    assert main([*GRID, "--out", str(out)]) == 0
    assert "4 studies: 0 run, 4 finished before, 0 failed" in capsys.readouterr().out
    assert before == {s: (out / s / "trials.csv").stat().st_mtime_ns for s in STUDIES}


def test_a_grid_with_other_settings_refuses_to_mix_into_finished_studies(grid, capsys):
    out = grid[0]
    args = [*GRID, "--out", str(out)]
    args[args.index("--budget-epochs") + 1] = "12"
    assert main(args) == 1  # each study named and failed on its own
    err = capsys.readouterr().err
    for study in STUDIES:
        assert f"failed: {study}: {out / study} holds a finished study run with other" in err
    assert "(budget_epochs: 9 -> 12)" in err
    assert "move that folder away" in err
    assert "--fresh" not in err  # a grid's --fresh would empty every finished study


def test_a_corrupt_summary_costs_only_its_study(grid, capsys):
    out = grid[0]
    victim = out / STUDIES[2]
    others = {s: (out / s / "summary.json").read_text() for s in STUDIES if s != STUDIES[2]}
    (victim / "summary.json").write_text('{"study": "trunc')  # torn by hand
    assert main([*GRID, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 studies: 1 run, 3 finished before, 0 failed" in printed
    # the unreadable summary is kept aside, and the study finished again from its rows alone
    assert (victim / "summary.json.unreadable").read_text() == '{"study": "trunc'
    assert json.loads((victim / "summary.json").read_text())["trials_from_earlier_runs"] >= 1
    assert read_trials(victim)["epochs"].sum() == BUDGET  # no trial trained again
    assert others == {s: (out / s / "summary.json").read_text() for s in others}


def test_an_unfinished_study_is_run_again_and_only_it(grid, capsys):
    out = grid[0]
    victim = out / STUDIES[1]
    (victim / "summary.json").unlink()  # as if the study had been stopped before its end
    assert main([*GRID, "--out", str(out)]) == 0
    assert "4 studies: 1 run, 3 finished before, 0 failed" in capsys.readouterr().out
    assert read_trials(victim)["epochs"].sum() == BUDGET
    assert (victim / "summary.json").exists()


def exact_wilcoxon_p(diffs):
    """Two-sided exact signed-rank p-value by enumerating every sign pattern (no ties, no 0)."""
    ranks = stats.rankdata(np.abs(diffs))
    observed = ranks[np.asarray(diffs) > 0].sum()
    total = ranks.sum()
    sums = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=len(ranks))
    ]
    extreme = min(observed, total - observed)
    return min(1.0, 2 * np.mean([s <= extreme for s in sums]))


@pytest.fixture(scope="module")
def compared(grid):
    out = grid[0]
    assert main(["compare", str(out)]) == 0
    return out


def test_the_aggregated_leaderboard_equals_a_hand_computation(compared):
    board = pd.read_csv(compared / "leaderboard_by_backend.csv").set_index("backend")
    summaries = {s: json.loads((compared / s / "summary.json").read_text()) for s in STUDIES}
    trials = {s: read_trials(compared / s) for s in STUDIES}
    test = {
        (b, seed): summaries[f"california_{b}_s{seed}"]["test_loss"]
        for b in BACKENDS
        for seed in SEEDS
    }
    val = {
        (b, seed): trials[f"california_{b}_s{seed}"].query("status == 'complete'")["val_loss"].min()
        for b in BACKENDS
        for seed in SEEDS
    }
    target = float(np.median([val[("random", s)] for s in SEEDS]))
    for backend in BACKENDS:
        row = board.loc[backend]
        losses = [test[(backend, s)] for s in SEEDS]
        mean, sd = sum(losses) / 2, math.sqrt(sum((x - sum(losses) / 2) ** 2 for x in losses))
        half = 12.706204736 * sd / math.sqrt(2)  # t(0.975, 1 degree of freedom)
        assert row["n_seeds"] == 2
        assert row["test_loss_mean"] == pytest.approx(mean)
        assert row["test_loss_std"] == pytest.approx(sd)
        assert (row["test_loss_ci_low"], row["test_loss_ci_high"]) == pytest.approx(
            (mean - half, mean + half)
        )
        assert row["test_loss_median"] == pytest.approx(mean)
        assert row["best_val_loss_mean"] == pytest.approx(
            np.mean([val[(backend, s)] for s in SEEDS])
        )
        other = BACKENDS[1 - BACKENDS.index(backend)]
        wins = sum(test[(backend, s)] < test[(other, s)] for s in SEEDS)
        assert row["wins"] == wins
        assert row["mean_rank"] == pytest.approx(
            np.mean([1 if test[(backend, s)] < test[(other, s)] else 2 for s in SEEDS])
        )
        assert row["epochs_mean"] == BUDGET
        assert row["trials_mean"] == pytest.approx(
            np.mean([len(trials[f"california_{backend}_s{s}"]) for s in SEEDS])
        )
        assert row["target_val_loss"] == pytest.approx(target)
        to_target = []
        for s in SEEDS:
            rows = trials[f"california_{backend}_s{s}"]
            hit = rows[(rows["status"] == "complete") & (rows["val_loss"] <= target)]
            if len(hit):
                to_target.append(hit["cum_epochs"].iloc[0])
        assert row["reached_target"] == len(to_target)
        if to_target:
            assert row["epochs_to_target_mean"] == pytest.approx(np.mean(to_target))
    diffs = [test[("hyperopt", s)] - test[("random", s)] for s in SEEDS]
    assert board.loc["hyperopt", "wilcoxon_p"] == pytest.approx(exact_wilcoxon_p(diffs))
    assert board.loc["hyperopt", "vs_random"] == "not significant"  # 2 seeds: p >= 0.5
    assert board.loc["hyperopt", "wilcoxon_p_lower"] + board.loc[
        "hyperopt", "wilcoxon_p_higher"
    ] == pytest.approx(1.25)  # P(W+ <= w) + P(W+ >= w) = 1 + P(W+ = w): each w has 1/4
    assert board.loc["random", "vs_random"] == "baseline"


def test_every_backend_beats_or_loses_on_ranks_of_its_own_seed():
    studies = pd.DataFrame(
        {
            "study": ["a0", "a1", "b0", "b1"],
            "dataset": "d",
            "backend": ["a", "a", "random", "random"],
            "seed": [0, 1, 0, 1],
            "test_loss": [1.0, 3.0, 2.0, 2.0],
            "best_val_loss": [1.0, 3.0, 2.0, 2.0],
            "epochs": 10,
            "seconds": 1.0,
            "trials": 2,
        }
    )
    trials = pd.DataFrame(
        {
            "study": ["a0", "a1", "b0", "b1"],
            "trial": 0,
            "status": "complete",
            "val_loss": [1.0, 3.0, 2.0, 2.0],
            "cum_epochs": [4, 5, 6, 7],
        }
    )
    board = by_backend(studies, trials).set_index("backend")
    assert board.loc["a", "wins"] == 1 and board.loc["random", "wins"] == 1
    assert board.loc["a", "mean_rank"] == 1.5
    # target: random's median 2.0; a reached it in seed 0 only (after 4 epochs)
    assert board.loc["a", "reached_target"] == 1 and board.loc["a", "epochs_to_target_mean"] == 4


def test_figures_are_valid_pngs_of_real_size(compared):
    names = ["best_so_far_epochs", "best_so_far_seconds", "test_loss", "hyperparameters"]
    for name in names:
        path = compared / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000
        height, width = matplotlib.image.imread(path).shape[:2]
        assert height > 300 and width > 400


def test_the_report_names_every_backend_and_links_existing_figures(compared):
    report = (compared / "report.md").read_text()
    for backend in BACKENDS:
        assert f"| {backend} |" in report
    for study in STUDIES:
        assert study in report
    assert "`epochs=9` per study, the same for every study" in report
    assert "the smallest p-value the exact test can give is 0.5" in report
    # two seeds, and every backend but random tested against it: one family, Holm
    family = len(BACKENDS) - 1
    assert f"The tests against random search form one family of {family} across" in report
    assert f"{seeds_for_holm(family)} seeds or more are needed" in report
    assert "## Families of tests" in report
    links = [
        line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")
    ]
    assert all((compared / link).is_file() for link in links)
    assert sorted(Path(link).stem for link in links) == [
        "best_so_far_epochs",
        "best_so_far_seconds",
        "exploration",
        "hyperparameters",
        "importance",
        "test_loss",
    ]
    assert "## Best model overall" in report and "best_model.keras" in report


def test_progress_headline_and_eta_from_the_studies_tables(tmp_path):
    base = StudyConfig(backend="random", budget_epochs=10, out=str(tmp_path))
    studies = [StudyState(c) for c in plan_grid(base, ["random", "optuna"], [0])]
    studies[0].state = "done"
    studies[1].state = "running"
    studies[1].study_dir.mkdir(parents=True)
    (studies[1].study_dir / "trials.csv").write_text(
        "study,backend,dataset,seed,trial,status,n_hidden,n_neurons,learning_rate,val_loss,"
        "epochs,fit_seconds,cum_epochs,cum_seconds,params,error\n"
        "s,optuna,california,0,0,complete,1,2,0.01,0.5,5,1.0,5,1.2,{},\n"
    )
    # one study done, the other half-way: three quarters of the grid in 30 s, 10 s to go
    assert eta_seconds(studies, 30.0) == pytest.approx(10.0)
    line = headline(studies, 30.0)
    assert line == "studies 1/2 done, 1 running, elapsed 0:30, ETA 0:10"
    stream = io.StringIO()
    with LiveDisplay(stream) as live:
        live(studies, 30.0)
    shown = stream.getvalue()
    assert "optuna" in shown and "random" in shown and "0.5" in shown and "1/2 done" in shown
    lines = io.StringIO()
    with LogDisplay(lines) as plain:
        plain(studies, 30.0)
    assert "studies 1/2 done" in lines.getvalue()


def test_grid_plans_and_seed_lists():
    base = StudyConfig(backend="random", budget_epochs=10)
    names = [c.study for c in plan_grid(base, ["random", "optuna"], [0, 1])]
    assert names == [
        "california_random_s0",
        "california_random_s1",
        "california_optuna_s0",
        "california_optuna_s1",
    ]
    with pytest.raises(StudyError, match="--seeds lists a value twice"):
        plan_grid(base, ["random"], [0, 0])
    assert _seed_list("0-2,7") == [0, 1, 2, 7]


def test_benchmark_input_errors_are_one_line(capsys, tmp_path):
    assert main(["benchmark", "--backends", "random,nevergrad", "--out", str(tmp_path)]) == 2
    assert "--backends: ['nevergrad'] not installed" in capsys.readouterr().err
    assert main(["benchmark", "--dataset", "nope", "--out", str(tmp_path)]) == 2
    assert "dataset 'nope' is unknown" in capsys.readouterr().err
    assert main(["benchmark", "--jobs", "0", "--out", str(tmp_path)]) == 2
    assert "--jobs must be an integer >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["benchmark", "--seeds", "a-b"])
    assert "is not a list of seeds" in capsys.readouterr().err
    assert not Path(tmp_path).joinpath("california_random_s0").exists()
