"""The speed settings change the time a trial takes, never its result; the Keras backend is chosen
before Keras is imported and recorded with the study."""

import json
import os
import subprocess
import sys

import keras
import pytest

from tuning.cli import main
from tuning.core.budget import BudgetMeter
from tuning.core.config import StudyConfig, StudyError
from tuning.core.results import StudyKey, TrialWriter, read_trials
from tuning.evaluation.keras.environment import (
    DEFAULT_KERAS_BACKEND,
    KerasBackendError,
    pin_threads,
    resolve_keras_backend,
    use_keras_backend,
)
from tuning.evaluation.keras.evaluator import KerasEvaluator
from tuning.evaluation.keras.trainer import TrainingProtocol
from tuning.run.study import run_study

BACKENDS = ["sklearn", "keras_tuner", "optuna", "hyperopt", "skopt", "random"]
PARAMS = {"n_hidden": 2, "n_neurons": 16, "learning_rate": 0.01}


@pytest.fixture
def compiled_steps(monkeypatch):
    """The ``steps_per_execution`` of every model compiled while the test runs."""
    seen: list[int] = []
    original = keras.Model.compile

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("steps_per_execution", 1))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", spy)
    return seen


def _objective(dataset, tmp_path, protocol):
    key = StudyKey("s", "test", dataset.name, 0)
    writer = TrialWriter(tmp_path / f"{protocol.fast}.csv", key)
    return KerasEvaluator(dataset, protocol, writer, seed=3, meter=BudgetMeter(None))


def test_one_call_per_epoch_gives_the_same_loss_history_bit_for_bit(
    tmp_path, california_small, compiled_steps
):
    histories = {}
    for fast in (False, True):
        protocol = TrainingProtocol(max_epochs=12, patience=3, fast=fast)
        objective = _objective(california_small, tmp_path, protocol)
        result = objective.evaluate(PARAMS)
        assert result.ok
        histories[fast] = result.history
        # the budget callback saw every epoch, also when an epoch is one call
        assert objective.meter.epochs == len(result.history["loss"]) == result.epochs

    n_batches = -(-len(california_small.X_train) // 32)
    assert compiled_steps == [1, n_batches] and n_batches > 1
    assert histories[True] == histories[False]  # exact float equality, every epoch
    assert set(histories[True]) == {"loss", "val_loss"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_finds_the_same_trials_with_and_without_the_speed_settings(
    backend, tmp_path, california_small, monkeypatch, compiled_steps
):
    tables = {}
    for fast in (False, True):
        slow_or_fast = TrainingProtocol(max_epochs=3, patience=2, fast=fast)
        monkeypatch.setattr(
            "tuning.evaluation.keras.kind.protocol_of", lambda _config, p=slow_or_fast: p
        )
        config = StudyConfig(backend=backend, trials=2, seed=1, out=str(tmp_path / str(fast)))
        run_study(config, dataset=california_small)
        tables[fast] = read_trials(config.study_dir)

    columns = ["trial", "status", "params", "val_loss", "epochs", "cum_epochs"]
    assert tables[True][columns].equals(tables[False][columns])
    assert tables[True]["status"].eq("complete").any()
    # the slow studies compiled one batch per call, the fast ones a whole epoch (the final
    # retraining included): the setting reached every backend's models
    n_slow = compiled_steps.index(next(s for s in compiled_steps if s > 1))
    assert set(compiled_steps[:n_slow]) == {1}
    assert min(compiled_steps[n_slow:]) > 1


def test_the_keras_backend_is_the_option_then_the_environment_then_the_default(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert resolve_keras_backend("jax") == "jax"
    assert resolve_keras_backend(None) == "tensorflow"
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.delitem(sys.modules, "keras")  # as before Keras is imported
    assert resolve_keras_backend(None) == DEFAULT_KERAS_BACKEND == "jax"
    with pytest.raises(KerasBackendError, match=r"keras_backend 'torch' is not supported"):
        resolve_keras_backend("torch")


def test_a_study_on_another_backend_than_the_imported_keras_is_refused(tmp_path, monkeypatch):
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    with pytest.raises(
        KerasBackendError, match=f"already imported Keras on '{keras.backend.backend()}'"
    ):
        use_keras_backend(other)
    config = StudyConfig(backend="random", trials=1, keras_backend=other, out=str(tmp_path))
    with pytest.raises(KerasBackendError, match=f"set KERAS_BACKEND={other}"):
        run_study(config)
    with pytest.raises(StudyError, match="keras_backend 'torch' is not supported"):
        StudyConfig(backend="random", keras_backend="torch")


def test_cli_refuses_an_unknown_keras_backend_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--backend", "random", "--keras-backend", "torch"])
    assert exit_info.value.code == 2
    assert "--keras-backend: invalid choice: 'torch'" in capsys.readouterr().err


def test_cli_runs_a_study_on_the_other_keras_backend(tmp_path):
    """The backend this test session does not import, in a process of its own."""
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    args = ["run", "--backend", "optuna", "--trials", "2", "--max-epochs", "2", "--max-rows", "200"]
    done = subprocess.run(
        [sys.executable, "-m", "tuning", *args, "--keras-backend", other, "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "california_optuna_s0" / "summary.json").read_text())
    assert summary["config"]["keras_backend"] == other
    assert summary["trials"] == 2 and summary["test_loss"] > 0


TRIALS_IN_A_PROCESS = """
import sys
from pathlib import Path
from tuning.evaluation.data import load_dataset
from tuning.evaluation.keras.evaluator import KerasEvaluator
from tuning.evaluation.keras.trainer import TrainingProtocol
from tuning.core.results import StudyKey, TrialWriter
data = load_dataset("california", download=False).head(200)
writer = TrialWriter(Path(sys.argv[1]) / "trials.csv", StudyKey("s", "test", data.name, 0))
objective = KerasEvaluator(data, TrainingProtocol(max_epochs=2), writer, seed=0)
statuses = [objective.evaluate(p).status for p in ({"n_hidden": 1}, {"n_hidden": 2})]
from tuning.core.config import StudyConfig
from tuning.run.study import run_study
summary = run_study(StudyConfig(backend="random", trials=1, max_epochs=2, out=sys.argv[1]), dataset=data)
import keras
keras.models.load_model(Path(sys.argv[1]) / summary["study"] / "best_model.keras")
print(statuses, "tensorflow" in sys.modules)
"""


@pytest.mark.one_keras_backend  # the process runs JAX whichever backend the session runs
def test_trials_on_jax_do_not_load_tensorflow(tmp_path):
    """`keras.utils.set_random_seed` imports TensorFlow to seed it, whatever the backend: seconds
    of the first trial's time, and of a seconds budget. On JAX the trials seed without it, and
    the winner is saved (and loads) without it."""
    done = subprocess.run(
        [sys.executable, "-c", TRIALS_IN_A_PROCESS, str(tmp_path)],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "['complete', 'complete'] False"


def test_pinning_threads_replaces_earlier_thread_flags_and_keeps_the_others(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=true")
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.setenv(name, "8")
    monkeypatch.setattr("tensorflow.config.threading.set_intra_op_parallelism_threads", print)
    monkeypatch.setattr("tensorflow.config.threading.set_inter_op_parallelism_threads", print)
    pin_threads(1)
    assert os.environ["XLA_FLAGS"].split() == [
        "--xla_dump_to=/tmp/x",
        "--xla_cpu_multi_thread_eigen=false",
        "intra_op_parallelism_threads=1",
    ]
    assert os.environ["OMP_NUM_THREADS"] == os.environ["TF_NUM_INTRAOP_THREADS"] == "1"
