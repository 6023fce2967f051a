"""Recording a finished trial: its row in the study's table, its number, its count in the budget.

Every evaluator (real training, table lookups) and the one backend that trains natively
(scikit-learn's cross-validated candidates) records through a `TrialRecorder`, so every row of
every study is built the same way.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from tuning.core.budget import BudgetMeter
from tuning.core.ledger import ResumeLedger, TrialResult
from tuning.core.results import TrialWriter

log = logging.getLogger(__name__)


def _no_compiling() -> float:
    return 0.0


def _curve(history: Mapping[str, list[float]]) -> str:
    """A trial's ``curve`` cell: its validation loss after each epoch it trained (a JSON list,
    ``null`` where the loss was not a finite number), which the exports log per epoch and a
    resumed parallel study reports to its library again; empty where the trial has none
    (scikit-learn's cross-validated candidates)."""
    losses = history.get("val_loss")
    if not losses:
        return ""
    return json.dumps([float(v) if math.isfinite(v) else None for v in losses])


class TrialRecorder:
    """Appends one row per finished trial to ``writer``'s table, numbered by ``ledger``, each
    counted as a trial in ``meter``; the row carries the study's cumulative epochs and seconds
    when it was written, and the seconds ``compile_seconds`` (a running total) grew since the
    previous row."""

    def __init__(
        self,
        writer: TrialWriter,
        ledger: ResumeLedger,
        meter: BudgetMeter,
        compile_seconds: Callable[[], float] = _no_compiling,
    ) -> None:
        self.writer = writer
        self.ledger = ledger
        self.meter = meter
        self.compile_seconds = compile_seconds
        self._compiled_before = compile_seconds()

    def record(
        self,
        params: Mapping[str, Any],
        *,
        status: str,
        val_loss: float,
        epochs: int,
        fit_seconds: float,
        error: str = "",
        history: dict[str, list[float]] | None = None,
        number: int | None = None,
        worker: tuple[str, int] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> TrialResult:
        """Append one finished trial's row and return it as a `TrialResult`.

        ``number``: the row's trial number when the library numbers the trials (a study shared
        by several processes); by default the next in order. ``worker`` (host, pid) names the
        process that trained it when that is not this one; ``extra`` holds more of the table's
        columns (`tuning.core.results.EXTRA_COLUMNS`). ``history`` (per epoch, as Keras gives it)
        gives the row its ``curve``.
        """
        result = TrialResult(
            trial=self.ledger.next_number() if number is None else number,
            params=dict(params),
            status=status,
            val_loss=float(val_loss),
            epochs=int(epochs),
            fit_seconds=float(fit_seconds),
            error=error,
            history=history or {},
        )
        self.ledger.count()
        self.meter.add_trial()
        compiled = self.compile_seconds()
        compiling, self._compiled_before = compiled - self._compiled_before, compiled
        self.writer.append(
            {
                "trial": result.trial,
                "status": result.status,
                **{name: params.get(name) for name in self.writer.parameters},
                "val_loss": result.val_loss,
                "epochs": result.epochs,
                "fit_seconds": round(result.fit_seconds, 4),
                "cum_epochs": self.meter.epochs,
                "cum_seconds": round(self.meter.seconds, 4),
                "params": json.dumps(result.params, sort_keys=True),
                "error": result.error,
                "compile_seconds": round(compiling, 4),
                "curve": _curve(result.history),
                **({"host": worker[0], "pid": worker[1]} if worker else {}),
                **(extra or {}),
            }
        )
        log.info(
            "trial %d %s val_loss=%.5g epochs=%d params=%s",
            result.trial,
            result.status,
            result.val_loss,
            result.epochs,
            result.params,
        )
        return result
