"""The kinds of objective a study can have, each building its evaluator from the study's config.

``objective`` unset: every trial trains the model (`tuning.evaluation.keras.kind`);
``tabular:TABLE``: every trial is looked up in a table (`tuning.evaluation.tabular.kind`). A new
kind is a module with its builder, named in `KINDS` and `_builder`: the study (`tuning.run.study`) sees
only the `tuning.core.evaluator.Evaluator` it builds. No Keras import here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tuning.core.config import StudyConfig, trainer_for
from tuning.core.errors import StudyError
from tuning.core.evaluator import Evaluator
from tuning.core.signals import StopSignals
from tuning.core.space import SearchSpace
from tuning.evaluation.data import Dataset, check_dataset, load_dataset

KINDS = ("keras", "tabular")


def kind_of(config: StudyConfig) -> str:
    """The config's kind of objective: ``keras`` when it trains, else its ``objective``'s kind."""
    # (`StudyConfig` refuses an objective of another kind)
    return "keras" if config.objective is None else config.objective.partition(":")[0]


def _builder(kind: str) -> Callable[..., Evaluator]:
    # imported here, not at the top: the chosen kind's modules only (Keras once it trains)
    if kind == "tabular":
        from tuning.evaluation.tabular.kind import tabular_evaluator

        return tabular_evaluator
    from tuning.evaluation.keras.kind import keras_evaluator

    return keras_evaluator


def resolve(config: StudyConfig) -> StudyConfig:
    """``config`` with what its settings name read in, once (a resolved config is returned as
    it is): the settings its kind takes from elsewhere (a tabular study's data and protocol
    from its table: a setting left out takes the table's value, one set to another value is
    refused), and the Keras backend (``KERAS_BACKEND``, else JAX) and trainer when not given."""
    if config.resolved:
        return config
    changes: dict[str, Any] = {"resolved": True}
    if kind_of(config) == "tabular":
        from tuning.evaluation.tabular.kind import adopted_settings

        changes.update(adopted_settings(config))
    from tuning.evaluation.keras.environment import resolve_keras_backend

    try:
        backend = resolve_keras_backend(config.keras_backend)
        changes.update(keras_backend=backend, trainer=trainer_for(config.trainer, backend))
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    return replace(config, **changes)


def study_space(config: StudyConfig) -> SearchSpace:
    """The space a study searches, checked against its factory (imported to read it)."""
    from tuning.evaluation.keras.kind import space_of

    return space_of(config)


def check_inputs(config: StudyConfig, sample_rows: int = 64) -> None:
    """Refuse, in one line, what would fail every study of ``config`` (resolved), before any
    starts: a table whose grid the space does not match; a dataset that cannot be loaded; a
    user's factory, space or options whose models do not build (on ``sample_rows`` rows).
    Keras is imported only for a user's model (the book's needs no check)."""
    from tuning.core.space import default_space
    from tuning.evaluation.keras.kind import check_model, protocol_of, space_of, user_model

    own = user_model(config)
    if kind_of(config) == "tabular":
        from tuning.evaluation.tabular.table import load_table

        load_table(config.table).check_space(space_of(config) if own else default_space())
        return
    check_dataset(config.dataset, target=config.target, task=config.task)
    if own:
        from tuning.evaluation.keras.factory import load_factory

        factory = load_factory(config.model)
        sample = load_dataset(config.dataset, target=config.target).head(sample_rows)
        check_model(config, factory, sample, space_of(config, factory), protocol_of(config))


def build_evaluator(
    config: StudyConfig,
    *,
    algorithm: str,
    keeps_weights: bool,
    dataset: Dataset | None = None,
    stop: StopSignals | None = None,
) -> Evaluator:
    """The evaluator of the study ``config`` (resolved) defines, built by its kind: its data
    (``dataset`` reuses arrays loaded already), space, protocol, budget meter, resume ledger
    and row writer (rows keyed by ``algorithm``); ``keeps_weights``: the search continues
    trials (`tuning.core.evaluator.WarmStart`); ``stop``: the study's stop signals. The
    config's Keras backend is chosen before (`tuning.run.study.run_study` does it first)."""
    evaluator = _builder(kind_of(config))(
        config, algorithm=algorithm, keeps_weights=keeps_weights, dataset=dataset, stop=stop
    )
    if stop is not None:  # a signal while it was built (data loaded, models checked)
        stop.raise_if_stopped()
    return evaluator
