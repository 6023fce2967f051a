"""The parallel verdict's numbers (`tuning.analysis.parallel`), pinned on hand-made studies."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tuning.analysis.families import families_section
from tuning.analysis.parallel import (
    SCORE_CAP,
    block_scores,
    is_parallel_grid,
    least_degradation,
    parallel_table,
)
from tuning.analysis.signed_rank import paired_test

pytestmark = pytest.mark.one_keras_backend  # no Keras


def _study(library: str, workers: int, seed: int, curve: list[tuple[float, float]]) -> tuple:
    """A study's leaderboard row and its trial rows: (elapsed seconds, val_loss) per trial."""
    name = f"{library}_w{workers}_s{seed}"
    losses = [loss for _, loss in curve]
    row = {
        "study": name,
        "dataset": "d",
        "seed": seed,
        "library": library,
        "workers": workers,
        "best_val_loss": min(losses),
    }
    trials = pd.DataFrame(
        {
            "study": name,
            "trial": range(len(curve)),
            "status": "complete",
            "val_loss": losses,
            "cum_seconds": [t for t, _ in curve],
        }
    )
    return row, trials


def _frames(*studies: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        pd.DataFrame([row for row, _ in studies]),
        pd.concat([trials for _, trials in studies], ignore_index=True),
    )


def test_scores_speed_up_and_the_wall_clock_checkpoint_of_one_block():
    studies, trials = _frames(
        # random, 1 worker: reaches its final 2.0 at 8 s (the reference, and its time)
        _study("random", 1, 0, [(4.0, 3.0), (8.0, 2.0), (12.0, 2.5)]),
        # random, 4 workers: ends at 3 s with 2.0, reached at 2 s
        _study("random", 4, 0, [(1.0, 4.0), (2.0, 2.0), (3.0, 3.0)]),
        # optuna, 1 worker: the block's best, 1.0; 2.0 or better at 6 s
        _study("optuna", 1, 0, [(6.0, 1.5), (10.0, 1.0)]),
        # optuna, 4 workers: 1.5 at 2.5 s (its best), never at 1.0
        _study("optuna", 4, 0, [(0.5, 3.0), (2.5, 1.5)]),
    )
    scores = block_scores(studies, trials).set_index("study")
    # best 1.0, reference 2.0: score = loss - 1
    assert scores["score_equal_epochs"].to_dict() == {
        "random_w1_s0": 1.0,
        "random_w4_s0": 1.0,
        "optuna_w1_s0": 0.0,
        "optuna_w4_s0": 0.5,
    }
    # the checkpoint: the quicker 4-worker study's end (random's at 3 s, optuna's at 2.5 s)
    assert scores["wall_clock"].eq(2.5).all()
    wall = scores["score_equal_wall_clock"].to_dict()
    assert wall == {
        "random_w1_s0": SCORE_CAP,  # nothing finished by 2.5 s
        "random_w4_s0": 1.0,
        "optuna_w1_s0": SCORE_CAP,
        "optuna_w4_s0": 0.5,
    }
    # 8 s over the time each reached 2.0: random x4 at 2 s, optuna x1 at 6 s, optuna x4 at 2.5
    speedups = scores["speedup_to_random"]
    assert speedups["random_w1_s0"] == 1.0 and speedups["random_w4_s0"] == 4.0
    assert speedups["optuna_w1_s0"] == pytest.approx(8 / 6)
    assert speedups["optuna_w4_s0"] == pytest.approx(8 / 2.5)


def test_where_one_worker_random_search_was_the_best_the_blocks_range_scales_it():
    studies, trials = _frames(
        _study("random", 1, 0, [(1.0, 1.0)]),
        _study("random", 4, 0, [(1.0, 3.0)]),
        _study("optuna", 1, 0, [(1.0, 2.0)]),
    )
    scores = block_scores(studies, trials).set_index("study")["score_equal_epochs"]
    # best = reference = 1.0: the scale is the worst final's distance, 2.0
    assert scores.to_dict() == {"random_w1_s0": 0.0, "random_w4_s0": 1.0, "optuna_w1_s0": 0.5}


def _grid(rises: dict[str, list[float]]) -> pd.DataFrame:
    """Scores of each library at 1 and 16 workers in len(rises) blocks: 1 worker scores 0.5,
    16 workers 0.5 + the rise of that block."""
    rows = []
    for library, per_block in rises.items():
        for seed, rise in enumerate(per_block):
            for workers, score in ((1, 0.5), (16, 0.5 + rise)):
                rows.append(
                    {
                        "dataset": "d",
                        "seed": seed,
                        "library": library,
                        "workers": workers,
                        "study": f"{library}_{workers}_{seed}",
                        "score_equal_epochs": score,
                        "score_equal_wall_clock": score / 2,
                        "wall_clock": 1.0,
                        "speedup_to_random": 2.0 ** (workers == 16) * (seed + 1),
                    }
                )
    return pd.DataFrame(rows)


