"""Progress of a benchmark grid, read from the studies' own ``trials.csv`` files as they grow.

On a terminal: a live table (rich) redrawn in place. Elsewhere (CI logs, ``nohup``, a pipe): one
plain line per finished study and a status line every minute.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tuning.core.budget import fraction_spent
from tuning.core.results import TRIALS_FILE, whole_rows
from tuning.run.grid import ENDED

if TYPE_CHECKING:
    from tuning.run.grid import StudyState


@dataclass(frozen=True)
class StudyProgress:
    """What one study has spent so far, and its best validation loss."""

    trials: int = 0
    epochs: int = 0
    seconds: float = 0.0
    best_val_loss: float = math.nan


def study_progress(study: StudyState) -> StudyProgress:
    """Read a study's table (it may be growing, or not there yet)."""
    path = study.study_dir / TRIALS_FILE
    try:
        # not a row still being written
        text = whole_rows(path.read_bytes()).decode("utf-8")
        rows = [r for r in csv.DictReader(io.StringIO(text)) if r.get("cum_epochs")]
        if not rows:
            return StudyProgress()
        losses = [float(r["val_loss"]) for r in rows if r["status"] == "complete" and r["val_loss"]]
        return StudyProgress(
            trials=len(rows),
            epochs=int(rows[-1]["cum_epochs"]),
            seconds=float(rows[-1]["cum_seconds"] or 0.0),
            best_val_loss=min(losses, default=math.nan),
        )
    except (OSError, ValueError, KeyError, TypeError, csv.Error):
        # a table the display cannot read: the study's own run names what is wrong with it
        return StudyProgress()


def study_fraction(study: StudyState, progress: StudyProgress) -> float:
    """How far a study is through its budget: 1 when it has ended, 0 before it starts."""
    if study.state in ENDED:
        return 1.0
    spent = {"trials": progress.trials, "epochs": progress.epochs, "seconds": progress.seconds}
    return fraction_spent(study.config.budget().as_dict(), spent)


def read_progress(studies: Sequence[StudyState]) -> dict[str, StudyProgress]:
    """Every study's progress, read once for one refresh of the display."""
    return {s.config.study: study_progress(s) for s in studies}


def eta_seconds(
    studies: Sequence[StudyState],
    elapsed: float,
    progress: Mapping[str, StudyProgress] | None = None,
) -> float | None:
    """Seconds left, assuming the rest of the grid goes at the pace of what is done so far."""
    progress = progress or read_progress(studies)
    active = [s for s in studies if s.state not in ("skipped", "held")]
    if not active:
        return 0.0
    done = sum(study_fraction(s, progress[s.config.study]) for s in active) / len(active)
    if done <= 0:
        return None
    return elapsed * (1 - done) / done


def clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def headline(
    studies: Sequence[StudyState],
    elapsed: float,
    progress: Mapping[str, StudyProgress] | None = None,
) -> str:
    counts = {k: sum(s.state == k for s in studies) for k in ("done", "failed", "running")}
    skipped = sum(s.state == "skipped" for s in studies)
    held = sum(s.state == "held" for s in studies)
    ended = counts["done"] + counts["failed"] + skipped + held
    parts = [f"studies {ended}/{len(studies)} done"]
    if skipped:
        parts.append(f"{skipped} skipped (finished before)")
    if held:
        parts.append(f"{held} held by another run")
    if counts["failed"]:
        parts.append(f"{counts['failed']} FAILED")
    parts.append(f"{counts['running']} running")
    parts.append(f"elapsed {clock(elapsed)}")
    parts.append(f"ETA {clock(eta_seconds(studies, elapsed, progress))}")
    return ", ".join(parts)


def backend_rows(
    studies: Sequence[StudyState], progress: Mapping[str, StudyProgress]
) -> list[dict[str, str]]:
    """One row per backend (per task and backend in a suite, as losses of different tasks do
    not compare): studies ended, trials and epochs spent, best losses so far."""
    several_tasks = len({s.config.dataset for s in studies}) > 1
    rows = []
    for dataset, backend in dict.fromkeys((s.config.dataset, s.config.backend) for s in studies):
        mine = [s for s in studies if (s.config.dataset, s.config.backend) == (dataset, backend)]
        mine_progress = [progress[s.config.study] for s in mine]
        vals = [p.best_val_loss for p in mine_progress if math.isfinite(p.best_val_loss)]
        tests = [s.summary["test_loss"] for s in mine if s.summary.get("test_loss") is not None]
        ended = sum(s.state in ENDED for s in mine)
        rows.append(
            {
                **({"task": dataset} if several_tasks else {}),
                "backend": backend,
                "studies": f"{ended}/{len(mine)}",
                "trials": str(sum(p.trials for p in mine_progress)),
                "epochs": str(sum(p.epochs for p in mine_progress)),
                "best val_loss": f"{min(vals):.4g}" if vals else "-",
                "best test_loss": f"{min(tests):.4g}" if tests else "-",
            }
        )
    return rows


class LiveDisplay:
    """A table redrawn in place on the terminal; use as a context manager."""

    def __init__(self, stream: IO[str]) -> None:
        self._live = Live(console=Console(file=stream), auto_refresh=False, transient=False)

    def __enter__(self) -> LiveDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(*exc)

    def __call__(self, studies: list[StudyState], elapsed: float) -> None:
        progress = read_progress(studies)
        rows = backend_rows(studies, progress)
        table = Table(*rows[0].keys()) if rows else Table()
        for row in rows:
            table.add_row(*row.values())
        line = headline(studies, elapsed, progress)
        self._live.update(Group(Text(line), table), refresh=True)


class LogDisplay:
    """Plain lines: one per study that ends, and the headline every ``interval`` seconds."""

    def __init__(self, stream: IO[str], interval: float = 60.0) -> None:
        self.stream = stream
        self.interval = interval
        self._reported: set[str] = set()
        self._last = -math.inf
        self._headline = ""  # the latest headline not yet written

    def __enter__(self) -> LogDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._headline:
            self._write(self._headline)  # where the grid ended, whenever that was

    def __call__(self, studies: list[StudyState], elapsed: float) -> None:
        stamp = time.strftime("%H:%M:%S")
        for study in studies:
            if (
                study.state not in ("done", "failed", "held")
                or study.config.study in self._reported
            ):
                continue
            self._reported.add(study.config.study)
            self._write(f"{stamp} {study.config.study} {study.state}: {_outcome(study)}")
        self._headline = f"{stamp} {headline(studies, elapsed)}"
        if elapsed - self._last >= self.interval:
            self._last = elapsed
            self._write(self._headline)
            self._headline = ""

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def _outcome(study: StudyState) -> str:
    if study.state in ("failed", "held"):
        return study.error
    s = study.summary
    if "test_loss" not in s:
        return s.get("error", "no result")
    return (
        f"best val_loss {s['best_val_loss']:.4g}, test_loss {s['test_loss']:.4g} "
        f"({s['trials']} trials, {s['epochs']} epochs, {s['wall_seconds']:.0f} s)"
    )


def make_display(stream: IO[str]) -> LiveDisplay | LogDisplay:
    """The live table on a terminal, plain lines anywhere else."""
    return LiveDisplay(stream) if stream.isatty() else LogDisplay(stream)
