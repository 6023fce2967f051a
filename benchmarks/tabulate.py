"""The tabular benchmark's build: the default California table (`tuning tabulate`: the book's space
discretized, 480 configurations x 3 seeds, at most 100 epochs, patience 10) in a temporary folder,
with its wall time and size; then one architecture's 36 models (12 learning rates x 3 seeds)
trained one by one as `tuning run` trials train them (the compiled trainer), against the same 36
trained together in one vmapped group. Target (issue 17): the table in <= 15 minutes here.

    python benchmarks/tabulate.py [--seeds 0-2] [--max-rows N] [--no-table]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

from tuning.cli.parser import _seed_list  # noqa: E402
from tuning.core.space import default_grid  # noqa: E402
from tuning.evaluation.data import load_dataset  # noqa: E402
from tuning.evaluation.keras.compiled import CompiledTrainer  # noqa: E402
from tuning.evaluation.keras.model import build_model  # noqa: E402
from tuning.evaluation.keras.seeded_build import build_seeded  # noqa: E402
from tuning.evaluation.keras.trainer import TrainingProtocol  # noqa: E402
from tuning.evaluation.keras.vmapped import VmappedTraining  # noqa: E402
from tuning.evaluation.tabular.build import tabulate  # noqa: E402
from tuning.evaluation.tabular.table_file import TABLE_FILE, TableSettings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=_seed_list, default=[0, 1, 2])
    parser.add_argument("--max-rows", type=int)
    parser.add_argument(
        "--no-table", action="store_true", help="only the one-architecture comparison"
    )
    args = parser.parse_args()
    dataset = load_dataset("california").head(args.max_rows)
    grid = default_grid()
    settings = TableSettings("california", args.max_rows, 100, 32, 10, tuple(args.seeds), grid)
    if not args.no_table:
        with tempfile.TemporaryDirectory() as folder:
            summary = tabulate(settings, Path(folder), dataset=dataset)
            size = (Path(folder) / TABLE_FILE).stat().st_size
        print(
            f"table: {summary['rows']} rows in {summary['seconds']:.0f} s "
            f"({summary['groups']} vmapped groups, compiling {summary['compile_seconds']:.0f} "
            f"s), {size / 2**20:.1f} MiB of CSV"
        )
    protocol = TrainingProtocol(100, 32, 10)
    sample = [(2, 21, rate, seed) for rate in grid["learning_rate"] for seed in args.seeds]

    def build(n_hidden: int, n_neurons: int, rate: float, seed: int):
        params = {"n_hidden": n_hidden, "n_neurons": n_neurons, "learning_rate": rate}
        return build_seeded(build_model, params, dataset, protocol, seed)

    started = time.perf_counter()
    VmappedTraining(protocol, dataset).run([build(*c) for c in sample], [c[3] for c in sample])
    together = time.perf_counter() - started
    started = time.perf_counter()
    trainers = {seed: CompiledTrainer(protocol, seed) for seed in args.seeds}
    for config in sample:
        trainers[config[3]].fit(
            build(*config),
            dataset.X_train,
            dataset.y_train,
            validation_data=(dataset.X_valid, dataset.y_valid),
        )
    alone = time.perf_counter() - started
    print(
        f"one architecture (2 x 21), {len(sample)} models: one by one {alone:.1f} s, "
        f"vmapped together {together:.1f} s ({alone / together:.1f}x), compiling included"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
