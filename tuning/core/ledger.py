"""The resume ledger: the trials a study's earlier runs finished, and answering them again.

When a study is run again after it was interrupted, its table holds the trials already finished.
The search library, restarted, asks for configurations again; those it asks for in the same order
as before are answered from the table (`ResumeLedger.replay`) instead of being trained twice. A
library that saved its own state says how many of the finished trials that state holds
(`ResumeLedger.restored`): only the ones after them are replayed.
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuning.core.errors import ResumeError, start_over

log = logging.getLogger(__name__)


@dataclass
class TrialResult:
    """One evaluated configuration, as recorded in the results table."""

    trial: int
    params: dict[str, Any]
    status: str
    val_loss: float
    epochs: int
    fit_seconds: float
    error: str = ""
    history: dict[str, list[float]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TrialResult:
        """A trial as an earlier run of the study wrote it (a row of `tuning.core.results.read_trials`)."""
        error = row.get("error")
        return cls(
            trial=int(row["trial"]),
            params=json.loads(row["params"]),
            status=str(row["status"]),
            val_loss=float(row["val_loss"]),
            epochs=int(row["epochs"]),
            fit_seconds=float(row["fit_seconds"]),
            error=error if isinstance(error, str) else "",
        )


def same_params(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal configurations; floats equal to 12 digits (a float's trip through the table)."""
    if a.keys() != b.keys():
        return False
    for name, value in a.items():
        other = b[name]
        if isinstance(value, float) and isinstance(other, float):
            if not math.isclose(value, other, rel_tol=1e-12):
                return False
        elif value != other:
            return False
    return True


class ResumeLedger:
    """The finished trials of a study's earlier runs (``finished``, in table order), the ones
    left to replay, and how many rows the study has recorded in all (``recorded``: the next
    trial's number). ``backend`` names the library in messages."""

    def __init__(self, finished: Sequence[TrialResult] = (), backend: str = "the search") -> None:
        self.backend = backend
        self.load(finished)

    def load(self, finished: Sequence[TrialResult]) -> None:
        """The earlier runs' finished trials, all left to replay (a study resumed once its
        table has been read)."""
        self.finished = list(finished)
        self.recorded = len(self.finished)
        self._pending = deque(self.finished)

    def restored(self, n_trials: int) -> None:
        """The library's own saved state already holds the first ``n_trials`` finished trials:
        only the ones after them are left to replay."""
        if not 0 <= n_trials <= len(self.finished):
            raise ResumeError(
                f"the {self.backend} state in the study folder holds {n_trials} trials "
                f"but its table only {len(self.finished)}: " + start_over("the study's folder")
            )
        self._pending = deque(self.finished[n_trials:])

    def replay(self, params: Mapping[str, Any]) -> TrialResult | None:
        """The next finished trial's recorded result for ``params``, or None when none is left;
        a library that asks for another configuration than the table's next cannot resume."""
        if not self._pending:
            return None
        recorded = self._pending.popleft()
        if not same_params(recorded.params, params):
            raise ResumeError(
                f"cannot resume: {self.backend} asked for {dict(params)} as trial "
                f"{recorded.trial}, but the table's trial {recorded.trial} is {recorded.params}; "
                + start_over("the study's folder")
            )
        log.info("trial %d replayed from the table", recorded.trial)
        return recorded

    def next_number(self) -> int:
        """The number the next recorded row takes (rows are numbered in order)."""
        return self.recorded

    def count(self) -> None:
        """One more row recorded."""
        self.recorded += 1
