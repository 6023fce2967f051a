"""The certificate's statistics: orders, the noise ceiling, the three-way verdict, its power,
and the pairs' tests, on made-up losses (no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tuning.analysis.certificate import agreement

pytestmark = pytest.mark.one_keras_backend  # no Keras


def _losses(order: list[str], seeds: int = 8, flip: tuple[int, ...] = ()) -> pd.DataFrame:
    rows = []
    for s in range(seeds):
        ranking = list(reversed(order)) if s in flip else order
        rows.append({b: 1.0 + 0.1 * ranking.index(b) for b in order})
    return pd.DataFrame(rows, index=range(seeds))


def _winners() -> pd.DataFrame:
    return pd.DataFrame({"real_test_loss": [1.0, 1.1], "table_test_loss": [1.0, 1.2]})


def test_the_same_order_in_both_gives_tau_one_and_every_pair_agreeing():
    result = agreement(_losses(["a", "b", "c"]), _losses(["a", "b", "c"]), _winners(), reps=200)
    assert result.tau == 1.0 and result.tau_low == 1.0 and result.tau_high == 1.0
    assert result.pairs["same_leader"].all() and result.pairs["same_verdict"].all()
    assert list(result.backends["backend"]) == ["a", "b", "c"]
    assert result.pairs.set_index(["a", "b"]).loc[("a", "c"), "table_verdict"] == "a better"


def test_a_reversed_order_gives_tau_minus_one_and_names_the_pairs_that_differ():
    result = agreement(_losses(["a", "b", "c"]), _losses(["c", "b", "a"]), _winners(), reps=200)
    assert result.tau == -1.0
    assert not result.pairs["same_leader"].any()
    pair = result.pairs.set_index(["a", "b"]).loc[("a", "c")]
    assert (pair["table_ahead"], pair["real_ahead"]) == ("a", "c")


def test_kendalls_tau_interval_comes_from_resampling_seeds():
    # three seeds of eight reverse the real order: the mean ranks keep the table's order (tau
    # 1), but resamples that draw the reversed seeds more often reverse it: the interval widens
    table = _losses(["a", "b", "c", "d"], seeds=8)
    real = _losses(["a", "b", "c", "d"], seeds=8, flip=(0, 1, 2))
    result = agreement(table, real, _winners(), reps=500)
    assert result.tau == 1.0 and result.tau_low < 1.0 and result.tau_high == 1.0


def test_a_study_without_a_model_ranks_last_in_the_certificate():
    table = _losses(["a", "b"])
    real = table.copy()
    real.loc[:, "a"] = np.nan  # every real study of a failed
    result = agreement(table, real, _winners(), reps=100)
    ranks = result.backends.set_index("backend")["real_mean_rank"]
    assert ranks["a"] == 2.0 and ranks["b"] == 1.0


def _suite_losses(order_strength: list[float], noise: float, seed: int, tasks: int = 6):
    """Losses of 6 backends over tasks x 10 seeds: backend j's mean is order_strength[j]."""
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product([[f"t{i}" for i in range(tasks)], range(10)])
    values = np.array(order_strength) + noise * rng.normal(size=(len(index), 6))
    return pd.DataFrame(values, index=index, columns=list("abcdef"))


TRUTH = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_kendall_tau_b_is_scipys_with_ties():
    from scipy import stats

    from tuning.analysis.certificate import kendall_tau_b

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 3, size=(40, 5)), rng.normal(size=(40, 5))
    expected = [stats.kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)]
    assert np.allclose(kendall_tau_b(x.astype(float), y), expected, equal_nan=True)


def test_a_table_of_the_same_process_agrees_within_noise():
    table, real = _suite_losses(TRUTH, 0.5, 1), _suite_losses(TRUTH, 0.5, 2)
    ceiling = agreement(table, real, _winners(), reps=200, simulations=50).ceiling
    assert ceiling.verdict == "agrees within noise"
    assert ceiling.gap_low < 0 < ceiling.gap_high < 0.2 and ceiling.ceiling_low > 0
    assert ceiling.blocks == 60 and ceiling.tasks == 6 and ceiling.power > 0.5


def test_a_reversed_table_disagrees_beyond_noise():
    table, real = _suite_losses(TRUTH[::-1], 1.0, 1), _suite_losses(TRUTH, 1.0, 2)
    ceiling = agreement(table, real, _winners(), reps=200, simulations=50).ceiling
    assert ceiling.verdict == "disagrees beyond noise" and ceiling.gap_low > 0
    assert ceiling.cross < 0 < ceiling.ceiling


def test_real_runs_without_a_repeatable_order_cannot_tell():
    table, real = _suite_losses([0.0] * 6, 1.0, 1), _suite_losses([0.0] * 6, 1.0, 2)
    ceiling = agreement(table, real, _winners(), reps=200, simulations=50).ceiling
    # before: the bootstrap interval of tau alone, read as evidence either way
    assert ceiling.verdict == "cannot tell at this size" and ceiling.ceiling_low < 0
    assert ceiling.power < 0.25  # an unrelated table can hardly be caught: there is no order


def test_a_small_certificate_cannot_tell_and_says_how_many_seeds_would():
    table = _suite_losses(TRUTH, 1.5, 1, tasks=1)
    real = _suite_losses(TRUTH, 1.5, 2, tasks=1)
    ceiling = agreement(table, real, _winners(), reps=200, simulations=50).ceiling
    assert ceiling.verdict == "cannot tell at this size"
    assert ceiling.seeds_to_tell is not None and ceiling.seeds_to_tell > 10


def test_seeds_to_tell_by_hand():
    from tuning.analysis.certificate import seeds_to_tell

    # disagreement: a gap of 0.3 with half-width 0.6 at 10 seeds needs (0.6 / 0.3)^2 x 10
    assert seeds_to_tell(0.3, 0.6, 0.5, 0.1, 10) == 40
    # agreement: gap 0.0, half-width 0.4: (0.4 / 0.2)^2 x 10 = 40; the ceiling's 0.5 / 0.5 is 1
    assert seeds_to_tell(0.0, 0.4, 0.5, 0.5, 10) == 40
    assert seeds_to_tell(0.0, 0.4, -0.1, 0.5, 10) is None  # no real order: no size agrees


def test_certificate_pairs_take_the_direction_from_the_test_and_holm():
    base = np.full(30, 2.0)
    diffs = [-0.001 * i for i in range(1, 17)] + [1.0 + 0.1 * i for i in range(14)]
    losses = pd.DataFrame({"a": base + diffs, "b": base, "c": base + 5.0})
    result = agreement(losses, losses, _winners(), reps=50, simulations=10)
    pair = result.pairs.set_index(["a", "b"]).loc[("a", "b")]
    # a has the better mean rank against b (16 of 30 blocks), but the test finds it worse
    assert pair["table_ahead"] == "b"
    assert pair["table_p"] == pytest.approx(0.0473, abs=1e-4)
    # the largest p of the three pairs: Holm's multiplier 1 leaves it as it is
    assert pair["table_p_holm"] == pytest.approx(pair["table_p"])
    assert pair["table_verdict"] == "b better"  # before: a ahead, by its mean rank
