"""Optuna: a study stored in SQLite inside the study folder, which a resumed study loads again
(`optuna.create_study(load_if_exists=True)`), sampled by one of Optuna's samplers and, for the
``+pruner`` algorithms, cut short per epoch by one of its pruners (`trial.report` and
`trial.should_prune` at every epoch's end)."""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from tuning.core.errors import message_line
from tuning.core.files import refuse_link
from tuning.core.ledger import ResumeLedger
from tuning.core.space import CategoricalParam, FloatParam, IntParam, Param
from tuning.core.urls import SecretURLError, check_url, in_memory, redact, without_password
from tuning.core.workers import Finished, drive
from tuning.search import BackendError
from tuning.search.base import REDUCTION_FACTOR, Budget, SearchBackend, SearchTask, min_resource

STORAGE_FILE = "optuna.db"
SQLITE_SIDECARS = ("-journal", "-wal", "-shm")
JOURNAL_FILE = "optuna.journal"  # the storage of a study of lookups (`OptunaBackend._storage`)
ROW = "row"  # user attribute: the trial's number in the study's table
HEARTBEAT_SECONDS = 10  # shared storage: a trial whose process is silent 30 s is failed
STORAGE_ATTEMPTS = 5
_ENDED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def suggest(trial: optuna.Trial, param: Param) -> Any:
    """Ask an Optuna trial for one parameter of the neutral space."""
    if isinstance(param, IntParam):
        return trial.suggest_int(param.name, param.low, param.high, log=param.log)
    if isinstance(param, FloatParam):
        return trial.suggest_float(param.name, param.low, param.high, log=param.log)
    if isinstance(param, CategoricalParam):
        return trial.suggest_categorical(param.name, list(param.choices))
    raise TypeError(f"unsupported parameter {param!r}")


