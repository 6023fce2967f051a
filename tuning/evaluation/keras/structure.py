"""What makes two models' epochs the same computation: a program is kept per structure.

`structure_key` describes a compiled model without its names, seeds and initializers (and
without a numeric learning rate, a variable): two models of one key run one compiled program.
`ProgramCache` keeps the compiled programs by that key (and the data's shapes)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import keras

# Attributes that never change a compiled epoch (or are described apart, or are state).
_NOT_IN_PROGRAM = frozenset(
    {
        "name",
        "seed",
        "built",
        "build",
        "quantize",
        "call_signature_parameters",
        "train_function",
        "test_function",
        "predict_function",
        "stop_training",
        "compiled",
        "steps_per_execution",
        "optimizer",
        "history",
        # set by `load_weights`; a quantized layer's variables (described) differ anyway
        "is_awq_calibrated",
        "is_gptq_calibrated",
    }
)


def structure_key(model: keras.Model) -> str:
    """What a compiled epoch of ``model`` depends on, as text: two models with the same key
    share a program.

    Read from the objects themselves, not from ``get_config`` (Keras' serialization imports
    TensorFlow to check a type: seconds, on JAX): the model's and each layer's class and public
    settings, its dtype policy, every variable's shape and dtype, the optimizer's class and
    settings, and what `compile` was given (loss, metrics). Names, seeds and initializers are
    left out (they make the initial values, which are the program's inputs), and so is a
    numeric learning rate (a variable of the optimizer's; a schedule is kept).
    """
    layers = [
        [_describe(layer), layer.dtype_policy.name]
        for layer in model._flatten_layers(include_self=False)
    ]
    optimizer = model.optimizer
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.Variable):
        schedule = None
    compiled_with = getattr(getattr(model, "_compile_config", None), "config", {})
    described = {
        "model": _describe(model),
        "layers": layers,
        "variables": [
            [list(v.shape), str(v.dtype)]
            for v in (*model.variables, *optimizer.variables, *model.metrics_variables)
        ],
        "optimizer": [_describe(optimizer), _describe(schedule)],
        "compile": {
            key: _describe(value, keep_names=True)
            for key, value in compiled_with.items()
            if key not in ("optimizer", "steps_per_execution")
        },
    }
    return json.dumps(described, sort_keys=True)


def _describe(value: Any, depth: int = 0, *, keep_names: bool = False) -> Any:
    """``value`` as JSON-able data: plain values as they are, functions by qualified name,
    arrays and variables by shape and dtype, layers by class (each is described on its own),
    other objects by class and public attributes (`_NOT_IN_PROGRAM` and initializers left
    out), to a few levels deep."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_describe(v, depth + 1, keep_names=keep_names) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v, depth + 1, keep_names=keep_names) for k, v in value.items()}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return ["array", [int(d) if d is not None else None for d in value.shape], str(value.dtype)]
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if callable(value) and hasattr(value, "__qualname__"):  # a function
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    if isinstance(value, keras.layers.Layer) and depth > 0:
        return kind
    attributes = {}
    if depth < 3:
        for key, attribute in sorted(getattr(value, "__dict__", {}).items()):
            ignored = key in _NOT_IN_PROGRAM and not (keep_names and key == "name")
            if key.startswith("_") or ignored or key.endswith("_initializer"):
                continue
            attributes[key] = _describe(attribute, depth + 1, keep_names=keep_names)
    return [kind, attributes]


class ProgramCache:
    """Compiled programs (epochs, evaluations, predictions) by key (structure, data shapes,
    batch size), the least recently used dropped past ``size`` so memory stays bounded. A
    trainer has its own by default; the studies of one process share one
    (`tuning.evaluation.keras.trainer_choice.create_trainer`), so a study does not trace and compile
    again what an earlier study of the process compiled."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._programs: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        program = self._programs.get(key)
        if program is not None:
            self._programs.move_to_end(key)
        return program

    def put(self, key: Hashable, program: Any) -> None:
        self._programs[key] = program
        while len(self._programs) > self.size:
            self._programs.popitem(last=False)
