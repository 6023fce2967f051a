"""`PatienceRule`: Keras' early-stopping decisions, for one model and for a group side by side."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tuning.evaluation.keras.trainer import PatienceRule


def keras_decisions(val_losses: list[float], patience: int) -> tuple[int, int | None]:
    """Keras' own callback over ``val_losses``: (best epoch, epoch it stopped at or None)."""
    callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False  # (as fit sets it)
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(val_losses):
        callback.on_epoch_end(epoch, {"val_loss": value})
        if callback.model.stop_training:
            return callback.best_epoch, epoch
    return callback.best_epoch, None


def rule_decisions(rule: PatienceRule, curves: np.ndarray) -> list[tuple[int, int | None]]:
    """The rule over ``curves`` (epochs x models), each model dropping out where it stops."""
    k = curves.shape[1]
    active = np.ones(k, dtype=bool)
    best_epoch, stopped = [0] * k, [None] * k
    for epoch, values in enumerate(curves):
        improved, stop = rule.update(values, active)
        for i in np.flatnonzero(improved):
            best_epoch[i] = epoch
        for i in np.flatnonzero(stop):
            stopped[i] = epoch
        active &= ~stop
    return list(zip(best_epoch, stopped, strict=True))


@pytest.mark.one_keras_backend
@pytest.mark.parametrize("patience", [1, 2, 4])
def test_the_rule_decides_as_keras_early_stopping_for_every_model_of_a_group(patience):
    rng = np.random.default_rng(patience)
    # noisy decreasing curves, some with ties, plateaus and a NaN epoch
    curves = np.round(1 / np.arange(1, 31)[:, None] + rng.normal(0, 0.02, (30, 6)), 2)
    curves[5, 1] = np.nan
    curves[0, 3] = np.nan  # no stop after the first epoch, whatever the patience
    curves[:, 2] = 0.5  # never improves after its first epoch
    expected = [keras_decisions(list(curves[:, i]), patience) for i in range(curves.shape[1])]
    assert rule_decisions(PatienceRule(patience, k=6), curves) == expected
    # one model at a time (the compiled trainer's use) decides the same
    for i in range(curves.shape[1]):
        assert rule_decisions(PatienceRule(patience), curves[:, [i]]) == [expected[i]]
    assert expected[2] == (0, patience)  # (the test's plateau stops after its patience)
