"""The book's California housing study (Hands-On ML 2nd ed., ch. 10), searched by
plain random sampling, the baseline every library is measured against.

Same as `tuning run --backend random --dataset california --trials 20 --max-epochs 100 --seed 0`;
any option of `tuning run` given here overrides these defaults, e.g.
`python studies/california_random.py --trials 3 --max-epochs 5 --out /tmp/results`.

In Python the same study is::

    from tuning import StudyConfig, run_study
    summary = run_study(StudyConfig(backend="random", dataset="california", trials=20, max_epochs=100))
    print(summary["best_params"], summary["test_loss"])
"""

import sys

from tuning.cli import main

STUDY = "--backend random --dataset california --trials 20 --max-epochs 100 --seed 0 --out results"

if __name__ == "__main__":
    sys.exit(main(["run", *STUDY.split(), *sys.argv[1:]]))
