import math

import hyperopt.pyll.stochastic
import keras_tuner as kt
import numpy as np
import optuna
import pytest
import skopt
from sklearn.model_selection import ParameterSampler

from tuning.core.space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpace,
    SpaceError,
    default_space,
)
from tuning.search.hyperopt_search import to_hyperopt
from tuning.search.keras_tuner_search import to_keras_tuner
from tuning.search.optuna_search import suggest
from tuning.search.sklearn_search import PREFIX, to_sklearn_distribution
from tuning.search.skopt_search import to_skopt

pytestmark = pytest.mark.one_keras_backend  # the space and its translations

N_SAMPLES = 200
MIXED = SearchSpace(
    (
        IntParam("n_hidden", 0, 3),
        IntParam("n_neurons", 1, 99),
        FloatParam("learning_rate", 3e-4, 3e-2, log=True),
        IntParam("width", 2, 512, log=True),
        FloatParam("dropout", 0.0, 0.5),
        CategoricalParam("activation", ("relu", "selu", "tanh")),
    )
)


def test_default_space_is_the_books():
    space = default_space()
    assert space.names == ["n_hidden", "n_neurons", "learning_rate"]
    n_hidden, n_neurons, lr = space.params
    assert (n_hidden.low, n_hidden.high) == (0, 3)
    assert (n_neurons.low, n_neurons.high) == (1, 99)
    assert (lr.low, lr.high, lr.log) == (3e-4, 3e-2, True)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: IntParam("n", 5, 1), "low .5. must be <= high .1."),
        (lambda: FloatParam("lr", 0.1, 0.1), "must be < high"),
        (lambda: FloatParam("lr", 0.0, 0.1, log=True), "log range needs low > 0"),
        (lambda: IntParam("n", 0, 10, log=True), "log range needs low > 0"),
        (lambda: FloatParam("lr", 0.0, math.inf), "finite"),
        (lambda: IntParam("n", 0.5, 3), "integer"),
        (lambda: CategoricalParam("act", ()), "must not be empty"),
        (lambda: CategoricalParam("act", ("a", "a")), "distinct"),
        (lambda: IntParam("not a name", 0, 1), "identifier"),
        (lambda: SearchSpace((IntParam("a", 0, 1), IntParam("a", 0, 2))), "distinct"),
        (lambda: SearchSpace(()), "at least one"),
    ],
)
def test_invalid_spaces_are_rejected_with_a_message(make, message):
    with pytest.raises(SpaceError, match=message):
        make()


def test_space_from_toml_tables():
    space = SearchSpace.from_dict(
        {
            "n_hidden": {"type": "int", "low": 1, "high": 4},
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
        }
    )
    assert space.names == ["n_hidden", "learning_rate", "activation"]
    with pytest.raises(SpaceError, match="space.x.type"):
        SearchSpace.from_dict({"x": {"type": "normal"}})
    with pytest.raises(SpaceError, match="space.x"):
        SearchSpace.from_dict({"x": {"type": "int", "low": 1, "hi": 2}})


def test_coerce_turns_library_scalars_into_python_values():
    values = MIXED.coerce(
        {
            "n_hidden": np.float64(2.0),
            "n_neurons": np.int64(42),
            "learning_rate": np.float32(0.001),
            "width": 8.0,
            "dropout": np.float64(0.25),
            "activation": np.str_("tanh"),
        }
    )
    assert [type(values[n]) for n in MIXED.names] == [int, int, float, int, float, str]
    assert MIXED.contains(values)


def _check(samples: list[dict]) -> None:
    assert len(samples) == N_SAMPLES
    for sample in samples:
        values = MIXED.coerce(sample)
        assert MIXED.contains(values), values
    # the log range is really sampled in log space: about half of the draws sit below the
    # geometric mean (it would be ~9% for a uniform draw)
    lrs = np.array([MIXED.coerce(s)["learning_rate"] for s in samples])
    below = np.mean(lrs < math.sqrt(3e-4 * 3e-2))
    assert 0.35 < below < 0.65
    # every integer value of a small range shows up
    assert {MIXED.coerce(s)["n_hidden"] for s in samples} == {0, 1, 2, 3}
    assert {MIXED.coerce(s)["activation"] for s in samples} == {"relu", "selu", "tanh"}


