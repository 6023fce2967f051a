"""The command line: ``tuning run | benchmark | compare | demo | backends | datasets``."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tuning.core.signals import StopSignals, Terminated
from tuning.evaluation.keras.environment import (
    DEFAULT_KERAS_BACKEND,
    KERAS_BACKENDS,
    TRAINERS,
    use_keras_backend,
)

EXIT_USAGE = 2
EXIT_FAILED = 1  # a study ended without a model: every trial failed, or none finished
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)
BY_BACKEND_SHOWN = (
    "dataset",
    "backend",
    "n_seeds",
    "test_loss_mean",
    "test_loss_ci_low",
    "test_loss_ci_high",
    "best_val_loss_mean",
    "mean_rank",
    "wins",
    "epochs_mean",
    "seconds_mean",
    "wilcoxon_p",
    "vs_random",
)


def _quiet_frameworks() -> None:
    # Before TensorFlow is imported: keep its C++ start-up chatter out of the user's terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
    parser.add_argument("--config", type=Path, help="a study TOML file for every study")
    parser.add_argument("--out", default=out, help=f"results folder (default {out})")
    _add_study_options(parser, seed=False)


def build_parser() -> argparse.ArgumentParser:
    from tuning.analysis.bayes_pairs import (
        ROPE,  # (numpy and pandas: only when the parser is built)
    )

    parser = argparse.ArgumentParser(prog="tuning", description=__doc__)
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
    tab.add_argument("--seeds", type=_seed_list, default=[0, 1, 2], help="default 0-2")
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
    return parser


def _given_settings(args: argparse.Namespace, backend: str | None) -> dict[str, object]:
    """The study settings typed on the command line (None where an option was not given)."""
    from tuning.core.cluster import check_scheduler

    overrides: dict[str, object] = {
        "backend": backend,
        "dataset": args.dataset,
        "model": args.model,
        "objective": args.objective,
        "target": args.target,
        "task": args.task,
        "trials": args.trials,
        "budget_epochs": args.budget_epochs,
        "budget_seconds": args.budget_seconds,
        "max_epochs": args.max_epochs,
        "batch_size": args.batch_size,
        "patience": args.patience,
        "seed": getattr(args, "seed", None),
        "max_rows": args.max_rows,
        "keras_backend": args.keras_backend,
        "trainer": args.trainer,
        "out": getattr(args, "out", None),
        "study": getattr(args, "study", None),
    }
    backend_options: dict[str, object] = {}
    if getattr(args, "cv", None) is not None:
        backend_options["cv"] = int(args.cv) if args.cv.isdigit() else args.cv
    if getattr(args, "storage", None) is not None:
        backend_options["storage"] = args.storage
    if getattr(args, "scheduler", None) is not None and getattr(args, "command", "") == "run":
        backend_options["scheduler"] = check_scheduler(args.scheduler)
    if backend_options:
        overrides["backend_options"] = backend_options
    return overrides


def _study_config(args: argparse.Namespace, backend: str | None):
    from tuning.core.errors import StudyError
    from tuning.run.config import StudyConfig

    overrides = _given_settings(args, backend)
    if getattr(args, "config", None) is not None:
        return StudyConfig.from_toml(args.config, **overrides).resolve()
    if not backend:
        raise StudyError("--backend is required (or --config FILE); see `tuning backends`")
    return StudyConfig(**{k: v for k, v in overrides.items() if v is not None}).resolve()


def _tabulate(args: argparse.Namespace, stop: StopSignals) -> int:
    use_keras_backend("jax")  # vmapped epochs: JAX only
    from tuning.core.space import default_grid
    from tuning.evaluation.tabular.build import read_grid, tabulate
    from tuning.evaluation.tabular.table_file import TableSettings

    settings = TableSettings(
        dataset=args.dataset,
        max_rows=args.max_rows,
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        seeds=tuple(args.seeds),
        grid=read_grid(args.grid) if args.grid else default_grid(),
        model=args.model,
    )
    summary = tabulate(settings, args.out, stop=stop)
    print(
        f"{args.out}: {summary['rows']} rows ({summary['trained']} trained now in "
        f"{summary['groups']} vmapped groups, {summary['seconds']} s, of which compiling "
        f"{summary['compile_seconds']} s)"
    )
    return 0


def _name_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _seed_list(text: str) -> list[int]:
    """``0,1,2`` or ``0-4`` (both ends included), or a mix: ``0-2,7``."""
    seeds: list[int] = []
    try:
        for part in _name_list(text):
            low, _, high = part.partition("-")
            seeds.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of seeds; write e.g. 0,1,2 or 0-4"
        ) from None
    return seeds


def _benchmark(args: argparse.Namespace, stop: StopSignals) -> int:
    from tuning.core.cluster import check_scheduler
    from tuning.core.errors import StudyError
    from tuning.core.files import writable_folder
    from tuning.evaluation.data import check_dataset, load_dataset
    from tuning.run.grid import plan_grid, run_grid
    from tuning.run.progress import make_display
    from tuning.search import available_backends, default_backends, same_algorithms

    installed = available_backends()
    if args.backends is not None and not args.backends:
        raise StudyError(
            "--backends names no backend: give names separated by commas (see `tuning "
            "backends`), or leave the option out for each library's main algorithm"
        )
    backends = args.backends or default_backends()
    unknown = sorted(set(backends) - set(installed))
    if unknown:
        raise StudyError(f"--backends: {unknown} not installed; choose from {installed}")
    if getattr(args, "suite", None) is not None:
        tasks = _suite_tasks(args, backends[0])
    else:
        tasks = [_study_config(args, backends[0])]
    base = tasks[0]
    use_keras_backend(base.keras_backend)  # the workers inherit it
    twice = same_algorithms(backends)
    if twice:
        bare, spelled = twice[0]
        raise StudyError(
            f"--backends names one algorithm twice: {bare} is {spelled}; keep one of the two"
        )
    if args.scheduler is not None:
        check_scheduler(args.scheduler)
    configs = []
    for task in tasks:
        if args.scheduler is not None:
            task.out = str(Path(task.out).resolve())  # the same path on every worker
        own = task.space or task.model_options or task.model  # (else no Keras import here)
        if task.table is not None:  # read and checked once here, not once per worker
            from tuning.core.space import default_space
            from tuning.evaluation.tabular.table import load_table

            load_table(task.table).check_space(task.search_space() if own else default_space())
        else:
            check_dataset(task.dataset, target=task.target, task=task.task)
            if own:
                space = task.search_space()  # checked once here, not once per worker
                if task.model is not None:  # a user's factory: built once, before any study
                    from tuning.run.study import check_model  # Keras: its backend is set above

                    sample = load_dataset(task.dataset, target=task.target).head(64)
                    check_model(task, sample, space)
        configs += plan_grid(task, backends, args.seeds)
    if args.race and args.fresh:
        raise StudyError(
            "--race and --fresh exclude each other: a race resumes from its finished studies; "
            "give another --out to race again from scratch"
        )
    writable_folder(Path(base.out), f"--out {base.out}")  # after every check: nothing written
    if args.race:
        return _race(args, tasks, backends, stop)
    with make_display(sys.stderr) as display:
        result = run_grid(
            configs,
            jobs=args.jobs,
            fresh=args.fresh,
            watch=display,
            stop=stop,
            scheduler=args.scheduler,
        )
    failed = [s for s in result.studies if s.state == "failed"]
    held = [s for s in result.studies if s.state == "held"]
    print(
        f"{len(configs)} studies: {result.count('done')} run, {result.count('skipped')} "
        f"finished before, "
        + (f"{len(held)} held by another run (not run here), " if held else "")
        + f"{len(failed)} failed, in {result.seconds:.0f} s. Next: tuning compare {base.out}"
    )
    for study in held:
        print(f"held: {study.config.study}: {study.error}", file=sys.stderr)
    for study in failed:
        print(f"failed: {study.config.study}: {study.error}", file=sys.stderr)
    return 1 if failed else 0


def _race(args: argparse.Namespace, tasks: list, backends: list[str], stop: StopSignals) -> int:
    from tuning.run.grid import run_grid
    from tuning.run.progress import make_display
    from tuning.run.race import RACE_FILE, describe, race

    def run_round(configs: list) -> list:
        with make_display(sys.stderr) as display:
            result = run_grid(
                configs, jobs=args.jobs, watch=display, stop=stop, scheduler=args.scheduler
            )
        return result.studies

    result = race(tasks, backends, args.seeds, run_round, first=args.race_first)
    print("\n".join(describe(result)))
    print(f"wrote {Path(tasks[0].out) / RACE_FILE}. Next: tuning compare {tasks[0].out}")
    return 0


def _certify(args: argparse.Namespace, stop: StopSignals) -> int:
    from tuning.run.certify import certify
    from tuning.run.progress import make_display

    use_keras_backend("jax")  # the compiled trainer, as the table was built
    if not args.tabular.is_dir():
        print(f"error: {args.tabular} is not a folder of tabular studies", file=sys.stderr)
        return EXIT_USAGE
    with make_display(sys.stderr) as display:
        outcome, files = certify(
            args.tabular, args.seeds, Path(args.out), jobs=args.jobs, stop=stop, watch=display
        )
    print(
        f"Kendall's tau {outcome.tau:.2f} [{outcome.tau_low:.2f}, {outcome.tau_high:.2f}] over "
        f"{len(outcome.seeds)} seeds; pairs with the same leader "
        f"{int(outcome.pairs['same_leader'].sum())}/{len(outcome.pairs)}"
    )
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def _suite_tasks(args: argparse.Namespace, backend: str) -> list:
    """One base config per task of ``--suite``, the options typed over the suite's settings."""
    from tuning.core.errors import StudyError
    from tuning.run.suite import load_suite, suite_configs

    for option in ("dataset", "config"):
        if getattr(args, option, None) is not None:
            raise StudyError(
                f"--{option} and --suite exclude each other: the suite names the tasks"
            )
    given = {k: v for k, v in _given_settings(args, backend).items() if v is not None}
    return suite_configs(load_suite(args.suite), given)


