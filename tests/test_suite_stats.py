"""The suite statistics against hand computations and Demšar's (2006) published figure."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuning.analysis.anytime import rank_over_budget
from tuning.analysis.bayes_pairs import DECISION, pair_posterior, pairs_in_words, pairs_table
from tuning.analysis.blocks import DuplicateStudies, block_matrix, block_ranks, check_unique
from tuning.analysis.intervals import interquartile_mean, interval_estimates
from tuning.analysis.suite_stats import (
    SCORE_CAP,
    beyond_critical_difference,
    block_wins,
    critical_difference,
    decide_pairs,
    friedman,
    nemenyi_p_values,
    normalized_scores,
    suite_statistics,
    task_scale,
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


def test_a_study_without_a_model_scores_the_cap_worse_than_any_study_with_one():
    table = dict(TABLE)
    table["A", "y"] = math.nan
    scores = normalized_scores(_studies(table)).set_index(["dataset", "backend"])["score"]
    assert scores["A", "y"] == SCORE_CAP == 5.0
    assert scores["A", "random"] == pytest.approx(1.0)  # best and reference from the others


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


# --- failed studies, degenerate scales, duplicates, empty cells, wins, rank over budget ---------


def test_a_backend_that_fails_ranks_last_in_those_blocks_instead_of_vanishing():
    # x is best whenever it runs, and has no model in seeds 2-4 of both tasks: 6 of 10 blocks.
    table = {
        (task, backend): base * factor
        for task, base in (("A", 1.0), ("B", 2.0))
        for backend, factor in (("x", 1.0), ("y", 1.1), ("z", 1.2), ("random", 1.3))
    }
    studies = _studies(table, seeds=range(5))
    no_model = (studies["backend"] == "x") & (studies["seed"] >= 2)
    studies.loc[no_model, "test_loss"] = math.nan
    result = suite_statistics(studies, pd.DataFrame(), {}, reps=200)
    board = result.board.set_index("backend")
    # x: rank 1 in 4 blocks, 4 (last) in 6 -> 2.8; y: 2 then 1 -> 1.4; z: 3 then 2 -> 2.4
    assert board["mean_rank"].to_dict() == pytest.approx(
        {"x": 2.8, "y": 1.4, "z": 2.4, "random": 3.4}
    )
    assert list(board.index) == ["y", "z", "x", "random"]
    assert board.loc["x", "wins"] == 4 and board.loc["y", "wins"] == 6
    assert board.loc["x", "no_model"] == 6 and board["blocks"].iloc[0] == 10
    assert result.failed == {"x": 6}
    assert "x 6" in verdict(result) and "ranked last" in verdict(result)
    # scores: x's failed studies score the cap; its seed 1 is 0.01 above the best, on scales of
    # random's mean minus the best: 0.32 on A (1.32 - 1), 0.62 on B (2.62 - 2)
    expected = (0.01 / 0.32 + 0.01 / 0.62 + 6 * SCORE_CAP) / 10
    assert board.loc["x", "score_mean"] == pytest.approx(expected)


def test_failures_tie_among_themselves_at_the_bottom():
    losses = pd.DataFrame({"a": [np.inf], "b": [0.5], "c": [np.inf], "d": [0.7]})
    assert block_ranks(losses).iloc[0].to_dict() == {"a": 3.5, "b": 1.0, "c": 3.5, "d": 2.0}


def test_a_block_with_no_study_of_some_backend_is_left_out_and_named():
    studies = _studies(seeds=range(3))
    studies = studies[~((studies["dataset"] == "B") & (studies["backend"] == "y"))]
    result = suite_statistics(studies, pd.DataFrame(), {}, reps=200)
    assert result.board["blocks"].iloc[0] == 6  # tasks A and C, 3 seeds each
    assert result.missing == {("B", 0): ["y"], ("B", 1): ["y"], ("B", 2): ["y"]}
    assert result.tasks == ["A", "C"] and result.seeds == [0, 1, 2]
    text = verdict(result)
    assert "B: seed 0 (no study of y), seed 1 (no study of y), seed 2 (no study of y)" in text
    assert "nan" not in text
    assert result.board["score_iqm"].notna().all()  # the other cells still give intervals


def test_with_no_complete_block_the_verdict_names_no_best():
    studies = _studies()
    studies = studies[~((studies["backend"] == "y") & (studies["dataset"] != "A"))]
    studies = studies[~((studies["backend"] == "x") & (studies["dataset"] == "A"))]
    result = suite_statistics(studies, pd.DataFrame(), {}, reps=200)
    text = verdict(result)
    assert result.board.empty
    assert "nothing to rank" in text and "Best" not in text and "nan" not in text


def test_a_tie_for_first_is_a_win_for_each_and_a_block_of_failures_has_no_winner():
    losses = pd.DataFrame(
        {"a": [1.0, 2.0, np.inf], "b": [1.0, 1.0, np.inf], "c": [3.0, 3.0, np.inf]}
    )
    assert block_wins(losses).to_dict() == {"a": 1, "b": 2, "c": 0}


def test_two_studies_of_one_cell_are_refused_naming_both():
    studies = _studies()
    twice = pd.concat([studies, studies.iloc[[1]].assign(study="again")], ignore_index=True)
    with pytest.raises(DuplicateStudies, match=r"2 studies of x on A with seed 0: A_x_s0, again"):
        suite_statistics(twice, pd.DataFrame(), {}, reps=200)


def _one_task(losses: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"study": f"{b}{i}", "dataset": "T", "backend": b, "seed": i, "test_loss": loss}
            for b, values in losses.items()
            for i, loss in enumerate(values)
        ]
    )


def test_the_reference_is_random_searchs_mean_not_its_median():
    # random: 1, 1, 4 -> mean 2 (median 1); best 0 -> a loss of 1 scores 0.5
    scores = normalized_scores(_one_task({"random": [1.0, 1.0, 4.0], "x": [0.0, 1.0, 1.0]}))
    assert scores["reference"].iloc[0] == 2.0
    assert scores.set_index(["backend", "seed"]).loc[("x", 1), "score"] == 0.5


def test_when_random_search_is_as_good_as_the_best_the_tasks_range_is_the_scale():
    # random's mean is the best (1.0): scores on (reference - best) would all be 0 or 1
    scores = normalized_scores(_one_task({"random": [1.0], "x": [3.0], "y": [2.0]}))
    by = scores.set_index("backend")["score"]
    assert by.to_dict() == {"random": 0.0, "x": 1.0, "y": 0.5}  # range 2: (L - 1) / 2
    # a spread of rounding noise (5e-10) is no scale either: no score near 1e9
    noise = normalized_scores(_one_task({"random": [1.0 + 5e-10], "x": [1.0], "y": [2.0]}))
    assert noise.set_index("backend")["score"].to_dict() == pytest.approx(
        {"random": 5e-10, "x": 0.0, "y": 1.0}
    )


def test_a_task_on_which_every_study_tied_scores_zero():
    scores = normalized_scores(_one_task({"random": [0.7, 0.7], "x": [0.7, 0.7]}))
    assert (scores["score"] == 0.0).all()
    assert math.isnan(task_scale(0.7, 0.7, 0.7))


def test_scores_are_clipped_so_one_diverged_loss_cannot_decide_a_mean():
    scores = normalized_scores(_one_task({"random": [1.0, 2.0], "x": [0.5, 1e6]}))
    by = scores.set_index(["backend", "seed"])["score"]
    assert by["x", 1] == SCORE_CAP
    assert by["random", 1] == pytest.approx(1.5 / 1.0)  # reference 1.5, best 0.5: (2 - .5) / 1


def test_interquartile_mean_is_neither_the_mean_nor_the_median():
    scores = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 10.0, 100.0])
    assert interquartile_mean(scores) == pytest.approx(0.75)  # mean of 0, 0, 1, 2


def test_the_bootstrap_is_stratified_by_task():
    # every seed scores 0 on task A and 1 on task B: resampling seeds within each task never
    # changes the mean; pooling the tasks would
    samples = {"x": [np.zeros(6), np.ones(6)]}
    estimate = interval_estimates(samples, reps=500)["x"]
    assert estimate["mean"] == (0.5, 0.5, 0.5)
    assert estimate["iqm"] == (0.5, 0.5, 0.5)


def test_the_bootstrap_interval_is_a_percentile_interval():
    scores = np.random.default_rng(1).exponential(size=12) ** 2
    low, high = interval_estimates({"x": [scores]}, reps=5000)["x"]["mean"][1:]
    rng = np.random.default_rng(7)  # an independent percentile bootstrap
    means = scores[rng.integers(0, len(scores), size=(40_000, len(scores)))].mean(axis=1)
    expected = np.percentile(means, [2.5, 97.5])
    assert (low, high) == pytest.approx(tuple(expected), rel=0.08)  # BCa: (0.46, 12.4)


def test_one_seed_a_task_gives_no_interval_and_says_so():
    result = suite_statistics(_studies(), pd.DataFrame(), {}, reps=200)
    assert result.board["score_iqm_ci_low"].isna().all()
    assert "(no interval: one seed a task)" in verdict(result)


def test_nemenyi_p_values_match_the_studentized_range_formula_for_each_pair():
    # three backends over 6 blocks: a always best, b and c alternate
    losses = pd.DataFrame(
        {"a": [0.1] * 6, "b": [0.5, 0.9] * 3, "c": [0.9, 0.5] * 3},
        index=pd.MultiIndex.from_product([["T"], range(6)], names=["dataset", "seed"]),
    )
    p = nemenyi_p_values(losses)
    ranks = block_ranks(losses).mean()  # a 1, b 2.5, c 2.5
    k, n = 3, 6
    for one, other in (("a", "b"), ("a", "c"), ("b", "c")):
        q = abs(ranks[one] - ranks[other]) / math.sqrt(k * (k + 1) / (6 * n)) * math.sqrt(2)
        assert p.loc[one, other] == pytest.approx(stats.studentized_range.sf(q, k, np.inf))
    assert p.loc["b", "c"] == pytest.approx(1.0) and p.loc["a", "b"] < 0.05


def test_no_pair_is_called_different_without_a_friedman_test():
    # two backends (Friedman needs three), x always better: the mean ranks differ by 1 > CD 0.88
    studies = _one_task({"random": [2.0] * 5, "x": [1.0] * 5})
    result = suite_statistics(studies, pd.DataFrame(), {}, reps=200)
    assert result.critical_difference < 1.0
    assert math.isnan(result.friedman_p)
    assert result.distinguishable == [] and result.undecided == [("x", "random")]


def test_a_difference_equal_to_the_critical_difference_is_not_enough():
    assert not beyond_critical_difference(1.0, 2.0, 1.0)
    assert beyond_critical_difference(1.0, 2.0, 0.999)


def test_rank_over_budget_ignores_pruned_and_failed_trials_and_keeps_the_incumbent():
    # a: 1.0 complete, then a pruned 0.5 and a failed trial; b: 0.8; c: 1.2
    rows = [
        ("a", 0, "complete", 1.0, 50),
        ("a", 1, "pruned", 0.5, 80),
        ("a", 2, "failed", math.nan, 100),
        ("b", 0, "complete", 0.8, 100),
        ("c", 0, "complete", 1.2, 100),
    ]
    trials = pd.DataFrame(
        [
            {"study": s, "trial": t, "status": st, "val_loss": v, "cum_epochs": e}
            for s, t, st, v, e in rows
        ]
    )
    studies = pd.DataFrame([{"study": b, "dataset": "T", "backend": b, "seed": 0} for b in "abc"])
    budgets = {b: {"epochs": 100} for b in "abc"}
    over = rank_over_budget(studies, trials, budgets, fractions=(0.5, 1.0))
    at = over.set_index(["fraction", "backend"])["mean_rank"]
    assert at[1.0, "b"] == 1.0 and at[1.0, "a"] == 2.0 and at[1.0, "c"] == 3.0
    assert at[0.5, "a"] == 1.0 and at[0.5, "b"] == at[0.5, "c"] == 2.5  # none yet: tied last


def test_rank_over_budget_ranks_a_study_without_trials_last_and_keeps_the_suites_blocks():
    trials = pd.DataFrame(
        [{"study": "a", "trial": 0, "status": "complete", "val_loss": 1.0, "cum_epochs": 10}]
    )
    studies = pd.DataFrame(
        [
            {"study": "a", "dataset": "T", "backend": "a", "seed": 0},
            {"study": "b", "dataset": "T", "backend": "b", "seed": 0},
            {"study": "a1", "dataset": "T", "backend": "a", "seed": 1},  # no b in seed 1
        ]
    )
    over = rank_over_budget(studies, trials, {}, fractions=(1.0,))
    assert over.set_index("backend")["mean_rank"].to_dict() == {"a": 1.0, "b": 2.0}


# --- practical equivalence -------------------------------------------------------------------


def test_one_block_outside_the_rope_gives_the_dirichlet_process_probability_by_hand():
    # one difference d > 2 ROPE: the weights (w0 of the prior's pseudo-observation at 0, strength
    # 0.5; w1 of d) make "b worse" win when 2 w0 w1 + w1^2 > w0^2, i.e. w0 < 1/sqrt(2), and
    # w0 ~ Beta(0.5, 1): P = (1/sqrt(2))^0.5 = 2^(-1/4); the rest is the ROPE (only 0 + 0 there)
    pair = pair_posterior("a", "b", np.array([0.0]), np.array([1.0]), rope=0.1, samples=50_000)
    assert pair.p_a_better == pytest.approx(2**-0.25, abs=0.01)
    assert pair.p_equivalent == pytest.approx(1 - 2**-0.25, abs=0.01)
    assert pair.p_b_better == 0.0
    assert pair.verdict == "undecided"  # one block is not enough for 0.95


def test_many_blocks_decide_better_equivalent_or_undecided():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, 40)
    assert pair_posterior("a", "b", a, a + 0.5).verdict == "a ahead"
    assert pair_posterior("a", "b", a + 0.5, a).verdict == "b ahead"
    assert (
        pair_posterior("a", "b", a, a + rng.uniform(-0.01, 0.01, 40)).verdict == "within the ROPE"
    )
    mixed = pair_posterior("a", "b", np.zeros(6), np.array([0.6, -0.4, 0.5, -0.3, 0.05, 0.4]))
    assert mixed.verdict == "undecided" and 0.5 < mixed.p_a_better < DECISION


def test_the_suite_gives_every_pair_a_posterior_in_mean_rank_order_and_words():
    table = {
        (task, backend): base * factor
        for task, base in (("A", 1.0), ("B", 2.0), ("C", 0.5))
        for backend, factor in (("random", 1.3), ("x", 1.0), ("y", 1.0))
    }
    result = suite_statistics(_studies(table, seeds=range(8)), pd.DataFrame(), {}, reps=200)
    pairs = {(p.a, p.b): p for p in result.pairs}
    assert set(pairs) == {("x", "y"), ("x", "random"), ("y", "random")}
    assert (
        pairs["x", "random"].verdict == "x ahead" and pairs["x", "y"].verdict == "within the ROPE"
    )
    text = "\n".join(pairs_in_words(result.pairs))
    assert "**x** ahead of **random**" in text and "x / y (P = 1.000)" in text


@pytest.mark.parametrize("n", [1, 5, 30])
def test_the_pair_posterior_is_baycomps_signed_rank_test(n):
    baycomp = pytest.importorskip("baycomp")
    rng = np.random.default_rng(n)
    a, b = rng.uniform(0, 1, n), rng.uniform(0, 1, n) + 0.1
    ours = pair_posterior("a", "b", a, b, rope=0.1, samples=20_000, seed=3)
    left, rope, right = baycomp.SignedRankTest.probs(
        a, b, rope=0.1, nsamples=20_000, random_state=3
    )
    # same draws; sums in another order can move a sample on a tie by rounding
    assert (ours.p_b_better, ours.p_equivalent, ours.p_a_better) == pytest.approx(
        (left, rope, right), abs=2e-4
    )


# --- the verdict's words, pinned ---------------------------------------------------------------


def _verdict_example():
    """x best everywhere, y second, random third over 3 tasks x 5 seeds; y has no model in
    (A, seed 4) and random no study in (C, seed 3)."""
    table = {
        (task, backend): base * factor
        for task, base in (("A", 1.0), ("B", 2.0), ("C", 0.5))
        for backend, factor in (("random", 1.3), ("x", 1.0), ("y", 1.1))
    }
    studies = _studies(table, seeds=range(5))
    failed = (studies["backend"] == "y") & (studies["seed"] == 4) & (studies["dataset"] == "A")
    studies.loc[failed, "test_loss"] = math.nan
    absent = (studies["backend"] == "random") & (studies["seed"] == 3) & (studies["dataset"] == "C")
    return suite_statistics(studies[~absent], pd.DataFrame(), {}, reps=300)


def test_the_verdict_in_words_with_every_figure_checked_by_hand():
    # 14 blocks (15 less C/3); y: rank 2 in 13 blocks, 3 in (A, 4) -> 29/14 = 2.07; random:
    # 41/14 = 2.93; chi2 = 12 N / (k (k+1)) (sum of squared mean ranks - k (k+1)^2 / 4)
    # = 14 (1 + 2.0714^2 + 2.9286^2 - 12) = 26.14; CD = 2.343 sqrt(12 / 84) = 0.89
    assert verdict(_verdict_example()) == (
        "- 3 backends over 3 tasks and 14 (task, seed) blocks. Best mean rank: **x** (1.00; "
        "1 = best in a block, 3 = worst); best IQM normalized score: **x**.\n"
        "- Left out of every figure: 1 (task, seed) blocks that not every backend ran: C: seed 3 "
        "(no study of random).\n"
        "- Studies that produced no model (every trial failed, or none finished), ranked last in "
        "their blocks and scored 5: y 1.\n"
        "- Friedman test: chi2 = 26.14, p = 2.1e-06 < 0.05: the backends do not all rank alike. "
        "Nemenyi critical difference of mean ranks at 0.05: 0.89.\n"
        "- Distinguishable (mean ranks differ by more than the critical difference): **x** ranks "
        "better than **y** (1.00 vs 2.07); **x** ranks better than **random** (1.00 vs 2.93).\n"
        "- Not resolved by the test (1 pairs): y / random. More seeds or tasks narrow the "
        "critical difference (it shrinks as 1/sqrt(blocks)).\n"
        "- Normalized scores (0 = the best model any study found on the task, 1 = random "
        "search's mean; lower is better), IQM with 95% stratified-bootstrap intervals: x 0.051 "
        "[0.024, 0.082]; y 0.367 [0.341, 0.414]; random 0.998 [0.972, 1.024].\n"
    )


PAIRS_COLUMNS = [
    "a",
    "b",
    "p_a_better",
    "p_equivalent",
    "p_b_better",
    "verdict",
    "rope",
    "blocks",
    "difference_sd",
]


def test_the_bayesian_pairs_in_words_and_in_their_table():
    result = _verdict_example()
    text = "\n".join(pairs_in_words(result.pairs))
    noisy = [p.difference_sd for p in result.pairs if p.difference_sd > 0.1]
    caveat = (
        f"  - Caveat: in {len(noisy)} of 3 pairs the blocks' differences vary by more than the "
        f"ROPE (SD up to {max(noisy):.2f} against 0.1). There, identical backends are called "
        '"ahead" in most simulated suites and never "within the ROPE" '
        '(benchmarks/calibration.py): read "ahead" as "more blocks lean this way", and the '
        'absence of "within the ROPE" as no evidence of a difference.\n'
        if noisy
        else ""
    )
    assert text == (
        "- Bayesian signed-rank test of each pair on the normalized scores of 14 blocks, ROPE "
        "0.1, at P >= 0.95. It says which of three regions (one ahead by more than the ROPE, "
        "within it, the other ahead) holds the most of the Walsh averages of the blocks' score "
        "differences: a description of the typical block, not a test of which backend is "
        "better, and not controlled for errors (claims of better or worse rest on the tests "
        "above).\n"
        + caveat
        + "  - One side holds the most mass: **x** ahead of **y** (P = 1.000); **x** ahead of "
        "**random** (P = 1.000); **y** ahead of **random** (P = 0.991).\n"
        "  - Within the ROPE: no pair.\n"
        "  - The evidence cannot settle: no pair."
    )
    table = pairs_table(result.pairs)
    assert list(table.columns) == PAIRS_COLUMNS
    row = table.iloc[2]
    assert (row["a"], row["b"], row["verdict"], row["rope"], row["blocks"]) == (
        "y",
        "random",
        "y ahead",
        0.1,
        14,
    )
    assert row["p_a_better"] + row["p_b_better"] + row["p_equivalent"] == pytest.approx(1.0)
    assert pairs_in_words([]) == []


def test_pairs_in_words_names_equivalent_and_unsettled_pairs():
    from tuning.analysis.bayes_pairs import PairPosterior

    pairs = [
        PairPosterior("a", "b", 0.01, 0.97, 0.02, 20, 0.1),
        PairPosterior("a", "c", 0.50, 0.20, 0.30, 20, 0.1),
        PairPosterior("b", "c", 0.00, 0.01, 0.99, 20, 0.1),
    ]
    assert [p.verdict for p in pairs] == ["within the ROPE", "undecided", "c ahead"]
    text = "\n".join(pairs_in_words(pairs))
    assert "  - One side holds the most mass: **c** ahead of **b** (P = 0.990)." in text
    assert "  - Within the ROPE: a / b (P = 0.970)." in text
    assert (
        "  - The evidence cannot settle: a / c (P a ahead 0.50, within 0.20, c ahead 0.30)." in text
    )
    assert "Caveat" not in text  # no pair says how its blocks vary


def test_the_caveat_names_the_pairs_whose_blocks_vary_more_than_the_rope():
    from tuning.analysis.bayes_pairs import PairPosterior, pair_posterior

    rng = np.random.default_rng(3)
    a, noise = rng.normal(0.0, 1.0, 60), rng.normal(0.0, 0.6, 60)
    pair = pair_posterior("a", "b", a, a + noise)
    assert pair.difference_sd == pytest.approx(np.std(noise, ddof=1))
    quiet = PairPosterior("a", "c", 0.0, 0.97, 0.03, 60, 0.1, difference_sd=0.05)
    text = "\n".join(pairs_in_words([pair, quiet]))
    assert (
        "in 1 of 2 pairs the blocks' differences vary by more than the ROPE "
        f"(SD up to {pair.difference_sd:.2f} against 0.1)" in text
    )


@pytest.mark.parametrize(
    ("budget", "expected_ranks"),
    [
        # trials: after 1 of 2 trials (50%) a has 1.0 and b 2.0; at 100% b has 0.5
        ({"trials": 2}, {(0.5, "a"): 1.0, (0.5, "b"): 2.0, (1.0, "a"): 2.0, (1.0, "b"): 1.0}),
        # seconds: a's second trial ends at 30 s of 40, b's at 40: at 50% (20 s) both have one
        ({"seconds": 40}, {(0.5, "a"): 1.0, (0.5, "b"): 2.0, (1.0, "a"): 2.0, (1.0, "b"): 1.0}),
        # epochs: each trial 50 of 100; no budget at all: the study's own last cum_epochs
        ({"epochs": 100}, {(0.5, "a"): 1.0, (0.5, "b"): 2.0, (1.0, "a"): 2.0, (1.0, "b"): 1.0}),
        ({}, {(0.5, "a"): 1.0, (0.5, "b"): 2.0, (1.0, "a"): 2.0, (1.0, "b"): 1.0}),
    ],
)
def test_rank_over_budget_reads_the_budgets_own_unit(budget, expected_ranks):
    rows = [
        ("a", 0, 1.0, 50, 10.0),
        ("a", 1, 0.9, 100, 30.0),
        ("b", 0, 2.0, 50, 20.0),
        ("b", 1, 0.5, 100, 40.0),
    ]
    trials = pd.DataFrame(
        [
            {
                "study": s,
                "trial": t,
                "status": "complete",
                "val_loss": v,
                "cum_epochs": e,
                "cum_seconds": c,
            }
            for s, t, v, e, c in rows
        ]
    )
    studies = pd.DataFrame([{"study": b, "dataset": "T", "backend": b, "seed": 0} for b in "ab"])
    over = rank_over_budget(studies, trials, {"a": budget, "b": budget}, fractions=(0.5, 1.0))
    assert over.set_index(["fraction", "backend"])["mean_rank"].to_dict() == expected_ranks


def test_rank_over_budget_by_seconds_uses_the_seconds_not_the_epochs():
    # a spends its 100 epochs in 10 s, b in 40 s: at 25% of 40 s only a has a result
    trials = pd.DataFrame(
        [
            {
                "study": "a",
                "trial": 0,
                "status": "complete",
                "val_loss": 2.0,
                "cum_epochs": 100,
                "cum_seconds": 10.0,
            },
            {
                "study": "b",
                "trial": 0,
                "status": "complete",
                "val_loss": 1.0,
                "cum_epochs": 10,
                "cum_seconds": 40.0,
            },
        ]
    )
    studies = pd.DataFrame([{"study": b, "dataset": "T", "backend": b, "seed": 0} for b in "ab"])
    budgets = {"a": {"seconds": 40}, "b": {"seconds": 40}}
    over = rank_over_budget(studies, trials, budgets, fractions=(0.25, 1.0))
    at = over.set_index(["fraction", "backend"])["mean_rank"]
    assert at[0.25, "a"] == 1.0 and at[0.25, "b"] == 2.0 and at[1.0, "b"] == 1.0
    by_trials = rank_over_budget(
        studies, trials, {"a": {"trials": 4}, "b": {"trials": 4}}, fractions=(0.25,)
    )
    # in trials, 25% of 4 is each study's first trial: b's 1.0 beats a's 2.0
    assert by_trials.set_index("backend")["mean_rank"].to_dict() == {"a": 2.0, "b": 1.0}


def test_the_left_out_blocks_are_named_task_by_task():
    studies = _studies(seeds=range(2))
    absent = (
        (studies["dataset"] == "A") & (studies["seed"] == 0) & (studies["backend"] != "random")
    ) | ((studies["dataset"] == "B") & (studies["seed"] == 1) & (studies["backend"] == "x"))
    text = verdict(suite_statistics(studies[~absent], pd.DataFrame(), {}, reps=100))
    assert "A: seed 0 (no study of x, y); B: seed 1 (no study of x)." in text
    assert list(pairs_table([]).columns) == PAIRS_COLUMNS


def test_a_task_with_one_complete_seed_joins_every_resample_as_it_is():
    # task B has one seed: it cannot be resampled, and it must not stop the interval
    samples = {"x": [np.array([0.0, 0.0, 1.0, 1.0]), np.array([5.0])]}
    mean, low, high = interval_estimates(samples, reps=2000)["x"]["mean"]
    assert mean == pytest.approx(7 / 5)
    # each resample's mean is (k + 5) / 5, k the ones drawn from A's four seeds (0 to 4)
    assert {round(low, 6), round(high, 6)} <= {1.0, 1.2, 1.4, 1.6, 1.8}
    assert low < mean < high


def test_pairs_in_words_with_no_difference_and_several_pairs_of_each_kind():
    from tuning.analysis.bayes_pairs import PairPosterior

    pairs = [
        PairPosterior("a", "b", 0.02, 0.96, 0.02, 9, 0.05),
        PairPosterior("a", "c", 0.01, 0.98, 0.01, 9, 0.05),
        PairPosterior("b", "c", 0.40, 0.30, 0.30, 9, 0.05),
        PairPosterior("b", "d", 0.30, 0.30, 0.40, 9, 0.05),
    ]
    assert pairs_in_words(pairs)[1:] == [
        "  - One side holds the most mass: no pair.",
        "  - Within the ROPE: a / b (P = 0.960); a / c (P = 0.980).",
        "  - The evidence cannot settle: b / c (P b ahead 0.40, within 0.30, c ahead 0.30); "
        "b / d (P b ahead 0.30, within 0.30, d ahead 0.40).",
    ]
    at_threshold = PairPosterior("a", "b", 0.95, 0.05, 0.0, 9, 0.05)
    assert at_threshold.verdict == "a ahead"
    assert "**a** ahead of **b** (P = 0.950)" in pairs_in_words([at_threshold])[1]


def test_pairs_are_called_different_only_when_friedman_rejects():
    ranks = pd.Series({"a": 1.0, "b": 2.0, "c": 3.0})
    assert decide_pairs(ranks, 1.5, 0.01) == ([("a", "c")], [("a", "b"), ("b", "c")])
    assert decide_pairs(ranks, 1.5, 0.20) == ([], [("a", "b"), ("a", "c"), ("b", "c")])
    assert decide_pairs(ranks, 1.5, math.nan)[0] == []
    assert decide_pairs(ranks, 1.5, 0.05)[0] == []  # p must be below alpha


def test_a_diverged_infinite_loss_is_no_model_and_not_the_tasks_range():
    # random's mean is the best (1.0): the scale is the range among studies with a model (1.0)
    scores = normalized_scores(_one_task({"random": [1.0], "x": [math.inf], "y": [2.0]}))
    assert scores.set_index("backend")["score"].to_dict() == {"random": 0.0, "x": 5.0, "y": 1.0}


def test_without_random_search_the_reference_is_every_studys_mean():
    scores = normalized_scores(_one_task({"x": [1.0], "y": [3.0]}))
    assert scores["reference"].iloc[0] == 2.0
    assert scores.set_index("backend")["score"].to_dict() == {"x": 0.0, "y": 2.0}


def test_the_noise_tolerance_is_relative_to_the_losses_size():
    # losses near 3000 (diabetes' MSE): a scale of 0.001 is rounding noise there
    scores = normalized_scores(_one_task({"random": [3000.001], "x": [3000.0], "y": [3100.0]}))
    by = scores.set_index("backend")["score"]
    assert by["y"] == pytest.approx(1.0) and by["random"] == pytest.approx(1e-5)


def test_the_suite_board_row_by_row():
    board = _verdict_example().board.set_index("backend")
    assert list(board.columns) == [
        "tasks",
        "studies",
        "mean_rank",
        "wins",
        "no_model",
        "score_mean",
        "score_mean_ci_low",
        "score_mean_ci_high",
        "score_iqm",
        "score_iqm_ci_low",
        "score_iqm_ci_high",
        "blocks",
        "friedman_chi2",
        "friedman_p",
        "critical_difference",
        "better_than",
        "not_distinguishable_from",
    ]
    assert board["tasks"].to_dict() == {"x": 3, "y": 3, "random": 3}
    assert board["studies"].to_dict() == {"x": 15, "y": 15, "random": 14}
    assert board["wins"].to_dict() == {"x": 14, "y": 0, "random": 0}
    assert board["no_model"].to_dict() == {"x": 0, "y": 1, "random": 0}
    assert board["better_than"].to_dict() == {"x": "y;random", "y": "", "random": ""}
    assert board["not_distinguishable_from"].to_dict() == {"x": "", "y": "random", "random": "y"}
    assert set(board["friedman_chi2"].round(2)) == {26.14} and set(board["blocks"]) == {14}
    assert set(board["critical_difference"].round(3)) == {round(critical_difference(3, 14), 3)}


def test_the_verdict_without_blocks_and_without_a_friedman_test():
    studies = _studies()
    studies = studies[~((studies["backend"] == "y") & (studies["dataset"] != "A"))]
    studies = studies[~((studies["backend"] == "x") & (studies["dataset"] == "A"))]
    text = verdict(suite_statistics(studies, pd.DataFrame(), {}, reps=100))
    assert text.endswith(
        "- No (task, seed) block holds a study of every backend: nothing to rank.\n"
    )
    two = _one_task({"random": [2.0, 1.0], "x": [1.0, 1.5]})
    two.loc[two["backend"] == "x", "test_loss"] = [math.nan, 1.5]
    text = verdict(suite_statistics(two, pd.DataFrame(), {}, reps=100))
    assert (
        "- The Friedman test needs at least 3 backends and 2 blocks: no test of differences.\n"
        in text
    )
    assert (
        "no model (every trial failed, or none finished), ranked last in their blocks and scored 5: x 1."
        in text.replace("produced no model", "no model")
    )


# --- what the mutation run found untested ----------------------------------------------------


def test_scores_carry_each_tasks_best_reference_and_scale_in_task_order():
    studies = _studies().iloc[::-1].reset_index(drop=True)  # tasks C, B, A as given
    scores = normalized_scores(studies)
    assert list(scores["dataset"].unique()) == ["A", "B", "C"]  # sorted, not as given
    assert list(scores.index) == list(range(len(studies)))  # a fresh index
    by_task = scores.groupby("dataset")[["best", "reference", "scale"]].first()
    assert by_task.loc["A"].tolist() == pytest.approx([0.5, 1.0, 0.5])
    assert by_task.loc["B"].tolist() == pytest.approx([1.0, 2.0, 1.0])
    assert by_task.loc["C"].tolist() == pytest.approx([0.2, 0.4, 0.2])


def test_no_studies_give_an_empty_frame_with_the_score_columns():
    empty = normalized_scores(_studies().iloc[:0])
    assert empty.empty and {"score", "best", "reference", "scale"} <= set(empty.columns)


def test_duplicates_are_named_by_folder_when_the_leaderboard_has_one_first_cell_first():
    studies = _studies().assign(folder=lambda f: "runs/" + f["study"])
    twice = pd.concat(
        [studies, studies.iloc[[8, 1]].assign(folder=["again/C_y", "again/A_x"])],
        ignore_index=True,
    )
    with pytest.raises(
        DuplicateStudies,
        match=r"^2 studies of x on A with seed 0: runs/A_x_s0, again/A_x; compare one of them "
        r"\(move the others out of the folder\)$",
    ):
        check_unique(twice)


@pytest.mark.parametrize(
    ("budget", "spent_at_half"),
    [
        ({"epochs": 60}, "b"),  # epochs: at 30 of 60 b had its 0.4, a its 0.5
        ({"trials": 4}, "b"),  # trials: b's second trial (of 4) is its first result
        ({"seconds": 8.0}, "b"),  # seconds: b's 0.4 came at 4.0 s of 8
    ],
)
def test_rank_over_budget_reads_the_unit_the_budget_was_given_in(budget, spent_at_half):
    # a: loss 0.5 after 20 epochs / its 3rd trial / 6 s; b: 0.4 after 30 epochs / 2nd trial / 4 s.
    # Read in the study's own last epoch instead (no budget), half would be a's 10 epochs (1.0)
    # and b's 15 (nothing yet): a first, in every unit
    rows = [
        ("a", 0, 1.0, 10, 1.0),
        ("a", 1, 1.0, 15, 2.0),
        ("a", 2, 0.5, 20, 6.0),
        ("b", 0, 1.0, 25, 1.0),
        ("b", 1, 0.4, 30, 4.0),
    ]
    trials = pd.DataFrame(
        [
            {"study": s, "trial": t, "status": "complete", "val_loss": v, "cum_epochs": e,
             "cum_seconds": sec}
            for s, t, v, e, sec in rows
        ]
    )  # fmt: skip
    studies = pd.DataFrame([{"study": b, "dataset": "T", "backend": b, "seed": 0} for b in "ab"])
    over = rank_over_budget(studies, trials, {b: budget for b in "ab"}, fractions=(0.5,))
    ranks = over.set_index("backend")["mean_rank"]
    assert ranks[spent_at_half] == 1.0 and ranks.drop(spent_at_half).iloc[0] == 2.0


def test_without_a_budget_the_studys_own_last_epoch_is_its_whole():
    trials = pd.DataFrame(
        [
            {"study": "a", "trial": 0, "status": "complete", "val_loss": 0.5, "cum_epochs": 10},
            {"study": "b", "trial": 0, "status": "complete", "val_loss": 1.0, "cum_epochs": 3},
            {"study": "b", "trial": 1, "status": "complete", "val_loss": 0.2, "cum_epochs": 6},
        ]
    )
    studies = pd.DataFrame([{"study": b, "dataset": "T", "backend": b, "seed": 0} for b in "ab"])
    over = rank_over_budget(studies, trials, {}, fractions=(0.5, 1.0))
    ranks = over.set_index(["fraction", "backend"])["mean_rank"]
    # at half of its own 6 epochs b had 1.0, a at half of 10 had nothing yet: b first
    assert ranks[0.5, "b"] == 1.0 and ranks[1.0, "b"] == 1.0 and ranks[1.0, "a"] == 2.0
