"""Work on a Dask cluster: ``--scheduler tcp://HOST:8786`` or ``--scheduler local:N``.

The benchmark grid's studies (below), and the folds of scikit-learn's candidates
(`tuning.backends.sklearn_search`, through joblib's Dask backend).

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
import re
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any

from tuning.config import LOG_FILE, StudyConfig, StudyError

log = logging.getLogger(__name__)
_LOCAL = re.compile(r"local:(\d+)")
_REMOTE = re.compile(r"(tcp|tls|ucx)://\S+")


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` if it is ``local:N`` (N >= 1) or a Dask address, else a one-line error."""
    local = _LOCAL.fullmatch(scheduler)
    if (local and int(local.group(1)) >= 1) or _REMOTE.fullmatch(scheduler):
        return scheduler
    raise StudyError(
        f"--scheduler must be local:N (N >= 1 worker processes here) or a Dask scheduler "
        f"address such as tcp://HOST:8786, got {scheduler!r}"
    )


@contextmanager
def dask_executor(scheduler: str) -> Iterator[Executor]:
    """A `concurrent.futures.Executor` whose tasks run on the Dask cluster ``scheduler``."""
    with dask_client(scheduler) as client:
        yield client.get_executor(pure=False)


@contextmanager
def dask_client(scheduler: str) -> Iterator[Any]:
    """A `dask.distributed.Client` of the cluster ``scheduler`` (started here for ``local:N``)."""
    from dask.distributed import Client, LocalCluster  # only when something runs on Dask

    local = _LOCAL.fullmatch(check_scheduler(scheduler))
    # Dask logs every worker start and stop at INFO: the grid's own display says what matters.
    # (The variable reaches the LocalCluster's worker processes, which read it as they start.)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if local:
        cluster = LocalCluster(
            n_workers=int(local.group(1)),
            threads_per_worker=1,  # one study at a time per worker process: Keras is global
            processes=True,
            dashboard_address=None,
        )
    try:
        try:
            client = Client(cluster if cluster is not None else scheduler, timeout="30s")
        except OSError as exc:
            raise StudyError(
                f"--scheduler {scheduler}: cannot reach a Dask scheduler there ({exc}); start "
                "one with `dask scheduler`, or use local:N"
            ) from None
        with client:
            log.info("on Dask: %s", client)
            if cluster is not None:  # every local worker ends with this process, busy or not
                from tuning.signals import die_with_parent

                client.run(die_with_parent, os.getpid())
            yield client
    finally:
        if cluster is not None:
            cluster.close()


def run_study_on_dask_worker(
    config: dict[str, Any], fresh: bool, parent: int | None = None
) -> dict[str, Any]:
    """Run (or resume) one study in this Dask worker; its log records go to ``STUDY/study.log``.

    Unlike the process-pool worker it keeps the worker's own stderr (the worker serves other
    tasks after this one) and does not pin thread counts (Keras may already be imported here).
    ``parent``: the grid's process, when it started this worker (``local:N``): the worker then
    ends with it (`tuning.signals.die_with_parent`).
    """
    from tuning.keras_backend import use_keras_backend
    from tuning.signals import die_with_parent

    if parent is not None and os.getppid() == parent:
        die_with_parent(parent)

    study_config = StudyConfig(**config)
    study_dir = study_config.study_dir
    study_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(study_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        use_keras_backend(study_config.keras_backend)
        from tuning.study import run_study  # imports Keras: after its backend is chosen

        log.info("study %s on Dask worker pid %d", study_config.study, os.getpid())
        return run_study(study_config, fresh=fresh)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
