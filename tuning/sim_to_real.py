"""Deprecated path: the factory of a table's grid is `tuning.run.certify:build_on_grid`. Kept for
one release, so that study files written to earlier docs (``model =
"tuning.sim_to_real:build_on_grid"``) still run; it warns, naming the new path."""

import warnings

from tuning.run.certify import build_on_grid

__all__ = ["build_on_grid"]

warnings.warn(
    "tuning.sim_to_real is deprecated: name tuning.run.certify:build_on_grid instead",
    DeprecationWarning,
    stacklevel=2,
)
