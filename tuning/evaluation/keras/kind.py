"""The Keras kind of objective: a study whose every trial trains the model. Builds, from a
resolved config, the factory (loaded once), the space it is searched over, the training
protocol, and the study's `KerasEvaluator`; and refuses, in one line and before any folder is
written, a factory or space whose models do not build."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuning.core.budget import BudgetMeter
from tuning.core.config import StudyConfig
from tuning.core.errors import StudyError
from tuning.core.ledger import ResumeLedger
from tuning.core.results import study_writer
from tuning.core.signals import StopSignals
from tuning.core.space import SearchSpace, default_space
from tuning.core.worker_process import RemoteRecorder
from tuning.evaluation.data import Dataset, load_dataset
from tuning.evaluation.keras.factory import (
    DEFAULT_FACTORY,
    Padding,
    check_arguments,
    check_builds,
    load_factory,
    study_padding,
)

if TYPE_CHECKING:  # no Keras here until a study runs: the grid's parent checks without it
    from tuning.evaluation.keras.evaluator import KerasEvaluator
    from tuning.evaluation.keras.trainer import TrainingProtocol

CHECKPOINTS_DIR = "checkpoints"  # each trial's weights, for a search that continues trials


def protocol_of(config: StudyConfig) -> TrainingProtocol:
    """The study's training protocol: its epoch cap, batch size, patience and trainer."""
    from tuning.evaluation.keras.trainer import TrainingProtocol

    return TrainingProtocol(
        config.max_epochs, config.batch_size, config.patience, trainer=config.trainer
    )


def space_of(config: StudyConfig, factory: Callable[..., Any] | None = None) -> SearchSpace:
    """The space to search: the config's ``[space]``, else the book's for the book's factory.
    It and ``model_options`` must name arguments of the factory (``factory``, else the one the
    config names, imported to read its signature)."""
    factory = factory or load_factory(config.model)
    if config.space:
        space = SearchSpace.from_dict(config.space)
    elif config.model in (None, DEFAULT_FACTORY):
        space = default_space()
    else:
        raise StudyError(
            f"model {config.model}: give its search space ([space.NAME] tables in a study "
            "or suite file); the default space is the book's MLP's"
        )
    check_arguments(factory, config.model, space.names, config.model_options)
    both = sorted(set(space.names) & set(config.model_options))
    if both:
        raise StudyError(
            f"model_options {both} are also searched in the space: remove them from one of the two"
        )
    return space


def padding_of(
    factory: Callable[..., Any], space: SearchSpace, dataset: Dataset, protocol: TrainingProtocol
) -> Padding:
    """The study's `Padding` for its factory, space, data and protocol (`study_padding`)."""
    return study_padding(
        factory, space, len(dataset.X_train), protocol.max_epochs, dataset.n_inputs
    )


def check_model(
    config: StudyConfig,
    factory: Callable[..., Any],
    dataset: Dataset,
    space: SearchSpace,
    protocol: TrainingProtocol,
) -> None:
    """Build the study's model with each parameter at its lowest value, and once with each other
    choice of each categorical parameter (`SearchSpace.each_choice`), at the study's padded
    shapes, and refuse a factory that fails or does not return a compiled Keras model, in one
    line."""
    from tuning.evaluation.keras.between_trials import release_models
    from tuning.evaluation.keras.seeded_build import factory_arguments

    padding = padding_of(factory, space, dataset, protocol)
    for params in space.each_choice():
        options = {**padding.arguments(params), **config.model_options}
        fixed = factory_arguments(factory, dataset, protocol, config.noise_seed, options)
        check_builds(factory, config.model, {**params, **fixed})
        release_models()


def user_model(config: StudyConfig) -> bool:
    """Whether the study's model or space is the user's (checked by building it first)."""
    return config.model is not None or bool(config.space) or bool(config.model_options)


def keras_evaluator(
    config: StudyConfig,
    *,
    algorithm: str,
    keeps_weights: bool,
    dataset: Dataset | None = None,
    stop: StopSignals | None = None,
) -> KerasEvaluator:
    """The study's `KerasEvaluator`: its data (``dataset``, else loaded; cut to ``max_rows``),
    the factory and space checked (a user's built at every choice first), its padding, its
    row writer named by ``algorithm``, and the folder of each trial's weights where the search
    continues trials (``keeps_weights``)."""
    factory = load_factory(config.model)
    space = space_of(config, factory)
    if dataset is None:
        dataset = load_dataset(config.dataset, target=config.target, task=config.task)
    dataset = dataset.head(config.max_rows)
    if stop is not None:  # a signal while the data loaded: before any model is built
        stop.raise_if_stopped()
    protocol = protocol_of(config)
    if user_model(config):
        check_model(config, factory, dataset, space, protocol)
    from tuning.evaluation.keras.evaluator import KerasEvaluator  # Keras: only once it runs

    return KerasEvaluator(
        dataset,
        protocol,
        study_writer(config, dataset.name, algorithm, space.names),
        seed=config.noise_seed,
        space=space,
        model_options=config.model_options,
        meter=BudgetMeter(config.budget()),
        stop=stop,
        factory=factory,
        padding=padding_of(factory, space, dataset, protocol),
        checkpoints=Path(config.study_dir) / CHECKPOINTS_DIR if keeps_weights else None,
        ledger=ResumeLedger(backend=config.backend),
        workers_from=partial(worker_evaluator, config, algorithm, keeps_weights),
    )


def worker_evaluator(
    config: StudyConfig,
    algorithm: str,
    keeps_weights: bool,
    threads: int,
    meter: BudgetMeter,
    recorder: RemoteRecorder,
) -> KerasEvaluator:
    """The evaluator of one of the study's worker processes (`tuning.core.process_workers`):
    the study's own, built again there with ``threads`` compute threads, counting into the
    study's shared ``meter`` and recording through the study's process (``recorder``)."""
    from tuning.evaluation.keras.environment import pin_threads, use_keras_backend

    pin_threads(threads)  # before Keras is imported here
    use_keras_backend(config.keras_backend)
    evaluator = keras_evaluator(config, algorithm=algorithm, keeps_weights=keeps_weights)
    recorder.compile_seconds = lambda: evaluator.trainer.compile_seconds
    evaluator.meter, evaluator.recorder = meter, recorder
    return evaluator
