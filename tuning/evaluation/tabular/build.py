"""Tabulate once: train every configuration of a discretized space, each seed, and keep its curve.

``tuning tabulate`` trains the product of a grid's values (the book's space by default: depth
0-3, ten widths between 1 and 99, twelve learning rates from 3e-4 to 3e-2) for each seed, under
the training protocol, and writes per configuration and seed: the per-epoch training and
validation losses, the epochs early stopping let it train, its best epoch, the test loss of the
restored (best) weights, and the seconds it took. Optimizers can later look trials up in the
table instead of training them (FCNet-style tabular benchmarks).

On JAX the configurations of one structure (same layers and shapes: every learning rate and
seed of one architecture) train together: their states are stacked and the compiled trainer's
epoch program runs under ``jax.vmap``, each model with its own rows' order (its seed's), its own
learning rate (a variable of its optimizer) and its own early stopping, Keras' rules, kept on
the host. A model that has stopped is carried along unchanged in effect (its later epochs are
not recorded, its best weights kept). Each group's rows are appended to ``TABLE/table.csv`` when
the group ends: a killed build resumes with the groups it had not finished.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuning.core.atomic import append_locked, read_json, write_json
from tuning.core.errors import StudyError, first_line
from tuning.core.files import read_toml, writable_folder
from tuning.core.lock import study_lock
from tuning.core.space import CategoricalParam, SpaceError
from tuning.evaluation.keras.factory import check_arguments, load_factory
from tuning.evaluation.tabular.table_file import (
    COLUMNS,
    SETTINGS_FILE,
    TABLE_FILE,
    TableSettings,
    config_id,
    configurations,
    read_table,
    repair_table,
)

log = logging.getLogger(__name__)
GROUP_LIMIT = 64  # models trained together at most (memory: states, and their best copies)


def read_grid(path: Path) -> dict[str, list[Any]]:
    """A grid file: ``[grid]`` with one list of values per parameter (TOML)."""
    data = read_toml(Path(path), "grid file")
    grid = data.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise StudyError(f"grid file {path}: write a [grid] table, one list of values per name")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise StudyError(f"grid file {path}: grid.{name} must be a non-empty list of values")
        if len({json.dumps(v) for v in values}) != len(values):
            raise StudyError(f"grid file {path}: grid.{name} lists a value twice: {values}")
        try:  # the rule of a study's categorical: one type of plain values
            CategoricalParam(name, tuple(values))
        except SpaceError as exc:
            raise StudyError(f"grid file {path}: grid.{exc}") from None
    return {name: list(values) for name, values in grid.items()}


def _append_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append a group's ``rows`` in one locked, fsynced write: a group is whole or absent."""

    def render(header: bool) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    append_locked(path, render)


def _finite_or_blank(value: float) -> Any:
    return value if math.isfinite(value) else ""


def tabulate(
    settings: TableSettings, out: Path, *, dataset: Any = None, stop: Any = None
) -> dict[str, Any]:
    """Build (or finish) the table in ``out``; returns a summary (rows, groups, seconds)."""
    import keras

    from tuning.evaluation.data import load_dataset

    if keras.backend.backend() != "jax":
        raise StudyError("tuning tabulate trains on JAX (vmapped epochs): use --keras-backend jax")
    for name, values in settings.grid.items():
        if len({json.dumps(v) for v in values}) != len(values):
            raise StudyError(f"grid.{name} lists a value twice: {values}")
    factory = load_factory(settings.model)
    check_arguments(factory, settings.model, list(settings.grid), [])
    if dataset is None:
        dataset = load_dataset(settings.dataset)
    dataset = dataset.head(settings.max_rows)
    out = writable_folder(Path(out), f"--out {out}", link_allowed=True)
    with study_lock(out, what="table"):  # one build of a table at a time
        return _build(settings, out, dataset, factory, stop)


def _build(
    settings: TableSettings, out: Path, dataset: Any, factory: Any, stop: Any
) -> dict[str, Any]:
    from tuning.evaluation.keras.between_trials import release_models
    from tuning.evaluation.keras.seeded_build import build_seeded
    from tuning.evaluation.keras.trainer import TrainingProtocol
    from tuning.evaluation.keras.vmapped import VmappedTraining

    recorded = out / SETTINGS_FILE  # written once the settings are known to work
    if recorded.exists():
        before = read_json(recorded, "use another --out")
        if before != json.loads(json.dumps(settings.as_dict())):
            changed = sorted(
                k for k in settings.as_dict() if before.get(k) != settings.as_dict()[k]
            )
            raise StudyError(
                f"{out} holds a table built with other settings ({', '.join(changed)}): "
                "use another --out, or delete it"
            )
    else:
        write_json(recorded, settings.as_dict())
    repair_table(out)
    protocol = TrainingProtocol(settings.max_epochs, settings.batch_size, settings.patience)
    done = {(row["config"], row["seed"]) for row in read_table(out)}
    todo = [
        (params, seed)
        for params in configurations(settings.grid)
        for seed in settings.seeds
        if (config_id(params), seed) not in done
    ]
    started = time.perf_counter()
    training = VmappedTraining(protocol, dataset)
    groups = 0

    def build(params: Mapping[str, Any], seed: int) -> Any:
        try:
            return build_seeded(factory, params, dataset, protocol, seed)
        except Exception as exc:  # the grid's values do not fit the factory: one line
            raise StudyError(
                f"the grid's configuration {dict(params)} cannot be built ({first_line(exc)}): "
                "fix the grid file"
            ) from None

    for group in _groups(todo, build):
        if stop is not None:
            stop.raise_if_stopped()
        results = training.run([model for _, _, model in group], [seed for _, seed, _ in group])
        release_models()  # (the next group's first model is built: it stays usable)
        rows = []
        for (params, seed, _), result in zip(group, results, strict=True):
            rows.append(
                {
                    "config": config_id(params),
                    "seed": seed,
                    "params": json.dumps(params, sort_keys=True),
                    "status": result.status,
                    "epochs": result.epochs,
                    "best_epoch": result.best_epoch,
                    "best_val_loss": _finite_or_blank(result.best_val_loss),
                    "test_loss": _finite_or_blank(result.test_loss),
                    "seconds": round(result.seconds, 4),
                    "val_loss_curve": json.dumps([_round(v) for v in result.val_loss]),
                    "loss_curve": json.dumps([_round(v) for v in result.loss]),
                }
            )
        _append_rows(out / TABLE_FILE, rows)
        groups += 1
        log.info("tabulated %d models (%d groups)", len(rows), groups)
    return {
        "rows": len(read_table(out)),
        "trained": len(todo),
        "groups": groups,
        "seconds": round(time.perf_counter() - started, 3),
        "compile_seconds": round(training.compile_seconds, 3),
    }


def _round(value: float) -> float | None:
    return float(f"{value:.9g}") if math.isfinite(value) else None


def _groups(todo: Sequence[tuple[dict[str, Any], int]], build: Any) -> Iterator[list]:
    """Consecutive configurations (and seeds) whose models share a structure, built
    (``build(params, seed)``), at most `GROUP_LIMIT` at a time."""
    from tuning.evaluation.keras.structure import structure_key

    group: list = []
    key = None
    for params, seed in todo:
        model = build(params, seed)
        model_key = structure_key(model)
        if group and (model_key != key or len(group) == GROUP_LIMIT):
            yield group
            group = []
        group.append((params, seed, model))
        key = model_key
    if group:
        yield group
