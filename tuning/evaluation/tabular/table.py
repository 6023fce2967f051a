"""A finished table of learning curves (`tuning tabulate`), read for lookups: its entries, its
grid, how a configuration is snapped to the grid, its best entries. No Keras import: the grid's
parent reads and checks a table before any worker starts.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuning.core.atomic import read_json
from tuning.core.errors import StudyError
from tuning.core.space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpace,
    nearest_on_grid,
)
from tuning.evaluation.tabular.table_file import (
    SETTINGS_FILE,
    TABLE_FILE,
    config_id,
    configurations,
    read_table,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableEntry:
    """One configuration and seed of the table: its curves, as `tuning tabulate` recorded them."""

    params: dict[str, Any]
    status: str
    epochs: int
    best_epoch: int
    best_val_loss: float
    test_loss: float
    seconds: float
    val_loss: tuple[float, ...]  # one per epoch trained (NaN where it was not finite)
    loss: tuple[float, ...]

    @property
    def epoch_seconds(self) -> float:
        """The seconds of one epoch (the table shares its group's time out by epochs)."""
        return self.seconds / max(1, self.epochs)


class Table:
    """A finished table: its settings (``table.json``) and one `TableEntry` per configuration
    and seed; with the dataset it was built on, loaded once (`dataset`)."""

    def __init__(self, folder: Path, settings: Mapping[str, Any], rows: Sequence[dict]) -> None:
        self.folder = Path(folder)
        self.settings = dict(settings)
        self.grid: dict[str, list[Any]] = {k: list(v) for k, v in settings["grid"].items()}
        self.seeds: tuple[int, ...] = tuple(settings["seeds"])
        self.entries: dict[tuple[str, int], TableEntry] = {
            (row["config"], row["seed"]): TableEntry(
                params=row["params"],
                status=row["status"],
                epochs=row["epochs"],
                best_epoch=row["best_epoch"],
                best_val_loss=row["best_val_loss"],
                test_loss=row["test_loss"],
                seconds=row["seconds"],
                val_loss=tuple(math.nan if v is None else float(v) for v in row["val_loss_curve"]),
                loss=tuple(math.nan if v is None else float(v) for v in row["loss_curve"]),
            )
            for row in rows
        }
        expected = len(configurations(self.grid)) * len(self.seeds)
        if len(self.entries) < expected:
            raise StudyError(
                f"table {self.folder} holds {len(self.entries)} of its {expected} entries: "
                f"finish it first (run the same tuning tabulate --out {self.folder} again)"
            )
        self._dataset: Any = None

    @property
    def size(self) -> int:
        """Configurations in the grid."""
        return len(self.entries) // len(self.seeds)

    def table_seed(self, study_seed: int) -> int:
        """The table seed that answers a study of seed ``study_seed``: ``seeds[seed % n]``."""
        return self.seeds[study_seed % len(self.seeds)]

    def check_space(self, space: SearchSpace) -> None:
        """The study's space must name the grid's parameters; a category must be in the grid."""
        searched, gridded = set(space.names), set(self.grid)
        fixed = {name for name, values in self.grid.items() if len(values) == 1}
        if searched - gridded or gridded - searched - fixed:
            raise StudyError(
                f"the search space {sorted(searched)} is not the table's grid {sorted(gridded)} "
                f"({self.folder}): search the grid's parameters, or tabulate this space"
            )
        for param in space:
            if isinstance(param, CategoricalParam):
                missing = [c for c in param.choices if c not in self.grid[param.name]]
                if missing:
                    raise StudyError(
                        f"space.{param.name}: choices {missing} are not in the table's grid "
                        f"{self.grid[param.name]}: remove them, or tabulate them"
                    )
                continue
            inside = [v for v in self.grid[param.name] if param.low <= v <= param.high]
            if not inside:  # every proposal would snap to the grid's nearest end
                raise StudyError(
                    f"space.{param.name}: [{param.low}, {param.high}] holds none of the table's "
                    f"values {self.grid[param.name]}: search a range that overlaps the grid"
                )

    def snap(self, params: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
        """``params`` with each number replaced by the grid's nearest value (nearest in log for
        a log-scaled parameter of the space); categories as they are; the grid's fixed
        (one-valued) parameters added."""
        snapped = {name: values[0] for name, values in self.grid.items() if len(values) == 1}
        for param in space:
            value = params[param.name]
            if isinstance(param, IntParam | FloatParam):
                value = nearest_on_grid(self.grid[param.name], value, log=param.log)
            snapped[param.name] = value
        return snapped

    def entry(self, params: Mapping[str, Any], seed: int) -> TableEntry:
        """The entry of grid configuration ``params`` (snapped) and table seed ``seed``."""
        try:
            return self.entries[(config_id(params), seed)]
        except KeyError:
            raise StudyError(
                f"configuration {dict(params)} with seed {seed} is not in table {self.folder}"
            ) from None

    def best(self, seed: int) -> TableEntry:
        """The entry of lowest test loss for ``seed``: the best any search could find."""
        finite = [
            e for (_, s), e in self.entries.items() if s == seed and math.isfinite(e.test_loss)
        ]
        return min(finite, key=lambda e: e.test_loss)

    def mean_test_losses(self) -> dict[str, float]:
        """Each configuration's test loss averaged over the table's seeds (NaN if one failed)."""
        totals: dict[str, list[float]] = {}
        for (config, _), entry in self.entries.items():
            totals.setdefault(config, []).append(entry.test_loss)
        return {config: float(np.mean(losses)) for config, losses in totals.items()}

    def best_overall(self) -> tuple[dict[str, Any], float]:
        """The configuration of lowest mean test loss over the seeds, and that mean."""
        means = {k: v for k, v in self.mean_test_losses().items() if math.isfinite(v)}
        config = min(means, key=means.__getitem__)
        return json.loads(config), means[config]

    def dataset(self) -> Any:
        """The dataset the table was built on (its name, task and split sizes), loaded once."""
        if self._dataset is None:
            from tuning.evaluation.data import load_dataset

            data = load_dataset(self.settings["dataset"])
            self._dataset = data.head(self.settings.get("max_rows"))
        return self._dataset


def load_table(folder: Path) -> Table:
    """The table in ``folder``, read once per process while its file is unchanged (a grid
    worker's studies share it)."""
    path = Path(folder).resolve() / TABLE_FILE
    if not path.exists():
        raise StudyError(f"table {folder} has no {TABLE_FILE}: build it with tuning tabulate")
    return _read_table(path.parent, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_table(folder: Path, modified_ns: int) -> Table:
    started = time.perf_counter()
    table = Table(folder, table_settings(folder), read_table(folder))
    log.info(
        "read table %s (%d entries) in %.2f s",
        folder,
        len(table.entries),
        time.perf_counter() - started,
    )
    return table


def table_settings(folder: Path) -> dict[str, Any]:
    """A table's ``table.json``: what it was built with."""
    path = Path(folder) / SETTINGS_FILE
    if Path(folder).exists() and not Path(folder).is_dir():
        raise StudyError(
            f"objective tabular:{folder}: {folder} is a file; give the folder that tuning "
            "tabulate --out built"
        )
    try:
        settings = read_json(path, "rebuild the table")
    except FileNotFoundError:
        raise StudyError(
            f"objective tabular:{folder}: no table there ({path} is missing); build one with "
            f"tuning tabulate --out {folder}"
        ) from None
    if not isinstance(settings.get("grid"), dict):
        raise StudyError(f"{path} is not a table's settings (no grid): rebuild the table")
    if not isinstance(settings.get("seeds"), list) or not settings["seeds"]:
        raise StudyError(f"{path} is not a table's settings (no seeds): rebuild the table")
    return settings
