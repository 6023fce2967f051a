"""Connecting to a Dask cluster: ``local:N`` (started here) or ``tcp://HOST:8786``.

Shared by the benchmark grid's studies (`tuning.run.dask_grid`) and the folds of scikit-learn's
candidates (`tuning.search.sklearn_search`, through joblib's Dask backend).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any

from tuning.core.errors import StudyError

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
                from tuning.core.signals import die_with_parent

                client.run(die_with_parent, os.getpid())
            yield client
    finally:
        if cluster is not None:
            cluster.close()
