"""The per-task leaderboard's statistics against independent computations."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from tuning.aggregate import by_backend, hodges_lehmann, paired_test, verdict
from tuning.suite_stats import DuplicateStudies

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
    assert verdict(test) == "worse than random"


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
