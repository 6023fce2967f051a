"""The commands behind the grammar: each turns parsed arguments into a call of the layers below
and prints what the user reads."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path

from tuning.core.signals import StopSignals
from tuning.evaluation.keras.environment import (
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
        "workers": _one_count(getattr(args, "workers", None)),
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


def _one_count(workers: int | list[int] | None) -> int | None:
    """``--workers`` as a study's setting: ``run``'s count, or a grid's only one; None for a
    grid of several (`tuning.run.grid.plan_grid` makes a study of each)."""
    if isinstance(workers, list):
        return workers[0] if len(workers) == 1 else None
    return workers


def study_config(args: argparse.Namespace, backend: str | None):
    from tuning.core.config import StudyConfig
    from tuning.core.errors import StudyError
    from tuning.evaluation.objectives import resolve

    overrides = _given_settings(args, backend)
    if getattr(args, "config", None) is not None:
        return resolve(StudyConfig.from_toml(args.config, **overrides))
    if not backend:
        raise StudyError("--backend is required (or --config FILE); see `tuning backends`")
    typed = {k: v for k, v in overrides.items() if v is not None}
    return resolve(StudyConfig(**typed, given=frozenset(typed)))


def run_tabulate(args: argparse.Namespace, stop: StopSignals) -> int:
    use_keras_backend("jax")  # vmapped epochs: JAX only
    from tuning.core.space import default_grid
    from tuning.evaluation.tabular.build import read_grid, tabulate
    from tuning.evaluation.tabular.table_file import TableSettings

    seeds = args.seeds if args.seeds is not None else default_table_seeds(args)
    settings = TableSettings(
        dataset=args.dataset,
        max_rows=args.max_rows,
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        seeds=tuple(seeds),
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


# A table cheap enough for 10 draws: one configuration trains on at most this many row-epochs
# (the bound under which a study pads every model to one width: small data).
CHEAP_TABLE_ROW_EPOCHS = 100_000
CHEAP_TABLE_SEEDS, TABLE_SEEDS = list(range(10)), [0, 1, 2]


def default_table_seeds(args: argparse.Namespace) -> list[int]:
    """10 training-noise draws where a table is cheap, else 3: a table's draws are the unit of
    replication of any claim about its task, and 3 can never reach p < 0.05."""
    from tuning.evaluation.data import load_dataset

    rows = len(load_dataset(args.dataset).X_train)
    if args.max_rows is not None:
        rows = min(rows, args.max_rows)
    cheap = rows * args.max_epochs <= CHEAP_TABLE_ROW_EPOCHS
    return CHEAP_TABLE_SEEDS if cheap else TABLE_SEEDS


def run_benchmark(args: argparse.Namespace, stop: StopSignals) -> int:
    from tuning.core.cluster import check_scheduler
    from tuning.core.errors import StudyError
    from tuning.core.files import writable_folder
    from tuning.evaluation.objectives import check_inputs
    from tuning.run.grid import plan_grid, run_grid
    from tuning.run.progress import make_display
    from tuning.run.study import check_parallel_modes
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
        tasks = [study_config(args, backends[0])]
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
        stop.raise_if_stopped()  # a signal while planning stops it here, not after it
        if args.scheduler is not None:
            task.out = str(Path(task.out).resolve())  # the same path on every worker
        check_inputs(task)  # once here, not once per worker
        configs += plan_grid(task, backends, args.seeds, getattr(args, "workers", None), stop)
    stop.raise_if_stopped()
    check_unique_folders(configs)
    if args.race and len(getattr(args, "workers", None) or []) > 1:
        raise StudyError(
            "--race runs one worker count: give --workers one count, or leave --race out to "
            "compare several"
        )
    check_parallel_modes(configs)  # each (algorithm, worker count), before any study starts
    if args.race and args.fresh:
        raise StudyError(
            "--race and --fresh exclude each other: a race resumes from its finished studies; "
            "give another --out to race again from scratch"
        )
    # after every check: nothing written; the --out a user names may be a link
    writable_folder(Path(base.out), f"--out {base.out}", link_allowed=True)
    with _mlflow_live(getattr(args, "mlflow", None), Path(base.out)):
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


def _mlflow_live(uri: str | None, out: Path) -> contextlib.AbstractContextManager:
    """With ``--mlflow``: the folder synced to MLflow while the benchmark runs, and at its end
    (`tuning.export.mlflow_runs.LiveLog`); else nothing."""
    if uri is None:
        return contextlib.nullcontext()
    from tuning.export.mlflow_runs import LiveLog

    return LiveLog(_mlflow_log(out, uri))


def _mlflow_log(out: Path, uri: str):
    """The MLflow log of ``out`` at ``uri`` ("": the folder's local store). This process's
    MLflow requests give up within a minute (its defaults retry a server that is down for
    minutes), unless the user's environment says otherwise."""
    import os

    from tuning.export.mlflow_runs import MlflowLog

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    return MlflowLog(out, uri or None)


def run_export(args: argparse.Namespace) -> int:
    from tuning.core.urls import without_password
    from tuning.export.optuna_studies import export_to_optuna

    if not args.out.is_dir():
        print(f"error: {args.out} is not a results folder", file=sys.stderr)
        return EXIT_USAGE
    exported = export_to_optuna(args.out, args.storage)
    shown = without_password(args.storage)
    print(
        f"exported {len(exported)} studies ({sum(e.trials for e in exported)} trials) to "
        f"{shown}; see them side by side: optuna-dashboard {shown}"
    )
    return 0


def check_unique_folders(configs: list) -> None:
    """Refuse, before anything runs, two studies of different tasks that would share one folder
    (two CSV files of one name in other folders: ``a/houses.csv`` and ``b/houses.csv``)."""
    from tuning.core.errors import StudyError

    seen: dict[Path, str] = {}
    for config in configs:
        task = seen.setdefault(config.study_dir, config.dataset)
        if task != config.dataset:
            raise StudyError(
                f"tasks {task!r} and {config.dataset!r} would share the study folder "
                f"{config.study_dir} (a study folder is named after its data file): give one file "
                "another name, or run the two into different --out folders"
            )


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

    result = race(
        tasks,
        backends,
        args.seeds,
        run_round,
        first=args.race_first,
        correction=args.race_correction,
    )
    print("\n".join(describe(result)))
    print(f"wrote {Path(tasks[0].out) / RACE_FILE}. Next: tuning compare {tasks[0].out}")
    return 0


def run_certify(args: argparse.Namespace, stop: StopSignals) -> int:
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
    verdict = outcome.ceiling.verdict if outcome.ceiling else "no verdict (too few seeds)"
    print(
        f"{verdict}; Kendall's tau {outcome.tau:.2f} [{outcome.tau_low:.2f}, "
        f"{outcome.tau_high:.2f}] over {len(outcome.blocks)} blocks; pairs with the same leader "
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


def print_summary(summary: dict) -> None:
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


def run_compare(out: Path, target: float | None, rope: float, mlflow: str | None = None) -> int:
    from tuning.analysis.compare import compare, unfinished_studies

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
        waiting = unfinished_studies(out).line()
        print(f"error: {exc}" + (f" ({waiting})" if waiting else ""), file=sys.stderr)
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
    if result.unfinished is not None and result.unfinished.line():
        print(result.unfinished.line(), file=sys.stderr)
    shown = result.by_backend[list(BY_BACKEND_SHOWN)]
    with _pandas_display():
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nwrote " + ", ".join(str(p) for p in result.files.values()))
    if mlflow is not None:
        from tuning.core.urls import without_password

        target_log = _mlflow_log(out, mlflow)
        try:
            synced = target_log.sync()
        except Exception as exc:  # (the comparison is written: only the log failed)
            print(
                f"error: {target_log.failure(exc)}; run it again to log the rest", file=sys.stderr
            )
            return EXIT_FAILED
        print(
            f"mlflow: {synced.studies} new study runs, {synced.trials} new trial runs, "
            f"{synced.finished} studies finished, at {without_password(target_log.uri)} "
            f"(experiment {out.resolve()})"
        )
    return 0


def _pandas_display():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 30)
