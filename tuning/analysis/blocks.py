"""A suite's blocks: one (task, seed) per row, one backend per column, ranked within each row.

Every cross-task statistic (`tuning.analysis.suite_stats`, `intervals`, `anytime`) reads the
studies through this one layout."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
ALPHA = 0.05  # the significance level of every test and interval
BLOCK = ["dataset", "seed"]


class DuplicateStudies(ValueError):
    """Two studies of one (task, backend, seed): the statistics need one result per cell."""


def check_unique(studies: pd.DataFrame) -> None:
    """Refuse two studies of the same (dataset, backend, seed), naming them (their ``folder``
    when the frame has one, else their study name)."""
    where = "folder" if "folder" in studies.columns else "study"
    repeated = studies[studies.duplicated(["dataset", "backend", "seed"], keep=False)]
    if repeated.empty:
        return
    (dataset, backend, seed), group = next(
        iter(repeated.groupby(["dataset", "backend", "seed"], sort=True))
    )
    raise DuplicateStudies(
        f"{len(group)} studies of {backend} on {dataset} with seed {seed}: "
        f"{', '.join(map(str, group[where]))}; compare one of them (move the others out of the "
        "folder)"
    )


def block_matrix(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """One row per (dataset, seed) block in which every backend has a study, one column per
    backend (sorted), holding ``value``. A study with no result must hold +inf, not NaN
    (`ranking_losses`): NaN here means "no study", and its block is left out."""
    check_unique(frame)
    table = frame.pivot(index=BLOCK, columns="backend", values=value)
    complete = table.dropna()
    if len(complete) < len(table):
        log.warning(
            "%d (task, seed) blocks lack a study of some backend: ranked without them",
            len(table) - len(complete),
        )
    return complete.sort_index(axis=1)


def block_ranks(losses: pd.DataFrame) -> pd.DataFrame:
    """Rank within each block (row): 1 = lowest loss; ties share their mean rank; a missing
    result (NaN or +inf) ranks last, tied with any other missing result."""
    return losses.fillna(np.inf).rank(axis=1, method="average")
