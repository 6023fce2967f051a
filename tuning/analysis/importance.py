"""Which hyperparameters mattered: fANOVA importances, computed by Optuna's evaluator from the rows.

Per task, every complete trial of every backend and seed (the table's rows, whatever library
proposed them) becomes a finished Optuna trial of one in-memory study over the task's space;
`optuna.importance.FanovaImportanceEvaluator` (a random forest over the configurations,
Hutter et al. 2014) says which share of the variance of log(validation loss) each parameter
explains on its own. The log keeps a few diverged or stalled trials from deciding it. Works for
any space: integers, floats and categories of any names.
"""

from __future__ import annotations

import json
import math
import warnings

import optuna
import pandas as pd

from tuning.core.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace

IMPORTANCE_FILE = "importance.csv"
MIN_TRIALS = 8  # fewer complete trials than this tell nothing about a parameter
# More than this (a tabular grid of 100 seeds: tens of thousands) are sampled down to it, seeded:
# fANOVA's forest on them gives the same shares in seconds rather than minutes.
MAX_TRIALS = 5000


def to_optuna_distribution(param: Param) -> optuna.distributions.BaseDistribution:
    """One parameter of the neutral space as an Optuna distribution."""
    if isinstance(param, IntParam):
        return optuna.distributions.IntDistribution(param.low, param.high, log=param.log)
    if isinstance(param, FloatParam):
        return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log)
    if isinstance(param, CategoricalParam):
        return optuna.distributions.CategoricalDistribution(list(param.choices))
    raise TypeError(f"unsupported parameter {param!r}")


def parameter_importances(
    trials: pd.DataFrame, space: SearchSpace, seed: int = 0
) -> pd.Series | None:
    """Each parameter's fANOVA importance (they sum to 1) over ``trials`` (rows of one task's
    studies), highest first; None with fewer than `MIN_TRIALS` complete trials or one parameter."""
    ok = trials[trials["status"].eq("complete") & (trials["val_loss"] > 0)]
    if len(ok) < MIN_TRIALS or len(space) < 2:
        return None
    if len(ok) > MAX_TRIALS:
        ok = ok.sample(n=MAX_TRIALS, random_state=seed)
    distributions = {p.name: to_optuna_distribution(p) for p in space}
    frozen = []
    for params_json, loss in zip(ok["params"], ok["val_loss"], strict=True):
        params = space.coerce(
            {k: v for k, v in json.loads(params_json).items() if k in distributions}
        )
        if set(params) != set(distributions) or not space.contains(params):
            continue
        frozen.append(
            optuna.trial.create_trial(
                params=params, distributions=distributions, value=math.log(float(loss))
            )
        )
    if len(frozen) < MIN_TRIALS:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    study.add_trials(frozen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed)
        )
    return pd.Series(importances, dtype=float).sort_values(ascending=False)


def importance_table(trials: pd.DataFrame, spaces: dict[str, SearchSpace]) -> pd.DataFrame:
    """``dataset, parameter, importance, trials`` for every task in ``spaces`` that has enough
    complete trials."""
    rows = []
    for dataset, space in sorted(spaces.items()):
        mine = trials[trials["dataset"] == dataset]
        importances = parameter_importances(mine, space)
        if importances is None:
            continue
        n = int((mine["status"] == "complete").sum())
        rows += [
            {"dataset": dataset, "parameter": name, "importance": float(value), "trials": n}
            for name, value in importances.items()
        ]
    return pd.DataFrame(rows, columns=["dataset", "parameter", "importance", "trials"])


def importance_lines(table: pd.DataFrame) -> list[str]:
    """One markdown bullet per task: its parameters by importance."""
    return [
        f"- {dataset} ({int(group['trials'].iloc[0])} complete trials"
        + (f", {MAX_TRIALS} of them sampled" if group["trials"].iloc[0] > MAX_TRIALS else "")
        + "): "
        + ", ".join(f"{r.parameter} {r.importance:.2f}" for r in group.itertuples(index=False))
        for dataset, group in table.groupby("dataset", sort=True)
    ]
