"""The garbage collector between trials: collect, and freeze what the process held before its
first trial, once."""

from __future__ import annotations

import functools
import gc


def collect_and_freeze() -> None:
    """Collect garbage; the first call of a process then leaves everything alive (the
    frameworks, the data, a table) out of every later collection (`gc.freeze`). With TensorFlow
    or JAX loaded a full collection scans half a million objects: a large share of a fast
    trial, far more than a lookup costs. What is frozen is still freed by reference counting.
    """
    gc.collect()
    _freeze_once()


@functools.cache
def _freeze_once() -> None:
    """`gc.freeze` once per process (`gc.get_freeze_count` would tell whether it happened, but
    counts the frozen objects one by one: milliseconds a call)."""
    gc.freeze()
