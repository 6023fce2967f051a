"""The study's winner: its configuration trained once more under the protocol, outside the
budget, tested, and saved as the factory's plain model (`tuning.evaluation.keras.export`)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import keras

from tuning.core.errors import FinalBuildError, StudyError, first_line
from tuning.core.files import replace_with
from tuning.evaluation.data import Dataset
from tuning.evaluation.keras.export import ExportError, copy_real_units
from tuning.evaluation.keras.factory import Padding
from tuning.evaluation.keras.trainer import Trainer

log = logging.getLogger(__name__)
MODEL_FILE = "best_model.keras"


class StudyTraining(Protocol):
    """What the winner's training uses of the study's evaluator (`KerasEvaluator`)."""

    dataset: Dataset
    trainer: Trainer
    padding: Padding

    def build(self, params: Mapping[str, Any], padded: bool = True) -> keras.Model: ...

    def fit(
        self, model: keras.Model, *, metered: bool = True
    ) -> tuple[dict[str, list[float]], float]: ...


def final_training(
    evaluator: StudyTraining, params: Mapping[str, Any], folder: Path
) -> dict[str, Any]:
    """The winner's ``params`` retrained once under the protocol, outside the budget, tested,
    and saved as `MODEL_FILE` in ``folder``: the summary's figures. It trains at the study's
    padded shape (its program is compiled already); the saved model is the factory's plain one
    with the trained values (`copy_real_units`), padding being a search-time speed-up. Where
    those values do not fit (a factory whose padding is not trailing), the plain model is
    retrained and tested instead."""
    d, trainer = evaluator.dataset, evaluator.trainer
    model = build_winner(evaluator, params)
    history, fit_seconds = evaluator.fit(model, metered=False)
    test = trainer.evaluate(model, d.X_test, d.y_test)
    if evaluator.padding.arguments(params):
        padded, model = model, build_winner(evaluator, params, padded=False)
        try:
            copy_real_units(padded, model, d.X_train, d.y_train)
        except ExportError as exc:
            log.warning("the trained values do not fit the unpadded model (%s): retraining", exc)
            history, fit_seconds = evaluator.fit(model, metered=False)
            test = trainer.evaluate(model, d.X_test, d.y_test)
    save_model(model, folder / MODEL_FILE)
    return {
        "final_val_loss": float(min(history["val_loss"])),
        "final_epochs": len(history["loss"]),
        "final_fit_seconds": round(fit_seconds, 3),
        "test_loss": float(test["loss"]),
        "test_accuracy": float(test["accuracy"]) if "accuracy" in test else None,
        "model_file": MODEL_FILE,
    }


def build_winner(
    evaluator: StudyTraining, params: Mapping[str, Any], padded: bool = True
) -> keras.Model:
    """The evaluator's ``build`` for the final training: whatever the user's factory raises (it
    built these ``params`` once already) is a `FinalBuildError` naming it in one line."""
    try:
        return evaluator.build(params, padded)
    except StudyError:
        raise
    except Exception as exc:
        raise FinalBuildError(
            f"failed to build again for its final training: {first_line(exc)}"
        ) from exc


def save_model(model: keras.Model, path: Path) -> None:
    """`keras.Model.save`, without importing TensorFlow on another backend.

    Keras' serializer asks whether TensorFlow is available (``tf.available`` imports it: 4-7 s
    of every study on JAX) only to test whether an object is a TensorFlow type, which nothing
    can be while TensorFlow was never imported. For the save, that question is answered "no";
    the answer is forgotten afterwards, so a later use of TensorFlow imports it as before.
    """
    from keras.src.utils import module_utils  # the lazy module Keras' serializer asks

    lazy = getattr(module_utils, "tensorflow", None)
    pretend = (
        keras.backend.backend() != "tensorflow"
        and "tensorflow" not in sys.modules
        and lazy is not None
        and getattr(lazy, "_available", False) is None
    )
    if pretend:
        lazy._available = False
    try:
        replace_with(path, model.save)  # whole or not at all, never through a link
    finally:
        if pretend:
            lazy._available = None
