"""The contract between a study and what evaluates its trials: one narrow evaluator.

A search backend proposes configurations; an `Evaluator` turns one into a `TrialResult` and
records it as a row of the study's table. Training a Keras model
(`tuning.evaluation.keras.evaluator`) and looking a trial up in a table of learning curves
(`tuning.evaluation.tabular.lookup`) are two implementations, each built from a study's config
by its kind (`tuning.evaluation.objectives`): neither the study nor a backend knows which it
talks to. The evaluator holds the study's budget meter (`tuning.core.budget.BudgetMeter`: start
no trial once it is exhausted), its resume ledger (`tuning.core.ledger.ResumeLedger`) and its
space; it retrains and tests the winner (`final_result`) and describes its data (`data`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tuning.core.budget import BudgetMeter
from tuning.core.errors import StudyError
from tuning.core.ledger import ResumeLedger, TrialResult
from tuning.core.space import SearchSpace
from tuning.core.workers import Workers

# Called at the end of each epoch with (epochs trained so far, that epoch's validation loss);
# answers True to stop the trial there (a pruner: the trial is recorded "pruned").
Report = Callable[[int, float], bool]


@dataclass(frozen=True)
class WarmStart:
    """Continue the model an earlier trial ended with (row ``trial`` of the study's table, its
    best weights restored) from epoch ``epochs`` on, as Hyperband promotes a trial: the new
    trial trains epochs ``epochs`` to its own ``epochs`` argument."""

    trial: int
    epochs: int


@dataclass(frozen=True)
class DataDescription:
    """What a study's summary says of its data: the dataset's name, its task (``regression``
    or ``classification``) and the sizes of its training, validation and test splits."""

    name: str
    task: str
    sizes: tuple[int, int, int]


@dataclass(frozen=True)
class NativeTraining:
    """What a library that fits the study's model through its own estimator needs (scikit-learn
    over scikeras: the book's code path), handed out by an evaluator that trains
    (`Evaluator.native_training`).

    ``X_train`` ... ``y_valid``: the study's splits. ``estimator(defaults, stop_here)``: a
    scikit-learn estimator over the study's model, trained by the study's trainer and counted
    into its meter, with ``defaults`` (the space's parameters, prefixed `ESTIMATOR_PREFIX`) as
    its initial parameters; ``stop_here``: it stops at the epoch's end on the study's stop
    signals (False where folds run in other processes). Its ``fit`` takes ``fit_params`` besides
    ``X`` and ``y``; a fitted estimator answers ``fold_loss(X, y)`` and ``fold_epochs()``.
    ``record``: appends one finished candidate's row (`tuning.core.recorder.TrialRecorder.record`).
    """

    X_train: Any
    y_train: Any
    X_valid: Any
    y_valid: Any
    estimator: Callable[[Mapping[str, Any], bool], Any]
    fit_params: Mapping[str, Any]
    record: Callable[..., TrialResult]


# scikeras' prefix: an estimator routes these parameters to the model's factory
ESTIMATOR_PREFIX = "model__"


class Evaluator(ABC):
    """Evaluates configurations of one study under its protocol, and records each.

    Set by every implementation: ``meter`` (the study's budget meter), ``ledger`` (its resume
    ledger) and ``space`` (the space it evaluates). ``simulated_clock``: the rows' seconds are
    a simulated clock's (a table's), not this machine's wall time.
    """

    meter: BudgetMeter
    ledger: ResumeLedger
    space: SearchSpace
    simulated_clock: ClassVar[bool] = False

    @abstractmethod
    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        epochs: int | None = None,
        warm_start: WarmStart | None = None,
        report: Report | None = None,
        number: int | None = None,
    ) -> TrialResult:
        """Evaluate ``params`` and append its row; a failure is recorded, never raised.

        ``epochs``: the fidelity, at most this many epochs (default: the protocol's cap).
        ``warm_start``: continue an earlier trial's model (`WarmStart`); the evaluator keeps
        what that needs for a backend whose ``warm_starts`` is set.
        ``report``: called after each epoch; a True answer stops the trial (recorded pruned).
        ``number``: the row's trial number when the library numbers the trials of a study
        shared by several processes; by default the rows are numbered in order. A trial the
        study's earlier run finished is answered from its table (the resume ledger) instead.
        """

    @abstractmethod
    def final_result(self, params: Mapping[str, Any], folder: Path) -> dict[str, Any]:
        """The winner's ``params`` trained once more under the protocol, outside the budget,
        and tested: the summary's figures (``final_val_loss``, ``final_epochs``,
        ``final_fit_seconds``, ``test_loss``, ``test_accuracy``, and any of the evaluator's
        own). A model it keeps is written into ``folder`` and named by ``model_file``. Raises
        `tuning.core.errors.FinalBuildError` when the user's code fails to build the winner."""

    @abstractmethod
    def data(self) -> DataDescription:
        """The study's data, as its summary describes it."""

    def native_training(self) -> NativeTraining | None:
        """For a library that fits the model itself (`NativeTraining`); None (the default)
        where there is no model to fit (a table answers each trial from recorded curves)."""
        return None

    def workers(self, size: int) -> Workers:
        """``size`` workers evaluating this study's configurations at once (``--workers``):
        `tuning.core.workers.SimulatedWorkers` for a table's lookups. An evaluator without
        them refuses in one line (`tuning.core.errors.StudyError`)."""
        raise StudyError(
            f"--workers {size}: {type(self).__name__} evaluates one trial at a time; drop --workers"
        )
