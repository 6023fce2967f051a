"""Fill or check a dated results page from the data it ships (`tuning.analysis.published`),
including the race the page's studies would run (`tuning.run.race.replay`).

    python -m tuning.run.pages docs/results/PAGE.md [...]    # fill each page's marked blocks
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from tuning.analysis.parallel import parallel_table, verdict_table
from tuning.analysis.posthoc import CORRECTIONS
from tuning.analysis.published import certificate_tables, fill_page, page_data, page_tables
from tuning.run.race import FIRST_SEEDS, describe, replay


def all_tables(rows: pd.DataFrame) -> dict[str, str]:
    """Every block a page can print from its data: a certificate's (`certificate_tables`), a
    parallel verdict's (``parallel``, from each study's scores), or a suite's (`page_tables`') and the race under each correction (``race_nemenyi``,
    ``race_holm``, ``race_none``), round by round, where the data holds a race's first round of
    seeds."""
    if "real_test_loss" in rows.columns:
        return certificate_tables(rows)
    if "score_equal_epochs" in rows.columns:  # a parallel verdict's per-study scores
        return {"parallel": verdict_table(parallel_table(rows), rows)}
    tables = page_tables(rows)
    if rows["seed"].nunique() < FIRST_SEEDS:  # fewer seeds than a race's first round: no race
        return tables
    for correction in CORRECTIONS:
        lines = describe(replay(rows, correction=correction))
        tables[f"race_{correction}"] = "\n".join(f"    {line}" for line in lines) + "\n"
    return tables


def fill(page: Path) -> None:
    """Write ``page`` again with each marked block computed from its data."""
    rows = pd.read_csv(page_data(page))
    page.write_text(fill_page(page.read_text(), all_tables(rows)))


def main(argv: list[str] | None = None) -> int:
    for name in argv if argv is not None else sys.argv[1:]:
        fill(Path(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
