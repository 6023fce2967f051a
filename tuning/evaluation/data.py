"""Named datasets, split and scaled the same way for every backend.

Every loader goes through the library's own download-and-cache function (scikit-learn's
``fetch_*``/``load_*``, ``keras.datasets``), so pointing ``SCIKIT_LEARN_DATA`` / ``KERAS_HOME`` at a
filled cache is all it takes to work offline.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from tuning.core.errors import message_line
from tuning.core.evaluator import DataDescription

Task = Literal["regression", "classification"]
SPLIT_SEED = 42  # the book's random_state for both splits
CSV_PREFIX = "csv:"
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


# The factory's arguments that every trial takes from the dataset (attributes of `Dataset` of the
# same names); a study never searches or fixes them.
DATA_ARGUMENTS = ("input_shape", "n_outputs", "task")


class DataError(ValueError):
    """The data asked for cannot be loaded as given; the message says which field and how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """Train/validation/test arrays of one task. Features are float32 and already scaled."""

    name: str
    task: Task
    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...] = ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.X_train.shape[1:])

    @property
    def n_inputs(self) -> int:
        """The values of one example (its shape's product: what a flattening layer feeds on)."""
        return math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int:
        if self.task == "regression":
            return 1
        labels = np.concatenate([self.y_train, self.y_valid, self.y_test])
        return int(labels.max()) + 1

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.X_train), len(self.X_valid), len(self.X_test)

    def description(self) -> DataDescription:
        """What a study's summary says of this data (`tuning.core.evaluator.DataDescription`)."""
        return DataDescription(self.name, self.task, self.sizes)

    def head(self, n_rows: int | None) -> Dataset:
        """The first ``n_rows`` of each split (the splits are already shuffled): small, fast studies."""
        if n_rows is None:
            return self
        if n_rows < 1:
            raise DataError(f"max_rows must be >= 1, got {n_rows}")
        return replace(
            self,
            X_train=self.X_train[:n_rows],
            y_train=self.y_train[:n_rows],
            X_valid=self.X_valid[:n_rows],
            y_valid=self.y_valid[:n_rows],
            X_test=self.X_test[:n_rows],
            y_test=self.y_test[:n_rows],
        )


def book_split(
    X: np.ndarray, y: np.ndarray, *, scale: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The book's split: 25% test, then 25% of the rest for validation; scaler fitted on train only."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X_full, X_test, y_full, y_test = train_test_split(X, y, test_size=0.25, random_state=SPLIT_SEED)
    X_train, X_valid, y_train, y_valid = train_test_split(
        X_full, y_full, test_size=0.25, random_state=SPLIT_SEED
    )
    if scale:
        scaler = StandardScaler().fit(X_train)
        X_train, X_valid, X_test = (scaler.transform(a) for a in (X_train, X_valid, X_test))
    return X_train, y_train, X_valid, y_valid, X_test, y_test


def _from_arrays(name: str, task: Task, X: np.ndarray, y: np.ndarray, features) -> Dataset:
    X_train, y_train, X_valid, y_valid, X_test, y_test = book_split(X, y)
    y_dtype = np.float32 if task == "regression" else np.int64
    return Dataset(
        name=name,
        task=task,
        X_train=X_train.astype(np.float32),
        y_train=y_train.astype(y_dtype),
        X_valid=X_valid.astype(np.float32),
        y_valid=y_valid.astype(y_dtype),
        X_test=X_test.astype(np.float32),
        y_test=y_test.astype(y_dtype),
        feature_names=tuple(str(f) for f in features),
    )


def load_california(download: bool = True) -> Dataset:
    from sklearn.datasets import fetch_california_housing

    try:
        bunch = fetch_california_housing(download_if_missing=download)
    except (
        OSError
    ) as exc:  # urllib's URLError is an OSError: offline, or no cache with download off
        where = os.environ.get("SCIKIT_LEARN_DATA", "~/scikit_learn_data")
        raise DataError(
            f"dataset 'california' is not in scikit-learn's cache ({where}) and could not be "
            f"downloaded ({type(exc).__name__}): set SCIKIT_LEARN_DATA to a folder holding "
            "cal_housing_py3.pkz"
        ) from exc
    return _from_arrays("california", "regression", bunch.data, bunch.target, bunch.feature_names)


def _bundled(name: str, task: Task) -> Callable[[bool], Dataset]:
    """A loader of a dataset that scikit-learn ships (``sklearn.datasets.load_NAME``)."""

    def load(download: bool = True) -> Dataset:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, f"load_{name}")()
        return _from_arrays(name, task, bunch.data, bunch.target, bunch.feature_names)

    load.__name__ = f"load_{name}"
    load.__doc__ = f"scikit-learn's bundled `load_{name}`, split and scaled as every dataset."
    return load


