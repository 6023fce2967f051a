import json
import math

import keras
import pandas as pd
import pytest

from tuning.core.outcome import score_history
from tuning.core.results import StudyKey, TrialWriter, read_trials
from tuning.core.space import default_space
from tuning.evaluation.keras.evaluator import KerasEvaluator
from tuning.evaluation.keras.trainer import TrainingProtocol

# The columns trials.csv had before rows took their parameter columns from the space: the book's
# space must still give exactly these.
BOOK_TRIAL_COLUMNS = (
    "study", "backend", "dataset", "seed", "trial", "status",
    "n_hidden", "n_neurons", "learning_rate", "val_loss", "epochs", "fit_seconds",
)  # fmt: skip
PARAMS = {"n_hidden": 1, "n_neurons": 8, "learning_rate": 1e-2}


def make_objective(tmp_path, dataset, **protocol):
    writer = TrialWriter(
        tmp_path / "trials.csv", StudyKey("s", "test", dataset.name, 0), default_space().names
    )
    return KerasEvaluator(dataset, TrainingProtocol(**protocol), writer, seed=0)


def test_a_trial_is_trained_recorded_and_scored_by_its_best_val_loss(tmp_path, california_small):
    objective = make_objective(tmp_path, california_small, max_epochs=4)
    result = objective.evaluate(PARAMS)
    assert result.status == "complete"
    assert result.epochs == 4
    assert result.val_loss == pytest.approx(min(result.history["val_loss"]))
    rows = read_trials(tmp_path)
    assert tuple(rows.columns[: len(BOOK_TRIAL_COLUMNS)]) == BOOK_TRIAL_COLUMNS
    row = rows.iloc[0]
    assert (row["trial"], row["status"], row["epochs"]) == (0, "complete", 4)
    assert (row["n_hidden"], row["n_neurons"], row["learning_rate"]) == (1, 8, 1e-2)
    assert row["val_loss"] == pytest.approx(result.val_loss)
    assert row["fit_seconds"] > 0 and row["cum_epochs"] == 4
    assert json.loads(row["curve"]) == pytest.approx(result.history["val_loss"])  # every epoch


def test_trials_are_reproducible(tmp_path, california_small):
    objective = make_objective(tmp_path, california_small, max_epochs=3)
    first, second = objective.evaluate(PARAMS), objective.evaluate(PARAMS)
    assert first.history["val_loss"] == second.history["val_loss"]
    rows = read_trials(tmp_path)
    assert list(rows["trial"]) == [0, 1]
    assert list(rows["cum_epochs"]) == [3, 6]


def test_early_stopping_ends_a_trial_before_the_cap(tmp_path, california_small):
    objective = make_objective(tmp_path, california_small, max_epochs=200, patience=1)
    # a tiny learning rate on the linear model: validation loss soon stops improving by much,
    # and with patience 1 any uptick ends the fit
    result = objective.evaluate({"n_hidden": 0, "n_neurons": 1, "learning_rate": 3e-2})
    assert result.status == "complete"
    assert result.epochs < 200
    best_epoch = result.history["val_loss"].index(min(result.history["val_loss"]))
    assert result.epochs == best_epoch + 2  # stopped one epoch of patience after the best


def test_a_diverging_trial_is_recorded_failed_and_the_next_one_runs(
    tmp_path, california_small, capfd
):
    objective = make_objective(tmp_path, california_small, max_epochs=20)
    failed = objective.evaluate({"n_hidden": 3, "n_neurons": 90, "learning_rate": 5.0})
    assert failed.status == "failed"
    assert failed.epochs == 1  # the NaN guard stopped it inside its first epoch, not after 20
    assert capfd.readouterr().out == ""  # and printed nothing on the terminal
    assert math.isnan(failed.val_loss)
    assert "diverged" in failed.error
    ok = objective.evaluate(PARAMS)
    rows = read_trials(tmp_path)
    assert list(rows["status"]) == ["failed", "complete"]
    assert pd.isna(rows["val_loss"].iloc[0]) and "diverged" in rows["error"].iloc[0]
    assert json.loads(rows["curve"].iloc[0]) == [None]  # the epoch it diverged in (strict JSON)
    assert ok.ok


class _BreaksAfter(keras.callbacks.Callback):
    """Raises at the end of epoch ``n``: stands for any error Keras or TensorFlow raises in fit."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.n:
            raise RuntimeError("device lost\nsecond line of a long library message")


def test_an_error_while_training_is_recorded_failed_and_the_next_trial_runs(
    tmp_path, california_small
):
    objective = make_objective(tmp_path, california_small, max_epochs=5)
    model = objective.build(PARAMS)
    failed = objective.train(model, PARAMS, epochs=5, callbacks=[_BreaksAfter(2)])
    assert failed.status == "failed" and math.isnan(failed.val_loss)
    assert failed.error == "training failed: RuntimeError: device lost"
    assert failed.epochs == 1  # the epoch that raised did not finish
    assert objective.evaluate(PARAMS).ok
    rows = read_trials(tmp_path)
    assert list(rows["status"]) == ["failed", "complete"]
    assert list(rows["cum_epochs"]) == [1, 6]
    finished = json.loads(rows["curve"].iloc[0])  # the epoch that finished before it raised
    assert len(finished) == 1 and finished[0] > 0


def test_an_unbuildable_configuration_is_recorded_failed(tmp_path, california_small):
    objective = make_objective(tmp_path, california_small, max_epochs=2)
    result = objective.evaluate({"n_hidden": 1, "n_neurons": 0, "learning_rate": 1e-3})
    assert result.status == "failed" and "n_neurons" in result.error


def test_score_history():
    assert score_history({"loss": [2.0, 1.0], "val_loss": [1.5, 1.2]}) == (1.2, "")
    value, error = score_history({"loss": [2.0, float("inf")], "val_loss": [1.5, 1.2]})
    assert math.isnan(value) and "epoch 2" in error


@pytest.mark.parametrize("bad", [{"max_epochs": 0}, {"batch_size": -1}, {"patience": 1.5}])
def test_protocol_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainingProtocol(**bad)


def test_writer_rejects_an_unknown_status(tmp_path):
    writer = TrialWriter(tmp_path / "t.csv", StudyKey("s", "b", "d", 0))
    with pytest.raises(ValueError, match="status"):
        writer.append({"trial": 0, "status": "done"})


class _Surprise(Exception):
    """An exception type no library knows: what a user's factory may raise."""


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("out of memory\nthe rest of a long message"),
        KeyError("width"),
        ZeroDivisionError("division by zero"),
        _Surprise(),
        AssertionError("shape"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_whatever_a_factory_raises_is_a_failed_row_with_its_first_line(
    tmp_path, california_small, error
):
    from tuning import build_model

    def factory(**arguments):
        if arguments["n_hidden"] == 2:
            raise error
        return build_model(**arguments)

    writer = TrialWriter(
        tmp_path / "trials.csv", StudyKey("s", "test", "california", 0), default_space().names
    )
    objective = KerasEvaluator(
        california_small, TrainingProtocol(max_epochs=2), writer, seed=0, factory=factory
    )
    failed = objective.evaluate({**PARAMS, "n_hidden": 2})
    name = type(error).__name__
    assert failed.status == "failed" and failed.error.startswith(f"build failed: {name}")
    assert "\n" not in failed.error and "the rest" not in failed.error
    assert objective.evaluate(PARAMS).ok  # the study goes on
    assert list(read_trials(tmp_path)["status"]) == ["failed", "complete"]
