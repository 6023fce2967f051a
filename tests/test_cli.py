"""The command line: listings, one-line errors with exit code 2, and a real run + compare."""

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import keras
import pandas as pd
import pytest

from tuning.analysis.compare import LEADERBOARD_COLUMNS, leaderboard_columns
from tuning.cli import main
from tuning.cli.commands import study_config
from tuning.cli.parser import build_parser
from tuning.core.config import StudyConfig

REPO = Path(__file__).resolve().parents[1]
TINY = ["--trials", "2", "--max-epochs", "2", "--max-rows", "200", "--seed", "3"]


def test_backends_and_datasets_are_listed(capsys):
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines if not line[0].isspace()]
    # each algorithm's parallel mode, or that it has none, under it
    modes = [line.strip() for line in lines if line[0].isspace()]
    assert len(modes) == len([n for n in names if ":" in n or n == "random"])
    assert all(mode.startswith("--workers N: ") for mode in modes)
    assert "--workers N: no parallel mode (one trial at a time)" in modes  # sklearn:halving
    assert [name for name in names if ":" not in name] == [
        "hyperopt",
        "keras_tuner",
        "optuna",
        "random",
        "sklearn",
        "skopt",
    ]
    assert names == sorted(names) and "optuna:cmaes" in names  # (tests/test_algorithms.py)
    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "california",
        "diabetes",
        "digits",
        "wine",
        "breast_cancer",
        "iris",
        "fashion_mnist",
        "csv:PATH",
    ]
    # each task states its loss and its size
    assert lines[0].split()[1:3] == ["regression", "MSE"] and "20,640 rows" in lines[0]
    assert "cross-entropy" in lines[3] and "178 rows x 13 features, 3 classes" in lines[3]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "--backend", "nevergrad", "--dataset", "diabetes"],
            "backend 'nevergrad' is unknown",
        ),
        (["run", "--backend", "optuna", "--dataset", "mnist"], "dataset 'mnist' is unknown"),
        (["run", "--dataset", "diabetes"], "--backend is required"),
        (["run", "--backend", "optuna", "--trials", "0"], "trials must be an integer >= 1"),
        (["run", "--backend", "optuna", "--max-epochs", "-3"], "max_epochs must be"),
        (
            ["run", "--backend", "optuna", "--dataset", "csv:/no/such.csv", "--target", "y"],
            "does not exist",
        ),
        (["run", "--backend", "optuna", "--cv", "3"], "does not take options \\['cv'\\]"),
        (["run", "--backend", "optuna", "--budget-epochs", "-5"], "budget_epochs must be"),
        (["run", "--backend", "optuna", "--budget-seconds", "0"], "budget_seconds must be"),
        (
            ["run", "--backend", "optuna", "--dataset", "california", "--target", "foo"],
            "--target 'foo': dataset 'california' has its own target",
        ),
        (
            ["benchmark", "--backends", "random", "--dataset", "digits", "--target", "x"],
            "--target 'x': dataset 'digits' has its own target",
        ),
        (["run", "--backend", "optuna:bohb"], "backend 'optuna:bohb' is unknown"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not list(tmp_path.rglob("trials.csv"))  # refused before any study started


def test_study_file_with_unknown_key_is_rejected(tmp_path, capsys):
    config = tmp_path / "study.toml"
    config.write_text('backend = "optuna"\nepochs = 10\n')
    assert main(["run", "--config", str(config)]) == 2
    assert "unknown keys ['epochs']" in capsys.readouterr().err


def test_study_file_space_with_inverted_range_is_rejected(tmp_path, capsys):
    config = tmp_path / "study.toml"
    config.write_text(
        'backend = "optuna"\ndataset = "diabetes"\n'
        '[space.learning_rate]\ntype = "float"\nlow = 0.1\nhigh = 0.01\n'
    )
    assert main(["run", "--config", str(config), "--out", str(tmp_path)]) == 2
    assert "learning_rate: low (0.1) must be < high (0.01)" in capsys.readouterr().err


def test_run_then_compare(tmp_path, capsys):
    out = tmp_path / "results"
    for backend in ("optuna", "hyperopt"):
        assert (
            main(["run", "--backend", backend, "--dataset", "diabetes", *TINY, "--out", str(out)])
            == 0
        )
    printed = capsys.readouterr().out
    assert "diabetes_optuna_s3: best val_loss" in printed
    assert main(["compare", str(out)]) == 0
    table = capsys.readouterr().out
    assert "hyperopt" in table and "optuna" in table and "report.md" in table
    board = pd.read_csv(out / "leaderboard.csv")
    book = leaderboard_columns(["n_hidden", "n_neurons", "learning_rate"])
    assert list(board.columns) == book and book[-len(LEADERBOARD_COLUMNS) :] == list(
        LEADERBOARD_COLUMNS
    )
    assert len(board) == 2 and set(board["trials"]) == {2} and set(board["budget"]) == {"trials=2"}
    assert len(pd.read_csv(out / "leaderboard_by_backend.csv")) == 2
    assert (out / "figures" / "best_so_far_epochs.png").stat().st_size > 5_000


def test_compare_of_an_empty_folder_says_so(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "no finished study" in capsys.readouterr().err


def test_study_script_gives_the_same_trials_as_the_cli(tmp_path):
    script_out, cli_out = tmp_path / "script", tmp_path / "cli"
    env_args = ["--dataset", "diabetes", *TINY]
    subprocess.run(
        [sys.executable, "studies/california_skopt.py", *env_args, "--out", str(script_out)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tuning.cli",
            "run",
            "--backend",
            "skopt",
            *env_args,
            "--out",
            str(cli_out),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    columns = ["trial", "status", "n_hidden", "n_neurons", "learning_rate", "val_loss", "epochs"]
    script_rows = pd.read_csv(script_out / "diabetes_skopt_s3" / "trials.csv")[columns]
    cli_rows = pd.read_csv(cli_out / "diabetes_skopt_s3" / "trials.csv")[columns]
    pd.testing.assert_frame_equal(script_rows, cli_rows)


@pytest.mark.parametrize(
    "backend", ["sklearn", "keras_tuner", "optuna", "hyperopt", "skopt", "random"]
)
def test_every_backend_has_a_study_script(backend):
    script = runpy.run_path(str(REPO / "studies" / f"california_{backend}.py"))
    args = build_parser().parse_args(["run", *script["STUDY"].split()])
    assert (args.backend, args.dataset, args.max_epochs) == (backend, "california", 100)


def test_the_benchmark_study_script_is_the_grid_of_the_readme():
    script = runpy.run_path(str(REPO / "studies" / "california_benchmark.py"))
    args = build_parser().parse_args(script["STUDY"].split())
    assert args.command == "benchmark" and args.backends is None  # every installed backend
    assert (args.seeds, args.budget_epochs, args.max_epochs) == ([0, 1, 2], 300, 50)


def test_space_parameter_the_factory_does_not_take_is_rejected(tmp_path, capsys):
    config = tmp_path / "study.toml"
    config.write_text(
        'backend = "optuna"\ndataset = "diabetes"\n'
        '[space.dropout]\ntype = "float"\nlow = 0.0\nhigh = 0.5\n'
    )
    assert main(["run", "--config", str(config), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        "space parameter 'dropout' is not an argument of model tuning.evaluation.keras.model:build_model"
        in err
    )
    assert "'learning_rate'" in err and "'input_shape'" not in err


def test_study_file_with_a_searched_activation_runs(tmp_path):
    config = tmp_path / "study.toml"
    config.write_text(
        'backend = "hyperopt"\ndataset = "diabetes"\ntrials = 2\nmax_epochs = 2\n'
        f'out = "{tmp_path}"\n'
        '[space.n_neurons]\ntype = "int"\nlow = 4\nhigh = 8\n'
        '[space.learning_rate]\ntype = "float"\nlow = 1e-3\nhigh = 1e-2\nlog = true\n'
        '[space.activation]\ntype = "categorical"\nchoices = ["relu", "tanh"]\n'
        '[model_options]\noptimizer = "adam"\n'
    )
    assert main(["run", "--config", str(config)]) == 0
    rows = pd.read_csv(tmp_path / "diabetes_hyperopt_s0" / "trials.csv")
    assert len(rows) == 2
    assert set(rows["params"].map(lambda p: json.loads(p)["activation"])) <= {"relu", "tanh"}
    # not searched (the factory's default was used): no column; the searched ones have theirs
    assert "n_hidden" not in rows and set(rows["activation"]) <= {"relu", "tanh"}
    assert list(rows.columns[6:9]) == ["n_neurons", "learning_rate", "activation"]
    model = keras.models.load_model(tmp_path / "diabetes_hyperopt_s0" / "best_model.keras")
    assert isinstance(model.optimizer, keras.optimizers.Adam)  # the fixed model option


def test_command_line_options_add_to_the_study_files_backend_options(tmp_path):
    config = tmp_path / "study.toml"
    config.write_text('backend = "sklearn"\ntrials = 7\n[backend_options]\noption_from_file = 1\n')
    args = build_parser().parse_args(["run", "--config", str(config), "--cv", "holdout"])
    merged = study_config(args, args.backend)
    assert isinstance(merged, StudyConfig) and merged.trials == 7
    assert merged.backend_options == {"option_from_file": 1, "cv": "holdout"}


@pytest.mark.parametrize(
    ("study_file", "message"),
    [
        (
            '[model_options]\noptimiser = "adam"\n',
            "model_options key 'optimiser' is not an argument",
        ),
        (
            "[model_options]\nn_hidden = 2\n",
            r"model_options \['n_hidden'\] are also searched in the space",
        ),
        ("seed = 1.5\n", r"^error: seed must be an integer from 0 to 2,147,483,646 .*, got 1\.5$"),
        ("seed = -1\n", r"^error: seed must be an integer from 0 to 2,147,483,646 .*, got -1$"),
        ("seed = 4294967295\n", r"^error: seed must be an integer from 0 .*, got 4294967295$"),
        ("space = 3\n", r"^error: space must be a table \(\[space\] in a study file\), got 3$"),
        ("backend_options = 'cv'\n", r"^error: backend_options must be a table"),
        ("target = 4\n", r"^error: target must be a string, got 4$"),
        (
            '[space.n_hidden]\ntype = "int"\nlow = "a"\nhigh = 3\n',
            r"^error: n_hidden\.low must be an integer, got 'a'$",
        ),
        ("[space]\nn_hidden = 2\n", r"^error: space\.n_hidden must be a table \(type, low, high"),
        (
            '[space.learning_rate]\ntype = "float"\nlow = 0.0\nhigh = 0.1\nlog = true\n',
            r"^error: learning_rate: a log range needs low > 0, got low=0\.0$",
        ),
    ],
)
def test_a_bad_study_file_gets_one_line_naming_the_field_before_anything_runs(
    tmp_path, capsys, study_file, message
):
    config = tmp_path / "study.toml"
    config.write_text('backend = "optuna"\ndataset = "diabetes"\n' + study_file)
    assert main(["run", "--config", str(config), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(message, err) and "\n" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["study.toml"]  # refused before anything ran


@pytest.mark.parametrize("command", ["run", "benchmark"])
def test_an_output_folder_that_cannot_be_created_is_refused_before_anything_runs(
    tmp_path, capsys, command
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "results"
    backend = ["--backend", "random"] if command == "run" else ["--backends", "random"]
    assert main([command, *backend, "--dataset", "diabetes", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}: cannot create {out}") and err.count("\n") == 1
    assert err.endswith("(Not a directory); choose another folder\n")


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("", "y", r"data\.csv is empty"),
        ("x,y\n1,2\n3,4\n", "price", r"--target 'price' is not a column of .*data\.csv"),
        ("x,z,y\n1,a,2\n3,b,4\n", "y", r"feature columns \['z'\] are not numeric"),
        ("x,y\n1,2\nnan,3\n", "y", r"\['x'\] hold missing, NaN or infinite"),
        ("x,y\ninf,2\n1,3\n", "y", "NaN or infinite"),
    ],
)
def test_a_bad_csv_gets_one_line_and_exit_code_2(tmp_path, capsys, text, target, message):
    path = tmp_path / "data.csv"
    path.write_text(text)
    argv = ["run", "--backend", "random", "--dataset", f"csv:{path}", "--target", target]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err), err


def test_a_study_whose_every_trial_diverges_ends_with_a_message_and_exit_code_1(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(
        'backend = "random"\ndataset = "diabetes"\ntrials = 2\nmax_epochs = 2\n'
        "[model_options]\nlearning_rate = 1e6\n"
        '[space.n_neurons]\ntype = "int"\nlow = 30\nhigh = 40\n'
    )
    assert main(["run", "--config", str(study), "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "no trial completed: no model to retrain; see the status and error columns" in out
    trials = pd.read_csv(tmp_path / "diabetes_random_s0" / "trials.csv")
    assert (trials["status"] == "failed").all() and len(trials) == 2
    assert trials["error"].str.contains("diverged").all()
