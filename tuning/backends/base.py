"""The backend contract: translate the neutral space, drive the library's own loop, call the objective."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # the contract needs no Keras import at registration time
    from tuning.objective import Objective
    from tuning.space import SearchSpace


@dataclass(frozen=True)
class Budget:
    """How much search a study may spend: a number of trials (configurations trained)."""

    trials: int

    def __post_init__(self) -> None:
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ValueError(f"trials must be an integer >= 1, got {self.trials!r}")

    def random_start(self, requested: int | None = None, cap: int = 10) -> int:
        """How many random trials a model-based sampler draws before it models the results.

        ``requested`` when given; else a third of the budget, at least one and at most ``cap``
        (10, the default of Optuna's TPE and skopt's GP). A fixed 10 would leave a 10-trial budget
        with no model-based trial at all: plain random search under another library's name.
        """
        if requested is not None:
            return requested
        return max(1, min(cap, self.trials // 3))


class SearchBackend(ABC):
    """One hyperparameter-search library.

    The constructor only stores the backend's own options (scikit-learn style); `run` does the work.
    `run` must call ``objective`` (or ``objective.record`` when the library trains natively) once per
    trial, ``budget.trials`` times in all, and may keep its own state under ``workdir``.
    """

    name: ClassVar[str]

    @abstractmethod
    def run(
        self,
        objective: Objective,
        space: SearchSpace,
        budget: Budget,
        seed: int,
        workdir: Path,
    ) -> None: ...
