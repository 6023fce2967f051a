"""Racing (F-Race): the round's test against hand computations, and a race on made-up results."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuning.analysis.elimination import decide
from tuning.analysis.posthoc import conover_vs_best
from tuning.analysis.suite_stats import critical_difference
from tuning.core.config import StudyConfig
from tuning.run.grid import StudyState
from tuning.run.race import RACE_FILE, describe, race

pytestmark = pytest.mark.one_keras_backend  # no Keras


def test_the_post_hoc_drops_what_conovers_critical_gap_separates_from_the_best():
    ranks = pd.DataFrame(
        [[1, 2, 3], [1, 3, 2], [2, 1, 3], [1, 2, 3], [1, 2, 3]],
        columns=["a", "b", "c"],
        dtype=float,
    )
    result = conover_vs_best(ranks, 0.05, correction="none")
    statistic, p, critical, dropped = result.statistic, result.p, result.critical, result.dropped
    # rank sums 6, 10, 14; chi2 = 12 / (n k (k+1)) sum R^2 - 3 n (k+1) = 0.2 * 332 - 60 = 6.4
    assert statistic == pytest.approx(6.4) and p == pytest.approx(math.exp(-3.2))
    # A = 70, sum R^2 = 332: t(0.975, 8) * sqrt(2 (5 * 70 - 332) / 8)
    assert critical == pytest.approx(stats.t.ppf(0.975, 8) * math.sqrt(4.5))
    assert dropped == ["c"]  # 14 - 6 = 8 > 4.89; b's 4 is not
    # each gap's two-sided p: t = gap / sqrt(4.5) with 8 degrees of freedom
    raw = {b: 2 * stats.t.sf(gap / math.sqrt(4.5), 8) for b, gap in (("b", 4), ("c", 8))}
    assert result.p_vs_best == pytest.approx(raw)
    holm = conover_vs_best(ranks, 0.05)  # the default: Holm over the 2 comparisons
    assert holm.p_vs_best == pytest.approx({"c": 2 * raw["c"], "b": max(raw["b"], 2 * raw["c"])})
    assert holm.dropped == ["c"]


def test_holm_keeps_a_backend_that_irace_drops():
    # rank sums over 6 blocks: a 17, b 9 (the best), c 13, d 21
    rows = [[3, 1, 2, 4], [3, 1, 2, 4], [3, 2, 1, 4], [4, 1, 3, 2], [2, 3, 1, 4], [2, 1, 4, 3]]
    ranks = pd.DataFrame(rows, columns=list("abcd"), dtype=float)
    irace = conover_vs_best(ranks, 0.05, correction="none")
    holm = conover_vs_best(ranks, 0.05)
    assert irace.p < 0.05 and irace.dropped == ["a", "d"]
    # a's raw p 0.0447 is the second smallest of three: Holm doubles it past 0.05
    assert irace.p_vs_best["a"] == pytest.approx(0.0447, abs=1e-4)
    assert holm.p_vs_best["a"] == pytest.approx(2 * irace.p_vs_best["a"])
    assert holm.dropped == ["d"]


def test_no_backend_is_dropped_when_friedman_does_not_reject():
    ranks = pd.DataFrame([[1, 2, 3], [3, 2, 1], [2, 1, 3]], columns=list("abc"), dtype=float)
    result = conover_vs_best(ranks, 0.05)
    assert result.p > 0.05 and math.isnan(result.critical) and result.dropped == []


def test_two_backends_left_are_decided_by_wilcoxon_and_no_model_counts_as_worst():
    losses = pd.DataFrame({"a": [1.0] * 8, "b": [2.0] * 7 + [np.inf]})
    test, _, p, _, dropped = decide(losses, 0.05)
    assert test == "wilcoxon" and p == pytest.approx(2 / 2**8) and dropped == ["b"]


# The example: 16 blocks where a is better by a little, 14 where it is worse by a lot;
# a wins more blocks (the better mean rank), yet the signed-rank test finds it worse.
SMALL_BETTER_LARGE_WORSE = [-0.001 * i for i in range(1, 17)] + [1.0 + 0.1 * i for i in range(14)]


def test_the_last_two_are_decided_by_the_tests_direction_not_by_mean_ranks():
    b = np.full(30, 2.0)
    losses = pd.DataFrame({"a": b + SMALL_BETTER_LARGE_WORSE, "b": b})
    assert (losses["a"] < losses["b"]).sum() == 16  # a's mean rank is the better one
    test, _, p, _, dropped = decide(losses, 0.05)
    assert test == "wilcoxon" and p == pytest.approx(0.0473, abs=1e-4)
    assert dropped == ["a"]  # before the fix: ["b"], the better backend


def test_a_backend_failing_in_three_of_ten_blocks_is_not_kept_for_its_other_seven():
    base = np.linspace(1.0, 1.9, 10)
    a = base - 0.01
    a[[2, 5, 8]] = np.inf  # no model
    losses = pd.DataFrame({"a": a, "b": base})
    _, _, p, _, dropped = decide(losses, 0.05)
    assert p > 0.05 and dropped == []  # a's failures are its worst results, not left out


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


def test_nemenyis_gap_against_the_best_is_its_critical_difference_in_rank_sums():
    from tuning.analysis.suite_stats import critical_difference

    rows = [[1, 2, 3, 4]] * 6 + [[2, 1, 3, 4], [1, 2, 4, 3]]
    ranks = pd.DataFrame(rows, columns=list("abcd"), dtype=float)
    result = conover_vs_best(ranks, 0.05, correction="nemenyi")
    gap = critical_difference(4, 8) * 8  # 2.569 x sqrt(20 / 48) x 8 = 13.27 rank sums
    assert result.critical == pytest.approx(gap) == pytest.approx(13.27, abs=0.01)
    # rank sums: a 9, b 15, c 26, d 30: c and d lie beyond 9 + 13.27, b does not
    assert result.dropped == ["c", "d"]
    assert conover_vs_best(ranks, 0.05, correction="holm").dropped == ["b", "c", "d"]


def test_mutation_guards_for_the_post_hoc():
    with pytest.raises(ValueError, match="correction must be one of holm, nemenyi, none, got 'x'"):
        conover_vs_best(pd.DataFrame([[1.0, 2.0, 3.0]] * 3, columns=list("abc")), 0.05, "x")
    # every block ranks alike: no spread, and every gap is certain
    same = pd.DataFrame([[1.0, 2.0, 3.0]] * 6, columns=list("abc"))
    result = conover_vs_best(same, 0.05, correction="none")
    assert result.p_vs_best == {"b": 0.0, "c": 0.0} and result.dropped == ["b", "c"]
    assert result.statistic == pytest.approx(12.0)  # 12 / (6 x 12) x (36 + 144 + 324) - 72
    nemenyi = conover_vs_best(same, 0.1, correction="nemenyi")
    assert nemenyi.p_vs_best == {}
    assert nemenyi.critical == pytest.approx(critical_difference(3, 6, 0.1) * 6)
    quiet = pd.DataFrame([[1, 2, 3], [3, 2, 1], [2, 1, 3]], columns=list("abc"), dtype=float)
    assert conover_vs_best(quiet, 0.05).statistic == pytest.approx(0.6667, abs=1e-4)
