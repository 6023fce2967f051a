"""Deprecated path: the search space lives in `tuning.core.space` (or ``from tuning import
IntParam, ...``). Kept for one release, so that backend packages written to earlier docs
(``from tuning.space import IntParam``) still import; it warns, naming the new path."""

import warnings

from tuning.core.space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    SearchSpace,
    SpaceError,
    default_space,
)

__all__ = [
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "Param",
    "SearchSpace",
    "SpaceError",
    "default_space",
]

warnings.warn(
    "tuning.space is deprecated: import the same names from tuning.core.space (or from tuning)",
    DeprecationWarning,
    stacklevel=2,
)
