"""What defines a study: `StudyConfig`, built in code or read from a TOML file.

A config is inert data: constructing one checks its values and reads nothing. What its settings
name outside it (a table's settings, the Keras backend the environment chooses) is read once,
by `tuning.evaluation.objectives.resolve`, in the process that plans the studies; the resolved
config travels to the workers as data. What is built from a config (its space, its evaluator,
its training protocol) is built by the layer that owns it (`tuning.evaluation.objectives`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tuning.core.budget import Budget, BudgetError, check_count, check_seconds
from tuning.core.errors import StudyError
from tuning.core.files import read_toml
from tuning.core.urls import without_password

# Settings that may differ between two runs of one study without making its results another study's.
NOT_COMPARED = frozenset({"out"})
DEFAULT_TRIALS = 20
# A study's name is its folder's, one path component inside --out: never ".", ".." or hidden.
STUDY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
# The settings a tabular study takes from its table (`tuning tabulate` built it with them).
TABLE_SETTINGS = ("dataset", "max_rows", "max_epochs", "batch_size", "patience", "model")


KERAS_BACKENDS = ("jax", "tensorflow")
TRAINERS = ("keras", "compiled")  # `tuning.evaluation.keras.trainer`


def check_keras_backend(name: str) -> str:
    """``name`` if it is a Keras backend the harness trains on; ValueError naming the field."""
    if name not in KERAS_BACKENDS:
        raise ValueError(
            f"keras_backend {name!r} is not supported; choose one of {list(KERAS_BACKENDS)}"
        )
    return name


def trainer_for(requested: str | None, keras_backend: str) -> str:
    """The trainer a study uses: ``requested``, else ``compiled`` on JAX and ``keras``
    elsewhere. Raises ValueError naming the field when the two do not go together."""
    if requested is None:
        return "compiled" if keras_backend == "jax" else "keras"
    if requested not in TRAINERS:
        raise ValueError(f"trainer {requested!r} is not known; choose one of {list(TRAINERS)}")
    if requested != "keras" and keras_backend != "jax":
        raise ValueError(
            f"trainer {requested!r} runs on the JAX backend only, not {keras_backend!r}: "
            "use --trainer keras or --keras-backend jax"
        )
    return requested


# The largest seed every library takes: numpy's generators stop at 2**32 - 1, Keras Tuner adds 1
# to a study's seed, and some take a signed 32-bit integer.
MAX_SEED = 2**31 - 2
# More workers than this in one study is a typo, not a machine (the simulated ones included).
MAX_WORKERS = 1024


@dataclass
class StudyConfig:
    """Everything that defines a study. Build it in code or from a TOML file (`from_toml`)."""

    backend: str
    dataset: str = "california"
    model: str | None = None  # the factory, package.module:function; default tuning.build_model
    trials: int | None = None  # the budget in trials; 20 when no budget at all is given
    budget_epochs: int | None = None
    budget_seconds: float | None = None
    max_epochs: int = 100
    batch_size: int = 32
    patience: int = 10
    seed: int = 0
    # The seed of the training noise (initial weights, the order of the rows); None: ``seed``.
    # `tuning certify` sets it apart from a table's draws, so that its real runs draw new noise.
    training_seed: int | None = None
    out: str = "results"
    study: str = ""
    target: str | None = None
    task: str | None = None
    max_rows: int | None = None
    keras_backend: str | None = None  # jax or tensorflow; default: KERAS_BACKEND, else jax
    trainer: str | None = None  # compiled or keras; default: compiled on JAX, keras elsewhere
    backend_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    # None: every trial is trained; "tabular:TABLE": looked up in a table
    objective: str | None = None
    # evaluations at once, each library through its own parallel mode (`tuning.core.workers`)
    workers: int = 1
    # True once `resolve` has read what the settings name; never recorded
    resolved: bool = field(default=False, repr=False, compare=False)
    # The settings a user named (a study or suite file's keys, the options typed), whatever
    # their values: a tabular study takes the others from its table. None (a config built in
    # code): the settings whose values differ from the defaults. Never recorded.
    given: frozenset[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_types()
        if self.objective is not None:
            table_format(self.objective)
        if not self.study:
            self.study = default_study_name(self.dataset, self.backend, self.seed, self.workers)
        if not STUDY_NAME.fullmatch(self.study):
            raise StudyError(
                f"study name {self.study!r} must be one plain folder name: letters, digits, "
                "'.', '_', '-', starting with a letter, digit or '_' (no '.', '..' or '/')"
            )
        try:
            if self.keras_backend is not None:
                check_keras_backend(self.keras_backend)
            if self.trainer is not None or self.keras_backend is not None:
                # (no backend given: the trainer's name is checked, its backend on `resolve`)
                self.trainer = trainer_for(self.trainer, self.keras_backend or "jax")
        except ValueError as exc:
            raise StudyError(str(exc)) from None
        if self.trials is None and self.budget_epochs is None and self.budget_seconds is None:
            self.trials = DEFAULT_TRIALS
        try:
            for name in ("trials", "budget_epochs", "max_epochs", "batch_size", "patience"):
                value = getattr(self, name)
                if value is not None or not name.startswith(("trials", "budget")):
                    check_count(name, value)
            if self.budget_seconds is not None:
                check_seconds("budget_seconds", self.budget_seconds)
        except BudgetError as exc:
            raise StudyError(str(exc)) from None
        if self.max_rows is not None and (not isinstance(self.max_rows, int) or self.max_rows < 8):
            raise StudyError(f"max_rows must be an integer >= 8, got {self.max_rows!r}")
        if self.task not in (None, "regression", "classification"):
            raise StudyError(f"task must be 'regression' or 'classification', got {self.task!r}")

    def _check_types(self) -> None:
        """The fields' types, as a study file may get them wrong; ranges are checked after."""
        for name in ("backend", "dataset", "out", "study"):
            if not isinstance(getattr(self, name), str):
                raise StudyError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("model", "target", "task", "keras_backend", "trainer", "objective"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise StudyError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("backend_options", "model_options", "space"):
            if not isinstance(getattr(self, name), dict):
                raise StudyError(
                    f"{name} must be a table ([{name}] in a study file), got {getattr(self, name)!r}"
                )
        try:
            check_count("workers", self.workers)  # (before the study's name is made of it)
        except BudgetError as exc:
            raise StudyError(str(exc)) from None
        if self.workers > MAX_WORKERS:
            raise StudyError(
                f"workers must be at most {MAX_WORKERS:,} (more in one study is a typo, not a "
                f"machine), got {self.workers:,}"
            )
        for name in ("seed", "training_seed"):
            value = getattr(self, name)
            if value is None and name == "training_seed":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
                raise StudyError(
                    f"{name} must be an integer from 0 to {MAX_SEED:,} (the largest every "
                    f"library accepts), got {value!r}"
                )

    @property
    def noise_seed(self) -> int:
        """The seed of the study's training noise: `training_seed`, else the study's seed."""
        return self.seed if self.training_seed is None else self.training_seed

    @property
    def table(self) -> Path | None:
        """The folder of a tabular study's table; None for a study that trains."""
        return None if self.objective is None else table_format(self.objective)

    @property
    def study_dir(self) -> Path:
        return Path(self.out) / self.study

    def recorded(self) -> dict[str, Any]:
        """The settings as a study's files hold them: `dataclasses.asdict`, but with the password
        of a storage URL hidden (a password is not a setting, and files get shared)."""
        settings = asdict(self)
        del settings["resolved"], settings["given"]
        storage = settings["backend_options"].get("storage")
        if isinstance(storage, str):
            settings["backend_options"]["storage"] = without_password(storage)
        return settings

    def differences(self, recorded: dict[str, Any]) -> list[str]:
        """``'field: old -> new'`` for each setting (bar `NOT_COMPARED`) in which this config
        differs from ``recorded``, an earlier run's settings (`recorded`)."""
        new = self.recorded()
        # a setting an earlier version did not record had its default then
        old = {name: recorded.get(name, SETTING_DEFAULTS.get(name)) for name in new}
        return [
            f"{name}: {old[name]!r} -> {new[name]!r}"
            for name in sorted(new)
            if name not in NOT_COMPARED and old[name] != new[name]
        ]

    def budget(self) -> Budget:
        return Budget(self.trials, self.budget_epochs, self.budget_seconds)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> StudyConfig:
        """Read a study file: top-level keys are this class's fields (``[space.NAME]`` tables)."""
        path = Path(path)
        data = read_toml(path, "study file")
        check_space_given(data, f"study file {path}")
        known = {f.name for f in fields(cls)} - {"resolved", "given"}  # (not settings)
        unknown = sorted(set(data) - known)
        if unknown:
            raise StudyError(
                f"study file {path}: unknown keys {unknown}; known keys: {sorted(known)}"
            )
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}  # --cv adds to the file's [backend_options]
            elif value is not None:
                data[key] = value
        if "backend" not in data:
            raise StudyError(
                f'study file {path} names no backend: add backend = "NAME" to it, or give '
                "--backend NAME (see `tuning backends`)"
            )
        return cls(**data, given=frozenset(data))


