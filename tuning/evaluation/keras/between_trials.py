"""Between two trials of a process: Keras' and the framework's global state dropped, the
global generators seeded, so that every trial starts as the first did and memory stays flat."""

from __future__ import annotations

import random
import sys

import keras
import numpy as np

from tuning.core.collector import collect_and_freeze


def release_models(forget_programs: bool = True) -> None:
    """Drop Keras' global state (layer names, graphs, kernel caches) and collect the previous
    trials' models, so that memory stays flat over hundreds of trials. Call it before seeding.

    A full collection with TensorFlow or JAX loaded scans half a million objects, a large share
    of a fast trial. So the first call of a process freezes what is alive then (the frameworks,
    the data: freed by reference counting as before, only skipped by the cycle collector), and
    every collection after scans only what trials made since.

    ``forget_programs=False`` keeps JAX's in-memory programs: for models built at a few fixed
    shapes (padded widths), where they stay few and would otherwise be compiled again for
    every model that is built.
    """
    keras.backend.clear_session(free_memory=False)
    _forget_custom_gradients()
    if forget_programs:
        _forget_jax_programs()
    collect_and_freeze()


def seed_generators(seed: int) -> None:
    """Seed the global generators a trial draws from: Python's and NumPy's (which shuffles the
    batches on JAX), and TensorFlow's when it is loaded (it shuffles them on TensorFlow).

    `keras.utils.set_random_seed` seeds all of them, but imports TensorFlow to do so whatever
    the backend: on JAX, seconds of the first trial's time and of a seconds budget
    (`import tensorflow` takes seconds). It is called only where TensorFlow
    is loaded already.
    """
    if "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
    else:
        random.seed(seed)
        np.random.seed(seed)


def _forget_jax_programs() -> None:
    """JAX keeps every program it compiled for a function in memory, per argument shape: Keras'
    initializers and steps compile one per new layer shape, so memory grows with every new
    architecture (`benchmarks/memory.py` measures it). Cleared before each
    trial; the compiled trainer holds its own programs, and the persistent cache
    (`tuning.evaluation.keras.jax_cache`) gives back the others in milliseconds."""
    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()


def _forget_custom_gradients() -> None:
    """TensorFlow registers a gradient function in a global registry each time it traces a
    `tf.custom_gradient` op (Keras' training step has one) and never removes it; each entry keeps
    its traced graph alive, so memory grows trial after trial (`benchmarks/memory.py`). A graph takes
    its gradients while it is traced, so the entries of earlier trials are not needed again."""
    if keras.backend.backend() != "tensorflow":
        return
    from tensorflow.python.framework import ops  # the registry has no public way to remove

    entries = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if isinstance(entries, dict):
        for name in [name for name in entries if str(name).startswith("CustomGradient-")]:
            del entries[name]
