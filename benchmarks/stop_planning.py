"""How soon SIGTERM ends the largest grid `--seeds` allows, sent at several moments of planning.

The grid is every installed `library:algorithm` x 10,000 seeds (`--seeds 0-9999`, the most the
parser takes) on iris, one worker. Planning it (making the studies' configurations, checking each
for finished results, handing each to the worker pool) takes seconds; a signal at any of those
moments must end the process within a fraction of one, with nothing written. Once a study runs,
it stops at the end of its epoch. A `--seeds` range past 10,000 seeds is refused while the
arguments are parsed (the last line).

    python benchmarks/stop_planning.py [--at 1 2 3 5 8]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import machine


def algorithms() -> str:
    listed = subprocess.run(
        [sys.executable, "-m", "tuning", "backends"], capture_output=True, text=True, check=True
    ).stdout
    return ",".join(line.split()[0] for line in listed.splitlines() if ":" in line.split()[0])


def stopped_at(delay: float, seeds: str, backends: str) -> str:
    with tempfile.TemporaryDirectory(prefix="tuning-stop-") as out:
        argv = [sys.executable, "-m", "tuning", "benchmark", "--dataset", "iris"]
        argv += ["--max-rows", "40", "--trials", "1", "--max-epochs", "1", "--jobs", "1"]
        argv += ["--seeds", seeds, "--backends", backends, "--out", out]
        started = time.monotonic()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            process.wait(timeout=delay)
            when = f"ended on its own {time.monotonic() - started:.2f} s after it started"
        except subprocess.TimeoutExpired:
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait()
            when = f"SIGTERM at {delay:4.1f} s: ended {time.monotonic() - sent:5.2f} s later"
        said = process.stderr.read() if process.stderr else ""
        folders = sum(1 for _ in Path(out).iterdir())
    last = (said.strip().splitlines() or [""])[-1][:100]
    return f"{when}, exit {process.returncode}, {folders} study folders; last line: {last}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", type=float, nargs="+", default=[1, 2, 3, 5, 8])
    args = parser.parse_args()
    backends = algorithms()
    print(machine())
    print(f"{len(backends.split(','))} algorithms x 10,000 seeds")
    for delay in args.at:
        print(stopped_at(delay, "0-9999", backends))
    print("--seeds 0-99999999:", stopped_at(3.0, "0-99999999", backends))


if __name__ == "__main__":
    main()
