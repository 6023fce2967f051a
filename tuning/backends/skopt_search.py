"""scikit-optimize: a Gaussian-process `Optimizer` driven through ask/tell."""

from __future__ import annotations

from pathlib import Path

import skopt
from skopt.space import Categorical, Dimension, Integer, Real

from tuning.backends.base import Budget, SearchBackend
from tuning.objective import Objective
from tuning.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace


def to_skopt(param: Param) -> Dimension:
    """One parameter of the neutral space as a skopt dimension."""
    prior = "log-uniform" if getattr(param, "log", False) else "uniform"
    if isinstance(param, IntParam):
        if param.low == param.high:  # skopt's Integer needs low < high
            return Categorical([param.low], name=param.name)
        return Integer(param.low, param.high, prior=prior, name=param.name)
    if isinstance(param, FloatParam):
        return Real(param.low, param.high, prior=prior, name=param.name)
    if isinstance(param, CategoricalParam):
        return Categorical(list(param.choices), name=param.name)
    raise TypeError(f"unsupported parameter {param!r}")


class SkoptBackend(SearchBackend):
    """`skopt.Optimizer(base_estimator="GP")`, the engine of `gp_minimize`, asked and told per trial.

    A failed trial is told the worst loss seen so far (the GP cannot model a NaN), so the optimizer
    learns to avoid that region without its scale being distorted by an arbitrary constant; failures
    before any success wait, untold, until there is a worst loss to tell (skopt keeps drawing
    random initial points meanwhile). skopt keeps no state on disk: a resumed study tells a new
    optimizer the points already in the table.

    Args:
        n_initial_points: random points before the GP models the results (default: a third of
            the budget's expected trials, at most 10; see `Budget.random_start`).
        acq_func: skopt's acquisition function.
    """

    name = "skopt"

    def __init__(self, n_initial_points: int | None = None, acq_func: str = "gp_hedge") -> None:
        self.n_initial_points = n_initial_points
        self.acq_func = acq_func

    def run(
        self, objective: Objective, space: SearchSpace, budget: Budget, seed: int, workdir: Path
    ) -> None:
        optimizer = skopt.Optimizer(
            dimensions=[to_skopt(p) for p in space],
            base_estimator="GP",
            acq_func=self.acq_func,
            n_initial_points=budget.random_start(
                self.n_initial_points, objective.protocol.max_epochs
            ),
            random_state=seed,
        )
        failed_untold: list[list] = []

        def observe(point: list, ok: bool, loss: float) -> None:
            if not ok:
                failed_untold.append(point)
                if not optimizer.yi:
                    return
            else:
                optimizer.tell(point, loss)
            if failed_untold:
                worst = max(optimizer.yi)
                optimizer.tell(failed_untold, [worst] * len(failed_untold))
                failed_untold.clear()

        # A resumed study replays its finished trials into the optimizer, each after the `ask`
        # that drew it, so the optimizer's random stream continues where the first run left it.
        for recorded in objective.finished:
            optimizer.ask()
            point = [recorded.params[name] for name in space.names]
            observe(point, recorded.ok, recorded.val_loss)
        objective.restored(len(objective.finished))
        while not objective.meter.exhausted:
            point = optimizer.ask()
            result = objective(space.coerce(dict(zip(space.names, point, strict=True))))
            observe(point, result.ok, result.val_loss)
