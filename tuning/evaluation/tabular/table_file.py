"""A table's files: ``table.csv`` (one row per configuration and seed: its curves, epochs,
best epoch, test loss and seconds) and ``table.json`` (what it was built with), and reading them.

Written by `tuning.evaluation.tabular.build`, read by `tuning.evaluation.tabular.table`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning.core.errors import StudyError
from tuning.core.results import cut_torn_tail, whole_rows

log = logging.getLogger(__name__)
TABLE_FILE = "table.csv"
SETTINGS_FILE = "table.json"
COLUMNS = (
    "config",
    "seed",
    "params",
    "status",
    "epochs",
    "best_epoch",
    "best_val_loss",
    "test_loss",
    "seconds",
    "val_loss_curve",
    "loss_curve",
)


def configurations(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every configuration of the grid, the float-valued parameters varying fastest (so that the
    configurations of one architecture are neighbours)."""
    names = sorted(grid, key=lambda n: all(isinstance(v, float) for v in grid[n]))
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(grid[n] for n in names))
    ]


def config_id(params: Mapping[str, Any]) -> str:
    """A configuration's key in the table: its parameters as sorted JSON."""
    return json.dumps(dict(params), sort_keys=True)


@dataclass(frozen=True)
class TableSettings:
    """What a table was built with; a resumed build must match."""

    dataset: str
    max_rows: int | None
    max_epochs: int
    batch_size: int
    patience: int
    seeds: tuple[int, ...]
    grid: dict[str, list[Any]]
    model: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "max_rows": self.max_rows,
            "max_epochs": self.max_epochs,
            "batch_size": self.batch_size,
            "patience": self.patience,
            "seeds": list(self.seeds),
            "grid": self.grid,
            "model": self.model,
        }


def read_table(folder: Path) -> list[dict[str, Any]]:
    """The rows of ``folder/table.csv`` (curves decoded), or none. A last row torn by a killed
    build (no line end) is left out; any other row that is not a table row is refused, naming
    the file and its line."""
    path = Path(folder) / TABLE_FILE
    if not path.exists():
        return []
    data = path.read_bytes()
    whole = whole_rows(data)
    if whole != data:
        log.warning("%s: its last row was cut off mid-write (a killed build?): left out", path)
    try:
        rows = list(csv.DictReader(io.StringIO(whole.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise StudyError(f"{path} is not a table ({type(exc).__name__}): rebuild it") from None
    for line, row in enumerate(rows, start=2):
        try:
            row["seed"] = int(row["seed"])
            row["epochs"], row["best_epoch"] = int(row["epochs"]), int(row["best_epoch"])
            for key in ("best_val_loss", "test_loss", "seconds"):
                row[key] = float(row[key]) if row[key] else math.nan
            for key in ("val_loss_curve", "loss_curve", "params"):
                row[key] = json.loads(row[key])
            if not isinstance(row["params"], dict) or not isinstance(row["config"], str):
                raise ValueError("params")
        except (KeyError, TypeError, ValueError):
            raise StudyError(
                f"{path}: line {line} is not a table row; remove it (and the lines after it) "
                "and run the same tuning tabulate to rebuild them"
            ) from None
    return rows


def repair_table(folder: Path) -> None:
    """Cut a last row torn by a killed build off ``table.csv`` (`tuning.core.results.cut_torn_tail`),
    so that the resumed build appends whole rows after whole rows."""
    cut_torn_tail(Path(folder) / TABLE_FILE)
