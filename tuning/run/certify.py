"""The sim-to-real certificate of a tabular comparison: the same studies trained for real.

A tabular verdict (``--objective tabular:TABLE``) is a claim about real training. `certify`
runs, for the backends and seeds of a tabular comparison, the matching real studies: the same
backends with the same backend options (scikit-learn's holdout), budget, data and protocol as
the table, on the compiled trainer, each proposal snapped to the table's grid before it is
built (`build_on_grid`), so that only training noise differs: a real study searches with the
tabular study's seed but trains with its own noise (``training_seed`` `REAL_NOISE` + seed), never
one of the table's draws, which would make it a copy of a tabular study. It
then reports how far the two agree (`tuning.analysis.certificate.agreement`: the orders and
Kendall's tau, the real runs' own noise ceiling, a three-way verdict with its power, and each
pair's signed-rank verdicts under Holm), and each study's winner: the real test loss of its
retrained model against the table's test loss of the same (snapped) configuration at the table
seed the tabular study read.

A folder of tabular studies of several tasks (each with its own table) is certified across them:
its blocks are (task, seed), which is what gives the verdict power.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from tuning.analysis.certificate import ALPHA, Agreement, agreement
from tuning.core.atomic import write_atomically
from tuning.core.config import StudyConfig
from tuning.core.errors import StudyError
from tuning.evaluation.keras.snapping import build_on_grid as snap_and_build
from tuning.evaluation.objectives import resolve

SNAPPING_FACTORY = "tuning.evaluation.keras.snapping:build_on_grid"
OLD_SNAPPING_FACTORY = "tuning.run.certify:build_on_grid"
# A real study of seed s trains with seed REAL_NOISE + s: its search is the tabular study's (the
# same seed), its training noise never one of the table's draws (a table's seeds are far below).
REAL_NOISE = 1_000_000
REPORT_FILE = "sim_to_real.md"
BACKENDS_FILE = "sim_to_real.csv"
PAIRS_FILE = "sim_to_real_pairs.csv"
WINNERS_FILE = "sim_to_real_winners.csv"


def build_on_grid(*, table: str, log: Sequence[str] = (), **arguments: Any) -> Any:
    """Deprecated (the factory earlier certificates' study files name): the grid of ``table``
    read, then `tuning.evaluation.keras.snapping.build_on_grid`."""
    warnings.warn(
        f"{OLD_SNAPPING_FACTORY} is deprecated: name {SNAPPING_FACTORY} with the table's grid "
        "as model_options grid and grid_model",
        DeprecationWarning,
        stacklevel=2,
    )
    grid, model = _grid_of(table)
    return snap_and_build(grid=grid, grid_model=model, log=log, table=table, **arguments)


def _grid_of(table: str) -> tuple[dict[str, list[Any]], str | None]:
    """The grid a table was built over, and its factory."""
    from tuning.evaluation.tabular.table import table_settings

    settings = table_settings(Path(table))
    return {k: list(v) for k, v in settings["grid"].items()}, settings.get("model")


def real_configs(tabular: list[dict[str, Any]], seeds: Sequence[int], out: Path) -> list:
    """The real studies matching a tabular comparison's (one summary per backend, any seed):
    the same backend, backend options, budget, data, protocol and space; the factory snaps."""
    configs = []
    for summary in tabular:
        recorded = dict(summary["config"])
        table = str(Path(recorded["objective"].partition(":")[2]))
        grid, grid_model = _grid_of(table)
        space = recorded.get("space") or _book_space()
        logged = [name for name, spec in space.items() if spec.get("log")]
        base = {
            k: v
            for k, v in recorded.items()
            if k not in ("objective", "study", "out", "seed", "model", "model_options", "space")
        }
        resolved = summary.get("algorithm") or {}
        if "cv" in resolved:  # scikit-learn scored the table's one validation split: holdout
            base["backend_options"] = {**base.get("backend_options", {}), "cv": resolved["cv"]}
        config = resolve(
            StudyConfig(
                **{
                    **base,
                    "model": SNAPPING_FACTORY,
                    "model_options": {
                        "grid": grid,
                        "grid_model": grid_model,
                        "table": table,
                        "log": logged,
                        **recorded["model_options"],
                    },
                    "space": space,
                    "out": str(out),
                    "trainer": "compiled",
                    "keras_backend": "jax",
                }
            )
        )
        configs += [replace(config, seed=s, training_seed=REAL_NOISE + s, study="") for s in seeds]
    return configs


def _book_space() -> dict[str, dict[str, Any]]:
    from tuning.core.space import default_space

    return default_space().as_dict()


def certificate_text(result: Agreement, seconds: float, tables: Sequence[str]) -> str:
    """``sim_to_real.md``: the certificate in words and tables."""
    from tuning.analysis.report import markdown_table

    pairs = result.pairs
    agree = pairs[pairs["same_leader"]]
    disagree = pairs[~pairs["same_leader"]]
    w = result.winners
    relative = (w["real_test_loss"] - w["table_test_loss"]) / w["table_test_loss"].abs()
    ceiling = (
        result.ceiling.in_words()
        if result.ceiling
        else "no verdict: it needs 3 backends and 4 seeds a task or more to split the runs in "
        "halves"
    )
    lines = [
        "# Sim-to-real certificate\n",
        f"Tables {', '.join(f'`{t}`' for t in tables)}; the tabular studies and their real "
        f"counterparts over {len(result.blocks)} blocks ({len(result.backends)} backends); real "
        f"studies trained with proposals snapped to the table's grid, compiled trainer; "
        f"{seconds / 60:.1f} minutes.\n",
        f"- **Verdict**: {ceiling}",
        f"- **Kendall's tau** between the backends' mean ranks in the table and in real runs: "
        f"**{result.tau:.2f}** (95% bootstrap interval over blocks [{result.tau_low:.2f}, "
        f"{result.tau_high:.2f}]; 1 = the same order). Read it against the noise ceiling above: "
        "two real runs of the same backends do not give tau 1 either.",
        f"- Pairs with the same leader in both: {len(agree)} of {len(pairs)}"
        + (
            "; different: "
            + ", ".join(
                f"{r.a} / {r.b} (table: {r.table_ahead}, real: {r.real_ahead})"
                for r in disagree.itertuples()
            )
            if len(disagree)
            else ""
        )
        + ".",
        f"- Pairwise verdicts (paired signed-rank tests, no model the worst result, Holm across "
        f"the {len(pairs)} pairs of each side, at {ALPHA}) that agree: "
        f"{int(pairs['same_verdict'].sum())} of {len(pairs)}"
        + "".join(
            f"; {r.a} / {r.b}: table says {r.table_verdict}, real says {r.real_verdict}"
            for r in pairs[~pairs["same_verdict"]].itertuples()
        )
        + ".",
        f"- Winners: the real test loss of each study's retrained winner against the table's "
        f"test loss of the same configuration, relative to the table's: median "
        f"{relative.median():+.2%}, |difference| at most {relative.abs().max():.1%} over "
        f"{len(w)} studies; correlation {w['real_test_loss'].corr(w['table_test_loss']):.2f}.\n",
        "## Backends\n",
        markdown_table(result.backends.to_dict("records")),
        "\n## Pairs\n",
        markdown_table(pairs.to_dict("records")),
    ]
    return "\n".join(lines)


def certify(
    tabular_folder: Path,
    seeds: Sequence[int],
    out: Path,
    *,
    jobs: int,
    fresh: bool = False,
    stop: Any = None,
    watch: Any = None,
) -> tuple[Agreement, dict[str, Path]]:
    """Run the real studies matching the tabular comparison in ``tabular_folder`` for ``seeds``
    (skipping those finished), then write the certificate into ``out``."""
    from tuning.analysis.compare import read_studies
    from tuning.run.grid import run_grid

    found, skipped = read_studies(tabular_folder)
    tabular = [s.summary for s in found if (s.summary.get("config") or {}).get("objective")]
    if not tabular:
        raise StudyError(f"{tabular_folder} holds no tabular study: give a tabular comparison")
    wanted = set(seeds)
    by_cell: dict[tuple[str, str], dict] = {}
    for summary in tabular:
        by_cell.setdefault((summary["dataset"], summary["backend"]), summary)
    have = {(t["dataset"], t["backend"], t["seed"]) for t in tabular}
    missing = sorted((d, b, s) for d, b in by_cell for s in wanted if (d, b, s) not in have)
    if missing:
        dataset, backend, seed = missing[0]
        raise StudyError(
            f"{tabular_folder} has no tabular study of {backend} on {dataset} with seed {seed}"
            f" ({len(missing)} missing): run the tabular benchmark for those seeds first"
        )
    configs = real_configs(list(by_cell.values()), sorted(wanted), out)
    draws = {s for t in tables_of(tabular) for s in table_seeds(t)}
    if draws and max(draws) >= REAL_NOISE:
        raise StudyError(
            f"a table draws training seed {max(draws)}, which real runs use from {REAL_NOISE}: "
            "the certificate needs real noise apart from the table's; rebuild the table with "
            f"seeds below {REAL_NOISE}"
        )
    started = time.monotonic()
    result = run_grid(configs, jobs=jobs, fresh=fresh, stop=stop, watch=watch)
    seconds = time.monotonic() - started
    failed = [s for s in result.studies if s.state in ("failed", "held")]
    if failed:
        raise StudyError(
            f"{len(failed)} real studies did not finish (e.g. {failed[0].config.study}: "
            f"{failed[0].error}): run the same command again"
        )
    table_losses = _losses([t for t in tabular if t["seed"] in wanted])
    real = [s.summary for s in result.studies]
    real_losses = _losses(real)
    winners = _winners(real, tabular)
    outcome = agreement(table_losses, real_losses, winners)
    tables = tables_of(tabular)
    files = {
        "backends": out / BACKENDS_FILE,
        "pairs": out / PAIRS_FILE,
        "winners": out / WINNERS_FILE,
        "report": out / REPORT_FILE,
    }
    write_atomically(files["backends"], outcome.backends.to_csv(index=False))
    write_atomically(files["pairs"], outcome.pairs.to_csv(index=False))
    write_atomically(files["winners"], winners.to_csv(index=False))
    total = seconds + sum(
        s.summary.get("wall_seconds", 0.0) for s in result.studies if s.state == "skipped"
    )
    write_atomically(files["report"], certificate_text(outcome, total, tables))
    return outcome, files


def tables_of(tabular: list[dict]) -> list[str]:
    """The tables the tabular studies read, each once."""
    return sorted({str(t["config"]["objective"].partition(":")[2]) for t in tabular})


def table_seeds(folder: str) -> list[int]:
    """The training seeds (draws) a table was built with."""
    from tuning.evaluation.tabular.table import table_settings

    return [int(s) for s in table_settings(Path(folder))["seeds"]]


def _losses(summaries: list[dict]) -> pd.DataFrame:
    """Test losses, one row per (dataset, seed) block, one column per backend; NaN: no model."""
    frame = pd.DataFrame(
        [
            {
                "dataset": s["dataset"],
                "seed": s["seed"],
                "backend": s["backend"],
                "test_loss": s.get("test_loss"),
            }
            for s in summaries
        ]
    )
    return frame.pivot(index=["dataset", "seed"], columns="backend", values="test_loss").astype(
        float
    )


def _winners(real: list[dict], tabular: list[dict]) -> pd.DataFrame:
    """Each real study's winner: its real test loss, and the table's test loss of the same
    configuration snapped to the grid, at the table seed the tabular study of that seed read."""
    from tuning.core.space import SearchSpace
    from tuning.evaluation.tabular.table import load_table

    rows = []
    for summary in real:
        if summary.get("best_params") is None:
            continue
        options = summary["config"]["model_options"]
        table = load_table(Path(options["table"]))
        space = SearchSpace.from_dict(summary["config"]["space"])
        snapped = table.snap(space.coerce(summary["best_params"]), space)
        entry = table.entry(snapped, table.table_seed(summary["seed"]))
        rows.append(
            {
                "backend": summary["backend"],
                "seed": summary["seed"],
                "params": snapped,
                "real_test_loss": summary["test_loss"],
                "table_test_loss": entry.test_loss,
            }
        )
    return pd.DataFrame(rows)
