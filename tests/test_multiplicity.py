"""Holm's adjustment and the signed-rank test's failure rule, by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from tuning.analysis.multiplicity import holm
from tuning.analysis.signed_rank import failure_loss, failures_as_worst, paired_test

pytestmark = pytest.mark.one_keras_backend  # no Keras


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04 -> running maximum 0.03, 0.06, 0.06
    adjusted = holm([0.04, 0.01, math.nan, 0.03])
    assert adjusted[[0, 1, 3]] == pytest.approx([0.06, 0.03, 0.06])
    assert math.isnan(adjusted[2])  # no test: not a member of the family
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02]) and len(holm([])) == 0


def test_holm_rejects_what_bonferroni_rejects_and_keeps_the_familys_order():
    p = np.array([0.001, 0.012, 0.013, 0.3])
    adjusted = holm(p)
    assert np.all(adjusted <= np.minimum(p * len(p), 1.0))
    assert list(np.argsort(adjusted, kind="stable")) == list(np.argsort(p, kind="stable"))
    # 0.013 x 2 = 0.026 is raised to the running maximum 0.012 x 3 = 0.036 (not 0.013 x 4)
    assert adjusted[2] == pytest.approx(0.036) and adjusted[1] == pytest.approx(0.036)


def test_a_failure_is_worse_than_every_model_by_more_than_any_two_models_differ():
    assert failure_loss(np.array([1.0, 3.0, np.inf, np.nan])) == 3.0 + 3.0  # max(range 2, |3|, 1)
    assert failure_loss(np.array([-5.0, -4.0])) == -4.0 + 4.0
    assert failure_loss(np.array([np.nan])) == 1.0
    frame = failures_as_worst(pd.DataFrame({"a": [1.0, np.nan], "b": [np.inf, 2.0]}))
    assert frame.to_numpy().tolist() == [[1.0, 4.0], [4.0, 2.0]]


def test_failing_three_of_ten_seeds_is_no_longer_better():
    base = pd.Series(np.linspace(1.0, 1.9, 10))
    seven_better = base - 0.01
    seven_better[[2, 5, 8]] = np.nan
    test = paired_test(seven_better, base)
    # before: the three failed seeds were left out: 7 of 7 lower, p 2/128 = 0.0156, "better"
    assert test.n_pairs == 10 and test.failed_first == 3 and test.failed_second == 0
    # 7 small negative differences (ranks 1-7), 3 large positive ones (ranks 8-10): W+ = 27
    assert test.statistic == 27 and test.p == pytest.approx(1.0)
    assert test.p_lower == pytest.approx(test.p_higher, abs=0.05)  # no side favoured


def test_two_failures_in_one_block_are_a_tie():
    a = pd.Series([np.nan, 1.0, 1.0, 1.0])
    b = pd.Series([np.nan, 2.0, 2.0, 2.0])
    test = paired_test(a, b)
    assert test.n_pairs == 4 and test.median_diff == -1.0
    # the tied block is a zero difference, dropped as Wilcoxon's default does: 3 of 3 lower
    assert test.p_lower == pytest.approx(1 / 8)


def test_blocks_of_tasks_on_other_scales_are_scaled_per_task():
    from tuning.analysis.signed_rank import scaled_per_task

    index = pd.MultiIndex.from_tuples([("d", 0), ("d", 1), ("i", 0), ("i", 1), ("i", 2)])
    losses = pd.DataFrame(
        {"a": [3000.0, 3100.0, 0.1, 0.3, 9.0], "b": [3050.0, np.inf, 0.2, 0.2, 0.2]}, index
    )
    scaled = scaled_per_task(losses)
    # d: lowest 3000, median 3050: scale 50; i: lowest 0.1, median 0.2: scale 0.1, capped at 5
    assert scaled["a"].tolist() == pytest.approx([0.0, 2.0, 0.0, 2.0, 5.0])
    assert scaled.loc[("d", 0), "b"] == pytest.approx(1.0) and np.isinf(scaled.loc[("d", 1), "b"])
    assert scaled.loc[("i", 0), "b"] == pytest.approx(1.0)
    tied = pd.DataFrame(
        {"a": [1.0, 1.0, 3.0], "b": [1.0, 1.0, 1.0]},
        pd.MultiIndex.from_tuples([("t", 0), ("t", 1), ("t", 2)]),
    )
    assert scaled_per_task(tied)["a"].tolist() == pytest.approx([0.0, 0.0, 1.0])  # the range
    plain = losses.droplevel(0).reset_index(drop=True)
    assert scaled_per_task(plain) is plain  # one task: nothing to scale


def test_the_seeds_holm_needs():
    from tuning.analysis.families import seeds_for_holm

    # 2 / 2^n < 0.05 / m: m = 1 needs 6 seeds (2/64 = 0.031), m = 30 needs 11 (2/2048 < 0.00167)
    assert seeds_for_holm(1) == 6 and seeds_for_holm(30) == 11 and seeds_for_holm(5) == 8
    assert 2 / 2**10 > 0.05 / 30 > 2 / 2**11


def test_mutation_guards_for_the_failure_loss_holms_cap_and_the_direction():
    from tuning.analysis.signed_rank import PairedTest

    assert failure_loss(np.array([-10.0, 2.0])) == 2.0 + 12.0  # the range decides
    assert failure_loss(np.array([0.1, 0.3])) == pytest.approx(1.3)  # at least 1 past the worst
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # 0.6 x 2 capped at 1
    tied = PairedTest(4, p=1.0, p_lower=0.5, p_higher=0.5)
    assert tied.direction() == "" and PairedTest(1).direction() == ""
    both_failed = paired_test(pd.Series([np.nan, np.inf]), pd.Series([np.nan, np.nan]))
    assert both_failed.n_pairs == 2 and not both_failed.testable
    assert (both_failed.failed_first, both_failed.failed_second) == (2, 2)


def test_the_hodges_lehmann_sign_follows_the_test_when_some_differences_are_zero():
    from tuning.analysis.signed_rank import hodges_lehmann

    # the reviewer's cases: with the zero counted, the estimate took the other sign
    for d in ([-20, -20, 0, 1, 2, 5, 13], [-8, -5, -5, -3, 0, 13, 20]):
        diff = pd.Series(d, dtype=float)
        test = paired_test(diff, pd.Series(0.0, index=diff.index))
        leans = np.sign(hodges_lehmann(np.array(d, dtype=float)))
        assert leans == (-1 if test.direction() == "lower" else 1)


def test_a_diverged_loss_cannot_make_its_backend_look_better_across_tasks():
    from tuning.analysis.elimination import wilcoxon_drop

    # two tasks x 20 seeds: A lower than B in every seed of t1, higher in every seed of t2
    rng = np.random.default_rng(0)
    index = pd.MultiIndex.from_product([["t1", "t2"], range(20)])
    b = rng.uniform(1.0, 2.0, 40)
    gap = rng.uniform(0.05, 0.15, 40)
    a = np.where(np.arange(40) < 20, b - gap, b + gap)
    losses = pd.DataFrame({"a": a, "b": b}, index=index)
    _, p, dropped = wilcoxon_drop(losses, 0.05)
    assert dropped == []
    worse = losses.copy()
    worse.loc[("t2", 0), "a"] = 1e3  # one of A's losses diverges: A only got worse
    _, p_worse, dropped_worse = wilcoxon_drop(worse, 0.05)
    assert "b" not in dropped_worse  # before: min-max scaling squeezed t2, and B was dropped
    failed = losses.copy()
    failed.loc[("t2", 0), "a"] = np.inf
    assert "b" not in wilcoxon_drop(failed, 0.05)[2]