def test_the_table_tests_each_count_against_one_worker_with_holm_over_the_family():
    rises = {
        "optuna": [0.1 * (i + 1) for i in range(8)],  # all up: p = 2 / 2**8 two-sided
        "random": [0.01 * (-1) ** i * (i + 1) for i in range(8)],  # both ways
    }
    scores = _grid(rises)
    table = parallel_table(scores).set_index(["library", "workers"])
    assert table.loc[("optuna", 16), "score_equal_epochs"] == pytest.approx(0.5 + 0.45)
    # geometric mean of 2 * (1..8)
    assert table.loc[("optuna", 16), "speedup_to_random"] == pytest.approx(
        float(np.exp(np.log(2 * np.arange(1, 9)).mean()))
    )
    raw = [
        paired_test(
            pd.Series(scores[(scores.library == lib) & (scores.workers == 16)][col].to_numpy()),
            pd.Series(scores[(scores.library == lib) & (scores.workers == 1)][col].to_numpy()),
        ).p
        for lib in ("optuna", "random")
        for col in ("score_equal_epochs", "score_equal_wall_clock")
    ]
    # Holm over four tests: the smallest p times 4, the next times 3 (kept monotone), ...
    order = np.argsort(raw)
    adjusted = np.minimum(1, np.maximum.accumulate(np.array(raw)[order] * [4, 3, 2, 1]))
    expected = dict(zip(order, adjusted, strict=True))
    got = [
        table.loc[(lib, 16), f"p_{measure}_vs_1"]
        for lib in ("optuna", "random")
        for measure in ("epochs", "wall_clock")
    ]
    assert got == pytest.approx([expected[i] for i in range(4)])
    assert table.loc[("optuna", 16), "verdict_epochs"] == "worse than 1 worker"
    assert table.loc[("random", 16), "verdict_epochs"] == "no difference detected"
    assert math.isnan(table.loc[("optuna", 1), "p_epochs_vs_1"])
    # the report's families section counts that family: the four tests made
    board = pd.DataFrame({"tests_in_family": [6]})
    family = "\n".join(families_section(board, None, table.reset_index()))
    assert "**Each worker count against the same library's one worker**" in family
    assert ": 4 paired signed-rank tests (equal epochs and equal wall-clock)" in family
    assert "6 paired signed-rank tests, one family" in family


def test_the_library_that_degrades_least_is_named_with_the_test_of_the_two_first():
    scores = _grid({"optuna": [0.3] * 6, "random": [0.1, 0.2, 0.0, 0.1, 0.1, 0.2]})
    sentence = least_degradation(scores)
    assert sentence.startswith("At the budget's end, random degraded least from 1 to 16 workers")
    assert "rose by 0.117 on average over 6 blocks" in sentence
    assert "next optuna (+0.300" in sentence
    assert "p = 0.0312, one signed-rank test over 6 blocks, unadjusted" in sentence  # 2 / 2**6


def test_the_sentence_compares_every_library_at_one_count_and_leaves_out_one_without_results():
    scores = _grid({"optuna": [0.3] * 6, "random": [0.2] * 6, "hyperopt": [0.0] * 6})
    # hyperopt also ran 4 workers, where it rose less; the others did not: 16 is compared
    four = scores[(scores.library == "hyperopt") & (scores.workers == 16)].assign(workers=4)
    scores = pd.concat([scores, four.assign(score_equal_epochs=0.4)], ignore_index=True)
    # a library with no result at any count (every score the cap) is left out
    never = _grid({"never": [0.0] * 6}).assign(score_equal_epochs=SCORE_CAP)
    sentence = least_degradation(pd.concat([scores, never], ignore_index=True))
    assert sentence.startswith("At the budget's end, hyperopt degraded least from 1 to 16")
    assert "never" not in sentence


def test_a_grid_of_one_worker_count_is_not_a_parallel_grid():
    studies = pd.DataFrame({"library": ["a", "b"], "workers": [1, 1]})
    assert not is_parallel_grid(studies)
    assert is_parallel_grid(pd.DataFrame({"library": ["a", "a"], "workers": [1, 4]}))
