"""Training models of one structure together: the compiled trainer's epoch program under
``jax.vmap`` (`tuning tabulate` builds a table's groups with it).

Each model keeps its own seed's row order, early stopping (`PatienceRule`) and NaN guard; a model
that stops leaves the group's active set, and its best weights are kept on the device."""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from typing import Any

import jax
import keras
import numpy as np

from tuning.evaluation.keras.compiled import (
    EpochProgram,
    State,
    device_array,
    evaluate,
    model_state,
    shuffled_order,
)
from tuning.evaluation.keras.structure import structure_key
from tuning.evaluation.keras.trainer import PatienceRule, TrainingProtocol, build_training_state


class TabulatedRun:
    """One model's training in a `VmappedTraining` group, as a table row holds it."""

    def __init__(self) -> None:
        self.loss: list[float] = []
        self.val_loss: list[float] = []
        self.status = "complete"
        self.test_loss = math.nan
        self.seconds = 0.0

    @property
    def epochs(self) -> int:
        return len(self.val_loss)

    @property
    def best_epoch(self) -> int:
        """The epoch (from 1) whose weights early stopping kept: the first lowest val loss."""
        finite = [v if math.isfinite(v) else math.inf for v in self.val_loss]
        return int(np.argmin(finite)) + 1 if finite else 0

    @property
    def best_val_loss(self) -> float:
        finite = [v for v in self.val_loss if math.isfinite(v)]
        return min(finite) if finite else math.nan


class VmappedTraining:
    """Trains models of one structure together, as `CompiledTrainer` trains each: the epoch
    program under ``jax.vmap`` over their stacked states and their seeds' row orders, early
    stopping (`PatienceRule`, as `_EarlyStopping`) and the NaN guard per model on the host, the
    best weights kept per model on the device; then each model's test loss with its best
    weights. Programs are kept per structure and group size."""

    def __init__(self, protocol: TrainingProtocol, dataset: Any) -> None:
        self.protocol = protocol
        self.dataset = dataset
        self.compile_seconds = 0.0
        self._programs: dict[Hashable, tuple[Any, Any, Any]] = {}
        self._data: list[jax.Array] | None = None

    def _arrays(self) -> list[jax.Array]:
        if self._data is None:
            d = self.dataset
            arrays = (d.X_train, d.y_train, d.X_valid, d.y_valid, d.X_test, d.y_test)
            self._data = [device_array(a) for a in arrays]
        return self._data

    def run(self, models: Sequence[keras.Model], seeds: Sequence[int]) -> list[TabulatedRun]:
        import jax.numpy as jnp

        started = time.perf_counter()
        x, y, x_valid, y_valid, x_test, y_test = self._arrays()
        for model in models:
            build_training_state(model, self.dataset.X_train, self.dataset.y_train)
        template = models[0]
        template.reset_metrics()
        metrics_reset = [v.value for v in template.metrics_variables]
        states = [model_state(m) for m in models]
        state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
        n_rows = x.shape[0]

        def orders(epoch: int) -> np.ndarray:
            return np.stack(
                [shuffled_order(n_rows, s, epoch, self.protocol.shuffle) for s in seeds]
            )

        epoch_fn, keep_fn, test_fn = self._program(
            template, state, metrics_reset, (x, y, x_valid, y_valid, x_test, y_test), orders(0)
        )
        k = len(models)
        runs = [TabulatedRun() for _ in models]
        active = np.ones(k, dtype=bool)
        stopping = PatienceRule(self.protocol.patience, k)
        best_state = None
        for epoch in range(self.protocol.max_epochs):
            state, train_logs, valid_logs = epoch_fn(
                state, metrics_reset, x, y, x_valid, y_valid, orders(epoch)
            )
            loss = np.asarray(jax.device_get(train_logs["loss"]), dtype=float)
            val = np.asarray(jax.device_get(valid_logs["loss"]), dtype=float)
            for i in np.flatnonzero(active):
                runs[i].loss.append(float(loss[i]))
                runs[i].val_loss.append(float(val[i]))
            if best_state is None:  # Keras: never improved yet, the first epoch's weights
                best_state = state
            improved, stopped = stopping.update(val, active)
            best_state = keep_fn(jnp.asarray(improved), state, best_state)
            diverged = active & ~(np.isfinite(loss) & np.isfinite(val))
            for i in np.flatnonzero(diverged):
                runs[i].status = "failed"
            active &= ~(diverged | stopped)
            if not active.any():
                break
        test_loss = np.asarray(
            jax.device_get(test_fn(best_state, metrics_reset, x_test, y_test)), dtype=float
        )
        seconds = time.perf_counter() - started
        total_epochs = sum(run.epochs for run in runs) or 1
        for run, value in zip(runs, test_loss, strict=True):
            run.test_loss = float(value) if run.status == "complete" else math.nan
            run.seconds = seconds * run.epochs / total_epochs  # a group's time, by epochs
        return runs

    def _program(
        self,
        template: keras.Model,
        state: State,
        metrics_reset: list[jax.Array],
        data: tuple[jax.Array, ...],
        order: np.ndarray,
    ) -> tuple[Any, Any, Any]:
        import jax.numpy as jnp

        shapes = tuple((a.shape, str(a.dtype)) for a in data)
        key = (structure_key(template), shapes, order.shape[0], self.protocol.batch_size)
        if key in self._programs:
            return self._programs[key]
        started = time.perf_counter()
        program = EpochProgram(template, self.protocol.batch_size)
        x, y, x_valid, y_valid, x_test, y_test = data
        epoch_fn = (
            jax.jit(jax.vmap(program._epoch, in_axes=(0, None, None, None, None, None, 0)))
            .lower(state, metrics_reset, x, y, x_valid, y_valid, order)
            .compile()
        )

        def keep(improved: jax.Array, new: State, best: State) -> State:
            def pick(n: jax.Array, b: jax.Array) -> jax.Array:
                return jnp.where(improved.reshape(-1, *([1] * (n.ndim - 1))), n, b)

            return jax.tree.map(pick, new, best)

        keep_fn = jax.jit(keep).lower(jnp.ones(order.shape[0], bool), state, state).compile()

        def test(one: State, reset: list[jax.Array], xs: jax.Array, ys: jax.Array) -> jax.Array:
            trainable, non_trainable, _ = one
            logs = evaluate(
                template, trainable, non_trainable, reset, xs, ys, self.protocol.batch_size
            )
            return logs["loss"]

        test_fn = (
            jax.jit(jax.vmap(test, in_axes=(0, None, None, None)))
            .lower(state, metrics_reset, x_test, y_test)
            .compile()
        )
        self.compile_seconds += time.perf_counter() - started
        self._programs[key] = (epoch_fn, keep_fn, test_fn)
        return self._programs[key]
