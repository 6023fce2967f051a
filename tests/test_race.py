"""Racing (F-Race): the round's test against hand computations, and a race on made-up results."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuning.run.config import StudyConfig
from tuning.run.grid import StudyState
from tuning.run.race import RACE_FILE, conover_drops, decide, describe, race

pytestmark = pytest.mark.one_keras_backend  # no Keras


def test_the_post_hoc_drops_what_conovers_critical_gap_separates_from_the_best():
    ranks = pd.DataFrame(
        [[1, 2, 3], [1, 3, 2], [2, 1, 3], [1, 2, 3], [1, 2, 3]],
        columns=["a", "b", "c"],
        dtype=float,
    )
    statistic, p, critical, dropped = conover_drops(ranks, 0.05)
    # rank sums 6, 10, 14; chi2 = 12 / (n k (k+1)) sum R^2 - 3 n (k+1) = 0.2 * 332 - 60 = 6.4
    assert statistic == pytest.approx(6.4) and p == pytest.approx(math.exp(-3.2))
    # A = 70, sum R^2 = 332: t(0.975, 8) * sqrt(2 (5 * 70 - 332) / 8)
    assert critical == pytest.approx(stats.t.ppf(0.975, 8) * math.sqrt(4.5))
    assert dropped == ["c"]  # 14 - 6 = 8 > 4.89; b's 4 is not


def test_no_backend_is_dropped_when_friedman_does_not_reject():
    ranks = pd.DataFrame([[1, 2, 3], [3, 2, 1], [2, 1, 3]], columns=list("abc"), dtype=float)
    _, p, critical, dropped = conover_drops(ranks, 0.05)
    assert p > 0.05 and math.isnan(critical) and dropped == []


def test_two_backends_left_are_decided_by_wilcoxon_and_no_model_counts_as_worst():
    losses = pd.DataFrame({"a": [1.0] * 8, "b": [2.0] * 7 + [np.inf]})
    test, _, p, _, dropped = decide(losses, 0.05)
    assert test == "wilcoxon" and p == pytest.approx(2 / 2**8) and dropped == ["b"]


TASKS = ("iris", "wine")
LOSS = {"x": 1.0, "y": 1.05, "z": 1.3}


class FakeGrid:
    """`run` for the race without training: each study's test loss from `LOSS`, with noise by
    seed that lets y beat x now and then."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def __call__(self, configs):
        states = []
        for c in configs:
            noise = 0.08 * math.sin(3.7 * c.seed + len(c.dataset))
            self.ran.append(c.study)
            summary = {"test_loss": LOSS[c.backend] + noise, "epochs": 10}
            states.append(StudyState(c, state="done", summary=summary))
        return states


def _tasks(tmp_path):
    return [StudyConfig(backend="x", dataset=t, budget_epochs=10, out=str(tmp_path)) for t in TASKS]


def test_a_race_drops_the_worst_early_and_spends_fewer_seeds(tmp_path):
    grid = FakeGrid()
    result = race(_tasks(tmp_path), ["x", "y", "z"], list(range(10)), grid, first=3)
    first = result.rounds[0]
    assert first.seeds == [0, 1, 2] and first.blocks == 6 and first.test == "friedman"
    assert "z" in first.dropped
    assert result.survivors[0] == "x" and "z" not in result.survivors
    assert result.full_studies == 2 * 3 * 10 and result.studies_run < result.full_studies
    assert result.full_epochs == 10 * 2 * 3 * 10
    assert result.epochs_spent == 10 * result.studies_run
    recorded = json.loads((tmp_path / RACE_FILE).read_text())
    assert recorded["survivors"] == result.survivors
    assert [r["dropped"] for r in recorded["rounds"]] == [r.dropped for r in result.rounds]
    assert "survivors: x" in describe(result)[-1]


def test_a_race_run_again_makes_the_same_decisions(tmp_path):
    once = race(_tasks(tmp_path), ["x", "y", "z"], list(range(10)), FakeGrid(), first=3)
    again = race(_tasks(tmp_path), ["x", "y", "z"], list(range(10)), FakeGrid(), first=3)
    assert [r.dropped for r in once.rounds] == [r.dropped for r in again.rounds]
    assert once.survivors == again.survivors


def test_the_first_round_needs_two_seeds(tmp_path):
    with pytest.raises(ValueError, match="--race-first must be between 2"):
        race(_tasks(tmp_path), ["x", "y"], [0, 1], FakeGrid(), first=1)
