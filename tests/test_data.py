import numpy as np
import pytest
from conftest import needs_fashion

from tuning.evaluation.data import DataError, load_csv, load_dataset

pytestmark = pytest.mark.one_keras_backend  # the loaders: no Keras backend in it


def test_california_is_split_as_the_book_does(california):
    assert california.sizes == (11_610, 3_870, 5_160)
    assert california.input_shape == (8,)
    assert california.task == "regression"
    assert california.feature_names[0] == "MedInc"
    # scaler fitted on the training rows only: exactly standard there, not elsewhere
    np.testing.assert_allclose(california.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(california.X_train.std(axis=0), 1, atol=1e-4)
    assert np.abs(california.X_valid.mean(axis=0)).max() > 1e-3
    # the split is the book's train_test_split(..., random_state=42) twice
    from sklearn.datasets import fetch_california_housing
    from sklearn.model_selection import train_test_split

    X, y = fetch_california_housing(return_X_y=True, download_if_missing=False)
    _, _, y_full, y_test = train_test_split(X, y, random_state=42)
    _, _, y_train, y_valid = train_test_split(y_full, y_full, random_state=42)
    np.testing.assert_allclose(california.y_test, y_test.astype("float32"))
    np.testing.assert_allclose(california.y_valid, y_valid.astype("float32"))
    assert california.X_train.dtype == np.float32


def test_split_is_deterministic(california):
    again = load_dataset("california", download=False)
    np.testing.assert_array_equal(again.X_train, california.X_train)


def test_bundled_datasets_load_offline():
    diabetes, digits = load_dataset("diabetes"), load_dataset("digits")
    assert sum(diabetes.sizes) == 442 and diabetes.task == "regression"
    assert sum(digits.sizes) == 1_797 and digits.task == "classification"
    assert digits.n_outputs == 10 and digits.y_train.dtype == np.int64


@needs_fashion
def test_fashion_mnist_is_split_as_the_book_does():
    data = load_dataset("fashion_mnist", download=False)
    assert data.sizes == (55_000, 5_000, 10_000)
    assert data.input_shape == (28, 28)
    assert data.n_outputs == 10
    assert data.X_train.min() >= 0.0 and data.X_train.max() <= 1.0
    assert list(data.y_valid[:10]) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


def test_head_keeps_the_first_rows_of_each_split(california):
    small = california.head(100)
    assert small.sizes == (100, 100, 100)
    np.testing.assert_array_equal(small.X_test, california.X_test[:100])


def test_offline_without_cache_names_the_cache_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    with pytest.raises(DataError, match="SCIKIT_LEARN_DATA") as info:
        load_dataset("california", download=False)
    assert "\n" not in str(info.value)


def test_fashion_mnist_offline_without_cache_names_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(DataError, match="KERAS_HOME"):
        load_dataset("fashion_mnist", download=False)


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DataError, match="choose one of .*california.*csv:PATH"):
        load_dataset("mnist")


def _write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = ["a,b,price,label"]
    for _ in range(n):
        a, b = rng.normal(size=2)
        rows.append(
            f"{a:.4f},{b:.4f},{3 * a - b + 0.1 * rng.normal():.4f},{'yes' if a > 0 else 'no'}"
        )
    return "\n".join(rows) + "\n"


def test_csv_loader(tmp_path):
    text = _table().replace(",yes", ",1").replace(",no", ",0")
    path = _write(tmp_path, text)
    reg = load_dataset(f"csv:{path}", target="price")
    assert reg.task == "regression"
    assert reg.feature_names == ("a", "b", "label")
    assert sum(reg.sizes) == 40
    clf = load_dataset(f"csv:{path}", target="label")
    assert clf.task == "classification" and clf.n_outputs == 2
    forced = load_dataset(f"csv:{path}", target="label", task="regression")
    assert forced.task == "regression"
    text_labels = _write(tmp_path, _table(), "text.csv")
    with pytest.raises(DataError, match=r"\['label'\] are not numeric"):
        load_dataset(f"csv:{text_labels}", target="price")
    clf_text = load_csv(text_labels, "label")
    assert clf_text.task == "classification"
    assert set(np.unique(np.r_[clf_text.y_train, clf_text.y_valid, clf_text.y_test])) == {0, 1}


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("", "y", "is empty"),
        ("x,y\n", "y", "no data rows"),
        ("x,y\n1,2\n", "price", "'price' is not a column"),
        ("x,y\n1,\n2,3\n", "y", "missing values"),
        ("x,y\n1,2\nnan,3\n", "y", r"\['x'\] hold missing, NaN or infinite"),
        ("x,y\ninf,2\n1,3\n", "y", "NaN or infinite"),
        ("y\n1\n2\n", "y", "no feature columns"),
    ],
)
def test_bad_csv_gets_one_line_naming_the_problem(tmp_path, text, target, message):
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(f"csv:{path}", target=target)
    assert "\n" not in str(info.value)


def test_missing_csv_and_missing_target_option(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"csv:{tmp_path / 'nope.csv'}", target="y")
    with pytest.raises(DataError, match="--target"):
        load_dataset(f"csv:{tmp_path / 'nope.csv'}")
