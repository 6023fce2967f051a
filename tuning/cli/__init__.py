"""The command line: ``tuning run | benchmark | compare | demo | backends | datasets``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tuning.cli.commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    print_summary,
    run_benchmark,
    run_certify,
    run_compare,
    run_export,
    run_tabulate,
    study_config,
)
from tuning.cli.parser import build_parser
from tuning.core.signals import StopSignals, Terminated
from tuning.evaluation.keras.environment import use_keras_backend


def _quiet_frameworks() -> None:
    # Before TensorFlow is imported: keep its C++ start-up chatter out of the user's terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,  # this command's stderr (an earlier `main` in the process may have set another)
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
            "command again to resume",
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
    if args.command in ("backends", "datasets", "compare", "export"):  # no step to finish
        with stop.at_once():
            return _dispatch_now(args)
    if args.command == "tabulate":
        return run_tabulate(args, stop)
    if args.command == "certify":
        return run_certify(args, stop)
    if args.command == "benchmark":
        return run_benchmark(args, stop)
    if args.command == "demo":  # a small benchmark grid, then its comparison
        code = run_benchmark(args, stop)
        if code:
            return code
        with stop.at_once():
            return run_compare(Path(args.out), None, args.rope)

    config = study_config(args, args.backend)
    from tuning.run.study import run_study

    summary = run_study(config, fresh=args.fresh, stop=stop)
    print_summary(summary)
    return EXIT_FAILED if "error" in summary else 0


def _dispatch_now(args: argparse.Namespace) -> int:
    """The commands that a signal stops at once."""
    if args.command == "backends":
        use_keras_backend(None)  # (listing imports Keras Tuner, hence Keras)
        from tuning.search import describe_backends

        print("\n".join(describe_backends()))
        return 0
    if args.command == "datasets":
        from tuning.evaluation.data import describe_datasets

        print("\n".join(describe_datasets()))
        return 0
    if args.command == "export":
        return run_export(args)
    return run_compare(args.out, args.target, args.rope, args.mlflow)


if __name__ == "__main__":
    sys.exit(main())
