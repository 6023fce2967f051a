"""A verdict names what produced it: every argument of Optuna's samplers and pruners set and
recorded, and the libraries' versions."""

from importlib.metadata import version

import optuna
import pytest

from tuning.core.budget import Budget
from tuning.core.versions import library_versions
from tuning.search.optuna_search import OptunaBackend

pytestmark = pytest.mark.one_keras_backend  # no training


@pytest.mark.parametrize("algorithm", ["tpe", "cmaes", "qmc", "random", "tpe+hyperband"])
def test_every_sampler_argument_is_set_and_recorded(algorithm):
    backend = OptunaBackend(algorithm=algorithm)
    settings = backend.settings(Budget(trials=10), max_epochs=9)
    arguments = settings["sampler_arguments"]
    sampler = backend._sampler(0, settings["n_startup_trials"])
    assert settings["sampler"] == type(sampler).__name__
    if algorithm.startswith("tpe"):
        # Optuna 4 defaulted both to False, Optuna 5 to True: set, not inherited
        assert arguments["multivariate"] is True and arguments["constant_liar"] is True
        assert sampler._multivariate is True and sampler._constant_liar is True
        assert (arguments["n_ei_candidates"], arguments["prior_weight"]) == (24, 1.0)
        assert sampler._n_startup_trials == arguments["n_startup_trials"] == 3
    if algorithm == "qmc":
        assert arguments == {
            "qmc_type": "sobol",
            "scramble": True,
            "warn_asynchronous_seeding": False,
        }
    if algorithm == "tpe+hyperband":
        assert settings["pruner_arguments"] == {
            "min_resource": 1,
            "max_resource": 9,
            "reduction_factor": 3,
            "bootstrap_count": 0,
        }
    else:
        assert "pruner_arguments" not in settings


def test_the_versions_recorded_are_the_installed_ones():
    versions = library_versions()
    assert versions["optuna"] == optuna.__version__ == version("optuna")
    assert versions["tuning"] == version("tuning") and versions["python"].count(".") == 2


@pytest.mark.parametrize("algorithm", ["gp", "forest", "gbrt"])
def test_skopts_explicit_arguments_are_what_its_auto_would_resolve(algorithm):
    import skopt

    from tuning.search.skopt_search import SkoptBackend, _surrogate

    settings = SkoptBackend(algorithm=algorithm).settings(Budget(trials=10), max_epochs=9)
    auto = skopt.Optimizer(
        dimensions=[(0.0, 1.0), (1, 5)],
        base_estimator=_surrogate(settings["base_estimator"], 0),
        acq_func=settings["acq_func"],
        random_state=0,
    )
    assert settings["acq_optimizer"] == auto.acq_optimizer
    assert settings["acq_optimizer_kwargs"]["n_points"] == auto.n_points
    assert settings["acq_optimizer_kwargs"]["n_restarts_optimizer"] == auto.n_restarts_optimizer
    assert settings["acq_func_kwargs"] == {"xi": 0.01, "kappa": 1.96}


def test_hyperopts_and_keras_tuners_arguments_are_recorded():
    from tuning.search.hyperopt_search import HyperoptBackend
    from tuning.search.keras_tuner_search import KerasTunerBackend

    tpe = HyperoptBackend(algorithm="tpe").settings(Budget(trials=10), max_epochs=9)
    assert tpe["suggest_arguments"] == {
        "n_startup_jobs": tpe["n_startup_jobs"],
        "n_EI_candidates": 24,
        "gamma": 0.25,
        "prior_weight": 1.0,
    }
    bayesian = KerasTunerBackend(algorithm="bayesian").settings(Budget(trials=10), max_epochs=9)
    assert (bayesian["alpha"], bayesian["beta"], bayesian["max_retries_per_trial"]) == (
        1e-4,
        2.6,
        0,
    )
