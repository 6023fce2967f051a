"""Choosing a study's trainer: ``keras`` (`keras.Model.fit`) or ``compiled`` (JAX only).

Apart from `tuning.evaluation.keras.trainer` (the protocol and the trainers' base class) so that
the compiled trainer, which builds on that base, is imported only where it runs.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import keras

from tuning.core.config import trainer_for
from tuning.evaluation.keras.trainer import KerasTrainer, Trainer, TrainingProtocol

if TYPE_CHECKING:  # the compiled trainer is imported only where it runs (JAX)
    from tuning.evaluation.keras.structure import ProgramCache


def create_trainer(
    protocol: TrainingProtocol, seed: int = 0, *, share_programs: bool = False
) -> Trainer:
    """The protocol's trainer (by the Keras backend in use when it names none). On JAX, JAX's
    persistent compilation cache is switched on first (`tuning.evaluation.keras.jax_cache`).
    ``share_programs``: a compiled trainer keeps its epoch programs in the process's one cache
    (`process_programs`: a study's trainer reuses what an earlier study of the process traced
    and compiled), else in a cache of its own."""
    backend = keras.backend.backend()
    if backend == "jax":
        from tuning.evaluation.keras.jax_cache import enable_compilation_cache

        enable_compilation_cache()
    name = trainer_for(protocol.trainer, backend)
    if name == "keras":
        return KerasTrainer(protocol, seed)
    from tuning.evaluation.keras.compiled import CompiledTrainer  # JAX: only where it runs

    return CompiledTrainer(protocol, seed, process_programs() if share_programs else None)


@functools.cache
def process_programs() -> ProgramCache:
    """The compiled programs the studies of this process share: a bounded cache, as JAX's
    own caches are per process (programs are keyed by everything that makes them differ)."""
    from tuning.evaluation.keras.structure import ProgramCache

    return ProgramCache()
