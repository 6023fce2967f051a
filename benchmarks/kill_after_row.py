"""Fault injection: run ``tuning ARGS``, and die by SIGKILL right after the table's row number N
(counting from 1) reached the disk, before the search library recorded that trial in its own
state: the narrowest window a kill can hit.

    python benchmarks/kill_after_row.py N run --backend optuna ...

Used by `crash_safety.py` and by tests/test_resume.py.
"""

import os
import signal
import sys

import tuning.core.results
from tuning.cli import main


def die_after_row(limit: int) -> None:
    append = tuning.core.results.TrialWriter.append

    def append_then_die(writer, row):
        written = append(writer, row)
        if row["trial"] + 1 >= limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return written

    tuning.core.results.TrialWriter.append = append_then_die


if __name__ == "__main__":
    die_after_row(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
