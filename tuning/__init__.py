"""tuning: tune one Keras model with several hyperparameter-search libraries under the same rules.

``from tuning import build_model`` gives the book's MLP factory; the rest of the public surface is
re-exported lazily so that ``import tuning`` stays cheap (Keras is imported only when needed).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "build_model",
    "load_dataset",
    "Dataset",
    "SearchSpace",
    "IntParam",
    "FloatParam",
    "CategoricalParam",
    "default_space",
    "TrainingProtocol",
    "StudyConfig",
    "run_study",
]

_EXPORTS = {
    "build_model": "tuning.model",
    "load_dataset": "tuning.data",
    "Dataset": "tuning.data",
    "SearchSpace": "tuning.space",
    "IntParam": "tuning.space",
    "FloatParam": "tuning.space",
    "CategoricalParam": "tuning.space",
    "default_space": "tuning.space",
    "TrainingProtocol": "tuning.trainer",
    "StudyConfig": "tuning.config",
    "run_study": "tuning.study",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")
