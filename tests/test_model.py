import ast
import importlib.util
import random
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tuning import build_model

MODEL_SOURCE = Path(__file__).resolve().parents[1] / "tuning" / "evaluation" / "keras" / "model.py"


def dense_units(model: keras.Model) -> list[int]:
    return [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def test_regression_model_has_the_books_layers_and_loss():
    model = build_model(n_hidden=2, n_neurons=42, learning_rate=3.4e-3, input_shape=(8,))
    assert dense_units(model) == [42, 42, 1]
    assert model.layers[-1].activation is keras.activations.linear
    assert model.loss == "mse"
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(3.4e-3)
    assert model.input_shape == (None, 8)


def test_classification_model_ends_in_softmax_with_accuracy():
    model = build_model(
        1, 10, 1e-2, (28, 28), n_outputs=10, task="classification", optimizer="adam"
    )
    assert isinstance(model.layers[0], keras.layers.Flatten)
    assert dense_units(model) == [10, 10]
    assert model.layers[-1].activation is keras.activations.softmax
    assert model.loss == "sparse_categorical_crossentropy"
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    x = np.zeros((3, 28, 28), dtype="float32")
    probs = model.predict(x, verbose=0)
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert "accuracy" in model.evaluate(x, np.zeros(3), verbose=0, return_dict=True)


def test_zero_hidden_layers_is_a_linear_model():
    assert dense_units(build_model(n_hidden=0, n_neurons=5)) == [1]


def test_numpy_scalars_are_accepted_as_randomizedsearchcv_hands_them():
    model = build_model(np.int64(3), np.int64(17), np.float64(1e-3), (np.int64(8),))
    assert dense_units(model) == [17, 17, 17, 1]
    assert all(type(u) is int for u in dense_units(model))


def test_integral_floats_are_accepted_as_hyperopt_hands_them():
    assert dense_units(build_model(1.0, 44.0, 1e-3)) == [44, 1]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_hidden": -1}, "n_hidden"),
        ({"n_neurons": 0}, "n_neurons"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"task": "ranking"}, "task"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_out_of_range_parameters_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        build_model(**kwargs)


def _weights(**kwargs) -> list[np.ndarray]:
    return build_model(n_hidden=2, n_neurons=5, **kwargs).get_weights()


def test_a_seed_gives_the_same_weights_whatever_drew_from_pythons_random():
    # A Dask worker's event loop draws from Python's global `random` while a task builds.
    random.seed(1)
    first = _weights(seed=3)
    random.seed(2)
    random.random()
    again = _weights(seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    other = _weights(seed=4)
    assert not any(np.array_equal(a, b) for a, b in zip(first[::2], other[::2], strict=True))
    kernels = [w for w in first if w.ndim == 2]  # each layer its own seed
    assert not np.array_equal(kernels[1][:5, :5], kernels[0][:5, :5])


def test_without_a_seed_the_weights_follow_kerass_global_seed():
    keras.utils.set_random_seed(7)
    first = _weights()
    keras.utils.set_random_seed(7)
    assert all(np.array_equal(a, b) for a, b in zip(first, _weights(), strict=True))
    assert not np.array_equal(first[0], _weights()[0])  # the global stream moved on


def test_non_integral_layer_count_is_rejected():
    with pytest.raises(TypeError, match="n_neurons"):
        build_model(n_neurons=2.5)


def test_factory_imports_nothing_from_the_harness():
    tree = ast.parse(MODEL_SOURCE.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.split(".")[0] == "tuning"}


def test_factory_module_works_copied_alone(tmp_path):
    copy = tmp_path / "mlp_factory.py"
    copy.write_text(MODEL_SOURCE.read_text())
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import mlp_factory; "
        "m = mlp_factory.build_model(2, 7, 1e-3, (4,)); print(m.count_params())"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    # 4*7+7 + 7*7+7 + 7*1+1 weights
    assert out.stdout.strip().splitlines()[-1] == str(4 * 7 + 7 + 7 * 7 + 7 + 7 + 1)
    assert importlib.util.find_spec("tuning") is not None