class OptunaBackend(SearchBackend):
    """`optuna.create_study` with a seeded sampler (and pruner); trials run through
    `study.optimize`. A pruned trial is recorded ``pruned`` with the epochs it trained (the
    budget counts them) and its best validation loss so far, and told to Optuna as pruned; it
    is never the study's winner.

    Args:
        algorithm: one of `algorithms` (default ``tpe``).
        n_startup_trials: random trials before a model-based sampler (TPE, CMA-ES, GP) models
            the results, and trials a median pruner lets finish before it prunes (default: a
            third of the budget's expected trials, at most 10; see `Budget.random_start`).
        storage: an Optuna RDB URL (``postgresql://USER@HOST/DB``, ``sqlite:///PATH``) shared by
            several ``tuning run`` processes, on one machine or several, working on one study
            (same ``--study`` and settings): each asks the storage for new trials, numbered by
            Optuna across all of them. A budget in trials is the study's total; an epoch or
            seconds budget is each process's own. A process that dies leaves its trial RUNNING
            until the others' heartbeat checks mark it FAIL. Default: a SQLite file in the study
            folder, the study's own.
    """

    name = "optuna"
    library = "optuna"
    default_algorithm = "tpe"
    options_by_algorithm = {
        **{
            a: frozenset({"n_startup_trials", "storage"})
            for a in ("tpe", "cmaes", "gp", "tpe+hyperband", "tpe+asha", "tpe+median")
        },
        "qmc": frozenset({"storage"}),
        "random": frozenset({"storage"}),
    }
    algorithms = {
        "tpe": "Tree-structured Parzen Estimator (TPESampler)",
        "cmaes": "CMA-ES evolution strategy (CmaEsSampler, the cmaes package)",
        "gp": "Gaussian-process Bayesian optimization (GPSampler; PyTorch: the gp extra)",
        "qmc": "scrambled Sobol quasi-random sequence (QMCSampler)",
        "random": "independent uniform sampling (RandomSampler)",
        "tpe+hyperband": "TPE, trials pruned per epoch by HyperbandPruner",
        "tpe+asha": "TPE, trials pruned per epoch by SuccessiveHalvingPruner (asynchronous)",
        "tpe+median": "TPE, trials pruned per epoch by MedianPruner",
    }
    parallel = {
        **dict.fromkeys(
            algorithms,
            "ask/tell: the running trials are in the study (RUNNING) when it asks",
        ),
        "tpe": "ask/tell; TPE's constant liar (constant_liar=True) counts the RUNNING trials",
        "tpe+hyperband": "ask/tell; TPE's constant liar, the pruner over every worker's reports",
        "tpe+asha": "ask/tell; TPE's constant liar, the pruner over every worker's reports",
        "tpe+median": "ask/tell; TPE's constant liar, the pruner over every worker's reports",
    }

    def __init__(
        self,
        algorithm: str | None = None,
        n_startup_trials: int | None = None,
        storage: str | None = None,
    ) -> None:
        self.algorithm = self._choose(algorithm)
        self.n_startup_trials = n_startup_trials
        self.storage = storage

    @property
    def _sampler_name(self) -> str:
        return self.algorithm.partition("+")[0]

    @property
    def _pruner_name(self) -> str:
        return self.algorithm.partition("+")[2]

    def settings(self, budget: Budget, max_epochs: int) -> dict[str, Any]:
        startup = budget.random_start(self.n_startup_trials, max_epochs)
        sampler = self._sampler(0, startup)
        settings: dict[str, Any] = {
            "sampler": type(sampler).__name__,
            "n_startup_trials": startup if self._sampler_name in ("tpe", "cmaes", "gp") else 0,
            "sampler_arguments": {
                **self._sampler_arguments(startup),
                **_frozen_sampler_arguments(sampler),
            },
        }
        pruner = self._pruner(budget, max_epochs)
        if pruner is not None:
            settings["pruner"] = type(pruner).__name__
            settings["pruner_arguments"] = self._pruner_arguments(budget, max_epochs)
        return settings

    def _sampler_arguments(self, startup: int) -> dict[str, Any]:
        """Every argument the sampler is built with but its seed, set here rather than left to
        a default a release can change (Optuna 5 turned TPE's ``multivariate`` and
        ``constant_liar`` on): the same command runs the same algorithm on any install."""
        sampler = self._sampler_name
        if sampler == "tpe":
            return {
                "n_startup_trials": startup,
                "n_ei_candidates": 24,
                "multivariate": True,
                "group": False,
                "constant_liar": True,
            }
        if sampler == "cmaes":
            return {
                "n_startup_trials": startup,
                "warn_independent_sampling": False,
                "restart_strategy": None,
                "sigma0": None,
                "popsize": None,
                "inc_popsize": -1,
                "consider_pruned_trials": False,
                "use_separable_cma": False,
                "with_margin": False,
                "lr_adapt": False,
            }
        if sampler == "gp":
            return {"n_startup_trials": startup, "deterministic_objective": False}
        if sampler == "qmc":
            return {"qmc_type": "sobol", "scramble": True, "warn_asynchronous_seeding": False}
        return {}

    def _sampler(self, seed: int, startup: int) -> optuna.samplers.BaseSampler:
        classes = {
            "tpe": optuna.samplers.TPESampler,
            "cmaes": optuna.samplers.CmaEsSampler,
            "gp": optuna.samplers.GPSampler,
            "qmc": optuna.samplers.QMCSampler,
        }
        sampler = classes.get(self._sampler_name, optuna.samplers.RandomSampler)
        with warnings.catch_warnings():  # QMC and GP are "experimental" to Optuna
            warnings.simplefilter("ignore", ExperimentalWarning)
            return sampler(seed=seed, **self._sampler_arguments(startup))

    def _pruner_arguments(self, budget: Budget, max_epochs: int) -> dict[str, Any]:
        """Every argument of the pruner, set here (see `_sampler_arguments`)."""
        pruner = self._pruner_name
        if pruner == "hyperband":
            return {
                "min_resource": min_resource(max_epochs),
                "max_resource": max_epochs,
                "reduction_factor": REDUCTION_FACTOR,
                "bootstrap_count": 0,
            }
        if pruner == "asha":
            return {
                "min_resource": min_resource(max_epochs),
                "reduction_factor": REDUCTION_FACTOR,
                "min_early_stopping_rate": 0,
                "bootstrap_count": 0,
            }
        if pruner == "median":
            return {
                "n_startup_trials": budget.random_start(self.n_startup_trials, max_epochs),
                "n_warmup_steps": min_resource(max_epochs),
                "interval_steps": 1,
                "n_min_trials": 1,
            }
        return {}

    def _pruner(self, budget: Budget, max_epochs: int) -> optuna.pruners.BasePruner | None:
        classes = {
            "hyperband": optuna.pruners.HyperbandPruner,
            "asha": optuna.pruners.SuccessiveHalvingPruner,
            "median": optuna.pruners.MedianPruner,
        }
        pruner = classes.get(self._pruner_name)
        return pruner(**self._pruner_arguments(budget, max_epochs)) if pruner else None

    @property
    def shares_study(self) -> bool:
        return self.storage is not None

    def check(self) -> None:
        """A shared storage is reached once before the study writes anything: a bad URL, a
        missing driver or a server that is not there is refused first; so is a URL whose
        password the driver would read short (`tuning.core.urls.check_url`)."""
        if self.shares_study:
            try:
                check_url(self.storage)
            except SecretURLError as exc:  # (no part of the URL: it is read ambiguously)
                raise BackendError(f"--storage: {exc}") from None
            if in_memory(self.storage):  # (Optuna's heartbeat thread would not find its tables)
                raise BackendError(
                    f"--storage {without_password(self.storage)} is a database in memory, which "
                    "no other process can share: give a file (sqlite:///PATH) or a server's "
                    "URL, or leave --storage out for a study of its own"
                )
            self._storage(Path("."))

    def search(self, task: SearchTask) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # through the process's own log (the CLI's stderr), not a handler of Optuna's own bound
        # to whatever stderr was when Optuna first logged
        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
        space, budget, seed, workdir = task.space, task.budget, task.seed, task.workdir
        evaluator, ledger, meter, max_epochs = (
            task.evaluator,
            task.ledger,
            task.meter,
            task.max_epochs,
        )
        if task.workers is not None:
            self._search_parallel(task)
            return
        study = optuna.create_study(
            study_name=workdir.name,
            storage=self._storage(workdir, lookups=task.evaluator.native_training() is None),
            direction="minimize",
            load_if_exists=True,  # a resumed study continues from its storage
            pruner=self._pruner(budget, max_epochs) or optuna.pruners.NopPruner(),
        )
        if self.shares_study:
            ledger.restored(len(ledger.finished))  # the other processes' rows: no replay
        else:
            settle_interrupted(study, ledger)
        study.sampler = self._sampler(
            self._sampler_seed(seed, len(study.trials)),
            budget.random_start(self.n_startup_trials, max_epochs),
        )
        pruning = self._pruner_name != ""

        def evaluate(trial: optuna.Trial) -> float:
            if self.shares_study and budget.trials is not None and trial.number >= budget.trials:
                # Optuna numbers the shared study's trials in one sequence: those past the
                # budget are not trained, so the study ends with exactly the budget's trials.
                study.stop()
                raise optuna.TrialPruned("beyond the study's trial budget")
            params = space.coerce({p.name: suggest(trial, p) for p in space})
            listener = partial(report, trial) if pruning else None
            if self.shares_study:  # the table's numbers are Optuna's
                result = evaluator.evaluate(params, number=trial.number, report=listener)
            else:
                trial.set_user_attr(ROW, ledger.next_number())  # stored before it trains
                result = evaluator.evaluate(params, report=listener)
            trial.set_user_attr("epochs", result.epochs)
            if result.status == "pruned":
                raise optuna.TrialPruned(result.error)
            if not result.ok:
                trial.set_user_attr("error", result.error)
                return math.nan  # Optuna records a NaN objective as a FAILED trial
            return result.val_loss

        def stop_when_spent(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
            if meter.exhausted:  # an epoch or seconds budget, or the trial count
                study.stop()

        remaining = None if budget.trials is None else budget.trials - meter.trials
        if self.shares_study:
            remaining = None  # the trial numbers stop it (in `evaluate`)
        study.optimize(evaluate, n_trials=remaining, callbacks=[stop_when_spent], catch=())
        if self.shares_study:
            wait_for_the_others(study)

    def _search_parallel(self, task: SearchTask) -> None:
        """`study.ask` whenever a worker is free, `study.tell` as each trial ends: the trials
        running are RUNNING in the study when it asks (what its samplers and pruners see of
        them: TPE's constant liar, a pruner's rungs). The study is in memory: a simulated
        study resumes by playing again from its start."""
        if self.shares_study:
            raise BackendError("optuna with --workers keeps its study here: drop --storage")
        budget, max_epochs = task.budget, task.max_epochs
        study = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(),
            study_name=task.workdir.name,
            direction="minimize",
            sampler=self._sampler(
                task.seed, budget.random_start(self.n_startup_trials, max_epochs)
            ),
            pruner=self._pruner(budget, max_epochs) or optuna.pruners.NopPruner(),
        )
        space, pruning = task.space, self._pruner_name != ""

        def propose() -> tuple[dict[str, Any], optuna.Trial, dict[str, Any]]:
            trial = study.ask()
            params = space.coerce({p.name: suggest(trial, p) for p in space})
            return params, trial, {"report": partial(report, trial) if pruning else None}

        def tell(finished: Finished) -> None:
            trial, result = finished.submission.tag, finished.result
            trial.set_user_attr(ROW, result.trial)
            trial.set_user_attr("epochs", result.epochs)
            if result.status == "pruned":
                study.tell(trial, state=TrialState.PRUNED)
            elif not result.ok:
                trial.set_user_attr("error", result.error)
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, result.val_loss)

        drive(task.workers, propose, tell)

    def _sampler_seed(self, seed: int, stored: int) -> int:
        """The sampler's seed: the study's, for a new study of its own. The sampler's stream does
        not depend on the trials already stored: a resumed study seeded as its first run was
        would draw that run's first configurations again, and so would a second process
        sharing the study."""
        if not stored and not self.shares_study:
            return seed
        entropy = [seed, stored, os.getpid()] if self.shares_study else [seed, stored]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def _storage(self, workdir: Path, lookups: bool = False) -> str | optuna.storages.BaseStorage:
        """The study's storage: the shared one given; else a file in the study folder: SQLite,
        or for trials answered from a table (``lookups``, microseconds each, where SQLite's
        transactions would be most of the study's time) Optuna's journal file
        (`JournalFileBackend`: appended operations, resumable the same way)."""
        if lookups and not self.shares_study:
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

            path = str(refuse_link(workdir / JOURNAL_FILE).resolve())
            return optuna.storages.JournalStorage(
                JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
            )
        if not self.shares_study:
            for sidecar in SQLITE_SIDECARS:  # SQLite's own files beside the database
                refuse_link(workdir / f"{STORAGE_FILE}{sidecar}")
            return f"sqlite:///{refuse_link(workdir / STORAGE_FILE).resolve()}"
        for attempt in range(1, STORAGE_ATTEMPTS + 1):
            try:
                with _heartbeats_quietly():
                    return optuna.storages.RDBStorage(
                        self.storage,
                        heartbeat_interval=HEARTBEAT_SECONDS,
                        grace_period=3 * HEARTBEAT_SECONDS,
                    )
            except Exception as exc:  # a bad URL, a missing driver, a server that is not there
                # Processes started together race to create Optuna's tables in a new database;
                # the loser's next attempt finds them made.
                racing = "IntegrityError" in repr(exc) or "already exists" in str(exc)
                if racing and attempt < STORAGE_ATTEMPTS:
                    time.sleep(0.5 * attempt)
                    continue
                reason = message_line(exc) or type(exc).__name__
                raise BackendError(
                    f"--storage {without_password(self.storage)}: {redact(reason, self.storage)}"
                ) from None
        raise AssertionError("unreachable: the last attempt returns or raises")


