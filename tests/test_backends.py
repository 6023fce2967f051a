"""Every backend runs a real, tiny study on real data through its library's own loop."""

import dataclasses
import functools
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tuning.evaluation.keras.model
from tuning.core.config import StudyConfig, StudyError
from tuning.core.results import read_trials
from tuning.core.space import default_space
from tuning.evaluation.keras.model import build_model
from tuning.run.study import run_study
from tuning.search import BackendError, Budget, available_backends, create_backend

BACKENDS = ["sklearn", "keras_tuner", "optuna", "hyperopt", "skopt", "random"]
TRIALS, MAX_EPOCHS = 3, 3


# The columns trials.csv had before rows took their parameter columns from the space: the book's
# space must still give exactly these.
BOOK_TRIAL_COLUMNS = (
    "study", "backend", "dataset", "seed", "trial", "status",
    "n_hidden", "n_neurons", "learning_rate", "val_loss", "epochs", "fit_seconds",
)  # fmt: skip


@pytest.fixture
def factory_calls(monkeypatch):
    """Spy on the shared factory wherever the harness calls it; record the argument types."""
    calls = []

    @functools.wraps(build_model)
    def spy(*args, **kwargs):
        calls.append(kwargs)
        return build_model(*args, **kwargs)

    # the default factory, as a study loads it (`tuning.evaluation.keras.factory.load_factory`)
    monkeypatch.setattr(tuning.evaluation.keras.model, "build_model", spy)
    return calls


def test_every_backend_is_registered():
    assert set(BACKENDS) <= set(available_backends())


