"""The model factory: the multilayer perceptron of *Hands-On Machine Learning* (2nd ed.), chapter 10.

This module imports nothing from the rest of the package, so it can be copied into another project
as it is::

    from tuning import build_model
    model = build_model(n_hidden=2, n_neurons=42, learning_rate=3.4e-3, input_shape=(8,))
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Sequence
from typing import Literal

import keras
import numpy as np

Task = Literal["regression", "classification"]


def _as_int(name: str, value: object) -> int:
    # numpy integers (np.int64 from RandomizedSearchCV over np.arange) and integral floats
    # (hyperopt's quniform hands back 42.0) are accepted; Keras 3 `Dense` rejects both uncast.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if float(value).is_integer():
        return int(value)
    raise TypeError(f"{name} must be an integer, got {value!r}")


def build_model(
    n_hidden: int = 1,
    n_neurons: int = 30,
    learning_rate: float = 3e-3,
    input_shape: Sequence[int] = (8,),
    *,
    n_outputs: int = 1,
    task: Task = "regression",
    activation: str = "relu",
    optimizer: str = "sgd",
    steps_per_execution: int = 1,
    seed: int | None = None,
    padded_neurons: int | None = None,
    padded_hidden: int | None = None,
) -> keras.Model:
    """Build and compile the book's MLP.

    Args:
        n_hidden: number of hidden ``Dense`` layers (0 gives a linear/softmax model).
        n_neurons: units in each hidden layer.
        learning_rate: the optimizer's learning rate.
        input_shape: shape of one example, e.g. ``(8,)`` for California housing or ``(28, 28)`` for
            Fashion-MNIST (inputs of rank above one are flattened first).
        n_outputs: output units: 1 for regression, the number of classes for classification.
        task: ``"regression"`` (linear output, mean squared error) or ``"classification"``
            (softmax output, sparse categorical cross-entropy, accuracy).
        activation: activation of the hidden layers.
        optimizer: ``"sgd"`` (the book's) or any Keras optimizer name (``"adam"``, ``"nadam"``...).
        steps_per_execution: training batches run per compiled call (``keras.Model.compile``).
            It changes speed only, not the weights: with array data Keras ends every epoch at a
            call boundary, so a value of one epoch's batches or more runs each epoch in one call.
        seed: the seed of the initial weights (Glorot's uniform, drawn with NumPy:
            `GlorotBlock`), each layer's derived from it: the same seed gives the same weights
            whatever else the process does, on any Keras backend. ``None``: the seed is drawn from
            Python's global ``random``, as Keras draws an unseeded layer's
            (``keras.utils.set_random_seed`` seeds it), which any other thread of the process may
            draw from too (a Dask worker does) and so change the weights.
        padded_neurons: build each hidden layer with this many units (at least ``n_neurons``),
            the units past ``n_neurons`` held at exact zeros: their weights start at zero, a
            `UnitMask` zeroes their outputs, so they never receive a gradient and the model
            computes what the unpadded one does (to float rounding). Models of one depth padded
            to one width share one shape, so a compiler that keeps programs per shape (the
            harness's compiled trainer) compiles one for all of them. ``None``: no padding.
        padded_hidden: build this many hidden layers (at least ``n_hidden``), the layers past
            ``n_hidden`` passing their input through unchanged (`SkippableDense`: their weights
            stay exact zeros, they receive no gradient). With ``padded_neurons``, models of every
            depth and width share one shape. A model with no hidden layer passes its inputs
            through the first one, so that needs the input's size (flattened) to be at most
            the layers' width. ``None``: no padding.

    Returns:
        A compiled ``keras.Model``.

    Raises:
        ValueError: a parameter is out of range; the message names it.
    """
    n_hidden = _as_int("n_hidden", n_hidden)
    n_neurons = _as_int("n_neurons", n_neurons)
    n_outputs = _as_int("n_outputs", n_outputs)
    steps_per_execution = _as_int("steps_per_execution", steps_per_execution)
    learning_rate = float(learning_rate)
    if n_hidden < 0:
        raise ValueError(f"n_hidden must be >= 0, got {n_hidden}")
    if n_neurons < 1:
        raise ValueError(f"n_neurons must be >= 1, got {n_neurons}")
    if not learning_rate > 0 or learning_rate == float("inf"):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate}")
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
    if steps_per_execution < 1:
        raise ValueError(f"steps_per_execution must be >= 1, got {steps_per_execution}")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
    ):
        raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
    width = n_neurons if padded_neurons is None else _as_int("padded_neurons", padded_neurons)
    if width < n_neurons:
        raise ValueError(f"padded_neurons must be >= n_neurons ({n_neurons}), got {width}")
    shape = tuple(_as_int("input_shape", d) for d in input_shape)
    depth = n_hidden if padded_hidden is None else _as_int("padded_hidden", padded_hidden)
    if depth < n_hidden:
        raise ValueError(f"padded_hidden must be >= n_hidden ({n_hidden}), got {depth}")
    if depth > n_hidden == 0 and math.prod(shape) > width:
        raise ValueError(
            f"padded_hidden: a model with no hidden layer passes its {math.prod(shape)} inputs "
            f"through layers of {width} units; pad the width to at least {math.prod(shape)}"
        )
    if seed is None:  # as Keras draws an unseeded layer's seed: from Python's global generator
        seed = random.randrange(2**31)

    # Named layers: the model of a padded study is copied into the plain one by name
    # (`tuning.evaluation.keras.export`).
    layers: list[keras.layers.Layer] = [keras.layers.Input(shape=shape)]
    if len(shape) > 1:
        layers.append(keras.layers.Flatten())
    fan_in = math.prod(shape)
    flowing = n_neurons if n_hidden else fan_in  # the units that carry values, layer after layer
    for layer in range(depth):
        name = f"hidden_{layer + 1}"
        if layer >= n_hidden:  # a padded layer: its input passes through
            layers.append(SkippableDense(width, activation=activation, active=False, name=name))
        else:
            initializer = GlorotBlock(fan_in, n_neurons, seed, layer)
            kind = keras.layers.Dense if padded_hidden is None else SkippableDense
            layers.append(
                kind(width, activation=activation, kernel_initializer=initializer, name=name)
            )
            fan_in = n_neurons
        if padded_neurons is not None or padded_hidden is not None:
            layers.append(UnitMask(flowing))  # (also at full width: one structure for all widths)
    output = GlorotBlock(fan_in, n_outputs, seed, n_hidden)
    if task == "classification":
        activation_out, loss, metrics = "softmax", "sparse_categorical_crossentropy", ["accuracy"]
    else:
        activation_out, loss, metrics = None, "mse", []
    layers.append(
        keras.layers.Dense(
            n_outputs, activation=activation_out, kernel_initializer=output, name="output"
        )
    )
    # all layers at once: `Sequential.add` builds the model again after each layer
    model = keras.Sequential(layers, name="mlp")
    opt = keras.optimizers.get(
        {"class_name": optimizer, "config": {"learning_rate": learning_rate}}
    )
    model.compile(
        loss=loss, optimizer=opt, metrics=metrics, steps_per_execution=steps_per_execution
    )
    for dense in model.layers:
        if dense.built and isinstance(getattr(dense, "kernel_initializer", None), GlorotBlock):
            # Its weights are drawn. A saved model names Keras' own Glorot uniform (the same
            # distribution), so that the file loads where this module is not installed.
            dense.kernel_initializer = keras.initializers.GlorotUniform()
    return model


@keras.saving.register_keras_serializable(package="tuning")
class GlorotBlock(keras.initializers.Initializer):
    """Glorot's uniform initializer for a layer whose real shape is (``fan_in``, ``fan_out``),
    drawn on the host from ``(seed, layer)``: its values fill the kernel's top-left block, the
    rest (a padded layer's unused units) is exactly zero. Drawn with NumPy, not on the device,
    so a new layer shape compiles no program, and the values are the same in any process and
    on any Keras backend."""

    def __init__(self, fan_in: int, fan_out: int, seed: int, layer: int) -> None:
        self.fan_in, self.fan_out, self.seed, self.layer = fan_in, fan_out, seed, layer

    def __call__(self, shape: Sequence[int], dtype: object = None) -> np.ndarray:
        rows, columns = shape
        if rows < self.fan_in or columns < self.fan_out:
            raise ValueError(f"kernel {tuple(shape)} smaller than ({self.fan_in}, {self.fan_out})")
        limit = math.sqrt(6.0 / (self.fan_in + self.fan_out))
        generator = np.random.default_rng(np.random.SeedSequence([int(self.seed), self.layer]))
        kernel = np.zeros((rows, columns), dtype=keras.backend.standardize_dtype(dtype))
        kernel[: self.fan_in, : self.fan_out] = generator.uniform(
            -limit, limit, (self.fan_in, self.fan_out)
        )
        return kernel

    def get_config(self) -> dict[str, int]:
        return {
            "fan_in": self.fan_in,
            "fan_out": self.fan_out,
            "seed": self.seed,
            "layer": self.layer,
        }


@keras.saving.register_keras_serializable(package="tuning")
class SkippableDense(keras.layers.Dense):
    """A ``Dense`` layer that, when not ``active``, passes its input through unchanged (padded
    with zero units to its own width): a padded model's layers past its depth. Whether it is
    active is a non-trainable weight, not a setting, so models of every depth are one
    computation (one compiled program). An inactive layer's weights start at zero and receive
    no gradient: its output is not used."""

    def __init__(self, units: int, *, active: bool = True, **kwargs: object) -> None:
        if not active:
            kwargs = {**kwargs, "kernel_initializer": "zeros"}
        super().__init__(units, **kwargs)
        self._active = bool(active)

    def build(self, input_shape: Sequence[int | None]) -> None:
        super().build(input_shape)
        active = self._active

        def flag(shape: Sequence[int], dtype: object = None) -> np.ndarray:  # (on the host)
            return np.array(1.0 if active else 0.0, dtype=keras.backend.standardize_dtype(dtype))

        self.enabled = self.add_weight(shape=(), initializer=flag, trainable=False, name="on")

    def call(self, inputs: object) -> object:
        outputs = super().call(inputs)
        missing = self.units - int(inputs.shape[-1])
        passed = inputs
        if missing:
            passed = keras.ops.pad(inputs, [[0, 0]] * (len(inputs.shape) - 1) + [[0, missing]])
        return keras.ops.where(self.enabled > 0, outputs, passed)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "active": self._active}

    # `Dense` saves and loads its kernel and bias alone: the flag goes with them
    def save_own_variables(self, store: dict) -> None:
        super().save_own_variables(store)
        if self.built:
            store["on"] = self.enabled

    def load_own_variables(self, store: dict) -> None:
        super().load_own_variables(store)
        if self.built:
            self.enabled.assign(store["on"])


@keras.saving.register_keras_serializable(package="tuning")
class UnitMask(keras.layers.Layer):
    """Keeps the first ``active`` units of its input and zeroes the rest (a padded layer's
    unused units). The mask is a non-trainable weight, not a setting, so layers of every
    ``active`` are one computation (one compiled program) that differs only in that weight."""

    def __init__(self, active: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._active = int(active)

    def build(self, input_shape: Sequence[int | None]) -> None:
        units = int(input_shape[-1])
        active = self._active

        def ones_then_zeros(shape: Sequence[int], dtype: object = None) -> np.ndarray:
            dtype = keras.backend.standardize_dtype(dtype)
            return (np.arange(units) < active).astype(dtype)

        self.mask = self.add_weight(
            shape=(units,), initializer=ones_then_zeros, trainable=False, name="mask"
        )

    def call(self, inputs: object) -> object:
        return inputs * self.mask

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> Sequence[int | None]:
        return input_shape

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "active": self._active}


# Which searched parameter sets a layer width, and the argument that builds the layers at a
# larger width instead: a harness that compiles one program per shape builds the models of a
# study at a few padded widths (`tuning.evaluation.keras.factory.study_padding`).
build_model.padded_widths = {"n_neurons": "padded_neurons"}  # type: ignore[attr-defined]
# The same for the number of hidden layers: models of every depth built at the largest.
build_model.padded_depths = {"n_hidden": "padded_hidden"}  # type: ignore[attr-defined]
