"""The sim-to-real certificate: snapping, the agreement's arithmetic, and one small real run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tuning.run.certify import agreement, build_on_grid, snap_to_grid

GRID = {"n_hidden": [0, 1, 2], "n_neurons": [1, 10, 100], "learning_rate": [0.001, 0.01, 0.1]}


def test_proposals_snap_to_the_grid_as_a_tabular_study_snaps_them():
    snapped = snap_to_grid(
        {"n_hidden": 2, "n_neurons": 40, "learning_rate": 0.004, "seed": 3},
        GRID,
        log=["learning_rate", "n_neurons"],
    )
    # 40 is nearer 10 than 100 in log (log 40 - log 10 = 1.39 > log 100 - log 40 = 0.92): 100
    assert snapped == {"n_hidden": 2, "n_neurons": 100, "learning_rate": 0.01, "seed": 3}
    linear = snap_to_grid({"n_neurons": 40, "learning_rate": 0.004}, GRID)
    assert linear == {"n_neurons": 10, "learning_rate": 0.001}


def test_the_snapping_factory_builds_the_grid_configuration(tmp_path):
    (tmp_path / "table.json").write_text(json.dumps({"grid": GRID, "seeds": [0], "model": None}))
    model = build_on_grid(
        table=str(tmp_path),
        log=["learning_rate"],
        n_hidden=1,
        n_neurons=37,
        learning_rate=0.02,
        input_shape=(4,),
        seed=0,
    )
    hidden = [layer for layer in model.layers if getattr(layer, "units", None)][:-1]
    assert [layer.units for layer in hidden] == [10]  # 37 -> 10 on the linear scale
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


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


def test_certify_runs_the_real_studies_and_writes_the_certificate(tmp_path):
    import keras

    from tuning.cli import main
    from tuning.run.config import StudyConfig
    from tuning.run.study import run_study

    if keras.backend.backend() != "jax":
        pytest.skip("tables are built on JAX")
    grid = tmp_path / "grid.toml"
    grid.write_text("[grid]\nn_hidden = [0, 1]\nn_neurons = [3]\nlearning_rate = [0.01, 0.1]\n")
    table = tmp_path / "table"
    common = ["--dataset", "iris", "--max-epochs", "3", "--patience", "2", "--max-rows", "60"]
    assert (
        main(["tabulate", *common, "--grid", str(grid), "--seeds", "0", "--out", str(table)]) == 0
    )
    space = {
        "n_hidden": {"type": "int", "low": 0, "high": 1},
        "n_neurons": {"type": "int", "low": 3, "high": 3},
        "learning_rate": {"type": "float", "low": 0.005, "high": 0.2, "log": True},
    }
    tabular = tmp_path / "tabular"
    for backend in ("random", "optuna"):
        for seed in (0, 1):
            config = StudyConfig(
                backend=backend,
                objective=f"tabular:{table}",
                trials=3,
                seed=seed,
                space=space,
                out=str(tabular),
            )
            run_study(config)
    real = tmp_path / "real"
    argv = ["certify", str(tabular), "--seeds", "0,1", "--out", str(real), "--jobs", "1"]
    assert main(argv) == 0
    backends = pd.read_csv(real / "sim_to_real.csv").set_index("backend")
    assert sorted(backends.index) == ["optuna", "random"]
    winners = pd.read_csv(real / "sim_to_real_winners.csv")
    assert len(winners) == 4
    # seed 0 of the real study is the table's seed 0 and its initial weights: the same
    # configuration trains to the table's test loss (the table and a real trial agree)
    same = winners[winners["seed"] == 0]
    assert np.allclose(same["real_test_loss"], same["table_test_loss"], rtol=1e-4)
    summaries = [json.loads(p.read_text()) for p in real.rglob("summary.json")]
    assert {s["config"]["model"] for s in summaries} == {"tuning.run.certify:build_on_grid"}
    assert all(s["trials"] == 3 for s in summaries)
    assert "Kendall's tau" in (real / "sim_to_real.md").read_text()


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
