"""The suite statistics against hand computations and Demšar's (2006) published figure."""

import math

import pandas as pd
import pytest

from tuning.suite_stats import (
    block_matrix,
    block_ranks,
    critical_difference,
    friedman,
    normalized_scores,
    suite_statistics,
    verdict,
)

pytestmark = pytest.mark.one_keras_backend  # no Keras at all

# Test losses of three backends on three tasks, one seed.
TABLE = {
    ("A", "random"): 1.0,
    ("A", "x"): 0.5,
    ("A", "y"): 0.8,
    ("B", "random"): 2.0,
    ("B", "x"): 3.0,
    ("B", "y"): 1.0,
    ("C", "random"): 0.4,
    ("C", "x"): 0.2,
    ("C", "y"): 0.3,
}


def _studies(table=TABLE, seeds=(0,)):
    return pd.DataFrame(
        [
            {
                "study": f"{task}_{backend}_s{seed}",
                "dataset": task,
                "backend": backend,
                "seed": seed,
                "test_loss": loss + 0.01 * seed,
            }
            for (task, backend), loss in table.items()
            for seed in seeds
        ]
    )


def test_normalized_scores_by_hand():
    scores = normalized_scores(_studies()).set_index(["dataset", "backend"])["score"]
    # A: best 0.5, random 1.0 -> (L - 0.5) / 0.5;  B: best 1, random 2;  C: best 0.2, random 0.4
    expected = {
        ("A", "random"): 1.0,
        ("A", "x"): 0.0,
        ("A", "y"): 0.6,
        ("B", "random"): 1.0,
        ("B", "x"): 2.0,
        ("B", "y"): 0.0,
        ("C", "random"): 1.0,
        ("C", "x"): 0.0,
        ("C", "y"): 0.5,
    }
    for key, value in expected.items():
        assert scores[key] == pytest.approx(value)


def test_a_study_without_a_model_scores_as_the_tasks_worst():
    table = dict(TABLE)
    table["A", "y"] = math.nan
    scores = normalized_scores(_studies(table)).set_index(["dataset", "backend"])["score"]
    assert scores["A", "y"] == pytest.approx(scores["A", "random"]) == pytest.approx(1.0)


def test_ranks_and_friedman_statistic_by_hand():
    ranks = block_ranks(block_matrix(_studies(), "test_loss"))
    assert ranks.loc[("A", 0)].to_dict() == {"random": 3.0, "x": 1.0, "y": 2.0}
    assert ranks.loc[("B", 0)].to_dict() == {"random": 2.0, "x": 3.0, "y": 1.0}
    means = ranks.mean()
    assert means.to_dict() == pytest.approx({"random": 8 / 3, "x": 5 / 3, "y": 5 / 3})
    # chi2_F = 12 N / (k (k+1)) * (sum R_j^2 - k (k+1)^2 / 4) = 3 * (114/9 - 12) = 2
    statistic, p_value = friedman(ranks)
    assert statistic == pytest.approx(2.0)
    assert p_value == pytest.approx(math.exp(-1))  # chi2 with 2 degrees of freedom: e^(-x/2)


def test_tied_losses_share_their_mean_rank():
    ranks = block_ranks(pd.DataFrame({"a": [1.0], "b": [1.0], "c": [0.5]}))
    assert ranks.iloc[0].to_dict() == {"a": 2.5, "b": 2.5, "c": 1.0}


def test_nemenyi_critical_difference_equals_demsar_2006():
    # Demšar (2006), section 3.2.2: four methods over 14 data sets, CD = 1.25 at alpha 0.05
    assert round(critical_difference(4, 14, 0.05), 2) == 1.25
    # and his q_0.05 table over sqrt(k (k+1) / 6N): k = 2 gives 1.960
    assert critical_difference(2, 1) == pytest.approx(1.960, abs=1e-3)  # sqrt(2*3/6) = 1


def test_suite_statistics_find_a_backend_that_always_wins():
    # x is best in every block, random worst, over 3 tasks x 5 seeds: the test separates them
    table = {
        (task, backend): base * factor
        for task, base in (("A", 1.0), ("B", 2.0), ("C", 0.5))
        for backend, factor in (("random", 1.3), ("x", 1.0), ("y", 1.1))
    }
    studies = _studies(table, seeds=range(5))
    trials = pd.DataFrame(
        [
            {
                "study": s.study,
                "dataset": s.dataset,
                "backend": s.backend,
                "seed": s.seed,
                "trial": t,
                "status": "complete",
                "val_loss": s.test_loss + (1 - t) * 0.1,
                "cum_epochs": 50 * (t + 1),
                "cum_seconds": 1.0 * (t + 1),
            }
            for s in studies.itertuples()
            for t in range(2)
        ]
    )
    budgets = {name: {"epochs": 100} for name in studies["study"]}
    result = suite_statistics(studies, trials, budgets, reps=500)
    board = result.board.set_index("backend")
    assert board["mean_rank"].to_dict() == {"x": 1.0, "y": 2.0, "random": 3.0}
    assert board.loc["x", "wins"] == 15
    assert result.friedman_p < 0.001
    assert result.critical_difference == pytest.approx(critical_difference(3, 15))
    assert ("x", "random") in result.distinguishable
    assert board.loc["x", "better_than"] == "y;random"
    # scores: x is the best everywhere (0); random is the reference (1, bar the seed offsets)
    assert board.loc["x", "score_iqm"] == pytest.approx(0.0, abs=0.1)
    low, high = board.loc["random", "score_iqm_ci_low"], board.loc["random", "score_iqm_ci_high"]
    assert low <= board.loc["random", "score_iqm"] <= high
    assert result.p_values.loc["x", "random"] < 0.05
    # ranks over the budget: at 50% each study had its first trial; at 100% its second
    over = result.over_budget.set_index(["fraction", "backend"])["mean_rank"]
    assert over[1.0, "x"] == 1.0 and over[0.5, "random"] == 3.0
    assert math.isnan(over.get((0.1, "x"), math.nan)) or over[0.1, "x"] == 2.0  # none yet: tie
    text = verdict(result)
    assert "**x** ranks better than **random**" in text


def test_no_difference_is_claimed_when_the_friedman_test_does_not_reject():
    studies = _studies()  # three blocks: far too few
    result = suite_statistics(studies, pd.DataFrame(), {}, reps=200)
    assert result.friedman_p > 0.05
    assert not result.distinguishable
    assert len(result.undecided) == 3
    assert "not distinguishable" in verdict(result)
    assert (result.board["better_than"] == "").all()


def test_bootstrap_interval_of_a_constant_score_is_that_score():
    table = {(t, b): 1.0 for t in "AB" for b in ("random", "x", "y")}
    result = suite_statistics(_studies(table, seeds=range(3)), pd.DataFrame(), {}, reps=200)
    row = result.board.set_index("backend").loc["x"]
    # a seed's score: (1 + 0.01 s - 1) / 0.01 = s, on both tasks
    assert row["score_mean"] == pytest.approx(1.0)  # seeds 0, 1, 2
    assert row["score_mean_ci_low"] < 1.0 < row["score_mean_ci_high"]
    assert (result.friedman_statistic, result.friedman_p) == (0.0, 1.0)  # every block a tie
