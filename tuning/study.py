"""Deprecated path: studies are run by `tuning.run.study` (``from tuning import run_study``), and
a study's model is saved by `tuning.evaluation.keras.winner.save_model`. Kept for one release for
code written to earlier docs (``tuning.study.save_model``); it warns, naming the new paths."""

import warnings

from tuning.evaluation.keras.winner import save_model
from tuning.run.study import run_study

__all__ = ["run_study", "save_model"]

warnings.warn(
    "tuning.study is deprecated: import run_study from tuning.run.study and save_model from "
    "tuning.evaluation.keras.winner",
    DeprecationWarning,
    stacklevel=2,
)
