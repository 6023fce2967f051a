"""The versions of the libraries that make a verdict: recorded in each study's ``study.json`` and
summary, so that a result names what produced it (a library's release can change an algorithm's
defaults, and with them the algorithm)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

# The distributions whose version can change a study's rows: the harness, the model's stack,
# and every search library.
DISTRIBUTIONS = (
    "tuning",
    "keras",
    "jax",
    "jaxlib",
    "tensorflow",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "scikeras",
    "keras-tuner",
    "optuna",
    "hyperopt",
    "scikit-optimize",
    "cmaes",
    "torch",
)


def library_versions() -> dict[str, str]:
    """``{distribution: version}`` of each of `DISTRIBUTIONS` that is installed, and Python's."""
    found = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
