"""The comparison of every backend on the book's California housing task: each installed backend
(the five libraries and the random-search baseline) x seeds 0, 1, 2, every study with the same
budget of 300 training epochs (trials of at most 50 epochs, early stopping patience 5), run two
studies at a time, then `tuning compare`: leaderboards, figures and report.md in
results/california/.

Same as `tuning benchmark --dataset california --seeds 0-2 --max-epochs 50 --patience 5
--budget-epochs 300 --out results/california` followed by `tuning compare results/california`;
options given here override these, e.g. `python studies/california_benchmark.py --seeds 0-5`
(finished studies are skipped, so this adds seeds 3-5 to the grid).
"""

import sys

from tuning.cli import build_parser, main

STUDY = (
    "benchmark --dataset california --seeds 0-2 --max-epochs 50 --patience 5 "
    "--budget-epochs 300 --out results/california"
)

if __name__ == "__main__":
    args = [*STUDY.split(), *sys.argv[1:]]
    out = build_parser().parse_args(args).out
    sys.exit(main(args) or main(["compare", out]))
