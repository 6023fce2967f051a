"""Test set-up: point the libraries' own caches at the shared offline datasets, before Keras loads.

``SCIKIT_LEARN_DATA`` is read by scikit-learn at every call; ``KERAS_HOME`` is read once, when Keras
is first imported, and must be writable, so the shared (read-only) Keras cache is mirrored into a
temporary folder of symlinks. Tests that need a cache that is absent are skipped, saying why.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(
    os.environ.get("TUNING_SHARED_DATASETS", REPO.parent / "shared" / "datasets")
).resolve()
SKLEARN_CACHE = SHARED_DATASETS / "scikit_learn_data"
KERAS_CACHE = SHARED_DATASETS / "keras"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if SKLEARN_CACHE.is_dir():
    os.environ["SCIKIT_LEARN_DATA"] = str(SKLEARN_CACHE)


def _writable_keras_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="tuning-keras-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)  # each test process has its own
    if KERAS_CACHE.is_dir():
        for src in KERAS_CACHE.rglob("*"):
            dst = home / src.relative_to(KERAS_CACHE)
            if src.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
            elif src.name == "keras.json":
                shutil.copyfile(src, dst)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(src)
    return home


os.environ["KERAS_HOME"] = str(_writable_keras_home())
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

needs_california = pytest.mark.skipif(
    not (SKLEARN_CACHE / "cal_housing_py3.pkz").is_file(),
    reason=f"California housing cache not found under {SKLEARN_CACHE}",
)
needs_fashion = pytest.mark.skipif(
    not (KERAS_CACHE / "datasets" / "fashion-mnist").is_dir(),
    reason=f"Fashion-MNIST cache not found under {KERAS_CACHE}",
)


@pytest.fixture(scope="session")
def california():
    from tuning.evaluation.data import load_dataset

    if not (SKLEARN_CACHE / "cal_housing_py3.pkz").is_file():
        pytest.skip(f"California housing cache not found under {SKLEARN_CACHE}")
    return load_dataset("california", download=False)


@pytest.fixture(scope="session")
def california_small(california):
    """A slice of real California data: enough to learn a little, small enough for seconds."""
    return california.head(400)


@pytest.fixture(scope="session")
def digits_small():
    from tuning.evaluation.data import load_dataset

    return load_dataset("digits").head(300)


@contextlib.contextmanager
def interrupted_after_row(last: int) -> Iterator[None]:
    """Ctrl-C, as it were, right after trial ``last``'s row reached the table."""
    from tuning.core.results import TrialWriter

    append = TrialWriter.append

    def append_then_interrupt(writer: TrialWriter, row: dict) -> dict:
        written = append(writer, row)
        if row["trial"] == last:
            raise KeyboardInterrupt
        return written

    TrialWriter.append = append_then_interrupt
    try:
        yield
    finally:
        TrialWriter.append = append


# The book's space as a study file's [space] tables (small ranges: tiny models, fast builds).
BOOK_SPACE = """
[space.n_hidden]
type = "int"
low = 0
high = 2
[space.n_neurons]
type = "int"
low = 2
high = 8
[space.learning_rate]
type = "float"
low = 0.001
high = 0.01
log = true
"""
