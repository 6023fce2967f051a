"""Choosing a study's trainer: ``keras`` (`keras.Model.fit`) or ``compiled`` (JAX only).

Apart from `tuning.evaluation.keras.trainer` (the protocol and the trainers' base class) so that
the compiled trainer, which builds on that base, is imported only where it runs.
"""

from __future__ import annotations

import keras

from tuning.evaluation.keras.environment import resolve_trainer
from tuning.evaluation.keras.trainer import KerasTrainer, Trainer, TrainingProtocol


def create_trainer(protocol: TrainingProtocol, seed: int = 0) -> Trainer:
    """The protocol's trainer (by the Keras backend in use when it names none). On JAX, JAX's
    persistent compilation cache is switched on first (`tuning.evaluation.keras.jax_cache`)."""
    backend = keras.backend.backend()
    if backend == "jax":
        from tuning.evaluation.keras.jax_cache import enable_compilation_cache

        enable_compilation_cache()
    name = resolve_trainer(protocol.trainer, backend)
    if name == "keras":
        return KerasTrainer(protocol, seed)
    from tuning.evaluation.keras.compiled import CompiledTrainer  # JAX: only where it runs

    return CompiledTrainer(protocol, seed)
