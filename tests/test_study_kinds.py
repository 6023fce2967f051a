"""A study sees only the evaluator contract: a third kind of objective runs through `run_study`
unchanged, its data, rows and final result where a Keras or tabular study has them."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tuning.core.budget import BudgetMeter
from tuning.core.config import StudyConfig
from tuning.core.errors import StudyError
from tuning.core.evaluator import DataDescription, Evaluator, Report, WarmStart
from tuning.core.ledger import ResumeLedger, TrialResult
from tuning.core.recorder import TrialRecorder
from tuning.core.results import read_trials, study_writer
from tuning.core.space import SearchSpace
from tuning.run.study import run_study

pytestmark = pytest.mark.one_keras_backend
SPACE = SearchSpace.from_dict({"x": {"type": "float", "low": -2.0, "high": 2.0}})


class Parabola(Evaluator):
    """Loss ``(x - 0.5)**2 + 1/epochs``, one epoch per "epoch" asked: no model, no data."""

    def __init__(self, config: StudyConfig, algorithm: str) -> None:
        self.space = SPACE
        self.ledger = ResumeLedger(backend=config.backend)
        self.meter = BudgetMeter(config.budget())
        writer = study_writer(config, "parabola", algorithm, SPACE.names)
        self.recorder = TrialRecorder(writer, self.ledger, self.meter)
        self.max_epochs = config.max_epochs

    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        epochs: int | None = None,
        warm_start: WarmStart | None = None,
        report: Report | None = None,
        number: int | None = None,
    ) -> TrialResult:
        epochs = epochs or self.max_epochs
        self.meter.add_epoch(epochs)
        loss = (params["x"] - 0.5) ** 2 + 1 / epochs
        return self.recorder.record(
            params, status="complete", val_loss=loss, epochs=epochs, fit_seconds=0.0, number=number
        )

    def final_result(self, params: Mapping[str, Any], folder: Path) -> dict[str, Any]:
        (folder / "parabola.txt").write_text(str(params["x"]))
        return {"test_loss": (params["x"] - 0.5) ** 2, "model_file": "parabola.txt"}

    def data(self) -> DataDescription:
        return DataDescription("parabola", "regression", (0, 0, 0))


def test_a_third_kind_of_objective_runs_through_run_study_unchanged(tmp_path, monkeypatch):
    built = []

    def parabola(config, *, algorithm, keeps_weights, dataset, stop):
        built.append((algorithm, keeps_weights))
        return Parabola(config, algorithm)

    monkeypatch.setattr("tuning.evaluation.objectives._builder", lambda kind: parabola)
    config = StudyConfig(backend="random", trials=5, max_epochs=4, out=str(tmp_path), seed=1)
    summary = run_study(config)

    assert built == [("random", False)]  # built once, named by the backend's algorithm
    rows = read_trials(config.study_dir)
    assert len(rows) == 5 and set(rows["dataset"]) == {"parabola"}
    best = rows.loc[rows["val_loss"].idxmin()]
    assert summary["best_trial"] == int(best["trial"])
    assert summary["dataset"] == "parabola" and summary["split_sizes"] == [0, 0, 0]
    assert summary["test_loss"] == pytest.approx(best["val_loss"] - 1 / 4)
    assert summary["epochs"] == 20 and summary["model_file"] == "parabola.txt"
    x = json.loads(best["params"])["x"]
    assert math.isclose(float((config.study_dir / "parabola.txt").read_text()), x)


def test_an_evaluator_without_workers_refuses_them_in_one_line_before_writing(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(
        "tuning.evaluation.objectives._builder",
        lambda kind: lambda config, **_: Parabola(config, "random"),
    )
    config = StudyConfig(backend="random", trials=2, workers=2, out=str(tmp_path))
    with pytest.raises(StudyError) as refused:
        run_study(config)
    assert (
        str(refused.value) == "--workers 2: Parabola evaluates one trial at a time; drop --workers"
    )
    assert not any(tmp_path.iterdir())  # nothing written