def _print_summary(summary: dict) -> None:
    if "error" in summary:
        print(f"{summary['study']}: {summary['error']}")
        return
    acc = summary.get("test_accuracy")
    print(
        f"{summary['study']}: best val_loss {summary['best_val_loss']:.4f} "
        f"test_loss {summary['test_loss']:.4f}"
        + (f" test_accuracy {acc:.4f}" if acc is not None else "")
        + (f" regret {summary['regret']:.4g}" if "regret" in summary else "")
        + f" params {summary['best_params']} ({summary['trials']} trials, "
        f"{summary['wall_seconds']:.0f} s)"
    )


def _compare(out: Path, target: float | None, rope: float) -> int:
    from tuning.analysis.compare import compare

    if not out.is_dir():
        print(
            f"error: {out} is not a folder of studies (give the --out of `tuning run`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if target is not None and not math.isfinite(target):
        print(f"error: --target must be a finite validation loss, got {target}", file=sys.stderr)
        return EXIT_USAGE
    if not (math.isfinite(rope) and rope > 0):
        print(f"error: --rope must be a number > 0, got {rope}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = compare(out, target, rope)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a read-only folder, a full disk: nothing of the studies is touched
        print(
            f"error: cannot write the comparison into {exc.filename or out} ({exc.strerror}); "
            "make the folder writable or copy it elsewhere",
            file=sys.stderr,
        )
        return EXIT_USAGE
    for study in result.skipped:
        print(f"left out {study.folder}: {study.reason}", file=sys.stderr)
    shown = result.by_backend[list(BY_BACKEND_SHOWN)]
    with _pandas_display():
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nwrote " + ", ".join(str(p) for p in result.files.values()))
    return 0


def _pandas_display():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 30)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _quiet_frameworks()
    # Keras/TensorFlow warn about retracing on every scikeras predict; the harness's own log stays.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        with StopSignals() as stop:
            return _dispatch(args, stop)
    except KeyboardInterrupt as interrupt:
        print(
            f"{str(interrupt) or 'interrupted'}: every finished trial is saved; run the same "
            "command again to resume (--fresh starts over)",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
    except ValueError as exc:  # every input error of the package is a ValueError subclass
        if args.debug:
            raise
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a folder that cannot be written, a full disk: say which, no trace
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


def one_line(message: str) -> str:
    """A message as one line: a library's multi-line text joined, so that an error is one
    line on the terminal."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _dispatch(args: argparse.Namespace, stop: StopSignals) -> int:
    if args.command == "backends":
        use_keras_backend(None)  # (listing imports Keras Tuner, hence Keras)
        from tuning.search import describe_backends

        print("\n".join(describe_backends()))
        return 0
    if args.command == "datasets":
        from tuning.evaluation.data import describe_datasets

        print("\n".join(describe_datasets()))
        return 0
    if args.command == "tabulate":
        return _tabulate(args, stop)
    if args.command == "certify":
        return _certify(args, stop)
    if args.command == "compare":
        return _compare(args.out, args.target, args.rope)
    if args.command == "benchmark":
        return _benchmark(args, stop)
    if args.command == "demo":  # a small benchmark grid, then its comparison
        return _benchmark(args, stop) or _compare(Path(args.out), None, args.rope)

    config = _study_config(args, args.backend)
    use_keras_backend(config.keras_backend)
    from tuning.run.study import run_study  # imports Keras: after its backend is chosen

    summary = run_study(config, fresh=args.fresh, stop=stop)
    _print_summary(summary)
    return EXIT_FAILED if "error" in summary else 0


if __name__ == "__main__":
    sys.exit(main())
