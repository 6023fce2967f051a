"""Deprecated path: the factory of a table's grid is `tuning.evaluation.keras.snapping:build_on_grid`
(the grid given as ``model_options``). Kept for one release, so that study files written to
earlier docs (``model = "tuning.sim_to_real:build_on_grid"``, ``model_options`` naming the
``table``) still run; it warns, naming the new path."""

import warnings

from tuning.run.certify import build_on_grid

__all__ = ["build_on_grid"]

warnings.warn(
    "tuning.sim_to_real is deprecated: name tuning.evaluation.keras.snapping:build_on_grid "
    "instead, with the table's grid as model_options grid and grid_model",
    DeprecationWarning,
    stacklevel=2,
)
