"""Property-based tests (Hypothesis): the results table survives a kill at any byte, and space
validation accepts exactly the valid ranges, naming the parameter when it refuses one. Derandomized:
the same examples on every run."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuning.core.results import StudyKey, TrialWriter, read_trials, repair_table
from tuning.core.space import SearchSpace, SpaceError

pytestmark = pytest.mark.one_keras_backend  # no Keras in these

# Text a row may carry: commas, quotes, line ends and characters of several UTF-8 bytes.
ERRORS = st.text(alphabet=st.sampled_from(list('ab ,"\n\r;é€😀')), max_size=30)
ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(["complete", "failed", "pruned"]),
            "val_loss": st.floats(allow_nan=True, allow_infinity=True, width=64),
            "epochs": st.integers(0, 10_000),
            "error": ERRORS,
        }
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(rows=ROWS, cut=st.floats(0, 1))
def test_a_table_cut_at_any_byte_reads_as_the_rows_written_whole_before_the_cut(rows, cut):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trials.csv"
        writer = TrialWriter(path, StudyKey("s", "b", "d", 0))
        ends = []  # the file's size after each row
        for trial, row in enumerate(rows):
            writer.append({"trial": trial, **row})
            ends.append(path.stat().st_size)
        data = path.read_bytes()
        size = int(cut * len(data))
        path.write_bytes(data[:size])  # a kill after `size` bytes reached the disk

        whole = sum(end <= size for end in ends)
        frame = read_trials(path)
        assert frame["trial"].tolist() == list(range(whole))
        for (_, got), row in zip(frame.iterrows(), rows, strict=False):
            assert got["status"] == row["status"] and got["epochs"] == row["epochs"]
            expected = " ".join(row["error"].splitlines())  # one row, one line
            assert (got["error"] if isinstance(got["error"], str) else "") == expected
            if math.isfinite(row["val_loss"]):
                assert got["val_loss"] == row["val_loss"]
            else:
                assert math.isnan(got["val_loss"])
        # and the table can be appended to again: the torn part is cut off first
        assert repair_table(path) == whole
        writer.append({"trial": whole, "status": "complete"})
        assert read_trials(path)["trial"].tolist() == list(range(whole + 1))


NUMBERS = st.one_of(
    st.integers(-1000, 1000), st.floats(allow_nan=True, allow_infinity=True, width=64)
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["int", "float"]), low=NUMBERS, high=NUMBERS, log=st.booleans())
def test_a_range_is_accepted_exactly_when_it_is_valid(kind, low, high, log):
    spec = {"rate": {"type": kind, "low": low, "high": high, "log": log}}
    finite = all(math.isfinite(v) for v in (low, high))
    integers = finite and all(float(v).is_integer() for v in (low, high))  # 10.0 is 10
    ordered = low <= high if kind == "int" else low < high
    valid = (integers if kind == "int" else finite) and ordered and (not log or low > 0)
    try:
        space = SearchSpace.from_dict(spec)
    except SpaceError as exc:
        assert not valid, f"valid range refused: {exc}"
        assert "rate" in str(exc) and "\n" not in str(exc)
    else:
        assert valid, f"invalid range accepted: {spec}"
        (param,) = space.params
        assert param.low == low and param.high == high
