"""The plain model from a padded one: what a study saves after training its winner padded.

A padded study builds every model at one shape (`tuning.evaluation.keras.factory.Padding`) so
that its trials share compiled programs. The winner is retrained that way too (its program is
compiled already); the saved file must still be the factory's own model, which loads with Keras
alone. `copy_real_units` copies the trained values into the unpadded model: each of its
variables (weights and optimizer state) takes the leading block of the padded variable with the
same path. That relies on what a factory promises when it declares padded shapes: padded layers
and units come after the real ones, keep their names, and their weights hold zeros; a weight
with values outside its leading block breaks the promise and is refused.
"""

from __future__ import annotations

import keras
import numpy as np

from tuning.evaluation.keras.trainer import build_training_state


class ExportError(ValueError):
    """The padded model's values do not fit the plain model: the message says which."""


def copy_real_units(padded: keras.Model, plain: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    """Set every variable of ``plain`` (its weights, and its optimizer's variables, created
    here for data like ``x``, ``y``) to the leading block of ``padded``'s variable of the same
    path. Raises `ExportError` when one has no counterpart or a larger shape, or when a
    weight's values outside that block are not all zero (its padding is not trailing)."""
    build_training_state(plain, x[:1], y[:1])
    build_training_state(padded, x[:1], y[:1])
    pairs = [
        (variable, _by_path(padded.weights).get(_path(variable)), True)
        for variable in plain.weights
    ] + [
        (variable, _by_path(padded.optimizer.variables).get(_path(variable)), False)
        for variable in plain.optimizer.variables
    ]
    blocks = []  # all checked before any is assigned: a refused copy leaves ``plain`` as built
    for variable, match, is_weight in pairs:
        if match is None:
            raise ExportError(f"the padded model has no variable {_path(variable)!r}")
        if len(match.shape) != len(variable.shape) or any(
            have < want for have, want in zip(match.shape, variable.shape, strict=True)
        ):
            raise ExportError(
                f"{_path(variable)}: padded shape {tuple(match.shape)} is smaller than "
                f"{tuple(variable.shape)}"
            )
        block = tuple(slice(0, size) for size in variable.shape)
        values = keras.ops.convert_to_numpy(match.value)
        outside = np.array(values)  # a copy (JAX may share a NumPy array's memory)
        outside[block] = 0
        if is_weight and np.any(outside):
            raise ExportError(
                f"{_path(variable)}: the padded model's values outside the leading "
                f"{tuple(variable.shape)} block are not zero (its padding is not trailing)"
            )
        blocks.append((variable, np.array(values[block])))
    for variable, values in blocks:
        variable.assign(values)


def _path(variable: keras.Variable) -> str:
    """``variable``'s path without its owner's name (``mlp/hidden_1/kernel``: ``hidden_1/kernel``;
    Keras numbers a second optimizer's name, ``adam_1``)."""
    return variable.path.partition("/")[2] or variable.path


def _by_path(variables: list[keras.Variable]) -> dict[str, keras.Variable]:
    return {_path(variable): variable for variable in variables}
