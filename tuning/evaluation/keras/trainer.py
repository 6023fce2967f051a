"""The training protocol, and the trainers that carry it out on a compiled Keras model.

Every trial, every scikit-learn fold, every Keras Tuner round and every winner's retraining is
trained by one `Trainer` under one `TrainingProtocol`: the batch size, the epoch cap, early
stopping on the validation loss with the best weights restored, the NaN guard, and the
callbacks the caller adds (the budget's epoch counter, Ctrl-C, Keras Tuner's checkpoints) called
once per epoch. Two trainers carry it out, with the same arithmetic:

- ``keras``: `keras.Model.fit` (every Keras backend);
- ``compiled`` (JAX only, the default there): one XLA program per epoch around the model's own
  ``train_step``/``test_step`` (`tuning.evaluation.keras.compiled`), several times faster per
  epoch on the CPU (`benchmarks/README.md`).

No JAX here. The study's settings name a trainer (`tuning.core.config.trainer_for`)
before anything imports Keras.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tuning.core.config import TRAINERS

ValidationData = tuple[np.ndarray, np.ndarray]
History = dict[str, list[float]]


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop a fit at the first NaN/inf batch loss, as `keras.callbacks.TerminateOnNaN` does but
    without printing to stdout: the trial's row says it diverged (`score_history`)."""

    reads_model = False  # `CompiledTrainer`: needs no weights synced before it is called

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True


@dataclass(frozen=True)
class TrainingProtocol:
    """How every trial is trained: the book's batch size, early stopping on validation loss.

    ``fast`` (the default) makes Keras `fit` train each epoch in one call
    (``steps_per_execution`` of a whole epoch) instead of one call per batch: the same
    arithmetic in the same order, so the same losses, bit for bit (``tests/test_speed.py``).
    Keras still ends every call at the epoch's end, so the epoch callbacks (early stopping,
    the budget) see every epoch. The NaN guard reads the loss at the end of each call, so a
    diverging trial stops at the end of the epoch it diverged in, as with the compiled trainer.

    ``trainer``: ``keras`` or ``compiled`` (`TRAINERS`); ``None`` picks by the Keras backend
    (`tuning.core.config.trainer_for`). ``shuffle``: the training rows are shuffled each epoch (Keras' default);
    off only to compare trainers step by step.
    """

    max_epochs: int = 100
    batch_size: int = 32
    patience: int = 10
    fast: bool = True
    trainer: str | None = None
    shuffle: bool = True

    def __post_init__(self) -> None:
        for name in ("max_epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.trainer is not None and self.trainer not in TRAINERS:
            raise ValueError(f"trainer must be one of {list(TRAINERS)}, got {self.trainer!r}")

    def steps_per_execution(self, n_rows: int) -> int:
        """Batches per compiled call of Keras `fit` on ``n_rows`` rows: one epoch's, or 1."""
        return max(1, math.ceil(n_rows / self.batch_size)) if self.fast else 1

    def callbacks(self) -> list[keras.callbacks.Callback]:
        """Fresh callbacks for one Keras `fit`: early stopping (best weights kept), NaN guard."""
        return [
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=self.patience, restore_best_weights=True
            ),
            StopOnNonFiniteLoss(),
        ]

    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `keras.Model.fit` shared by every trial (callbacks excluded)."""
        return {"batch_size": self.batch_size, "epochs": self.max_epochs, "verbose": 0}


class PatienceRule:
    """The decisions of `keras.callbacks.EarlyStopping(monitor="val_loss", patience,
    restore_best_weights=True)`, rule for rule, for ``k`` models trained side by side: which
    epoch improved (its weights are the ones to keep) and which model's patience ran out. The
    compiled trainer (one model) and the vmapped group (``k``) keep the weights themselves."""

    def __init__(self, patience: int, k: int = 1) -> None:
        self.patience = patience
        self.best = np.full(k, math.inf)
        self.wait = np.zeros(k, dtype=int)
        self.first = True  # Keras: the first epoch improves whatever its loss

    def update(
        self, val_loss: np.ndarray, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Record the next epoch's validation losses of the ``active`` models (all by default:
        a model that stopped is left out); returns (improved, patience ran out), one flag per
        model. Were a first epoch's loss NaN, no later epoch would improve on it, as in Keras;
        since the first epoch always improves, no model stops after it."""
        if active is None:
            active = np.ones(self.best.shape, dtype=bool)
        self.wait += 1
        improved = active & (self.first | (val_loss < self.best))
        self.first = False
        self.best = np.where(improved, val_loss, self.best)
        self.wait[improved] = 0
        return improved, active & (self.wait >= self.patience)


