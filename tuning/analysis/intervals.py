"""Interval estimates of each backend's normalized score over a suite's tasks and seeds.

As rliable recommends for few runs: the mean and the interquartile mean, each with a stratified
bootstrap confidence interval (seeds resampled within each task)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from tuning.analysis.blocks import ALPHA, block_matrix

BOOTSTRAP_REPS = 5000


BOOTSTRAP_SEED = 0


def score_samples(scores: pd.DataFrame) -> dict[str, list[np.ndarray]]:
    """Per backend, one array of normalized scores per task (its blocks' seeds, in order), over
    the blocks every backend ran (`block_matrix`): the strata of the bootstrap. A task whose
    seeds differ from another's keeps its own."""
    matrix = block_matrix(scores, "score")
    samples: dict[str, list[np.ndarray]] = {b: [] for b in matrix.columns}
    for _, task in matrix.groupby(level="dataset", sort=True):
        for backend in matrix.columns:
            samples[backend].append(task[backend].to_numpy(dtype=float))
    return samples


def interquartile_mean(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """The mean of the middle 50% of ``scores`` (25% trimmed from each end), as rliable's
    ``aggregate_iqm``."""
    return stats.trim_mean(scores, 0.25, axis=axis)


AGGREGATES = {"mean": np.mean, "iqm": interquartile_mean}


def interval_estimates(
    samples: dict[str, list[np.ndarray]],
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Mean and IQM of each backend's scores (one array of seeds per task) with 95% percentile
    intervals from a stratified bootstrap: `scipy.stats.bootstrap` given one sample per task
    resamples each task's seeds on their own, which is rliable's `StratifiedBootstrap`.
    ``{backend: {"mean": (point, low, high), "iqm": (...)}}``; a backend with no score is left
    out, and the interval is NaN where no task has two seeds to resample."""
    estimates: dict[str, dict[str, tuple[float, float, float]]] = {}
    for backend, per_task in samples.items():
        per_task = tuple(s for s in per_task if len(s))
        if not per_task:
            continue
        pooled = np.concatenate(per_task)
        # a task with one seed has nothing to resample: its score joins every resample as is
        resampled = tuple(s for s in per_task if len(s) >= 2)
        fixed = np.concatenate([s for s in per_task if len(s) == 1] or [np.empty(0)])
        estimates[backend] = {}
        for name, aggregate in AGGREGATES.items():

            def statistic(
                *strata: np.ndarray, axis: int = -1, _f=aggregate, _fixed=fixed
            ) -> np.ndarray:
                shape = (*strata[0].shape[:-1], _fixed.size)
                return _f(
                    np.concatenate([*strata, np.broadcast_to(_fixed, shape)], axis=-1), axis=-1
                )

            point = float(aggregate(pooled))
            if not resampled:  # one seed a task: nothing to resample
                estimates[backend][name] = (point, math.nan, math.nan)
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                result = stats.bootstrap(
                    resampled,
                    statistic,
                    n_resamples=reps,
                    confidence_level=1 - ALPHA,
                    method="percentile",
                    vectorized=True,
                    rng=np.random.default_rng(seed),
                )
            low, high = result.confidence_interval
            estimates[backend][name] = (point, float(low), float(high))
    return estimates