def _frozen_sampler_arguments(sampler: optuna.samplers.BaseSampler) -> dict[str, Any]:
    """TPE's arguments that Optuna deprecated (removed in 6.0, their values fixed until then),
    read back from the sampler so that the record shows what ran."""
    estimator = getattr(sampler, "_parzen_estimator_parameters", None)
    if estimator is None:
        return {}
    return {
        "prior_weight": estimator.prior_weight,
        "consider_magic_clip": estimator.consider_magic_clip,
        "consider_endpoints": estimator.consider_endpoints,
        "gamma": "default_gamma" if getattr(sampler, "_gamma", None) is None else "custom",
        "weights": getattr(estimator.weights, "__name__", "custom"),
    }


def report(trial: optuna.Trial, epochs: int, val_loss: float) -> bool:
    """Report an epoch's validation loss to the trial (its step: the epochs trained) and ask the
    study's pruner whether to stop it."""
    trial.report(val_loss, epochs)
    return trial.should_prune()


def settle_interrupted(study: optuna.Study, ledger: ResumeLedger) -> None:
    """End the trials that an earlier, killed run left RUNNING in the storage.

    One whose row reached the table (the kill came after the row, before Optuna's own record)
    is told the row's result; one killed while it trained is marked FAIL, and its configuration
    is not in the table. Then every row of the table is one of the storage's finished trials.
    """
    finished = ledger.finished
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        row = trial.user_attrs.get(ROW)
        if row is not None and row < len(finished) and finished[row].ok:
            study.tell(trial.number, finished[row].val_loss)
        elif row is not None and row < len(finished) and finished[row].status == "pruned":
            study.tell(trial.number, state=TrialState.PRUNED)
        else:
            study.tell(trial.number, state=TrialState.FAIL)
    in_storage = {t.user_attrs.get(ROW) for t in study.get_trials(deepcopy=False, states=_ENDED)}
    ledger.restored(len(finished) if in_storage >= set(range(len(finished))) else 0)


def wait_for_the_others(study: optuna.Study) -> None:
    """Return once no trial of the shared study is running in another process, so that this
    process's summary covers every trial (a dead process's trial is failed by the heartbeat)."""
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        with _heartbeats_quietly():
            optuna.storages.fail_stale_trials(study)
        time.sleep(1.0)


@contextmanager
def _heartbeats_quietly() -> Iterator[None]:
    """Optuna calls its heartbeats experimental and warns at each use; a user of the harness
    can do nothing about it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield
