"""Random search: the floor every library is measured against.

Independent draws from the neutral space (log ranges log-uniform, integers uniform over their
values, categories uniform), through the same evaluator and budget as every other backend, with no
library in between. Unlike the ``sklearn`` backend it trains each candidate once on the shared
split, as the other backends do, so it is the like-for-like baseline.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tuning.core.space import CategoricalParam, FloatParam, IntParam, Param
from tuning.core.workers import drive
from tuning.search.base import SearchBackend, SearchTask


def draw(param: Param, rng: np.random.Generator) -> Any:
    """One value of ``param``, drawn with ``rng``."""
    if isinstance(param, IntParam):
        if not param.log:
            return int(rng.integers(param.low, param.high, endpoint=True))
        # log-uniform over [low, high + 1), floored: each integer weighted by its log width
        value = math.exp(rng.uniform(math.log(param.low), math.log(param.high + 1)))
        return min(int(value), param.high)
    if isinstance(param, FloatParam):
        if param.log:
            return float(math.exp(rng.uniform(math.log(param.low), math.log(param.high))))
        return float(rng.uniform(param.low, param.high))
    if isinstance(param, CategoricalParam):
        return param.choices[int(rng.integers(len(param.choices)))]
    raise TypeError(f"unsupported parameter {param!r}")


class RandomBackend(SearchBackend):
    """Uniform random sampling (NumPy ``default_rng(seed)``) until the budget is spent."""

    name = "random"
    library = "numpy"
    parallel = {"": "a new draw whenever a worker is free (draws ignore results)"}

    def search(self, task: SearchTask) -> None:
        rng = np.random.default_rng(task.seed)
        if task.workers is not None:
            drive(
                task.workers,
                lambda: ({p.name: draw(p, rng) for p in task.space}, None, {}),
                _ignore,
            )
            return
        while not task.meter.exhausted:
            task.evaluator.evaluate({p.name: draw(p, rng) for p in task.space})


def _ignore(_finished: object) -> None:
    """Random search is told nothing."""
