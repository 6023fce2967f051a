"""The command line's grammar: every command, option and its help (`tuning --help`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tuning.core.config import KERAS_BACKENDS, TRAINERS
from tuning.evaluation.keras.environment import DEFAULT_KERAS_BACKEND

DESCRIPTION = "The command line: ``tuning run | benchmark | compare | demo | backends | datasets``."


def _add_study_options(parser: argparse.ArgumentParser, *, seed: bool = True) -> None:
    parser.add_argument("--dataset", help="a name from `tuning datasets`, or csv:PATH")
    parser.add_argument("--target", help="target column of a csv:PATH dataset")
    parser.add_argument(
        "--model",
        help="the Keras model factory, package.module:function or path/to/file.py:function "
        "(default: the book's tuning.build_model); its space goes in a study file's [space]",
    )
    parser.add_argument("--task", choices=("regression", "classification"))
    parser.add_argument(
        "--objective",
        metavar="tabular:TABLE",
        help="look every trial up in a table built by `tuning tabulate --out TABLE` instead of "
        "training it (its dataset, model and protocol are the table's)",
    )
    parser.add_argument(
        "--trials",
        "--budget-trials",
        dest="trials",
        type=int,
        help="budget in trials per study (default 20 when no budget is given)",
    )
    parser.add_argument(
        "--budget-epochs", type=int, help="budget in training epochs per study, all trials summed"
    )
    parser.add_argument(
        "--budget-seconds", type=float, help="budget in wall seconds of search per study"
    )
    parser.add_argument("--max-epochs", type=int, help="epoch cap of one trial (default 100)")
    parser.add_argument("--batch-size", type=int, help="default 32")
    parser.add_argument("--patience", type=int, help="early-stopping patience (default 10)")
    if seed:
        parser.add_argument("--seed", type=int, help="default 0")
    parser.add_argument("--max-rows", type=int, help="use only the first N rows of each split")
    parser.add_argument(
        "--keras-backend",
        choices=KERAS_BACKENDS,
        help=f"Keras backend that trains the trials (default: KERAS_BACKEND, else "
        f"{DEFAULT_KERAS_BACKEND})",
    )
    parser.add_argument(
        "--trainer",
        choices=TRAINERS,
        help="what trains each model: compiled (one XLA program per epoch; the default on JAX) "
        "or keras (keras.Model.fit; the only one on TensorFlow)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start over: delete what earlier runs of the study left (by default an unfinished "
        "study is resumed and a finished one is not run again)",
    )


def _add_grid_options(parser: argparse.ArgumentParser, *, out: str, seeds: list[int]) -> None:
    parser.add_argument(
        "--backends",
        type=_name_list,
        help="comma-separated names or library:algorithm (default: each library's main "
        "algorithm: the bare names of `tuning backends`)",
    )
    parser.add_argument(
        "--seeds",
        type=_seed_list,
        default=seeds,
        help=f"e.g. 0,1,2 or 0-4 (default {','.join(map(str, seeds))})",
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="studies at a time (default: cores)"
    )
    parser.add_argument(
        "--scheduler",
        help="run the studies on Dask: local:N (a LocalCluster of N worker processes here) or "
        "tcp://HOST:8786 (a running cluster; --out must then be a folder every worker sees)",
    )
    parser.add_argument(
        "--workers",
        type=_count_list,
        help="trials at once in each study, each library through its own parallel mode: one "
        "count, or several (1,4,16: a study of each) to see which library degrades least "
        "(default 1)",
    )
    parser.add_argument("--config", type=Path, help="a study TOML file for every study")
    parser.add_argument("--out", default=out, help=f"results folder (default {out})")
    _add_study_options(parser, seed=False)


def build_parser() -> argparse.ArgumentParser:
    from tuning.analysis.bayes_pairs import (
        ROPE,  # (numpy and pandas: only when the parser is built)
    )

    parser = argparse.ArgumentParser(prog="tuning", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every trial")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "backends", help="list the installed search algorithms, their libraries and versions"
    )
    sub.add_parser("datasets", help="list the datasets")

    run = sub.add_parser("run", help="run one study: one backend, one dataset, one seed")
    run.add_argument("--backend", help="a name from `tuning backends`")
    run.add_argument("--config", type=Path, help="a study TOML file (options override it)")
    run.add_argument("--out", help="results folder (default results)")
    run.add_argument("--study", help="study name (default DATASET_BACKEND_sSEED)")
    run.add_argument(
        "--workers",
        type=int,
        help="trials at once, through the library's own parallel mode (default 1; "
        "`tuning backends` says each one's)",
    )
    run.add_argument("--cv", help="sklearn backend: number of folds (default 3) or 'holdout'")
    run.add_argument(
        "--scheduler",
        help="sklearn backend: fit the folds on a Dask cluster, local:N or tcp://HOST:8786",
    )
    run.add_argument(
        "--storage",
        help="optuna backend: an RDB URL (postgresql://USER@HOST/DB, sqlite:///PATH) that several "
        "`tuning run` processes with the same --study share, each adding new trials",
    )
    _add_study_options(run)

    demo = sub.add_parser(
        "demo",
        help="a small benchmark: every backend, one seed, the same epoch budget; then compare",
    )
    _add_grid_options(demo, out="results/demo", seeds=[0])
    demo.set_defaults(
        dataset="california",
        budget_epochs=100,
        max_epochs=20,
        max_rows=3000,
        rope=ROPE,
        race=False,
    )

    bench = sub.add_parser(
        "benchmark",
        help="a grid of studies: every task x backend x seed, in parallel worker processes",
    )
    _add_grid_options(bench, out="results/benchmark", seeds=[0, 1, 2])
    _add_mlflow_option(bench, "log each study and its trials to this MLflow tracking URI, live")
    bench.add_argument(
        "--race",
        action="store_true",
        help="run the seeds in rounds and drop, after each, the backends shown worse than the "
        "best (F-Race); --seeds is the most seeds any backend gets",
    )
    bench.add_argument(
        "--race-first",
        type=int,
        default=5,
        help="seeds of the race's first round, before any backend is dropped (default 5)",
    )
    bench.add_argument(
        "--race-correction",
        choices=("nemenyi", "holm", "none"),
        default="nemenyi",
        help="the race's elimination after Friedman: a backend whose mean rank exceeds the "
        "best's by Nemenyi's critical difference (default), Holm across Conover's comparisons "
        "against the best, or none (irace's rule); their measured error rates: "
        "docs/comparison.md, racing",
    )
    bench.add_argument(
        "--suite",
        type=Path,
        help="a suite file (suites/*.toml) listing the tasks and their settings, instead of "
        "--dataset; options given here override the suite's",
    )

    tab = sub.add_parser(
        "tabulate",
        help="train every configuration of a grid, each seed, once: a table of learning curves",
    )
    tab.add_argument("--dataset", default="california", help="a name from `tuning datasets`")
    tab.add_argument("--model", help="package.module:function (default: tuning.build_model)")
    tab.add_argument(
        "--grid", type=Path, help="a TOML file, [grid] NAME = [values] (default: the book's)"
    )
    tab.add_argument(
        "--seeds",
        type=_seed_list,
        help="the table's training-noise draws, the unit of replication of any claim about the "
        "task: default 0-9 where one configuration trains on at most 100,000 row-epochs (cheap), "
        "else 0-2",
    )
    tab.add_argument("--max-epochs", type=int, default=100, help="default 100")
    tab.add_argument("--patience", type=int, default=10, help="default 10")
    tab.add_argument("--batch-size", type=int, default=32, help="default 32")
    tab.add_argument("--max-rows", type=int, help="use only the first N rows of each split")
    tab.add_argument("--out", type=Path, required=True, help="the table's folder")

    certify = sub.add_parser(
        "certify",
        help="the sim-to-real certificate of a tabular comparison: its studies trained for "
        "real (proposals snapped to the table's grid), and how far the verdicts agree",
    )
    certify.add_argument("tabular", type=Path, help="the folder of the tabular studies")
    certify.add_argument("--seeds", type=_seed_list, default=list(range(10)), help="default 0-9")
    certify.add_argument("--out", required=True, help="the folder of the real studies")
    certify.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="studies at a time (default: cores)"
    )

    compare = sub.add_parser(
        "compare", help="leaderboards, figures and report.md of a results folder"
    )
    compare.add_argument("out", type=Path)
    compare.add_argument(
        "--target",
        type=float,
        help="validation loss for 'epochs to target' (default: random search's median)",
    )
    compare.add_argument(
        "--rope",
        type=float,
        default=ROPE,
        help="region of practical equivalence of the Bayesian pairs, in normalized-score units "
        f"(1 = random search's distance from the best; default {ROPE:g})",
    )
    _add_mlflow_option(compare, "log the folder's studies and trials to this MLflow tracking URI")

    export = sub.add_parser(
        "export", help="a results folder's studies, every library's, into another tool's store"
    )
    export.add_argument("tool", choices=["optuna"], help="optuna: an Optuna storage")
    export.add_argument("out", type=Path, help="the results folder")
    export.add_argument(
        "--storage",
        required=True,
        help="the Optuna storage's database URL (sqlite:///studies.db, postgresql://...); "
        "then: optuna-dashboard URL",
    )
    return parser


def _add_mlflow_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--mlflow",
        nargs="?",
        const="",
        metavar="URI",
        help=help_text + " (given alone: a local store, OUT/mlflow/mlflow.db); needs the mlflow "
        "extra: pip install 'tuning[mlflow]'",
    )


def _name_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


# More seeds than this in one list is a typo, not a design: 10,000 seeds of one backend on one task
# are already more studies than any grid here finishes; counting the range comes before making it.
MAX_SEEDS = 10_000


def _seed_list(text: str) -> list[int]:
    """``0,1,2`` or ``0-4`` (both ends included), or a mix: ``0-2,7``; at most `MAX_SEEDS`
    seeds, each at most `tuning.core.config.MAX_SEED`, counted before any list is made."""
    from tuning.core.config import MAX_SEED

    ranges: list[tuple[int, int]] = []
    try:
        for part in _name_list(text):
            low, _, high = part.partition("-")
            ranges.append((int(low), int(high or low)))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of seeds; write e.g. 0,1,2 or 0-4"
        ) from None
    count = sum(max(0, high - low + 1) for low, high in ranges)
    if count > MAX_SEEDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} names {count:,} seeds; at most {MAX_SEEDS:,} (a grid of more studies "
            "than that would not finish): give a shorter range"
        )
    if any(high > MAX_SEED for _, high in ranges):
        raise argparse.ArgumentTypeError(
            f"{text!r} names a seed above {MAX_SEED:,}, the largest every library accepts"
        )
    if not count:
        raise argparse.ArgumentTypeError(f"{text!r} names no seed; write e.g. 0-4, not 4-0")
    return [seed for low, high in ranges for seed in range(low, high + 1)]


def _count_list(text: str) -> list[int]:
    """``4`` or ``1,4,16``: worker counts, each from 1 to `tuning.core.config.MAX_WORKERS`,
    none twice."""
    from tuning.core.config import MAX_WORKERS

    try:
        counts = [int(part) for part in _name_list(text)]
    except ValueError:
        counts = []
    if not counts or any(not 1 <= c <= MAX_WORKERS for c in counts):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of worker counts; write e.g. 4 or 1,4,16 (each 1 to "
            f"{MAX_WORKERS})"
        )
    if len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"{text!r} names a worker count twice")
    return counts