load_diabetes = _bundled("diabetes", "regression")
load_digits = _bundled("digits", "classification")
load_wine = _bundled("wine", "classification")
load_breast_cancer = _bundled("breast_cancer", "classification")
load_iris = _bundled("iris", "classification")


def _keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "fashion-mnist"


def load_fashion_mnist(download: bool = True) -> Dataset:
    cache = _keras_cache_dir()
    hint = (
        f"dataset 'fashion_mnist' is not in Keras's cache ({cache}) and could not be downloaded: "
        "set KERAS_HOME (before Keras is imported) to a writable folder holding "
        "datasets/fashion-mnist/*.gz"
    )
    if not download and not all((cache / f).is_file() for f in FASHION_MNIST_FILES):
        raise DataError(hint)
    import keras

    try:
        (X_full, y_full), (X_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # keras.utils.get_file raises a bare Exception on a failed fetch
        raise DataError(f"{hint} ({type(exc).__name__})") from exc
    # The book's split: the first 5,000 training images validate, pixels scaled to [0, 1].
    return Dataset(
        name="fashion_mnist",
        task="classification",
        X_train=(X_full[5000:] / 255.0).astype(np.float32),
        y_train=y_full[5000:].astype(np.int64),
        X_valid=(X_full[:5000] / 255.0).astype(np.float32),
        y_valid=y_full[:5000].astype(np.int64),
        X_test=(X_test / 255.0).astype(np.float32),
        y_test=y_test.astype(np.int64),
    )


def load_csv(path: str | Path, target: str | None, task: Task | None = None) -> Dataset:
    """A user's CSV: numeric feature columns, one target column; the task is inferred unless given."""
    import pandas as pd

    path = Path(path)
    if not target:
        raise DataError(f"csv:{path} needs --target COLUMN naming the column to predict")
    if not path.is_file():
        raise DataError(f"csv file {path} does not exist: give an existing file as csv:PATH")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"csv file {path} is empty: it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"csv file {path} cannot be parsed as CSV: {message_line(exc)}") from None
    if frame.empty:
        raise DataError(f"csv file {path} has no data rows below its header")
    if target not in frame.columns:
        raise DataError(
            f"--target {target!r} is not a column of {path}; columns are {list(frame.columns)}"
        )
    y_raw = frame.pop(target)
    if frame.shape[1] == 0:
        raise DataError(f"csv file {path} has no feature columns besides the target {target!r}")
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise DataError(
            f"csv file {path}: feature columns {non_numeric} are not numeric; encode them or drop them"
        )
    X = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        bad = [c for c in frame.columns if not np.isfinite(frame[c].to_numpy(np.float64)).all()]
        raise DataError(f"csv file {path}: columns {bad} hold missing, NaN or infinite values")
    if y_raw.isna().any():
        raise DataError(f"csv file {path}: target column {target!r} has missing values")
    task = task or _infer_task(y_raw)
    if task == "classification":
        if pd.api.types.is_float_dtype(y_raw) and not (y_raw == y_raw.round()).all():
            raise DataError(
                f"--target {target!r} holds non-integer numbers (e.g. {float(y_raw[y_raw != y_raw.round()].iloc[0]):g}), not "
                "class labels: use --task regression, or a column of labels"
            )
        classes, y = np.unique(y_raw.to_numpy(), return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"--target {target!r} has a single class; classification needs two")
    else:
        if not pd.api.types.is_numeric_dtype(y_raw):
            raise DataError(f"--target {target!r} is not numeric: use --task classification")
        y = y_raw.to_numpy(dtype=np.float64)
        if not np.isfinite(y).all():
            raise DataError(f"csv file {path}: target column {target!r} holds infinite values")
    if len(frame) < 8:
        raise DataError(f"csv file {path} has {len(frame)} rows; at least 8 are needed to split")
    return _from_arrays(f"csv:{path.name}", task, X, y, frame.columns)


def _infer_task(y) -> Task:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    if pd.api.types.is_integer_dtype(y) and y.nunique() <= 20:
        return "classification"
    return "regression"


@dataclass(frozen=True)
class DatasetInfo:
    """What `tuning datasets` says of a built-in dataset before loading it."""

    loader: Callable[[bool], Dataset]
    task: Task
    rows: int
    features: str
    classes: int | None
    source: str

    @property
    def loss(self) -> str:
        """The loss every trial minimises (`tuning.evaluation.keras.model.build_model`'s, by task)."""
        return "MSE" if self.task == "regression" else "cross-entropy"


BUILTIN_DATASETS: dict[str, DatasetInfo] = {
    "california": DatasetInfo(
        load_california, "regression", 20640, "8", None, "fetch_california_housing (cached)"
    ),
    "diabetes": DatasetInfo(load_diabetes, "regression", 442, "10", None, "load_diabetes"),
    "digits": DatasetInfo(load_digits, "classification", 1797, "64", 10, "load_digits"),
    "wine": DatasetInfo(load_wine, "classification", 178, "13", 3, "load_wine"),
    "breast_cancer": DatasetInfo(
        load_breast_cancer, "classification", 569, "30", 2, "load_breast_cancer"
    ),
    "iris": DatasetInfo(load_iris, "classification", 150, "4", 3, "load_iris"),
    "fashion_mnist": DatasetInfo(
        load_fashion_mnist, "classification", 70000, "28x28", 10, "keras.datasets (cached)"
    ),
}
BUILTIN_LOADERS: dict[str, Callable[[bool], Dataset]] = {
    name: info.loader for name, info in BUILTIN_DATASETS.items()
}


def dataset_names() -> list[str]:
    return [*BUILTIN_LOADERS, f"{CSV_PREFIX}PATH"]


def describe_datasets() -> list[str]:
    """One line per dataset for `tuning datasets`: name, task, loss, size, where it comes from."""
    lines = []
    for name, info in BUILTIN_DATASETS.items():
        classes = f", {info.classes} classes" if info.classes else ""
        lines.append(
            f"{name:<15}{info.task:<16}{info.loss:<15}{info.rows:>6,} rows x {info.features} "
            f"features{classes}; {info.source}"
        )
    lines.append(
        f"{CSV_PREFIX + 'PATH':<15}{'either':<16}{'by task':<15}a CSV file: numeric features, "
        "--target COLUMN (task inferred, or --task)"
    )
    return lines


def check_dataset(name: str, *, target: str | None = None, task: Task | None = None) -> None:
    """Fail fast on a dataset that cannot load: a CSV is read in full, a built-in one only named."""
    if name.startswith(CSV_PREFIX):
        load_dataset(name, target=target, task=task)
        return
    if name not in BUILTIN_LOADERS:
        raise DataError(f"dataset {name!r} is unknown; choose one of {dataset_names()}")
    if target is not None:
        raise DataError(
            f"--target {target!r}: dataset {name!r} has its own target; --target names the "
            "target column of a csv:PATH dataset only"
        )


def load_dataset(
    name: str,
    *,
    target: str | None = None,
    task: Task | None = None,
    download: bool = True,
) -> Dataset:
    """Load a dataset by name (``california``, ``digits``, ``csv:PATH`` ...), split and scaled."""
    if name.startswith(CSV_PREFIX):
        return load_csv(name[len(CSV_PREFIX) :], target, task)
    check_dataset(name, target=target)
    dataset = BUILTIN_LOADERS[name](download)
    if task is not None and task != dataset.task:
        raise DataError(f"--task {task!r} does not fit dataset {name!r}, a {dataset.task} task")
    return dataset