def test_optuna_translation_stays_in_bounds():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    samples = []
    for _ in range(N_SAMPLES):
        trial = study.ask()
        samples.append({p.name: suggest(trial, p) for p in MIXED})
        study.tell(trial, 0.0)
    assert all(type(s["n_neurons"]) is int for s in samples)
    _check(samples)


def test_hyperopt_translation_stays_in_bounds():
    space = {p.name: to_hyperopt(p) for p in MIXED}
    rng = np.random.default_rng(0)
    samples = [hyperopt.pyll.stochastic.sample(space, rng=rng) for _ in range(N_SAMPLES)]
    assert all(float(s["width"]).is_integer() for s in samples)
    _check(samples)


def test_skopt_translation_stays_in_bounds():
    space = skopt.space.Space([to_skopt(p) for p in MIXED])
    samples = [dict(zip(MIXED.names, x, strict=True)) for x in space.rvs(N_SAMPLES, random_state=0)]
    _check(samples)


def test_sklearn_translation_stays_in_bounds():
    dists = {p.name: to_sklearn_distribution(p) for p in MIXED}
    samples = list(ParameterSampler(dists, n_iter=N_SAMPLES, random_state=0))
    assert all(type(s["n_neurons"]) is int for s in samples)
    _check(samples)


def test_keras_tuner_translation_stays_in_bounds():
    hp = kt.HyperParameters()
    for p in MIXED:
        to_keras_tuner(hp, p)
    samples = [{h.name: h.random_sample(seed) for h in hp.space} for seed in range(N_SAMPLES)]
    _check(samples)


def test_sklearn_translation_reproduces_the_books_candidates():
    # The book's RandomizedSearchCV (np.arange(1, 100), reciprocal(3e-4, 3e-2)) with
    # random_state=42 proposes its winner among the first 10 candidates.
    dists = {PREFIX + p.name: to_sklearn_distribution(p) for p in default_space()}
    candidates = list(ParameterSampler(dists, n_iter=10, random_state=42))
    winners = [
        c for c in candidates if c[PREFIX + "n_hidden"] == 2 and c[PREFIX + "n_neurons"] == 42
    ]
    assert len(winners) == 1
    assert winners[0][PREFIX + "learning_rate"] == pytest.approx(0.00336, rel=1e-2)


@pytest.mark.parametrize(
    ("choices", "says"),
    [
        ([1, "a"], "choices mix integers and strings"),
        ([1, 2.5], "choices mix floats and integers"),
        ([True, 0], "choices mix booleans and integers"),
        ([[1, 2], [3]], "choices must be strings, numbers or booleans"),  # before: unhashable
        ([None, 1], "choices must be strings, numbers or booleans"),
        ([{"a": 1}], "choices must be strings, numbers or booleans"),
    ],
)
def test_a_categorical_every_library_can_hold_one_type_of_plain_values(choices, says):
    with pytest.raises(SpaceError, match=f"^act: {says}"):
        SearchSpace.from_dict({"act": {"type": "categorical", "choices": choices}})


def test_each_choice_holds_every_choice_at_both_ends_of_the_numbers():
    space = SearchSpace.from_dict(
        {
            "n_hidden": {"type": "int", "low": 0, "high": 2},
            "act": {"type": "categorical", "choices": ["relu", "tanh"]},
            "opt": {"type": "categorical", "choices": ["sgd", "adam", "rmsprop"]},
        }
    )
    built = space.each_choice()
    assert built == [
        {"n_hidden": 0, "act": "relu", "opt": "sgd"},
        {"n_hidden": 0, "act": "tanh", "opt": "sgd"},
        {"n_hidden": 0, "act": "relu", "opt": "adam"},
        {"n_hidden": 0, "act": "relu", "opt": "rmsprop"},
        {"n_hidden": 2, "act": "relu", "opt": "sgd"},
        {"n_hidden": 2, "act": "tanh", "opt": "sgd"},
        {"n_hidden": 2, "act": "relu", "opt": "adam"},
        {"n_hidden": 2, "act": "relu", "opt": "rmsprop"},
    ]
    numbers_only = SearchSpace.from_dict({"n_hidden": {"type": "int", "low": 1, "high": 1}})
    assert numbers_only.each_choice() == [{"n_hidden": 1}]  # one build, not two alike
