"""The backend contract: translate the neutral space, drive the library's own loop, call the objective."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tuning.budget import Budget

if TYPE_CHECKING:  # the contract needs no Keras import at registration time
    from tuning.objective import Objective
    from tuning.space import SearchSpace


class SearchBackend(ABC):
    """One hyperparameter-search library.

    The constructor only stores the backend's own options (scikit-learn style); `run` does the work.
    `run` must call ``objective`` (or ``objective.record`` when the library trains natively) once per
    trial, and start no new trial once ``objective.meter.exhausted`` (the study's `Budget` in
    trials, epochs or seconds is spent; a fit running then is stopped at its epoch's end). It stops
    the library through the library's own means (a callback, a stop condition, its loop bound) and
    may keep its own state under ``workdir``.

    Resuming: when a study is run again after it was interrupted, ``workdir`` holds what the
    library saved, ``objective.finished`` the trials already in the table, and the meter their
    spend. The backend reloads its library's state and calls ``objective.restored(n)`` with the
    number of those trials the state holds; the objective answers the rest from the table when
    the library asks for them again (`Objective.replay`), so they are not trained twice. A
    backend that draws a seeded stream and saves nothing needs no code for this: its stream
    asks for the same configurations again. One that cannot retrace them fails with
    `tuning.objective.ResumeError`, which tells the user to pass ``--fresh``.
    """

    name: ClassVar[str]

    @property
    def shares_study(self) -> bool:
        """True when several processes work on one study through the library's own shared
        storage (Optuna with ``storage``): each process then adds its trials, numbered by the
        library, to the one table, and none has the study to itself."""
        return False

    @abstractmethod
    def run(
        self,
        objective: Objective,
        space: SearchSpace,
        budget: Budget,
        seed: int,
        workdir: Path,
    ) -> None: ...
