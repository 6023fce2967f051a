"""Every dated results page that ships its data prints exactly what its data gives, and every
page either ships its data or says that it cannot be recomputed."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuning.analysis.published import (
    check_finite,
    compact_rows,
    fill_page,
    generated_blocks,
    page_data,
)
from tuning.run.pages import all_tables

pytestmark = pytest.mark.one_keras_backend  # no Keras

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
PAGES = sorted(RESULTS.glob("20*.md"))
WITH_DATA = [p for p in PAGES if page_data(p).exists()]
NO_DATA = "No data was kept for this page"


def test_there_are_pages_with_data():
    assert WITH_DATA, "no dated page ships its data"


@pytest.mark.parametrize("page", WITH_DATA, ids=lambda p: p.stem)
def test_every_table_on_the_page_is_its_data_recomputed(page):
    text = page.read_text()
    blocks = generated_blocks(text)
    assert blocks, f"{page.name} ships data but marks no generated table"
    tables = all_tables(pd.read_csv(page_data(page)))
    for name, body in blocks.items():
        assert body.strip() == tables[name].strip(), f"{page.name}: table {name!r} is stale"
    assert fill_page(text, tables) == text


@pytest.mark.parametrize("page", sorted(set(PAGES) - set(WITH_DATA)), ids=lambda p: p.stem)
def test_a_page_without_data_says_so(page):
    assert NO_DATA in page.read_text()


@pytest.mark.parametrize("page", WITH_DATA, ids=lambda p: p.stem)
def test_a_stale_number_is_caught(page):
    rows = pd.read_csv(page_data(page))
    if "score_equal_epochs" in rows.columns:  # a parallel verdict: one study's score doubled
        rows.loc[rows["score_equal_epochs"].idxmax(), "score_equal_epochs"] *= 2
    else:
        loss = "real_test_loss" if "real_test_loss" in rows.columns else "test_loss"
        best = rows.groupby("task")[loss].idxmin().iloc[0]
        rows.loc[best, loss] = rows[loss].max() * 10  # one task's best study made its worst
    tables = all_tables(rows)
    blocks = generated_blocks(page.read_text())
    assert any(body.strip() != tables[name].strip() for name, body in blocks.items())


def test_compact_rows_from_a_leaderboard_and_their_check():
    board = pd.DataFrame(
        {
            "dataset": ["d", "d"],
            "backend": ["b", "a"],
            "seed": [0, 0],
            "best_val_loss": [0.5, np.nan],
            "test_loss": [0.4, np.nan],
            "trials": [3, 2],
            "epochs": [10, 4],
            "study": ["x", "y"],
        }
    )
    rows = compact_rows(board)
    assert list(rows["backend"]) == ["a", "b"] and list(rows["status"]) == ["no model", "model"]
    check_finite(rows)
    rows.loc[0, "status"] = "model"
    with pytest.raises(ValueError, match="1 rows' status disagrees"):
        check_finite(rows)
