"""Every installed algorithm of every library (`tuning backends`: the ``library:algorithm`` names,
and the random-search baseline) on the book's California housing task, seeds 0, 1, 2, the same
budget of 300 training epochs per study (trials of at most 50 epochs, early stopping patience 5),
two studies at a time; then `tuning compare`: leaderboards, figures and report.md in
results/algorithms/. Options given here override these (finished studies are skipped).
"""

import sys

from tuning.cli import build_parser, main
from tuning.search import available_backends

ALGORITHMS = [name for name in available_backends() if ":" in name] + ["random"]
STUDY = (
    "benchmark --dataset california --seeds 0-2 --max-epochs 50 --patience 5 "
    "--budget-epochs 300 --jobs 2 --out results/algorithms"
)

if __name__ == "__main__":
    args = [*STUDY.split(), "--backends", ",".join(ALGORITHMS), *sys.argv[1:]]
    out = build_parser().parse_args(args).out
    sys.exit(main(args) or main(["compare", out]))