class Trainer(ABC):
    """Trains a compiled Keras model under the protocol; the one way the harness trains.

    ``seed`` seeds the shuffling of the training rows: every fit of a study draws the same
    order of batches (common random numbers, as the initial weights are).
    """

    name: str
    # True where models of one shape share one compiled program (so a study builds every model
    # at a few padded shapes, `tuning.evaluation.keras.factory.study_padding`)
    shares_programs_by_shape: bool = False

    def __init__(self, protocol: TrainingProtocol, seed: int = 0) -> None:
        self.protocol = protocol
        self.seed = seed

    @property
    def compile_seconds(self) -> float:
        """Seconds this trainer spent compiling so far (0 where it cannot tell)."""
        return 0.0

    def __deepcopy__(self, memo: dict[int, Any]) -> Trainer:
        # scikit-learn deep-copies an estimator's parameters for each fold: every fold shares
        # the study's trainer (its compiled programs, its arrays on the device)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # sent to another process (a Dask worker's folds): a fresh trainer of the same protocol
        return type(self), (self.protocol, self.seed)

    @abstractmethod
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
        """Train ``model`` from ``initial_epoch`` to ``epochs`` (default: the protocol's cap)
        under the protocol and return its history (``loss``, ``val_loss`` and the metrics, one
        value per epoch trained). On return the model holds the restored best weights.

        The keyword arguments are those of `keras.Model.fit`, so that a library calling
        ``model.fit`` (scikeras) can be handed this instead; ``fit_options`` that the protocol
        fixes (batch size, verbosity) are ignored, and any other is refused.
        """

    def evaluate(self, model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """The loss and metrics of ``model`` on ``x``, ``y`` (`keras.Model.evaluate`, in the
        protocol's batches)."""
        logs = model.evaluate(
            x, y, batch_size=self.protocol.batch_size, verbose=0, return_dict=True
        )
        return {key: float(value) for key, value in logs.items()}

    def predict(self, model: keras.Model, x: np.ndarray) -> np.ndarray:
        """``model``'s outputs for ``x`` (`keras.Model.predict`, in the protocol's batches)."""
        # `type(model).predict`: scikeras' call reaches here through an attribute set on the model
        return type(model).predict(model, x, batch_size=self.protocol.batch_size, verbose=0)


def build_training_state(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    """Create what `fit` would before its first step: the layers' weights, the optimizer's
    variables, the compiled loss and metrics (for data shaped like ``x``, ``y``)."""
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError("the model is not compiled: the factory must return a compiled model")
    # Keras' own set-up before fit or evaluate (private: Keras has no public one)
    model._symbolic_build(data_batch=(x[:1], y[:1]))


# `keras.Model.fit` options a caller may pass (scikeras passes its own defaults) and the values
# that leave the protocol as it is; the batch size must be the protocol's.
NEUTRAL_FIT_OPTIONS: dict[str, tuple[Any, ...]] = {
    "verbose": (),  # any: the trainers print nothing
    "shuffle": (),  # any: the protocol decides
    "sample_weight": (None,),
    "class_weight": (None,),
    "validation_split": (None, 0, 0.0),
    "validation_batch_size": (None,),
    "validation_freq": (1,),
}


def check_fit_options(fit_options: Mapping[str, Any], protocol: TrainingProtocol) -> None:
    """Refuse `keras.Model.fit` options that would train otherwise than the protocol says."""
    for name, value in fit_options.items():
        if name == "batch_size":
            if value not in (None, protocol.batch_size):
                raise ValueError(
                    f"batch_size {value} differs from the protocol's {protocol.batch_size}"
                )
        elif name not in NEUTRAL_FIT_OPTIONS:
            raise ValueError(f"fit option {name!r} is not part of the training protocol")
        elif NEUTRAL_FIT_OPTIONS[name] and value not in NEUTRAL_FIT_OPTIONS[name]:
            raise ValueError(f"fit option {name}={value!r} is not part of the training protocol")


class KerasTrainer(Trainer):
    """`keras.Model.fit` with the protocol's settings and callbacks (any Keras backend)."""

    name = "keras"

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
        kwargs = self.protocol.fit_kwargs()
        if epochs is not None:
            kwargs["epochs"] = epochs
        # `type(model).fit`: scikeras' call reaches here through an attribute set on the model
        fitted = type(model).fit(
            model,
            x,
            y,
            validation_data=validation_data,
            initial_epoch=initial_epoch,
            callbacks=[*self.protocol.callbacks(), *callbacks],
            shuffle=self.protocol.shuffle,
            **kwargs,
        )
        return {k: [float(v) for v in values] for k, values in fitted.history.items()}
