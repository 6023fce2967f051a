"""Work on a Dask cluster: ``--scheduler tcp://HOST:8786`` or ``--scheduler local:N``.

The benchmark grid's studies (below), and the folds of scikit-learn's candidates
(`tuning.search.sklearn_search`, through joblib's Dask backend).

Each (backend, seed) study is one Dask task, run by a worker process of the cluster: on this
machine (``local:N`` starts a `LocalCluster` of N single-threaded worker processes) or on the
machines of a running cluster (``tcp://``). The workers write each study's files themselves, into
``--out``, which must therefore be a folder every worker sees at the same path (a shared file
system): the grid's progress display, the resume rules and `tuning compare` all read those files,
so nothing is sent back but the summary.

A worker that dies takes its task with it; the Dask scheduler gives it to another worker (up to
its ``distributed.scheduler.allowed-failures`` times, then the study is reported failed with
`KilledWorker`), and the study resumes there from its table: the trials it finished are kept.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tuning.core.config import StudyConfig
from tuning.core.files import LOG_FILE, NoLinkFileHandler, refuse_link
from tuning.evaluation.objectives import resolve

log = logging.getLogger(__name__)


def run_study_on_dask_worker(
    config: dict[str, Any], fresh: bool, parent: int | None = None
) -> dict[str, Any]:
    """Run (or resume) one study in this Dask worker; its log records go to ``STUDY/study.log``.

    Unlike the process-pool worker it keeps the worker's own stderr (the worker serves other
    tasks after this one) and does not pin thread counts (Keras may already be imported here).
    ``parent``: the grid's process, when it started this worker (``local:N``): the worker then
    ends with it (`tuning.core.signals.die_with_parent`).
    """
    from tuning.core.signals import die_with_parent

    if parent is not None and os.getppid() == parent:
        die_with_parent(parent)

    study_config = resolve(StudyConfig(**config))  # (resolved by the grid's parent: as is)
    study_dir = refuse_link(study_config.study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    handler = NoLinkFileHandler(study_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        from tuning.run.study import run_study

        log.info("study %s on Dask worker pid %d", study_config.study, os.getpid())
        return run_study(study_config, fresh=fresh)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