def test_unknown_backend_and_option_are_clear_errors():
    with pytest.raises(BackendError, match="'nevergrad' is unknown; choose one of"):
        create_backend("nevergrad")
    with pytest.raises(BackendError, match="does not take options \\['folds'\\]"):
        create_backend("optuna", folds=3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_runs_a_real_study(backend, tmp_path, california_small, factory_calls):
    config = StudyConfig(
        backend=backend,
        dataset="california",
        trials=TRIALS,
        max_epochs=MAX_EPOCHS,
        seed=1,
        out=str(tmp_path),
    )
    summary = run_study(config, dataset=california_small)

    rows = read_trials(config.study_dir)
    assert tuple(rows.columns[: len(BOOK_TRIAL_COLUMNS)]) == BOOK_TRIAL_COLUMNS
    assert len(rows) == TRIALS
    assert list(rows["trial"]) == list(range(TRIALS))
    assert set(rows["study"]) == {"california_" + backend + "_s1"}
    assert set(rows["backend"]) == {backend} and set(rows["seed"]) == {1}
    assert set(rows["status"]) == {"complete"}
    space = default_space()
    for _, row in rows.iterrows():
        params = json.loads(row["params"])
        assert space.contains(space.coerce(params))
        assert (row["n_hidden"], row["n_neurons"]) == (params["n_hidden"], params["n_neurons"])
        assert row["learning_rate"] == pytest.approx(params["learning_rate"])
    folds = 3 if backend == "sklearn" else 1
    assert rows["epochs"].between(1, MAX_EPOCHS * folds).all()
    assert (rows["fit_seconds"] > 0).all()
    assert list(rows["cum_epochs"]) == list(rows["epochs"].cumsum())
    assert rows["val_loss"].notna().all()
    if backend == "sklearn":  # three folds of early-stopped training per candidate
        assert (rows["epochs"] % 3 == 0).all() or (rows["epochs"] > MAX_EPOCHS).all()

    # the factory got plain Python values for every trial (and the final retraining)
    trial_calls = [c for c in factory_calls if "n_hidden" in c]
    assert len(trial_calls) >= TRIALS
    for call in trial_calls:
        assert type(call["n_hidden"]) is int and type(call["n_neurons"]) is int
        assert isinstance(call["learning_rate"], float)

    best = rows.loc[rows["val_loss"].idxmin()]
    assert summary["best_val_loss"] == pytest.approx(best["val_loss"])
    assert summary["best_params"] == json.loads(best["params"])
    assert summary["trials"] == TRIALS and summary["epochs"] == rows["epochs"].sum()
    assert math.isfinite(summary["test_loss"]) and summary["test_accuracy"] is None
    model = keras.models.load_model(config.study_dir / "best_model.keras")
    assert (
        model.count_params()
        == build_model(
            summary["best_params"]["n_hidden"], summary["best_params"]["n_neurons"]
        ).count_params()
    )
    test = model.evaluate(california_small.X_test, california_small.y_test, verbose=0)
    assert test == pytest.approx(summary["test_loss"], rel=1e-5)
    on_disk = json.loads((config.study_dir / "summary.json").read_text())
    assert on_disk["test_loss"] == summary["test_loss"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_diverging_trials_are_recorded_failed_and_the_study_ends_cleanly(
    backend, tmp_path, california_small
):
    # SGD at these rates on a 3-layer MLP overflows to NaN within a couple of epochs
    space = {
        "n_hidden": {"type": "int", "low": 3, "high": 3},
        "n_neurons": {"type": "int", "low": 90, "high": 99},
        "learning_rate": {"type": "float", "low": 5.0, "high": 10.0, "log": True},
    }
    config = StudyConfig(backend=backend, trials=2, max_epochs=3, out=str(tmp_path), space=space)
    summary = run_study(config, dataset=california_small)
    rows = read_trials(config.study_dir)
    assert len(rows) == 2
    assert set(rows["status"]) == {"failed"}
    assert rows["val_loss"].isna().all()
    assert rows["error"].str.contains("diverged").all()
    assert "no trial completed" in summary["error"]
    assert not (config.study_dir / "best_model.keras").exists()


@pytest.mark.parametrize("backend", ["sklearn", "keras_tuner"])
def test_classification_study(backend, tmp_path, digits_small):
    config = StudyConfig(
        backend=backend, dataset="digits", trials=2, max_epochs=3, out=str(tmp_path)
    )
    summary = run_study(config, dataset=digits_small)
    rows = read_trials(config.study_dir)
    assert len(rows) == 2 and set(rows["status"]) == {"complete"}
    # cross-entropy of a 10-class model that learnt a little: below log(10)*2, above 0
    assert rows["val_loss"].between(0, 2 * math.log(10)).all()
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["test_loss"] > 0


def test_sklearn_holdout_scores_on_the_validation_split(tmp_path, california_small):
    config = StudyConfig(
        backend="sklearn",
        trials=2,
        max_epochs=3,
        out=str(tmp_path),
        backend_options={"cv": "holdout"},
    )
    run_study(config, dataset=california_small)
    rows = read_trials(config.study_dir)
    assert rows["epochs"].between(1, 3).all()  # one fit per candidate, not three


def test_sklearn_rejects_a_bad_cv(tmp_path, california_small):
    config = StudyConfig(
        backend="sklearn",
        trials=2,
        max_epochs=2,
        out=str(tmp_path),
        backend_options={"cv": "folds"},
    )
    with pytest.raises(ValueError, match="cv must be an integer >= 2 or 'holdout'"):
        run_study(config, dataset=california_small)


def test_a_finished_study_is_not_run_again_without_fresh(tmp_path, california_small):
    config = StudyConfig(backend="optuna", trials=2, max_epochs=2, out=str(tmp_path))
    first = run_study(config, dataset=california_small)
    table = (config.study_dir / "trials.csv").read_bytes()
    assert run_study(config, dataset=california_small) == first  # nothing trained again
    assert (config.study_dir / "trials.csv").read_bytes() == table
    other = dataclasses.replace(config, trials=3)
    with pytest.raises(StudyError, match=r"other settings \(trials: 2 -> 3\): move that folder"):
        run_study(other, dataset=california_small)
    again = run_study(other, dataset=california_small, fresh=True)
    assert len(read_trials(config.study_dir)) == 3 and again["trials_from_earlier_runs"] == 0


def test_hyperband_promotes_the_best_trial_and_records_only_the_epochs_it_trained(
    tmp_path, california_small, monkeypatch
):
    # max_epochs=3, factor=3: one bracket of 3 configurations at 1 epoch, then the best one
    # continues from its saved weights (epoch 1) to epoch 3: two more epochs, not three.
    weights_in, weights_out = [], []
    train = tuning.evaluation.keras.evaluator.KerasEvaluator.train

    def watched_train(self, model, params, **kwargs):
        weights_in.append(model.get_weights())
        result = train(self, model, params, **kwargs)
        weights_out.append(model.get_weights())
        return result

    monkeypatch.setattr(tuning.evaluation.keras.evaluator.KerasEvaluator, "train", watched_train)
    config = StudyConfig(backend="keras_tuner", trials=4, max_epochs=3, out=str(tmp_path))
    run_study(config, dataset=california_small)
    rows = read_trials(config.study_dir)
    assert list(rows["epochs"]) == [1, 1, 1, 2]
    first_round = rows.iloc[:3]
    parent = int(first_round["val_loss"].idxmin())
    assert rows.iloc[3]["params"] == rows.iloc[parent]["params"]
    # it resumed from the weights its parent ended with, not from a new initialisation
    for promoted, saved in zip(weights_in[3], weights_out[parent], strict=True):
        np.testing.assert_array_equal(promoted, saved)
    assert not np.array_equal(weights_in[3][0], weights_in[parent][0])


def test_a_warm_start_that_cannot_load_its_weights_is_a_failed_row_not_a_lost_trial(
    tmp_path, california_small, monkeypatch
):
    # Keras Tuner catches a trial's exception and goes on: the harness records the failure
    def unreadable(self, path):
        raise ValueError("A total of 3 objects could not be loaded")

    monkeypatch.setattr(keras.Model, "load_weights", unreadable)
    config = StudyConfig(backend="keras_tuner", trials=4, max_epochs=3, out=str(tmp_path))
    run_study(config, dataset=california_small)
    rows = read_trials(config.study_dir)
    assert list(rows["status"]) == ["complete"] * 3 + ["failed"]
    parent = int(rows.iloc[:3]["val_loss"].idxmin())
    assert rows.iloc[3]["error"] == (
        f"warm start from trial {parent} failed: ValueError: A total of 3 objects could not be "
        "loaded"
    )
    assert rows.iloc[3]["epochs"] == 0


@pytest.mark.parametrize(
    ("trials", "requested", "expected"),
    [
        (1, None, 1),
        (3, None, 1),
        (10, None, 3),
        (20, None, 6),
        (30, None, 10),
        (200, None, 10),
        (10, 7, 7),
    ],
)
def test_random_start_leaves_a_small_budget_model_based_trials(trials, requested, expected):
    assert Budget(trials).random_start(requested) == expected


THIRD_PARTY_BACKEND = """
import math
import os
import subprocess
import sys
import random

from tuning.search import SearchBackend
from tuning.core.space import CategoricalParam, FloatParam, IntParam


def draw(rng, param):
    if isinstance(param, IntParam):
        return rng.randint(param.low, param.high)
    if isinstance(param, FloatParam) and param.log:
        return math.exp(rng.uniform(math.log(param.low), math.log(param.high)))
    if isinstance(param, FloatParam):
        return rng.uniform(param.low, param.high)
    return rng.choice(param.choices)


class PlainRandom(SearchBackend):
    name = "plain_random"

    def run(self, objective, space, budget, seed, workdir):
        rng = random.Random(seed)
        for _ in range(budget.trials):
            objective({p.name: draw(rng, p) for p in space})
"""


def test_a_third_party_package_adds_a_backend_through_its_entry_point(
    tmp_path, monkeypatch, california_small
):
    # An installed distribution, as pip would leave it: a module and a dist-info folder whose
    # entry_points.txt registers the backend. Nothing in this repository is edited.
    site = tmp_path / "site"
    (site / "plain_random_backend-0.1.dist-info").mkdir(parents=True)
    (site / "plain_random_backend.py").write_text(THIRD_PARTY_BACKEND)
    (site / "plain_random_backend-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: plain-random-backend\nVersion: 0.1\n"
    )
    (site / "plain_random_backend-0.1.dist-info" / "entry_points.txt").write_text(
        "[tuning.backends]\nplain_random = plain_random_backend:PlainRandom\n"
    )
    monkeypatch.syspath_prepend(str(site))
    assert "plain_random" in available_backends()
    config = StudyConfig(backend="plain_random", trials=2, max_epochs=2, out=str(tmp_path))
    # (written to the first interface, run(objective, ...): it runs, and is told what to change)
    with pytest.warns(DeprecationWarning, match=r"define search\(self, task\) instead"):
        summary = run_study(config, dataset=california_small)
    rows = read_trials(config.study_dir)
    assert list(rows["backend"]) == ["plain_random"] * 2
    assert set(rows["status"]) == {"complete"}
    assert summary["backend"] == "plain_random" and math.isfinite(summary["test_loss"])


PLUGINS = {
    "broken_plugin.py": "from tuning.no_such_module import SearchBackend\n",
    "not_a_backend.py": "thing = 42\n",
    "old_plugin.py": (  # written to the docs of the release before the layers
        "from tuning.backends import SearchBackend\n"
        "from tuning.space import IntParam\n\n\n"
        "class OldBackend(SearchBackend):\n"
        '    """A backend of the first interface."""\n\n'
        '    name = "oldlib"\n\n'
        "    def run(self, objective, space, budget, seed, workdir):\n"
        "        while not objective.meter.exhausted:\n"
        "            objective(space.sample(seed))\n"
    ),
    "midway_plugin.py": (  # its own bug after its first trial
        "from tuning.search import SearchBackend\n\n\n"
        "class Midway(SearchBackend):\n"
        '    name = "midway"\n\n'
        "    def search(self, task):\n"
        '        task.evaluator.evaluate({p.name: p.low if hasattr(p, "low") else p.choices[0]'
        " for p in task.space})\n"
        '        raise KeyError("best_so_far")\n'
    ),
}


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> dict[str, str]:
    """Three plugin packages installed beside the harness (a distribution's metadata on the
    path): one that fails to import, one that registers something else, one written to the old
    docs; the environment that sees them."""
    site = tmp_path_factory.mktemp("site")
    for name, text in PLUGINS.items():
        (site / name).write_text(text)
    info = site / "plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tuning.backends]\nbroken = broken_plugin:Backend\n"
        "notabackend = not_a_backend:thing\noldlib = old_plugin:OldBackend\n"
        "midway = midway_plugin:Midway\n"
    )
    return {**os.environ, "PYTHONPATH": str(site), "PYTHONWARNINGS": "always::DeprecationWarning"}


def _tuning(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuning", *argv], env=env, capture_output=True, text=True
    )


@pytest.mark.one_keras_backend  # plugins and messages, not Keras
def test_a_broken_plugin_is_listed_unavailable_and_breaks_nothing(plugins) -> None:
    listed = _tuning(plugins, "backends")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert lines["broken"].endswith(
        "unavailable: backend 'broken' (package plugins) cannot be loaded: "
        "ModuleNotFoundError: No module named 'tuning.no_such_module'"
    )
    assert "not_a_backend:thing is not a SearchBackend subclass" in lines["notabackend"]
    assert "optuna:tpe" in lines and "unavailable" not in lines["optuna:tpe"]
    # the old docs' imports work, and say where the names live now
    assert "unavailable" not in lines["oldlib"]
    assert lines["midway"].endswith("(no description)")  # (a class with no docstring)
    assert "tuning.space is deprecated: import the same names from tuning.core.space" in (
        listed.stderr
    )


@pytest.mark.one_keras_backend  # plugins and messages, not Keras
def test_a_study_naming_a_broken_plugin_is_refused_naming_its_package(plugins, tmp_path) -> None:
    ran = _tuning(
        plugins, "run", "--backend", "broken", "--dataset", "iris", "--out", str(tmp_path)
    )
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert ran.stderr.strip().splitlines()[-1] == (
        "error: backend 'broken' (package plugins) cannot be loaded: ModuleNotFoundError: No "
        "module named 'tuning.no_such_module'"
    )
    defaults = subprocess.run(
        [sys.executable, "-c", "from tuning.search import default_backends as d; print(d())"],
        env=plugins,
        capture_output=True,
        text=True,
    )
    assert "broken" not in defaults.stdout and "'oldlib'" in defaults.stdout
    assert "left out of the default backends" in defaults.stderr


@pytest.mark.one_keras_backend  # plugins and messages, not Keras
def test_a_plugin_whose_search_raises_ends_in_one_line_and_keeps_its_trials(
    plugins, tmp_path
) -> None:
    common = ["--dataset", "iris", "--max-epochs", "2", "--trials", "3", "--out", str(tmp_path)]
    # the old docs' plugin calls a space.sample that never existed; this one fails after a trial
    for backend, error in [
        ("oldlib", "AttributeError: 'SearchSpace' object has no attribute 'sample'"),
        ("midway", "KeyError: 'best_so_far'"),
    ]:
        ran = _tuning(plugins, "run", "--backend", backend, *common)
        assert ran.returncode == 2 and "Traceback" not in ran.stderr, ran.stderr
        assert ran.stderr.strip().splitlines()[-1] == (
            f"error: backend {backend!r} (package plugins) failed in its search: {error}; the "
            "trials it finished are kept: fix the package, then run again to resume"
        )
    kept = read_trials(tmp_path / "iris_midway_s0")
    assert list(kept["status"]) == ["complete"]


@pytest.mark.one_keras_backend
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("from tuning.space import IntParam, SearchSpace", "tuning.core.space"),
        ("from tuning.study import save_model, run_study", "tuning.evaluation.keras.winner"),
        (
            "from tuning.sim_to_real import build_on_grid",
            "tuning.evaluation.keras.snapping:build_on_grid",
        ),
    ],
)
def test_the_import_paths_of_earlier_docs_work_and_warn(old, new) -> None:
    imported = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-c", old],
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr
    assert "DeprecationWarning" in imported.stderr and new in imported.stderr
