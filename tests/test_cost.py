"""The report's cost section: each backend's seconds, and the share spent compiling."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tuning.analysis.cost import cost_lines, cost_table

pytestmark = pytest.mark.one_keras_backend


def test_each_backends_seconds_and_compile_share_are_summed_over_its_studies():
    trials = pd.DataFrame(
        {
            "backend": ["a", "a", "a", "b", "b"],
            "trial": [0, 1, 0, 0, 1],
            "fit_seconds": [2.0, 1.0, 1.0, 4.0, 6.0],
            "compile_seconds": [1.5, 0.0, 0.5, 0.5, 0.5],
        }
    )
    studies = pd.DataFrame(
        {
            "backend": ["a", "a", "b", "c"],
            "study": ["a0", "a1", "b0", "c0"],
            "epochs": [10, 5, 20, 0],
            "search_seconds": [3.0, 2.0, 12.0, 0.5],
        }
    )
    table = cost_table(trials, studies).set_index("backend")
    assert table.loc["a", ["studies", "trials", "epochs"]].tolist() == [2, 3, 15]
    assert table.loc["a", "fit_seconds"] == 4.0 and table.loc["a", "compile_seconds"] == 2.0
    assert table.loc["a", "compile_share"] == 0.5  # compile over fit seconds, not over search
    assert table.loc["b", "compile_share"] == 0.1 and table.loc["b", "search_seconds"] == 12.0
    # a backend whose studies trained nothing: no share rather than a division by zero
    assert table.loc["c", "trials"] == 0 and math.isnan(table.loc["c", "compile_share"])
    lines = cost_lines(table.reset_index())
    assert "- a: 3 trials, 15 epochs; fit 4.0 s, compiling 2.0 s (50%); search 5.0 s." in lines
    assert "(n/a)" in lines[3] and lines[-1] == "- All: fit 14.0 s, compiling 3.0 s (21%)."
