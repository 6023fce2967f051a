"""The per-task leaderboard's statistics against independent computations."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuning.analysis.aggregate import (
    by_backend,
    default_target,
    epochs_to_target,
    summary_stats,
    verdict,
)
from tuning.analysis.blocks import DuplicateStudies
from tuning.analysis.multiplicity import holm
from tuning.analysis.signed_rank import PairedTest, hodges_lehmann, paired_test, smallest_p

pytestmark = pytest.mark.one_keras_backend  # no Keras at all


def exact_signed_rank_tails(diffs):
    """P(W+ <= w) and P(W+ >= w) under the null, W+ the sum of the positive differences'
    ranks, by counting the 2^n sign patterns with a table of rank sums (no ties, no zeros)."""
    ranks = pd.Series(np.abs(diffs)).rank().astype(int).tolist()
    observed = sum(r for r, d in zip(ranks, diffs, strict=True) if d > 0)
    counts = [1] + [0] * sum(ranks)
    for r in ranks:  # each rank is in W+ or not
        counts = [c + (counts[s - r] if s >= r else 0) for s, c in enumerate(counts)]
    total = 2 ** len(ranks)
    return sum(counts[: observed + 1]) / total, sum(counts[observed:]) / total


# The example: 16 small improvements and 14 large deteriorations.
SMALL_BETTER_LARGE_WORSE = [-0.001 * i for i in range(1, 17)] + [1.0 + 0.1 * i for i in range(14)]


def test_the_direction_comes_from_the_signed_rank_test_not_the_median():
    diffs = pd.Series(SMALL_BETTER_LARGE_WORSE)
    base = pd.Series(np.full(30, 2.0))
    test = paired_test(base + diffs, base)
    assert test.median_diff == pytest.approx(-0.0015)  # the plain median says "lower"
    lower, higher = exact_signed_rank_tails(SMALL_BETTER_LARGE_WORSE)
    assert test.p_lower == pytest.approx(lower) and test.p_higher == pytest.approx(higher)
    assert test.p == pytest.approx(2 * higher) == pytest.approx(0.0473, abs=1e-4)
    walsh = [(a + b) / 2 for a, b in itertools.combinations_with_replacement(diffs, 2)]
    assert test.hodges_lehmann == pytest.approx(float(np.median(walsh))) == pytest.approx(0.792)
    assert verdict(test, test.p) == "worse than random"


def test_hodges_lehmann_by_hand():
    # Walsh averages of 1, 2, 9: 1, 1.5, 5, 2, 5.5, 9 -> median (2 + 5) / 2
    assert hodges_lehmann(np.array([1.0, 2.0, 9.0])) == 3.5
    assert math.isnan(hodges_lehmann(np.array([])))


def _studies(losses):
    return pd.DataFrame(
        [
            {
                "study": f"{b}{s}",
                "dataset": "d",
                "backend": b,
                "seed": s,
                "test_loss": loss,
                "best_val_loss": loss,
                "epochs": 10,
                "seconds": 1.0,
                "trials": 2,
            }
            for b, values in losses.items()
            for s, loss in enumerate(values)
        ]
    )


def _trials(studies):
    return pd.DataFrame(
        {
            "study": studies["study"],
            "trial": 0,
            "status": "complete",
            "val_loss": studies["test_loss"],
            "cum_epochs": 10,
        }
    )


def test_one_seed_gives_no_p_value_and_says_why():
    studies = _studies({"random": [1.0], "x": [0.5]})
    board = by_backend(studies, _trials(studies)).set_index("backend")
    assert math.isnan(board.loc["x", "wilcoxon_p"])
    assert board.loc["x", "vs_random"] == "no test: one paired seed"


def test_a_tie_for_first_is_a_win_for_both_and_a_study_without_a_model_never_wins():
    studies = _studies({"random": [1.0, 2.0, math.nan], "x": [1.0, 1.0, math.nan]})
    board = by_backend(studies, _trials(studies)).set_index("backend")
    assert board.loc["random", "wins"] == 1 and board.loc["x", "wins"] == 2
    # seed 2: both without a model tie for last: 1.5 each
    assert board.loc["x", "mean_rank"] == pytest.approx((1.5 + 1 + 1.5) / 3)


def test_two_studies_of_one_seed_are_refused():
    studies = _studies({"random": [1.0, 2.0], "x": [1.0, 1.0]})
    twice = pd.concat([studies, studies.iloc[[0]].assign(study="copy")], ignore_index=True)
    with pytest.raises(DuplicateStudies, match="random0, copy"):
        by_backend(twice, _trials(twice))


def test_statistics_helpers_on_known_values():
    s = summary_stats([1.0, 2.0, 3.0, math.nan])
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert s == pytest.approx(
        {"mean": 2.0, "std": 1.0, "ci_low": 2 - half, "ci_high": 2 + half, "median": 2.0}
    )
    assert math.isnan(summary_stats([5.0])["ci_low"])
    seeds = pd.Index([0, 1, 2, 3, 4, 5])
    better = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], index=seeds)
    base = better + [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    test = paired_test(better, base)
    assert (test.n_pairs, test.median_diff) == (6, pytest.approx(-0.75))
    assert test.p == pytest.approx(2 / 64) and test.p_lower == pytest.approx(1 / 64)
    assert test.hodges_lehmann == pytest.approx(-0.75)  # Walsh averages of -0.5 .. -1.0
    same = paired_test(better, better)
    assert (same.n_pairs, same.median_diff) == (6, 0.0) and math.isnan(same.p)
    assert smallest_p(3) == 0.25 and smallest_p(6) == pytest.approx(0.03125)


def test_epochs_to_target_is_the_first_complete_trial_at_or_below_it():
    trials = pd.DataFrame(
        {
            "trial": [2, 0, 1, 3],
            "status": ["complete", "complete", "pruned", "complete"],
            "val_loss": [0.5, 0.9, 0.4, 0.5],
            "cum_epochs": [30, 10, 20, 40],
        }
    )
    assert epochs_to_target(trials, 0.5) == 30.0  # the pruned 0.4 at 20 does not count
    assert epochs_to_target(trials, 0.9) == 10.0  # at the target counts
    assert math.isnan(epochs_to_target(trials, 0.3))


def test_the_default_target_is_random_searchs_median_else_everyones():
    studies = pd.DataFrame(
        {"backend": ["random", "random", "random", "x"], "best_val_loss": [1.0, 3.0, 2.0, 0.1]}
    )
    assert default_target(studies) == 2.0
    studies["best_val_loss"] = [math.nan, math.nan, math.nan, 0.1]
    assert default_target(studies) == 0.1


def test_the_leaderboard_row_by_hand():
    # backend x over seeds 0-2: test 1.0, 2.0, 4.0; random: 2.0, 2.0, 2.0
    studies = _studies({"random": [2.0, 2.0, 2.0], "x": [1.0, 2.0, 4.0]})
    studies["epochs"] = [10, 20, 30, 40, 50, 60]
    studies["seconds"] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    studies["trials"] = [1, 2, 3, 4, 5, 6]
    board = by_backend(studies, _trials(studies)).set_index("backend")
    x = board.loc["x"]
    half = stats.t.ppf(0.975, 2) * math.sqrt(7 / 3) / math.sqrt(3)  # sd of 1, 2, 4: sqrt(7/3)
    assert (x["test_loss_mean"], x["test_loss_median"]) == (pytest.approx(7 / 3), 2.0)
    assert x["test_loss_std"] == pytest.approx(math.sqrt(7 / 3))
    assert (x["test_loss_ci_low"], x["test_loss_ci_high"]) == pytest.approx(
        (7 / 3 - half, 7 / 3 + half)
    )
    # seed 0: x wins (rank 1); seed 1: tie (1.5 each, a win each); seed 2: random wins
    assert x["mean_rank"] == pytest.approx((1 + 1.5 + 2) / 3) and x["wins"] == 2
    assert board.loc["random", "mean_rank"] == pytest.approx((2 + 1.5 + 1) / 3)
    assert board.loc["random", "wins"] == 2
    assert (x["epochs_mean"], x["seconds_mean"], x["trials_mean"]) == (50.0, 5.0, 5.0)
    assert x["n_seeds"] == 3 and x["n_pairs"] == 3
    # differences -1, 0, 2; the estimate, as the test, leaves the zero out: Walsh averages of
    # -1 and 2 are -1, 0.5, 2 -> median 0.5 (with the zero: 0.25)
    assert x["test_loss_diff_median"] == 0.0 and x["test_loss_diff_hl"] == pytest.approx(0.5)
    # target: random's median best val loss 2.0; x reached it in seeds 0 and 1, at 10 epochs
    assert x["target_val_loss"] == 2.0 and x["reached_target"] == 2
    assert x["epochs_to_target_mean"] == 10.0
    assert x["vs_random"] == "not significant"
    assert board.loc["random", "vs_random"] == "baseline"
    assert list(board.index) == ["random", "x"]  # mean rank 1.5 before 1.5: then test loss


def test_summary_stats_of_no_value_one_value_and_two():
    assert list(summary_stats([])) == ["mean", "std", "ci_low", "ci_high", "median"]
    assert all(math.isnan(v) for v in summary_stats([None, math.inf]).values())
    one = summary_stats([5.0])
    assert (one["mean"], one["median"]) == (5.0, 5.0)
    assert all(math.isnan(one[k]) for k in ("std", "ci_low", "ci_high"))
    two = summary_stats([1.0, 3.0])
    half = stats.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2)
    assert two == pytest.approx(
        {"mean": 2.0, "std": math.sqrt(2), "ci_low": 2 - half, "ci_high": 2 + half, "median": 2.0}
    )


def test_paired_tests_of_few_pairs_and_their_words():
    seeds = pd.Index([0, 1, 2])
    base = pd.Series([1.0, 1.0, 1.0], index=seeds)
    two = paired_test(pd.Series([0.5, 0.4], index=[0, 1]), base)  # seed 2 has no pair
    assert two.n_pairs == 2 and two.p == pytest.approx(0.5) and two.p_lower == 0.25
    none = paired_test(pd.Series([0.5], index=[7]), base)
    assert none.n_pairs == 0 and math.isnan(none.median_diff)
    assert verdict(none, none.p) == "no paired seeds"
    assert verdict(paired_test(base, base), math.nan) == "no test: equal in every seed"
    assert verdict(two, two.p) == "not significant"
    assert smallest_p(1) == 1.0 and math.isnan(smallest_p(0))


def test_the_baseline_row_an_explicit_target_and_a_task_without_random_search():
    studies = pd.concat(
        [
            _studies({"random": [2.0, 2.0, 2.0], "x": [1.0, 2.0, 4.0]}),
            _studies({"x": [1.0], "y": [3.0]}).assign(dataset="e", study=["ex", "ey"]),
        ],
        ignore_index=True,
    )
    board = by_backend(studies, _trials(studies), target=0.5)
    assert list(board.index) == list(range(4))
    base = board[(board["dataset"] == "d") & (board["backend"] == "random")].iloc[0]
    assert (base["n_pairs"], base["test_loss_diff_median"], base["test_loss_diff_hl"]) == (3, 0, 0)
    assert all(math.isnan(base[k]) for k in ("wilcoxon_p", "wilcoxon_p_lower", "wilcoxon_p_higher"))
    # target 0.5: nobody reached it
    assert set(board["target_val_loss"]) == {0.5} and set(board["reached_target"]) == {0}
    assert board["epochs_to_target_mean"].isna().all()
    e = board[board["dataset"] == "e"].set_index("backend")
    assert set(e["vs_random"]) == {"random did not run"} and e.loc["x", "wins"] == 1


def test_the_verdict_takes_its_direction_from_the_smaller_one_sided_p():
    better = PairedTest(10, median_diff=0.1, p=0.01, p_lower=0.005, p_higher=0.996)
    worse = PairedTest(10, median_diff=-0.1, p=0.01, p_lower=0.996, p_higher=0.005)
    assert verdict(better, 0.01) == "better than random"
    assert verdict(worse, 0.01) == "worse than random"
    at_alpha = PairedTest(10, p=0.05, p_lower=0.025, p_higher=0.98)
    assert verdict(at_alpha, 0.05) == "not significant"  # p must be below 0.05
    assert verdict(better, 0.06) == "not significant"  # the words follow the adjusted p


def test_the_leaderboard_is_ordered_by_mean_rank_and_renumbered():
    # "a" sorts before "random" by name but ranks after it in every seed
    studies = _studies({"a": [3.0, 3.0], "random": [1.0, 1.0]})
    board = by_backend(studies, _trials(studies))
    assert list(board["backend"]) == ["random", "a"] and list(board.index) == [0, 1]


# --- what the mutation run found untested ----------------------------------------------------


def test_the_leaderboards_paired_tests_are_scipys_wilcoxon_on_the_paired_differences():
    random_ = [1.0, 1.2, 0.9, 1.1, 1.3, 1.05]
    x = [0.8, 1.25, 0.7, 0.95, 1.0, 0.9]  # better on five seeds of six
    y = [2.0, 2.2, 1.9, 2.1, 2.3, 2.05]  # worse on every seed: never first
    studies = _studies({"y": y, "x": x, "random": random_})
    board = by_backend(studies, _trials(studies)).set_index("backend")
    d = np.subtract(x, random_)
    for column, alternative in (
        ("wilcoxon_p", "two-sided"),
        ("wilcoxon_p_lower", "less"),
        ("wilcoxon_p_higher", "greater"),
    ):
        assert board.loc["x", column] == pytest.approx(
            stats.wilcoxon(d, alternative=alternative).pvalue
        )
    # y is higher in 6 of 6 seeds (two-sided p 2/64), but the family holds two tests: Holm
    # gives it min(2 x 0.03125, ...) = 0.0625, and the words follow the adjusted p
    assert board.loc["y", "wilcoxon_p_higher"] < 0.05
    assert board.loc[["x", "y"], "wilcoxon_p_holm"].tolist() == pytest.approx(
        list(holm(board.loc[["x", "y"], "wilcoxon_p"]))
    )
    assert board.loc["y", "wilcoxon_p_holm"] == pytest.approx(0.0625)
    assert board.loc["y", "vs_random"] == "not significant"
    assert set(board["tests_in_family"]) == {2}
    assert (
        board.loc["y", "wins"] == 0
        and board.loc["x", "wins"] == 5
        and board.loc["random", "wins"] == 1
    )
    for column in ("wilcoxon_p", "wilcoxon_p_lower", "wilcoxon_p_higher"):
        assert math.isnan(board.loc["random", column])  # the baseline is not tested against itself


def test_one_seed_leaves_every_p_value_column_empty_not_missing():
    studies = _studies({"random": [1.0], "x": [0.5]})
    board = by_backend(studies, _trials(studies))
    for column in ("wilcoxon_p", "wilcoxon_p_lower", "wilcoxon_p_higher"):
        assert board[column].dtype == float and board[column].isna().all()


def test_backends_tied_on_rank_and_loss_are_listed_by_name_within_a_task_by_name():
    studies = pd.concat(
        [
            _studies({"z": [1.0, 2.0], "random": [2.0, 1.0], "m": [1.0, 2.0]}).assign(dataset="t2"),
            _studies({"random": [1.0, 1.0]}).assign(dataset="t1"),
        ],
        ignore_index=True,
    )
    studies["study"] = studies["dataset"] + studies["study"]
    board = by_backend(studies, _trials(studies))
    assert board[["dataset", "backend"]].values.tolist() == [
        ["t1", "random"],
        ["t2", "m"],
        ["t2", "random"],
        ["t2", "z"],
    ]


def test_claims_about_the_task_pool_the_search_seeds_of_one_table_draw():
    from tuning.analysis.table_report import task_claims

    # six search seeds read three draws (seed % 3); x is lower than random in every study
    random_ = [1.0, 2.0, 3.0, 1.2, 2.2, 3.2]
    x = [0.5, 1.5, 2.5, 0.9, math.nan, 2.7]  # seed 4: no model
    studies = _studies({"random": random_, "x": x})
    summaries = {row.study: {"table_seed": row.seed % 3} for row in studies.itertuples()}
    claims = task_claims(studies, summaries).set_index("backend")
    assert claims.loc["x", "n_pairs"] == 3 and claims.loc["random", "n_seeds"] == 3
    # draw medians: random 1.1, 2.1, 3.1; x 0.7, (1.5, no model) -> the worst: inf, 2.6
    assert claims.loc["random", "test_loss_mean"] == pytest.approx(2.1)
    assert claims.loc["x", "no_model_pairs"] == 1
    assert claims.loc["x", "vs_random"] == "not significant"  # 3 draws: p >= 0.25 always
    assert claims.loc["x", "wilcoxon_p"] >= 0.25
