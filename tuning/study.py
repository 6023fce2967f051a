"""Deprecated path: studies are run by `tuning.run.study` (``from tuning import run_study``). Kept
for one release for code written to earlier docs (``tuning.study.save_model``); it warns, naming
the new path."""

import warnings

from tuning.run.study import run_study, save_model

__all__ = ["run_study", "save_model"]

warnings.warn(
    "tuning.study is deprecated: import run_study and save_model from tuning.run.study",
    DeprecationWarning,
    stacklevel=2,
)
