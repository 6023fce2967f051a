"""The tabular kind of objective (``objective = "tabular:TABLE"``): a study whose trials are
looked up in a table of learning curves. Reads the settings a config takes from its table, and
builds the study's `TableEvaluator` over the table's data and grid."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from tuning.core.config import TABLE_SETTINGS, StudyConfig
from tuning.core.errors import StudyError
from tuning.core.ledger import ResumeLedger
from tuning.core.results import study_writer
from tuning.core.signals import StopSignals
from tuning.evaluation.data import Dataset
from tuning.evaluation.keras.kind import space_of
from tuning.evaluation.tabular.lookup import TableEvaluator
from tuning.evaluation.tabular.table import load_table, table_settings


def adopted_settings(config: StudyConfig) -> dict[str, Any]:
    """The settings ``config`` takes from its table (`TABLE_SETTINGS`): each one the user did
    not name (`StudyConfig.given`) takes the table's value; one named with another value is
    refused in one line."""
    folder = config.table
    built = table_settings(folder)
    defaults = {f.name: f.default for f in fields(config)}
    adopted = {}
    for name in TABLE_SETTINGS:
        value, theirs = getattr(config, name), built.get(name)
        if value == theirs:
            continue
        named = value != defaults[name] if config.given is None else name in config.given
        if named:
            raise StudyError(
                f"{name} {value!r} differs from the {theirs!r} table {folder} was built "
                f"with: leave {name} out (a tabular study takes the table's)"
            )
        adopted[name] = theirs
    return adopted


def tabular_evaluator(
    config: StudyConfig,
    *,
    algorithm: str,
    keeps_weights: bool,
    dataset: Dataset | None = None,
    stop: StopSignals | None = None,
) -> TableEvaluator:
    """The study's `TableEvaluator`: the table's data and grid, the space checked against
    both (a lookup keeps no weights, whatever ``keeps_weights`` says; ``dataset`` is the
    table's, whatever is given)."""
    table = load_table(config.table)
    space = space_of(config)
    table.check_space(space)
    return TableEvaluator(
        table,
        space,
        study_writer(config, table.dataset().name, algorithm, space.names),
        ResumeLedger(backend=config.backend),
        config.seed,
        config.max_epochs,
        config.budget(),
        stop,
    )
