"""Studies and trials of a results folder in MLflow: an experiment per folder, a run per study,
a nested run per trial.

- The study's run: backend, algorithm, seed, task, budget, protocol and library versions as
  params; once the study finished, its best validation and test losses as metrics and its
  ``summary.json``, ``trials.csv`` and winner's model as artifacts.
- A trial's run (nested under its study's): its configuration as params, its validation loss
  per epoch as metric steps where the row recorded them (``curve``), its result (the row's loss)
  as ``best_val_loss``, epochs and seconds, and its status (complete: FINISHED, failed: FAILED,
  pruned: KILLED, and a tag).

Logging is a sync of the folder: what MLflow holds already (tagged with the study and trial) is
not logged again, so logging a folder twice, or while it runs (`LiveLog`), duplicates nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning.core.errors import StudyError, first_line
from tuning.core.files import MLFLOW_FOLDER, MLFLOW_STORE, SUMMARY_FILE
from tuning.core.results import TRIALS_FILE
from tuning.core.urls import redact, without_password
from tuning.export.folders import StudyRecord, curve_losses, finite, row_params, study_records

log = logging.getLogger(__name__)
MODEL_FILE = "best_model.keras"
KIND, STUDY, TRIAL = "tuning_kind", "tuning_study", "tuning_trial"
FINISHED = "tuning_finished"  # the digest of the summary logged
ROW = "tuning_row"  # the digest of the row a trial's run holds
RUN_STATUS = {"complete": "FINISHED", "failed": "FAILED", "pruned": "KILLED"}
# A trial run's metrics from its row, beside its per-epoch ``val_loss``: metric <- column.
RESULT_METRICS = {
    "best_val_loss": "val_loss",
    "epochs": "epochs",
    "fit_seconds": "fit_seconds",
    "cum_epochs": "cum_epochs",
    "cum_seconds": "cum_seconds",
}
SETTINGS = ("dataset", "objective", "budget_epochs", "budget_seconds", "trials", "max_epochs")
SETTINGS += ("batch_size", "patience", "workers", "trainer", "keras_backend", "max_rows")


@dataclass
class Synced:
    """What one sync logged: new study runs, new trial runs, studies it marked finished."""

    studies: int = 0
    trials: int = 0
    finished: int = 0


def tracking_uri(out: Path, uri: str | None) -> str:
    """``uri``, or the local store in the results folder when none is given."""
    return uri or f"sqlite:///{(Path(out) / MLFLOW_FOLDER / MLFLOW_STORE).resolve()}"


class MlflowLog:
    """The MLflow experiment of one results folder (named by its absolute path), at ``uri``."""

    def __init__(self, out: Path, uri: str | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise StudyError(
                "--mlflow needs MLflow: pip install 'tuning[mlflow]' (or pip install mlflow)"
            ) from None
        self.out = Path(out).resolve()
        self.uri = tracking_uri(self.out, uri)
        if uri is None:
            (self.out / MLFLOW_FOLDER).mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        name = str(self.out)
        try:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                local = self.uri.startswith("sqlite:")
                location = (self.out / MLFLOW_FOLDER / "artifacts").as_uri() if local else None
                self.experiment = self.client.create_experiment(name, artifact_location=location)
            else:
                self.experiment = found.experiment_id
        except Exception as exc:
            raise StudyError(self.failure(exc)) from None

    def failure(self, exc: BaseException) -> str:
        """An MLflow error in one line, the URI's secrets shown as ``***``."""
        return f"--mlflow {without_password(self.uri)}: {redact(first_line(exc), self.uri)}"

    def sync(self) -> Synced:
        """Log what the folder holds and MLflow does not yet. A trial's run that is not there
        whole (a sync cut off after creating it: still RUNNING) or that holds another row (the
        study was run again with --fresh) is logged again, and so is a summary that changed."""
        studies = {r.data.tags[STUDY]: r for r in self._runs("study")}
        logged = {(r.data.tags[STUDY], int(r.data.tags[TRIAL])): r for r in self._runs("trial")}
        synced = Synced()
        for record in study_records(self.out):
            run = studies.get(record.name)
            if run is None:
                run_id = self._study_run(record)
                synced.studies += 1
            else:
                run_id = run.info.run_id
            for row in record.trials.to_dict("records"):
                earlier = logged.get((record.name, int(row["trial"])))
                if earlier is not None and (
                    earlier.info.status != "RUNNING" and earlier.data.tags.get(ROW) == _digest(row)
                ):
                    continue
                if earlier is not None:
                    self.client.delete_run(earlier.info.run_id)
                self._trial_run(record, row, run_id)
                synced.trials += 1
            finished = run is not None and run.data.tags.get(FINISHED) == _digest(record.summary)
            if record.summary is not None and not finished:
                self._finish(record, run_id)
                synced.finished += 1
        return synced

    def _runs(self, kind: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment],
                filter_string=f"tags.`{KIND}` = '{kind}'",
                max_results=1000,
                page_token=token,
            )
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def _study_run(self, record: StudyRecord) -> str:
        from mlflow.entities import Param

        settings = record.settings
        tags = {KIND: "study", STUDY: record.name, "backend": str(settings.get("backend"))}
        run = self.client.create_run(self.experiment, run_name=record.name, tags=tags)
        params = {"backend": settings.get("backend"), "algorithm": record.algorithm}
        params |= {"seed": settings.get("seed"), "study": record.name}
        params |= {k: settings.get(k) for k in SETTINGS if settings.get(k) is not None}
        params["space"] = json.dumps(settings.get("space") or "the book's")
        algorithm = (record.summary or settings).get("algorithm")
        versions = algorithm.get("versions", {}) if isinstance(algorithm, dict) else {}
        params |= {f"version.{k}": v for k, v in versions.items()}
        self.client.log_batch(
            run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()]
        )
        return run.info.run_id

    def _trial_run(self, record: StudyRecord, row: dict[str, Any], parent: str) -> None:
        from mlflow.entities import Metric, Param

        status = str(row.get("status"))
        trial = int(row["trial"])
        tags = {KIND: "trial", STUDY: record.name, TRIAL: str(trial), "status": status}
        tags[ROW] = _digest(row)
        tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(
            self.experiment, run_name=f"{record.name} trial {trial}", tags=tags
        )
        params = row_params(row)
        metrics = [
            Metric("val_loss", value, 0, step)
            for step, value in enumerate(curve_losses(row.get("curve")), start=1)
            if value is not None
        ]
        last = int(finite(row.get("epochs")) or 0)
        if not metrics and (value := finite(row.get("val_loss"))) is not None:
            metrics.append(Metric("val_loss", value, 0, last))  # (no curve: its loss at its end)
        # the trial's result, whatever its curve: the row's loss, as the study's runs name theirs
        for name, column in RESULT_METRICS.items():
            if (value := finite(row.get(column))) is not None:
                metrics.append(Metric(name, value, 0, last))
        self.client.log_batch(
            run.info.run_id,
            params=[Param(k, str(v)) for k, v in sorted(params.items())],
            metrics=metrics,
        )
        self.client.set_terminated(run.info.run_id, RUN_STATUS.get(status, "FAILED"))

    def _finish(self, record: StudyRecord, run_id: str) -> None:
        from mlflow.entities import Metric

        summary = record.summary or {}
        metrics = [
            Metric(name, value, 0, 0)
            for name in ("best_val_loss", "test_loss", "test_accuracy", "regret", "wall_seconds")
            if (value := finite(summary.get(name))) is not None
        ]
        self.client.log_batch(run_id, metrics=metrics)
        for name in (SUMMARY_FILE, TRIALS_FILE, MODEL_FILE):
            path = record.folder / name
            if path.is_file() and not path.is_symlink():
                self.client.log_artifact(run_id, str(path))
        self.client.set_tag(run_id, FINISHED, _digest(summary))
        self.client.set_terminated(run_id, "FINISHED")


class LiveLog:
    """`MlflowLog.sync` every ``interval`` seconds while a benchmark runs (a thread of the
    benchmark's process), and once more at its end: trials appear in MLflow as they finish.
    A failed sync is a warning: the benchmark goes on, and the next sync catches up."""

    def __init__(self, target: MlflowLog, interval: float = 10.0) -> None:
        self.target = target
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlflow-sync", daemon=True)

    def __enter__(self) -> LiveLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sync_once()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sync_once()

    def _sync_once(self) -> None:
        try:
            synced = self.target.sync()
        except Exception as exc:
            log.warning("mlflow: sync failed: %s", self.target.failure(exc))
            return
        if synced.trials or synced.finished:
            log.info(
                "mlflow: %d trials, %d finished studies logged to %s",
                synced.trials,
                synced.finished,
                without_password(self.target.uri),
            )


# The way a run is logged from its row or summary: a run logged another way (an earlier
# release's) differs in digest, so a sync logs it again this way.
LOGGED_AS = 2


def _digest(values: Any) -> str:
    """A short fingerprint of a row or a summary, and of `LOGGED_AS`, to tell a changed one, or
    one logged another way, from the one logged."""
    text = json.dumps([LOGGED_AS, values], sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
