"""The benchmark grid: every (task, backend, seed) is one study, run by a pool of worker processes.

The parent process plans the grid, skips the studies already finished with the same settings,
hands the rest to a pool of worker processes and watches their ``trials.csv`` files to show
progress. It imports no Keras: each worker imports it (on the study's Keras backend, after pinning
its thread counts, so that parallel studies do not fight over the cores) and writes its study's
log, TensorFlow's start-up lines included, to ``OUT/STUDY/study.log``. Studies left unfinished
are resumed. With ``scheduler`` the studies run on a Dask cluster's workers instead
(`tuning.run.dask_grid`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tuning.core.cluster import dask_executor
from tuning.core.config import StudyConfig
from tuning.core.errors import StudyError
from tuning.core.files import LOG_FILE, open_for_append, refuse_link
from tuning.core.lock import StudyLocked
from tuning.core.results import TRIALS_FILE
from tuning.core.signals import StopSignals, die_with_parent
from tuning.evaluation.keras.environment import pin_threads
from tuning.evaluation.objectives import kind_of, resolve
from tuning.run.dask_grid import run_study_on_dask_worker
from tuning.run.resume import finished_summary

log = logging.getLogger(__name__)
# A worker process runs study after study: its imports (Keras, the libraries: seconds) and the
# programs it compiled serve them all. (Recycling workers, `max_tasks_per_child=N`, hung a grid
# on Python 3.11 once every worker had run its N studies: no new worker was started.)
STUDIES_PER_WORKER = None
EXIT_STOPPED = 143  # a worker stopped by a signal ends with 128 + SIGTERM


# The states in which a study has left the grid's queue.
ENDED = ("done", "failed", "skipped", "held")


@dataclass
class StudyState:
    """What the parent knows of one study of the grid."""

    config: StudyConfig
    # queued | running | done | skipped (finished before) | failed | held (by another run)
    state: str = "queued"
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def study_dir(self) -> Path:
        return self.config.study_dir


@dataclass
class GridResult:
    studies: list[StudyState]
    seconds: float

    def count(self, state: str) -> int:
        return sum(s.state == state for s in self.studies)


def plan_grid(
    base: StudyConfig,
    backends: Sequence[str],
    seeds: Sequence[int],
    workers: Sequence[int] | None = None,
    stop: StopSignals | None = None,
) -> list[StudyConfig]:
    """One config per (backend, seed) and worker count (default: the base's), named
    ``DATASET_BACKEND_sSEED`` (``_wN`` after it for N > 1 workers), all under ``base.out``.
    Under ``stop``, a signal stops the planning within a backend's seeds (a grid of 19 backends
    x 10,000 seeds takes seconds to plan)."""
    if not backends:
        raise StudyError("--backends is empty: name at least one (see `tuning backends`)")
    if not seeds:
        raise StudyError("--seeds is empty: give at least one, e.g. --seeds 0,1,2")
    for name, values in (("--backends", backends), ("--seeds", seeds)):
        if len(set(values)) != len(values):
            raise StudyError(f"{name} lists a value twice: {list(values)}")
    counts = workers or [base.workers]
    planned = []
    for w in counts:
        for b in backends:
            if stop is not None:
                stop.raise_if_stopped()
            planned += [replace(base, backend=b, seed=s, workers=w, study="") for s in seeds]
    return planned


# The memory a worker process is given room for: Keras, JAX and a study's data (the suites' tasks;
# benchmarks/README.md has the measured figures), with room left for the parent.
WORKER_MEMORY = 1.5 * 2**30


def capped_jobs(jobs: int) -> tuple[int, str]:
    """``jobs`` capped by this machine: at most one worker a core, and only as many as the memory
    free now holds (`WORKER_MEMORY` each); the notice says why when it caps, else ``""``."""
    cores = os.cpu_count() or 1
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        by_memory = max(1, int(free // WORKER_MEMORY))
    except (ValueError, OSError, AttributeError):  # not Linux: cores alone
        by_memory = cores
    capped = max(1, min(jobs, cores, by_memory))
    if capped == jobs:
        return jobs, ""
    reason = f"{cores} cores" if capped == cores else f"{free / 2**30:.1f} GiB free memory"
    return capped, f"--jobs {jobs} capped at {capped}: this machine has {reason}"


def run_grid(
    configs: Sequence[StudyConfig],
    *,
    jobs: int,
    fresh: bool = False,
    watch: Callable[[list[StudyState], float], None] | None = None,
    refresh_seconds: float = 2.0,
    stop: StopSignals | None = None,
    scheduler: str | None = None,
) -> GridResult:
    """Run every study not yet finished, ``jobs`` at a time; ``watch`` is called as they progress.

    ``scheduler`` (``local:N`` or ``tcp://HOST:PORT``) runs them on a Dask cluster instead
    (`tuning.run.dask_grid`), as many at a time as it has worker threads. Under ``stop``, Ctrl-C or
    SIGTERM ends the wait (each worker saves and stops on its own).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise StudyError(f"--jobs must be an integer >= 1, got {jobs!r}")
    if scheduler is not None and any(processes_of(c) > 1 for c in configs):
        raise StudyError(
            f"--workers {max(processes_of(c) for c in configs)} with --scheduler: a study's "
            "worker processes cannot start inside a Dask worker; drop --scheduler (the grid's "
            "--jobs then counts them), or run --workers 1 on the cluster"
        )
    if scheduler is None:  # (a cluster's workers are its own)
        jobs, notice = capped_jobs(jobs)
        if notice:
            log.warning("%s", notice)
    studies = [StudyState(c) for c in configs]
    # every finished study is checked before any starts; one that cannot be used costs only
    # itself: it is named and failed, and the others go on
    for study in studies if not fresh else ():
        if stop is not None:  # a signal stops the checks of a large grid at once
            stop.raise_if_stopped()
        try:
            summary = finished_summary(study.config)
        except ValueError as exc:  # (`StudyError`, `CorruptFile`)
            study.state, study.error = "failed", str(exc)
            continue
        if summary is not None:
            study.state, study.summary = "skipped", summary
        elif (study.study_dir / TRIALS_FILE).exists():
            log.warning("%s was not finished: resuming it", study.study_dir)
    todo = [s for s in studies if s.state == "queued"]
    if scheduler is None:
        jobs = studies_at_once(jobs, [s.config for s in todo])
    started = time.monotonic()
    threads = max(1, (os.cpu_count() or 1) // min(jobs, max(1, len(todo))))
    notify = watch or (lambda _studies, _elapsed: None)
    # the workers of a cluster started here end with this process; a remote cluster's do not
    watched_parent = os.getpid() if scheduler and scheduler.startswith("local:") else None
    if todo:
        with _executor(scheduler, min(jobs, len(todo))) as pool:
            futures: dict[Future, StudyState] = {}
            try:
                for study in todo:
                    if stop is not None:  # (submitting a large grid takes seconds)
                        stop.raise_if_stopped()
                    submitted = (
                        pool.submit(run_study_in_worker, asdict(study.config), threads, fresh)
                        if scheduler is None
                        else pool.submit(
                            run_study_on_dask_worker, asdict(study.config), fresh, watched_parent
                        )
                    )
                    futures[submitted] = study
                _wait_all(futures, notify, started, studies, refresh_seconds, stop)
            except BaseException:  # cancel the studies not started yet
                if isinstance(pool, ProcessPoolExecutor):
                    # The pool has handed some queued studies to its workers already, which
                    # cancelling cannot take back: each worker is told to stop (SIGTERM: at
                    # its epoch's end, as Ctrl-C) and then takes no further study. (Read the
                    # workers first: shutting down forgets them.)
                    workers = list((getattr(pool, "_processes", None) or {}).values())
                    pool.shutdown(wait=False, cancel_futures=True)
                    for process in workers:
                        with contextlib.suppress(ProcessLookupError):
                            process.terminate()
                else:
                    pool.shutdown(wait=False)  # Dask's executor cancels them so
                raise
    notify(studies, time.monotonic() - started)
    return GridResult(studies, time.monotonic() - started)


def processes_of(config: StudyConfig) -> int:
    """The processes a study trains in: its ``workers`` where they are processes (a study that
    trains, `tuning.core.process_workers`), else its own one (a table's are simulated)."""
    return config.workers if config.workers > 1 and kind_of(config) == "keras" else 1


def studies_at_once(jobs: int, configs: Sequence[StudyConfig]) -> int:
    """How many of ``configs`` run at once so that their training processes number at most
    ``jobs``: ``--jobs`` counts processes, a study of N worker processes takes N of them. A
    study of more workers than ``jobs`` runs alone (it asked for them), said in the log."""
    widest = max((processes_of(c) for c in configs), default=1)
    if widest > jobs:
        log.warning(
            "a study of %d worker processes runs alone (--jobs %d counts processes): "
            "give --jobs %d or more to run its workers beside other studies",
            widest,
            jobs,
            2 * widest,
        )
    return max(1, jobs // widest)


@contextmanager
def _executor(scheduler: str | None, workers: int) -> Iterator[Executor]:
    if scheduler is not None:
        with dask_executor(scheduler) as pool:
            yield pool
        return
    context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        max_tasks_per_child=STUDIES_PER_WORKER,
        initializer=die_with_parent,  # a killed grid leaves no worker behind
        initargs=(os.getpid(),),
    ) as pool:
        yield pool


def _wait_all(
    futures: dict[Future, StudyState],
    notify: Callable[[list[StudyState], float], None],
    started: float,
    studies: list[StudyState],
    refresh_seconds: float,
    stop: StopSignals | None,
) -> None:
    pending = set(futures)
    since = time.time() - (time.monotonic() - started)  # a resumed study's log is older
    while pending:
        if stop is not None:
            stop.raise_if_stopped()
        done, pending = wait(pending, timeout=refresh_seconds, return_when=FIRST_COMPLETED)
        for future in done:
            study = futures[future]
            try:
                study.summary = future.result()
                study.state = "done"
            except StudyLocked as exc:  # another run (a second grid) has it: not run twice
                study.state, study.error = "held", str(exc)
                log.info("study %s is held by another run: %s", study.config.study, exc)
            except Exception as exc:  # one study's crash must not end the grid
                study.state, study.error = "failed", f"{type(exc).__name__}: {exc}"
                log.info("study %s failed: %s", study.config.study, study.error)
        for study in studies:
            if study.state == "queued" and _written_since(study.study_dir / LOG_FILE, since):
                study.state = "running"
        notify(studies, time.monotonic() - started)


def _written_since(path: Path, since: float) -> bool:
    try:
        return path.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def run_study_in_worker(config: dict[str, Any], threads: int, fresh: bool) -> dict[str, Any]:
    """Run (or resume) one study in this worker process (a worker runs many in turn); its log
    goes to ``STUDY/study.log``. ``fresh`` deletes what an
    earlier run left, under the study's lock."""
    study_config = resolve(StudyConfig(**config))  # (resolved by the grid's parent: as is)
    study_dir = refuse_link(study_config.study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    _log_to(study_dir / LOG_FILE)
    pin_threads(threads)  # before the study imports Keras
    from tuning.run.study import run_study

    with StopSignals() as stop:  # Ctrl-C reaches every worker of the terminal's process group
        try:
            return run_study(study_config, fresh=fresh, stop=stop)
        except KeyboardInterrupt:
            # Stopped (Ctrl-C, SIGTERM): the study is saved and resumable. The pool would hand
            # this worker the next queued study; it ends instead.
            logging.shutdown()
            os._exit(EXIT_STOPPED)


def _log_to(path: Path) -> None:
    """Send this process's stderr (C++ start-up lines too) and its log records to ``path``."""
    handle = os.fdopen(open_for_append(path), "a", encoding="utf-8")
    os.dup2(handle.fileno(), 2)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
