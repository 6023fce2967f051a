"""Kill real studies of every backend and print their tables after each fault.

For each backend, one study (California, 300 rows, 8 trials of at most 4 epochs) goes through:
1. ``kill -9`` at a random moment after its first trial finished;
2. resumed, then ``kill -9`` from inside right after its next row reached the table, before the
   library recorded that trial in its own state (the narrowest window there is);
3. resumed, then Ctrl-C (SIGINT) once a new row is written;
4. resumed to the end.
After each step it prints the table (trial, status, val_loss) and checks that the rows from
before are unchanged, the trial numbers run 0..n-1, and the end has exactly the budget's trials.

    python benchmarks/crash_safety.py [--backends a,b] [--keras-backend jax]   (~3 minutes)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tuning.core.results import TRIALS_FILE, read_trials
from tuning.search import available_backends

TRIALS = 8
KILL_AFTER_ROW = Path(__file__).with_name("kill_after_row.py")


def study_args(backend: str, out: Path) -> list[str]:
    args = ["run", "--backend", backend, "--dataset", "california", "--max-rows", "300"]
    args += ["--trials", str(TRIALS), "--max-epochs", "4", "--patience", "2", "--out", str(out)]
    return args + (["--cv", "2"] if backend == "sklearn" else [])


def table(study_dir: Path) -> pd.DataFrame:
    path = study_dir / TRIALS_FILE
    columns = ["trial", "status", "val_loss", "params"]
    return read_trials(path)[columns] if path.exists() else pd.DataFrame(columns=columns)


def wait_for_rows(process: subprocess.Popen, path: Path, n: int) -> None:
    while not (path.exists() and len(read_trials(path)) >= n):
        if process.poll() is not None:
            raise SystemExit(f"the study ended early: {process.communicate()[1][-2000:]}")
        time.sleep(0.02)


def show(step: str, code: int | None, before: pd.DataFrame, after: pd.DataFrame) -> None:
    kept = after.head(len(before)).reset_index(drop=True).equals(before.reset_index(drop=True))
    numbered = after["trial"].tolist() == list(range(len(after)))
    cells = " ".join(
        f"{t}:{s[0]}{'' if np.isnan(v) else f'={v:.3g}'}"
        for t, s, v in zip(after["trial"], after["status"], after["val_loss"], strict=True)
    )
    print(
        f"  {step:<34} exit {code!s:>4}  rows {len(after)}  earlier rows unchanged: "
        f"{'yes' if kept else 'NO'}  numbers 0..n-1: {'yes' if numbered else 'NO'}"
    )
    print(f"      {cells}")


def run_backend(backend: str, out: Path, rng: np.random.Generator) -> bool:
    study_dir = out / f"california_{backend}_s0"
    path = study_dir / TRIALS_FILE
    cli = [sys.executable, "-m", "tuning", *study_args(backend, out)]
    quiet = {
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "text": True,
        # Python's own Ctrl-C in the child, even where this script runs with SIGINT ignored
        "preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    }
    print(f"{backend}:")

    process = subprocess.Popen(cli, **quiet)
    wait_for_rows(process, path, 1)
    time.sleep(rng.uniform(0, 1.0))
    process.kill()
    process.communicate()
    first = table(study_dir)
    show("1. kill -9 at a random moment", process.returncode, first.head(0), first)

    limit = len(first) + 1
    suicide = [sys.executable, str(KILL_AFTER_ROW), str(limit), *study_args(backend, out)]
    done = subprocess.run(suicide, **quiet, check=False)
    second = table(study_dir)
    show(f"2. kill -9 right after row {limit - 1}", done.returncode, first, second)

    process = subprocess.Popen(cli, **quiet)
    wait_for_rows(process, path, len(second) + 1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate()
    third = table(study_dir)
    show("3. Ctrl-C after a new row", process.returncode, second, third)
    print(f"      stderr: {err.strip().splitlines()[-1]}")

    done = subprocess.run(cli, **quiet, check=False)
    final = table(study_dir)
    show("4. the same command to the end", done.returncode, third, final)
    ok = (
        done.returncode == 0
        and final["trial"].tolist() == list(range(TRIALS))
        and final.head(len(third)).equals(third)
    )
    print(
        f"      {'OK' if ok else 'FAILED'}: {len(final)} trials of {TRIALS}, "
        f"{final['params'].nunique()} distinct configurations"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(available_backends()))
    parser.add_argument("--keras-backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.keras_backend
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="tuning-crash-") as tmp:
        results = [run_backend(b, Path(tmp), rng) for b in args.backends.split(",")]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