# The settings added since studies were first recorded, and their defaults (`differences`).
SETTING_DEFAULTS = {"workers": 1}


def table_format(objective: str) -> Path:
    """The table's folder of an ``objective`` setting, which must read ``tabular:TABLE``."""
    kind, _, folder = objective.partition(":")
    if kind != "tabular" or not folder:
        raise StudyError(
            f"objective {objective!r}: write tabular:TABLE, TABLE a folder built by tuning tabulate"
        )
    return Path(folder)


def check_space_given(settings: dict[str, Any], where: str) -> None:
    """A ``[space]`` table that is present must name a parameter: an empty one is a mistake,
    not a request for the book's space (which is what leaving it out means)."""
    if "space" in settings and settings["space"] == {}:
        raise StudyError(
            f"{where}: [space] is empty: add a [space.NAME] table per parameter, or leave "
            "[space] out for the book's space"
        )


def default_study_name(dataset: str, backend: str, seed: int, workers: int = 1) -> str:
    """``DATASET_BACKEND_sSEED`` (``_wN`` after it for N workers); ``optuna:tpe+median`` is
    written ``optuna-tpe-median`` (a colon or plus is no part of a portable file name)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.removeprefix("csv:")).strip("._-") or "data"
    name = f"{stem}_{re.sub(r'[:+]', '-', backend)}_s{seed}"
    return name if workers == 1 else f"{name}_w{workers}"
