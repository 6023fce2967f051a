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
    "build_model": "tuning.evaluation.keras.model",
    "load_dataset": "tuning.evaluation.data",
    "Dataset": "tuning.evaluation.data",
    "SearchSpace": "tuning.core.space",
    "IntParam": "tuning.core.space",
    "FloatParam": "tuning.core.space",
    "CategoricalParam": "tuning.core.space",
    "default_space": "tuning.core.space",
    "TrainingProtocol": "tuning.evaluation.keras.trainer",
    "StudyConfig": "tuning.core.config",
    "run_study": "tuning.run.study",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")
