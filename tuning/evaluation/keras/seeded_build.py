"""Building a trial's model as every trial is built: the factory's arguments besides the
searched ones, the global generators seeded first."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras

from tuning.core.errors import call_user_code
from tuning.evaluation.data import DATA_ARGUMENTS, Dataset
from tuning.evaluation.keras.between_trials import seed_generators
from tuning.evaluation.keras.factory import offered_arguments
from tuning.evaluation.keras.trainer import TrainingProtocol


def factory_arguments(
    factory: Callable[..., keras.Model],
    dataset: Dataset,
    protocol: TrainingProtocol,
    seed: int,
    model_options: Mapping[str, Any],
) -> dict[str, Any]:
    """A factory's arguments besides the searched ones: the data's (`DATA_ARGUMENTS`), the
    protocol's (`tuning.core.config.PROTOCOL_ARGUMENTS`: the speed setting, and the study's seed for
    the initial weights, which makes them the same in any process), those of them its signature
    takes, and the study's fixed ``model_options``."""
    from_data = {name: getattr(dataset, name) for name in DATA_ARGUMENTS}
    from_protocol = {
        "steps_per_execution": protocol.steps_per_execution(len(dataset.X_train)),
        "seed": seed,
    }
    return {**offered_arguments(factory, {**from_data, **from_protocol}), **model_options}


def build_seeded(
    factory: Callable[..., keras.Model],
    params: Mapping[str, Any],
    dataset: Dataset,
    protocol: TrainingProtocol,
    seed: int,
    model_options: Mapping[str, Any] | None = None,
) -> keras.Model:
    """Build ``params`` through ``factory`` as every trial is built: the global generators
    seeded with ``seed`` first, the factory's other arguments from `factory_arguments`."""
    seed_generators(seed)
    arguments = factory_arguments(factory, dataset, protocol, seed, model_options or {})
    return call_user_code(factory, **params, **arguments)
