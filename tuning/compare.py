"""Leaderboards over the studies found in a results folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd

from tuning.results import TRIALS_FILE, read_trials

log = logging.getLogger(__name__)
LEADERBOARD_FILE = "leaderboard.csv"
LEADERBOARD_COLUMNS = (
    "study",
    "backend",
    "dataset",
    "seed",
    "best_val_loss",
    "test_loss",
    "n_hidden",
    "n_neurons",
    "learning_rate",
    "trials",
    "epochs",
    "wall_seconds",
    "test_accuracy",
    "trials_failed",
    "search_seconds",
)


def find_studies(out: Path) -> list[Path]:
    """Study folders under ``out`` (any depth) that hold a finished study's summary."""
    return sorted(
        p.parent for p in Path(out).rglob("summary.json") if (p.parent / TRIALS_FILE).exists()
    )


def leaderboard(out: Path) -> pd.DataFrame:
    """One row per study, best test loss first within each dataset."""
    rows = []
    for study_dir in find_studies(out):
        summary = json.loads((study_dir / "summary.json").read_text(encoding="utf-8"))
        trials = read_trials(study_dir)
        params = summary.get("best_params") or {}
        rows.append(
            {
                "study": summary["study"],
                "backend": summary["backend"],
                "dataset": summary["dataset"],
                "seed": summary["seed"],
                "best_val_loss": summary.get("best_val_loss"),
                "test_loss": summary.get("test_loss"),
                "n_hidden": params.get("n_hidden"),
                "n_neurons": params.get("n_neurons"),
                "learning_rate": params.get("learning_rate"),
                "trials": len(trials),
                "epochs": int(trials["epochs"].sum()),
                "wall_seconds": summary.get("wall_seconds"),
                "test_accuracy": summary.get("test_accuracy"),
                "trials_failed": int((trials["status"] == "failed").sum()),
                "search_seconds": summary.get("search_seconds"),
            }
        )
    frame = pd.DataFrame(rows, columns=list(LEADERBOARD_COLUMNS))
    if frame.empty:
        return frame
    return frame.sort_values(
        ["dataset", "test_loss", "best_val_loss"], na_position="last", ignore_index=True
    )


def write_leaderboard(out: Path) -> tuple[pd.DataFrame, Path]:
    """Write ``OUT/leaderboard.csv`` atomically and return it with its path."""
    frame = leaderboard(out)
    if frame.empty:
        raise FileNotFoundError(f"no finished study (summary.json + trials.csv) under {out}")
    path = Path(out) / LEADERBOARD_FILE
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return frame, path


def all_trials(out: Path) -> pd.DataFrame:
    """Every trial row of every finished study under ``out``, in one frame."""
    frames = [read_trials(d) for d in find_studies(out)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
