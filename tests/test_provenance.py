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
