"""Which Keras backend and trainer train the trials, and how many threads a process gives it.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so the choice is made here, before
anything imports Keras, and exported to the environment, where the grid's worker processes inherit
it. JAX is the default: on the standard study it trains the same model about three times faster
than TensorFlow on this kind of machine (``benchmarks/trial_speed.py``). No Keras import here.
"""

from __future__ import annotations

import os
import sys

from tuning.core.config import check_keras_backend

DEFAULT_KERAS_BACKEND = "jax"


class KerasBackendError(ValueError):
    """A Keras backend that is unknown, or that differs from the one this process already uses."""


def imported_keras_backend() -> str | None:
    """The backend of the Keras this process has already imported, or None before the import."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    return keras.backend.backend()


def resolve_keras_backend(requested: str | None = None) -> str:
    """The backend a study will use: ``requested``, else ``KERAS_BACKEND``, else the backend of the
    Keras already imported here, else `DEFAULT_KERAS_BACKEND`. Checks the name only."""
    name = requested or os.environ.get("KERAS_BACKEND") or imported_keras_backend()
    try:
        return check_keras_backend(name or DEFAULT_KERAS_BACKEND)
    except ValueError as exc:
        raise KerasBackendError(str(exc)) from None


def use_keras_backend(name: str) -> None:
    """Make ``name`` the backend of this process and of the processes it starts.

    Call it before Keras is imported; afterwards it only checks that Keras already runs ``name``.
    """
    name = resolve_keras_backend(name)
    imported = imported_keras_backend()
    if imported is not None and imported != name:
        raise KerasBackendError(
            f"keras_backend {name!r}: this process already imported Keras on {imported!r}; "
            f"set KERAS_BACKEND={name} before importing Keras, or use keras_backend={imported!r}"
        )
    os.environ["KERAS_BACKEND"] = name


def pin_threads(threads: int) -> None:
    """Give this process ``threads`` compute threads in every framework, before their pools start.

    Two studies side by side on two cores each with one thread do not fight for the cores.
    """
    threads = max(1, int(threads))
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[name] = str(threads)
    # XLA on CPU (JAX): its Eigen pool runs the matrix products; one thread means none at all.
    xla_flags = [
        flag
        for flag in os.environ.get("XLA_FLAGS", "").split()
        if not flag.startswith(("--xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads"))
    ]
    xla_flags += [
        f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}",
        f"intra_op_parallelism_threads={threads}",
    ]
    os.environ["XLA_FLAGS"] = " ".join(xla_flags)
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND") == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # its runtime started already (a grid worker's second study)
            pass
