"""scikit-optimize: an `Optimizer` (Gaussian process, random forest, extra trees or gradient-boosted
trees as its surrogate) driven through ask/tell."""

from __future__ import annotations

from typing import Any

import numpy as np
import skopt
from sklearn.ensemble import GradientBoostingRegressor
from skopt.learning import GradientBoostingQuantileRegressor
from skopt.space import Categorical, Dimension, Integer, Real

from tuning.core.space import CategoricalParam, FloatParam, IntParam, Param
from tuning.core.workers import Finished, drive
from tuning.search.base import Budget, SearchBackend, SearchTask


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


# algorithm -> skopt's `base_estimator` name and its `*_minimize` function's acquisition default
SURROGATES = {
    "gp": ("GP", "gp_hedge"),
    "forest": ("RF", "EI"),
    "extra_trees": ("ET", "EI"),
    "gbrt": ("GBRT", "EI"),
}


class _QuantileGBRT(GradientBoostingQuantileRegressor):
    """skopt's GBRT surrogate, mended for the libraries installed with it (skopt 0.10.2):

    - told a regressor as scikit-learn >= 1.6 asks (its tags): skopt puts `BaseEstimator`
      before `RegressorMixin`, so `is_regressor` answers no and `Optimizer` refuses it;
    - its ``predict(return_std=True)`` calls ``np.in1d``, which NumPy 2.4 removed: the same
      mean and spread ((q84 - q16) / 2) are computed here without it.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        return tags

    def predict(self, X, return_std=False, return_quantiles=False):
        if not return_std or return_quantiles:
            return super().predict(X, return_std=return_std, return_quantiles=return_quantiles)
        at = {q: self.regressors_[self.quantiles.index(q)] for q in (0.16, 0.5, 0.84)}
        low, mean, high = (at[q].predict(X) for q in (0.16, 0.5, 0.84))
        return mean, (high - low) / 2.0


def _surrogate(name: str, seed: int) -> Any:
    """skopt's ``base_estimator`` by its name, bar GBRT: built as skopt's `cook_estimator`
    builds it (30 quantile trees), as `_QuantileGBRT`."""
    if name != "GBRT":
        return name
    trees = GradientBoostingRegressor(n_estimators=30, loss="quantile")
    return _QuantileGBRT(base_estimator=trees, random_state=seed)


class SkoptBackend(SearchBackend):
    """`skopt.Optimizer(base_estimator=...)`, the engine of `gp_minimize`, `forest_minimize` and
    `gbrt_minimize`, asked and told per trial.

    A failed trial is told the worst loss seen so far (the GP cannot model a NaN), so the optimizer
    learns to avoid that region without its scale being distorted by an arbitrary constant; failures
    before any success wait, untold, until there is a worst loss to tell (skopt keeps drawing
    random initial points meanwhile). skopt keeps no state on disk: a resumed study's new
    optimizer, seeded alike, proposes the finished trials again and is told their results.

    Args:
        algorithm: one of `algorithms` (default ``gp``).
        n_initial_points: random points before the surrogate models the results (default: a
            third of the budget's expected trials, at most 10; see `Budget.random_start`).
        acq_func: skopt's acquisition function (default: its ``*_minimize`` function's:
            ``gp_hedge`` for the GP, ``EI`` for the trees).
    """

    name = "skopt"
    library = "scikit-optimize"
    default_algorithm = "gp"
    algorithms = {
        "gp": "Gaussian-process surrogate (gp_minimize's Optimizer)",
        "forest": "random-forest surrogate (forest_minimize, base_estimator='RF')",
        "extra_trees": "extra-trees surrogate (forest_minimize, base_estimator='ET')",
        "gbrt": "gradient-boosted-trees surrogate (gbrt_minimize)",
    }
    parallel = dict.fromkeys(
        algorithms,
        "constant liar: the running points told min(y) on a copy, as ask(n_points, "
        "strategy='cl_min') does",
    )

    def __init__(
        self,
        algorithm: str | None = None,
        n_initial_points: int | None = None,
        acq_func: str | None = None,
    ) -> None:
        self.algorithm = self._choose(algorithm)
        self.n_initial_points = n_initial_points
        self.acq_func = acq_func

    def settings(self, budget: Budget, max_epochs: int) -> dict[str, Any]:
        estimator, acquisition = SURROGATES[self.algorithm]
        return {
            "base_estimator": estimator,
            "acq_func": self.acq_func or acquisition,
            "n_initial_points": budget.random_start(self.n_initial_points, max_epochs),
            # skopt's "auto": L-BFGS where the surrogate has gradients (the GP), else sampling;
            # set, with every other argument, rather than left to a release's defaults
            "acq_optimizer": "lbfgs" if estimator == "GP" else "sampling",
            "acq_optimizer_kwargs": {"n_points": 10000, "n_restarts_optimizer": 5, "n_jobs": 1},
            "acq_func_kwargs": {"xi": 0.01, "kappa": 1.96},
            "initial_point_generator": "random",
        }

    def search(self, task: SearchTask) -> None:
        space, seed = task.space, task.seed
        settings = self.settings(task.budget, task.max_epochs)
        optimizer = skopt.Optimizer(
            dimensions=[to_skopt(p) for p in space],
            base_estimator=_surrogate(settings["base_estimator"], seed),
            acq_func=settings["acq_func"],
            n_initial_points=settings["n_initial_points"],
            acq_optimizer=settings["acq_optimizer"],
            acq_optimizer_kwargs=dict(settings["acq_optimizer_kwargs"]),
            acq_func_kwargs=dict(settings["acq_func_kwargs"]),
            initial_point_generator=settings["initial_point_generator"],
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

        if task.workers is not None:
            self._search_parallel(task, optimizer, observe)
            return
        # A resumed study asks again: the evaluator answers the finished trials from the table
        # (the resume ledger checks that the optimizer proposes them again), and the optimizer
        # is told its own proposals, as in the first run (a tabular study's rows hold the
        # proposals snapped to the table's grid).
        while not task.meter.exhausted:
            point = optimizer.ask()
            params = space.coerce(dict(zip(space.names, point, strict=True)))
            result = task.evaluator.evaluate(params)
            observe(point, result.ok, result.val_loss)

    @staticmethod
    def _search_parallel(task: SearchTask, optimizer: skopt.Optimizer, observe: Any) -> None:
        """Asked for a point while others run, the optimizer proposes as its own
        ``ask(n_points, strategy="cl_min")`` does for a batch: a copy of it (seeded from its
        own random state) is told the running points at the lowest loss seen (0 before any),
        and asked."""
        space = task.space
        running: dict[int, list] = {}  # proposal -> point

        def propose() -> tuple[dict[str, Any], list, dict[str, Any]]:
            if running:
                lied = optimizer.copy(random_state=optimizer.rng.randint(0, np.iinfo(np.int32).max))
                lie = min(optimizer.yi) if optimizer.yi else 0.0
                points = list(running.values())
                lied.tell(points, [lie] * len(points))
                point = lied.ask()
            else:
                point = optimizer.ask()
            running[task.workers.proposals] = point
            return space.coerce(dict(zip(space.names, point, strict=True))), point, {}

        def tell(finished: Finished) -> None:
            del running[finished.submission.number]
            observe(finished.submission.tag, finished.result.ok, finished.result.val_loss)

        drive(task.workers, propose, tell)
