"""Benchmark suites: a TOML file listing tasks, each with its own settings.

A suite only says which tasks a comparison covers and how each is run; the grid does the rest
(`tuning.run.grid`: every task x backend x seed is one study, skipped when finished, resumed when
not, refused when its settings changed). The file::

    description = "every offline tabular task"

    [defaults]              # settings of every task unless the task says otherwise
    max_epochs = 50
    patience = 5
    budget_epochs = 300

    [tasks.california]      # the table's name is the dataset (`tuning datasets`) ...
    max_rows = 3000

    [tasks.houses]          # ... or a name of its own, with the dataset inside
    dataset = "csv:houses.csv"
    target = "price"

A task's settings are `tuning.core.config.StudyConfig` fields, bar the ones the grid sets (backend,
seed, study, out) and the Keras backend (one per grid). No Keras here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tuning.core.config import StudyConfig, check_space_given
from tuning.core.errors import StudyError
from tuning.core.files import read_toml
from tuning.evaluation.objectives import resolve

# StudyConfig fields a suite cannot set per task: the grid's own, and one per process.
NOT_PER_TASK = frozenset(
    {"backend", "seed", "study", "out", "keras_backend", "trainer", "resolved", "given"}
)
TASK_SETTINGS = frozenset(f.name for f in fields(StudyConfig)) - NOT_PER_TASK
SUITE_KEYS = frozenset({"description", "defaults", "tasks"})


@dataclass(frozen=True)
class Suite:
    """A suite file, read: its tasks' settings, in the file's order."""

    path: Path
    description: str
    tasks: dict[str, dict[str, Any]]


def load_suite(path: str | Path) -> Suite:
    """Read and check a suite file; every error names the file, the task and the key."""
    path = Path(path)
    data = read_toml(path, "suite")
    unknown = sorted(set(data) - SUITE_KEYS)
    if unknown:
        raise StudyError(f"suite {path}: unknown keys {unknown}; a suite has {sorted(SUITE_KEYS)}")
    defaults = _settings(path, "[defaults]", data.get("defaults", {}))
    tasks_table = data.get("tasks")
    if not isinstance(tasks_table, dict) or not tasks_table:
        raise StudyError(f"suite {path} lists no task: add a [tasks.NAME] table per dataset")
    tasks: dict[str, dict[str, Any]] = {}
    datasets: dict[str, str] = {}
    for name, table in tasks_table.items():
        settings = {**defaults, **_settings(path, f"[tasks.{name}]", table)}
        settings.setdefault("dataset", name)
        dataset = settings["dataset"]
        if dataset in datasets:
            raise StudyError(
                f"suite {path}: tasks {datasets[dataset]!r} and {name!r} both use dataset "
                f"{dataset!r}; list each dataset once"
            )
        datasets[dataset] = name
        tasks[name] = settings
    description = data.get("description", "")
    if not isinstance(description, str):
        raise StudyError(f"suite {path}: description must be a string")
    return Suite(path, description, tasks)


def _settings(path: Path, where: str, table: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise StudyError(f"suite {path}: {where} must be a table of settings")
    unknown = sorted(set(table) - TASK_SETTINGS)
    if unknown:
        raise StudyError(
            f"suite {path}: {where} has unknown settings {unknown}; "
            f"a task may set {sorted(TASK_SETTINGS)}"
        )
    check_space_given(table, f"suite {path}, {where}")
    return dict(table)


def suite_configs(suite: Suite, given: dict[str, Any]) -> list[StudyConfig]:
    """Each task's config: its settings, with the settings ``given`` on the command line (the
    backend, the output folder, and any option typed) over them. Each is checked
    (`StudyConfig.__post_init__`) and resolved (`StudyConfig.resolve`: its table read), so a
    bad value names its task."""
    configs = []
    for name, settings in suite.tasks.items():
        try:
            named = frozenset(settings) | frozenset(given)
            configs.append(resolve(StudyConfig(**{**settings, **given}, given=named)))
        except StudyError as exc:
            raise StudyError(f"suite {suite.path}, task {name!r}: {exc}") from None
        except TypeError as exc:  # a value of the wrong kind for a field
            raise StudyError(f"suite {suite.path}, task {name!r}: {exc}") from None
    return configs
