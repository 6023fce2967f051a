#!/usr/bin/env bash
# The sim-to-real certificate across the small suite's six tasks (docs/results, 2026-12-05):
# tabulate each task on suites/small_grid.toml (TABLE_SEEDS training-noise draws), run the six
# default backends against the tables for SEEDS, then the same studies trained for real, and the
# certificate across the 6 x SEEDS blocks. Finished tables and studies are skipped: run it again
# to resume. Run from the repository root, with the project's environment active.
set -euo pipefail
SEEDS="${SEEDS:-0-9}"
TABLE_SEEDS="${TABLE_SEEDS:-0-4}"
OUT="${OUT:-results/certify_small}"
for task in california diabetes digits wine breast_cancer iris; do
    rows=()
    [ "$task" = california ] && rows=(--max-rows 2000)
    tuning tabulate --dataset "$task" "${rows[@]}" --grid suites/small_grid.toml \
        --seeds "$TABLE_SEEDS" --max-epochs 20 --patience 3 --out "results/tables/small/$task"
done
tuning benchmark --suite suites/small_tabular.toml --seeds "$SEEDS" --out "$OUT/tabular" --jobs 2
tuning certify "$OUT/tabular" --seeds "$SEEDS" --out "$OUT/real" --jobs 2
