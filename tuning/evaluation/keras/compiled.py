"""The compiled trainer (JAX backend): each epoch of a fit is one XLA program.

Keras `fit` on JAX runs one jitted step per batch and returns to Python between them, which on
a small MLP costs several times the arithmetic (figures: `benchmarks/README.md`). Here one jitted function runs a whole epoch (`EpochProgram`): the rows in the epoch's
seeded order, a ``lax.scan`` of the model's own ``train_step`` over the full batches, one more
step for the last partial batch (so the math is Keras', batch by batch), then the validation
pass, with one transfer to the host at its end. ``train_step``/``test_step`` are Keras'
stateless steps (`model.stateless_call`, the optimizer's ``stateless_apply``, the compiled loss
and metrics), so a factory's model is trained as Keras trains it, custom steps included.

The protocol (early stopping with the best weights kept, the NaN guard) runs on the host once
per epoch, on the epoch's two losses; callbacks are called once per epoch as Keras calls them,
and a callback that reads the model (Keras Tuner's checkpoints) first gets the weights written
back into the model's variables.

Compilation is part of every trial's cost, so it is paid as rarely as possible:

- programs are kept per *structure* (`structure_key`: the layers' classes and settings
  without names, seeds and initializers, the variables' shapes, the optimizer's settings but
  a numeric learning rate, which is a variable, the loss and metrics; and the data's shapes):
  a later trial of the same architecture reuses the compiled epoch of an earlier one,
  whatever its learning rate or initial weights;
- JAX's persistent compilation cache (`tuning.evaluation.keras.jax_cache`) keeps compiled programs on disk,
  shared by every process of a grid and by later runs.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import jax
import keras
import numpy as np
from jax import lax

from tuning.evaluation.keras.structure import ProgramCache, structure_key
from tuning.evaluation.keras.trainer import (
    History,
    PatienceRule,
    Trainer,
    TrainingProtocol,
    ValidationData,
    build_training_state,
    check_fit_options,
)

State = tuple[list[jax.Array], list[jax.Array], list[jax.Array]]  # trainable, other, optimizer

log = logging.getLogger(__name__)


class EpochProgram:
    """One epoch of training and validation, compiled for models of one structure and data of
    one shape; ``template`` is the model whose ``train_step``/``test_step`` it was traced
    from. Call `compile` once, then call it with the state of any model of that structure.

    Its inputs: the model's state (trainable, non-trainable and optimizer variables), the
    metrics' reset values, the four data arrays, and the order of the training rows for this
    epoch (`shuffled_order`). The training rows are gathered in that order once, then the
    full batches run in one ``lax.scan`` and the last, smaller batch as a step of its own, as
    Keras batches them. The validation rows are evaluated in as few ``test_step`` calls as
    `VALID_VALUES_PER_CALL` allows (all at once for an MLP): the metrics are means over rows,
    so only the rounding differs from Keras' batches of ``batch_size``.
    """

    def __init__(self, template: keras.Model, batch_size: int) -> None:
        self.template = template
        self.batch_size = batch_size
        self._compiled: Any = None

    def compile(self, *args: Any) -> None:
        """Trace and compile for ``args`` (loaded from JAX's persistent cache if there)."""
        self._compiled = jax.jit(self._epoch).lower(*args).compile()

    def __call__(self, *args: Any) -> tuple[State, dict[str, jax.Array], dict[str, jax.Array]]:
        return self._compiled(*args)

    def _epoch(
        self,
        state: State,
        metrics_reset: list[jax.Array],
        x: jax.Array,
        y: jax.Array,
        x_valid: jax.Array,
        y_valid: jax.Array,
        order: jax.Array,
    ) -> tuple[State, dict[str, jax.Array], dict[str, jax.Array]]:
        model = self.template

        def train(step_state: tuple, batch: tuple) -> tuple[tuple, None]:
            return model.train_step(step_state, batch)[1], None

        step_state = (*state, metrics_reset)
        step_state = _scan_batches(train, step_state, (x[order], y[order]), self.batch_size)
        train_logs = _metrics(model, step_state[3])
        trainable, non_trainable, optimizer_variables, _ = step_state

        valid_logs = evaluate(
            model, trainable, non_trainable, metrics_reset, x_valid, y_valid, self.batch_size
        )
        return (trainable, non_trainable, optimizer_variables), train_logs, valid_logs


def evaluate(
    model: keras.Model,
    trainable: list[jax.Array],
    non_trainable: list[jax.Array],
    metrics_reset: list[jax.Array],
    x: jax.Array,
    y: jax.Array,
    batch_size: int,
) -> dict[str, jax.Array]:
    """The loss and metrics of these weights on ``x``, ``y`` through the model's own
    ``test_step``, in as few calls as `VALID_VALUES_PER_CALL` allows (all at once for an MLP):
    the metrics are means over rows, so only the rounding differs from Keras' batches."""

    def test(step_state: tuple, batch: tuple) -> tuple[tuple, None]:
        return model.test_step(step_state, batch)[1], None

    values_per_row = max(1, math.prod(x.shape[1:]))
    rows = max(batch_size, VALID_VALUES_PER_CALL // values_per_row)
    final = _scan_batches(test, (trainable, non_trainable, metrics_reset), (x, y), rows)
    return _metrics(model, final[2])


def _metrics(model: keras.Model, metrics_variables: list[jax.Array]) -> dict[str, jax.Array]:
    """The model's metric results (``loss`` and the compiled metrics) for these values."""
    mapping = list(zip(model.metrics_variables, metrics_variables, strict=True))
    with keras.StatelessScope(state_mapping=mapping):
        return dict(model.get_metrics_result())


# Validation rows evaluated in one call: at most this many input values (16 MiB of float32).
VALID_VALUES_PER_CALL = 2**22


def shuffled_order(n_rows: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order of the training rows in ``epoch``: a permutation drawn from (seed, epoch), the
    same in every process; 0..n-1 when ``shuffle`` is off."""
    if not shuffle:
        return np.arange(n_rows, dtype=np.int32)
    return np.random.default_rng([seed, epoch]).permutation(n_rows).astype(np.int32)


def _scan_batches(step: Any, state: tuple, data: tuple, size: int) -> tuple:
    """``step`` over ``data`` (arrays of the same length) in consecutive batches of ``size``:
    the full batches in one ``lax.scan``, then the last, smaller one as a step of its own."""
    n_full, rest = divmod(data[0].shape[0], size)
    if n_full == 1 and not rest:
        return step(state, data)[0]
    if n_full:
        batches = tuple(a[: n_full * size].reshape(n_full, size, *a.shape[1:]) for a in data)
        state, _ = lax.scan(step, state, batches)
    if rest:
        state, _ = step(state, tuple(a[n_full * size :] for a in data))
    return state


def device_array(array: np.ndarray) -> jax.Array:
    """``array`` on the device as Keras would feed it: floats as ``floatx``, integers as int32."""
    array = np.asarray(array)
    dtype = keras.backend.floatx() if np.issubdtype(array.dtype, np.floating) else np.int32
    return jax.device_put(array.astype(dtype, copy=False))


class CompiledTrainer(Trainer):
    """Trains through `EpochProgram`s: compiled once per structure, data on the device once.

    ``MAX_ARRAYS`` arrays on the device are kept and ``programs`` (its own `ProgramCache` by
    default) keeps the compiled epochs, the least recently used dropped first, so memory stays
    bounded over any number of trials.
    """

    name = "compiled"
    shares_programs_by_shape = True
    MAX_ARRAYS = 8

    def __init__(
        self, protocol: TrainingProtocol, seed: int = 0, programs: ProgramCache | None = None
    ) -> None:
        super().__init__(protocol, seed)
        self._programs = ProgramCache() if programs is None else programs
        self._arrays: OrderedDict[tuple, tuple[np.ndarray, jax.Array]] = OrderedDict()
        self._compile_seconds = 0.0
        self.programs_compiled = 0
        self.programs_reused = 0

    @property
    def compile_seconds(self) -> float:
        return self._compile_seconds

    def fit(
        self,
        model: keras.Model,
        x: np.ndarray,
        y: np.ndarray,
        *,
        validation_data: ValidationData,
        epochs: int | None = None,
        initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        **fit_options: Any,
    ) -> History:
        check_fit_options(fit_options, self.protocol)
        epochs = self.protocol.max_epochs if epochs is None else epochs
        data, metrics_reset, state = self._prepared(model, x, y, *validation_data)
        n_rows = data[0].shape[0]
        program = self._program(model, state, metrics_reset, data)

        reads_model = any(
            getattr(cb, "reads_model", True) and not isinstance(cb, keras.callbacks.History)
            for cb in callbacks
        )
        for cb in callbacks:
            cb.set_model(model)
            cb.set_params({"epochs": epochs, "verbose": 0, "steps": None})
        model.stop_training = False
        for cb in callbacks:
            cb.on_train_begin()

        stopping = _EarlyStopping(self.protocol.patience, model)
        history: History = {}
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            order = shuffled_order(n_rows, self.seed, epoch, self.protocol.shuffle)
            state, train_logs, valid_logs = program(state, metrics_reset, *data, order)
            train_logs, valid_logs = jax.device_get((train_logs, valid_logs))
            logs = {k: float(v) for k, v in train_logs.items()}
            logs.update({f"val_{k}": float(v) for k, v in valid_logs.items()})
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            stop = stopping.update(logs["val_loss"], state)
            stop |= not math.isfinite(logs["loss"])  # the NaN guard, at the epoch's end
            if reads_model:
                _write_back(model, state)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if stop or model.stop_training:
                break
        _write_back(model, stopping.restored(state))
        for cb in callbacks:
            cb.on_train_end()
        return history

    def evaluate(self, model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """The loss and metrics of ``model`` on ``x``, ``y`` through its ``test_step``, compiled
        once per structure and data shape (kept with the epoch programs)."""
        data, metrics_reset, (trainable, non_trainable, _) = self._prepared(model, x, y)
        batch_size = self.protocol.batch_size

        def evaluated(trainable, non_trainable, metrics_reset, x, y):  # noqa: ANN001, ANN202
            return evaluate(model, trainable, non_trainable, metrics_reset, x, y, batch_size)

        arguments = (trainable, non_trainable, metrics_reset, *data)
        program = self._kept("evaluate", model, arguments, _jitted(evaluated, arguments))
        logs = jax.device_get(program(*arguments))
        return {name: float(value) for name, value in logs.items()}

    def predict(self, model: keras.Model, x: np.ndarray) -> np.ndarray:
        """``model``'s outputs for ``x`` in one call of its forward pass (not training), compiled
        once per structure and shape; Keras' `predict` where ``x`` is larger than
        `VALID_VALUES_PER_CALL`."""
        if x.size > VALID_VALUES_PER_CALL:
            return super().predict(model, x)
        x_device = device_array(x)  # (not kept: scikit-learn's folds are new arrays)

        def predicted(trainable, non_trainable, x):  # noqa: ANN001, ANN202
            return model.stateless_call(trainable, non_trainable, x, training=False)[0]

        arguments = (*model_state(model)[:2], x_device)
        program = self._kept("predict", model, arguments, _jitted(predicted, arguments))
        return np.asarray(jax.device_get(program(*arguments)))

    def _prepared(
        self, model: keras.Model, x: np.ndarray, y: np.ndarray, *more: np.ndarray
    ) -> tuple[list[jax.Array], list[jax.Array], State]:
        """Before a compiled call: the model's training state built, ``x``, ``y`` (and
        ``more`` arrays) on the device, the metrics' reset values, the model's `State`."""
        build_training_state(model, x, y)
        data = [self._on_device(a) for a in (x, y, *more)]
        model.reset_metrics()
        return data, [v.value for v in model.metrics_variables], model_state(model)

    def _kept(
        self, kind: str, model: keras.Model, arguments: tuple, compiled: Callable[[], Any]
    ) -> Any:
        """The program of ``kind`` for ``model``'s structure, ``arguments``' shapes and the
        protocol's batch size: kept from an earlier call (by any model of that structure), else
        ``compiled()`` and kept."""
        shapes = tuple((a.shape, str(a.dtype)) for a in jax.tree_util.tree_leaves(arguments))
        key = (kind, structure_key(model), shapes, self.protocol.batch_size)
        program = self._programs.get(key)
        if program is not None:
            self.programs_reused += 1
            return program
        started = time.perf_counter()
        program = compiled()
        seconds = time.perf_counter() - started
        self._compile_seconds += seconds
        self.programs_compiled += 1
        log.debug("compiled a program (%s) in %.3f s", kind, seconds)
        self._programs.put(key, program)
        return program

    def _on_device(self, array: np.ndarray) -> jax.Array:
        """``array`` on the device, as Keras would feed it (floats as ``floatx``, integers as
        int32); the study's arrays are put there once and kept."""
        key = (id(array), array.shape, str(array.dtype))
        if key in self._arrays:
            self._arrays.move_to_end(key)
            return self._arrays[key][1]
        array = np.asarray(array)
        on_device = device_array(array)
        self._arrays[key] = (array, on_device)  # the array kept: its id stays its own
        while len(self._arrays) > self.MAX_ARRAYS:
            self._arrays.popitem(last=False)
        return on_device

    def _program(
        self,
        model: keras.Model,
        state: State,
        metrics_reset: list[jax.Array],
        data: list[jax.Array],
    ) -> EpochProgram:
        order = shuffled_order(data[0].shape[0], self.seed, 0)
        arguments = (state, metrics_reset, *data, order)

        def compiled() -> EpochProgram:
            program = EpochProgram(model, self.protocol.batch_size)
            program.compile(*arguments)
            return program

        return self._kept("epoch", model, arguments, compiled)


def _jitted(function: Callable[..., Any], arguments: tuple) -> Callable[[], Any]:
    """Compiling ``function`` for ``arguments``, to be done when called."""
    return lambda: jax.jit(function).lower(*arguments).compile()


class _EarlyStopping:
    """Early stopping (`PatienceRule`) on the device's arrays: the best epoch's weights are kept
    by reference (JAX arrays never change), not copied."""

    def __init__(self, patience: int, model: keras.Model) -> None:
        self.rule = PatienceRule(patience)
        self.best_state: State | None = None
        # `model.get_weights()`: the non-trainable variables that are weights (not seed states)
        weights = {id(w) for w in model.non_trainable_weights}
        self.is_weight = [id(v) in weights for v in model.non_trainable_variables]

    def update(self, val_loss: float, state: State) -> bool:
        """Record the next epoch; True when patience has run out."""
        improved, stop = self.rule.update(np.array([val_loss]))
        if improved[0]:
            self.best_state = state
        return bool(stop[0])

    def restored(self, state: State) -> State:
        """``state`` with the best epoch's weights (the optimizer's variables stay the last)."""
        if self.best_state is None:
            return state
        trainable, non_trainable, _ = self.best_state
        kept = [
            best if weight else last
            for best, last, weight in zip(non_trainable, state[1], self.is_weight, strict=True)
        ]
        return trainable, kept, state[2]


def _state_variables(model: keras.Model) -> tuple[list, list, list]:
    """The variables a `State` holds the values of, in its order."""
    return model.trainable_variables, model.non_trainable_variables, model.optimizer.variables


def model_state(model: keras.Model) -> State:
    """The current values of ``model``'s variables, as the epoch programs take them."""
    trainable, non_trainable, optimizer = _state_variables(model)
    return (
        [v.value for v in trainable],
        [v.value for v in non_trainable],
        [v.value for v in optimizer],
    )


def _write_back(model: keras.Model, state: State) -> None:
    """Put ``state`` into the model's variables (what `fit` leaves behind)."""
    for refs, values in zip(_state_variables(model), state, strict=True):
        for ref, value in zip(refs, values, strict=True):
            ref.assign(value)
