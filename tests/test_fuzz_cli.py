"""The CLI under generated bad input: command lines, study and suite files, spaces, grids and
corrupted results, through `tuning.cli.main` in this process.

Whatever the input, the CLI ends with exit 0 (it worked), 1 (a study ended without a model, its
documented outcome) or 2 (refused), never a traceback, with at most one ``error:`` line, and it
touches no file outside ``--out``. The default run tries a fixed number of examples
(derandomized: the same ones every time); ``make fuzz`` runs many more (``FUZZ_EXAMPLES``).
Each failure it found is pinned as a named test in ``tests/test_cli_errors.py``.

Each example is either a general one or focused on one class of hostile input (`CLASSES`);
``FUZZ_CLASS=NAME`` focuses every example on that class, which is how each class is shown to be
found on an older version of the code. A grid's studies are not run here (`NotRun`): its checks,
its planning and its refusals are what is fuzzed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from conftest import BOOK_SPACE
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tuning import cli
from tuning.core.config import StudyConfig

pytestmark = pytest.mark.one_keras_backend  # the command line's handling, not Keras'

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
# The classes of hostile input an example may focus on (issue 32's): see `focused_example`.
CLASSES = [
    "links",  # a link inside the results folder, to a file or folder outside it
    "secrets",  # a storage URL with reserved characters in its password or query
    "factory",  # a user's factory raising an arbitrary exception at some build
    "spaces",  # categorical choices of mixed types, nested or unhashable
    "collisions",  # two tasks of one suite that name one study folder
    "grid",  # a finished grid with one corrupted file, run again (or raced)
    "mixtures",  # one task's studies run under different settings, compared
    "planning",  # SIGTERM while a grid of up to 10**8 seeds is planned
]
FOCUS = os.environ.get("FUZZ_CLASS")
if FOCUS is not None and FOCUS not in CLASSES:
    raise ValueError(f"FUZZ_CLASS={FOCUS!r}: choose from {CLASSES}")
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 100,  # the default run is the same every time; a long run explores
    suppress_health_check=list(HealthCheck),
    database=None,
)
# Small work whatever the generated options say after these (argparse keeps the last value).
TINY = ["--dataset", "iris", "--max-rows", "40", "--trials", "1", "--max-epochs", "1"]

texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12
)
paths = st.sampled_from(
    [".", "..", "/", "out/..", "inputs", "inputs/study.toml", "missing", "out/a/../..", ""]
)
numbers = st.one_of(
    st.integers(-3, 5),
    st.sampled_from(["0", "-1", "1e9", "nan", "inf", "x", "", "1.5", "3"]),
)
toml_scalars = st.one_of(
    st.integers(-5, 50),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    texts,
    st.sampled_from(["iris", "california", "random", "optuna", "tabular:inputs", "csv:x.csv"]),
)
toml_values = st.one_of(
    toml_scalars,
    st.lists(toml_scalars, max_size=3),
    st.lists(st.lists(toml_scalars, max_size=2), max_size=2),  # nested choices
)
STUDY_KEYS = [
    "backend",
    "dataset",
    "model",
    "trials",
    "budget_epochs",
    "max_epochs",
    "patience",
    "seed",
    "study",
    "task",
    "max_rows",
    "objective",
    "target",
    "nonsense",
]
OPTIONS = [
    "--backend",
    "--dataset",
    "--trials",
    "--budget-epochs",
    "--budget-seconds",
    "--max-epochs",
    "--patience",
    "--batch-size",
    "--seed",
    "--max-rows",
    "--study",
    "--cv",
    "--storage",
    "--task",
    "--target",
    "--objective",
    "--model",
    "--config",
    "--trainer",
]


def toml_value(value: object) -> str:
    """A TOML literal of ``value`` (nan and inf as TOML writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


@st.composite
def spaces(draw: st.DrawFn) -> str:
    """``[space.NAME]`` tables, of any type, with or without their keys."""
    lines = []
    for name in draw(st.lists(st.sampled_from(["n_hidden", "n_neurons", "lr", "x"]), max_size=3)):
        lines.append(f"[space.{name}]")
        kind = draw(st.sampled_from(["int", "float", "categorical", "bogus", None]))
        if kind is not None:
            lines.append(f'type = "{kind}"')
        for key in draw(st.lists(st.sampled_from(["low", "high", "log", "choices", "step"]))):
            lines.append(f"{key} = {toml_value(draw(toml_values))}")
    if draw(st.booleans()) and not lines:
        lines.append("[space]")
    return "\n".join(lines)


@st.composite
def study_files(draw: st.DrawFn) -> bytes:
    """A study file: random settings and a space, or bytes that are not one."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))
    keys = draw(st.lists(st.sampled_from(STUDY_KEYS), unique=True, max_size=4))
    text = "\n".join(f"{k} = {toml_value(draw(toml_values))}" for k in keys)
    text += "\n" + draw(spaces()) + "\n"
    if draw(st.integers(0, 5)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # cut short
    return text.encode("utf-8")


@st.composite
def suite_files(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))
    lines = [f"description = {toml_value(draw(toml_scalars))}"]
    if draw(st.booleans()):
        lines.append("[defaults]")
        for key in draw(st.lists(st.sampled_from(STUDY_KEYS), unique=True, max_size=3)):
            lines.append(f"{key} = {toml_value(draw(toml_values))}")
    for task in draw(st.lists(st.sampled_from(["iris", "wine", "nosuch", "x y"]), max_size=2)):
        lines.append(f'[tasks."{task}"]')
        for key in draw(st.lists(st.sampled_from(STUDY_KEYS), unique=True, max_size=2)):
            lines.append(f"{key} = {toml_value(draw(toml_values))}")
    return "\n".join(lines).encode("utf-8")


@st.composite
def grid_files(draw: st.DrawFn) -> bytes:
    lines = ["[grid]"] if draw(st.integers(0, 5)) else []
    for name in draw(st.lists(st.sampled_from(["n_hidden", "n_neurons", "learning_rate", "z"]))):
        lines.append(f"{name} = {toml_value(draw(toml_values))}")
    return "\n".join(lines).encode("utf-8")


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A ``run``, ``benchmark``, ``tabulate`` or ``compare`` command with generated options."""
    command = draw(st.sampled_from(["run", "run", "benchmark", "tabulate", "compare"]))
    if command == "compare":
        return ["compare", draw(st.sampled_from(["out", "inputs", "missing", "inputs/study.toml"]))]
    if command == "tabulate":
        argv = ["tabulate", "--dataset", "iris", "--max-epochs", "1", "--max-rows", "30"]
        argv += ["--grid", "inputs/grid.toml", "--seeds", draw(st.sampled_from(["0", "0,0", "x"]))]
        return [*argv, "--out", draw(st.sampled_from(["out", "out/table", "inputs/study.toml"]))]
    argv = [command, *TINY]
    if command == "run":
        backend = draw(st.sampled_from(["random", "optuna", "sklearn", "nosuch", None]))
        argv += ["--backend", backend] if backend else []  # None: the study file's, if any
    else:
        argv += ["--seeds", "0", "--jobs", "1"]
        argv += ["--backends", draw(st.sampled_from(["random", ",", "optuna,optuna:tpe", "x"]))]
        if draw(st.booleans()):
            suites = ["inputs/suite.toml", "inputs", "nosuch", "inputs/colliding.toml"]
            argv += ["--suite", draw(st.sampled_from(suites))]
    for option in draw(st.lists(st.sampled_from(OPTIONS), max_size=4)):
        if command == "benchmark" and option in ("--backend", "--study", "--cv", "--storage"):
            continue
        if option in _VALUES and draw(st.integers(0, 2)):  # the risky values, two times in three
            value = draw(st.sampled_from(_VALUES[option]))
        else:
            value = draw(st.one_of(numbers.map(str), paths, texts))
        argv += [option, value]
    if draw(st.booleans()):
        argv.append("--fresh")
    return [*argv, "--out", "out"]


_VALUES = {
    "--config": [
        "inputs/study.toml",
        "inputs",
        "inputs/binary.toml",
        "inputs/factory_study.toml",  # a user's factory that raises on a later build
    ],
    "--storage": [
        "notaurl",
        "postgresql://u:S3cret@127.0.0.1:9/db?password=S3cret",
        "sqlite://",
        "postgresql+psycopg://u:S3/cret@127.0.0.1:9/db",  # reserved characters in the password
        "postgresql://u:S3@cret@127.0.0.1:9/db",
        "postgresql://u:S3?cret#x@127.0.0.1:9/db?sslpassword=S3%2Fcret",
        "postgresql://u:S3cret@127.0.0.1:notaport/db",
        "postgresql://127.0.0.1:9/db?sslpassword=S3cret@S3cret",  # an '@' in a query value
        "sqlite:///x.db?password=S3cret@S3cret",
    ],
    "--objective": ["tabular:", "tabular:inputs", "tabular:inputs/study.toml", "other"],
    "--model": [
        "os:system",
        "tuning.evaluation.keras.model:build_model",
        "nosuch:f",
        "inputs/study.toml:f",
    ],
    "--study": [".", "..", "a/b", "ok_name", ".hidden"],
}


@pytest.fixture(scope="module")
def finished_studies(tmp_path_factory: pytest.TempPathFactory, california_small) -> Path:
    """Two finished tiny studies, copied (then corrupted) into each example's results folder,
    and in ``OUT-mixed`` a third of the same task run under another epoch limit."""
    from tuning.run.study import run_study

    out = tmp_path_factory.mktemp("fuzz-studies")
    for backend in ("random", "optuna"):
        config = StudyConfig(backend=backend, trials=2, max_epochs=2, out=str(out))
        run_study(config, dataset=california_small)
    mixed = out.with_name(out.name + "-mixed")
    other = StudyConfig(backend="random", seed=1, trials=2, max_epochs=3, out=str(mixed))
    run_study(other, dataset=california_small)
    return out


# the fixture's grid, as `benchmark` names it: its finished studies are found and checked
FIXTURE_GRID = ["--dataset", "california", "--trials", "2", "--max-epochs", "2", "--seeds", "0"]
FIXTURE_GRID += ["--backends", "random,optuna", "--jobs", "1"]


def snapshot(root: Path, but: Path) -> dict[str, str]:
    """Every file under ``root`` outside ``but``, with a digest of its bytes."""
    files = {}
    for path in root.rglob("*"):
        if path.is_file() and but not in path.parents:
            files[str(path.relative_to(root))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return files


def corrupt(folder: Path, draw: st.DrawFn) -> None:
    """Corrupt one file of a results folder: cut short, valid JSON of the wrong shape, wrong
    types, binary, or gone."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".csv"))
    target = draw(st.sampled_from(files))
    ways = ["truncate", "shape", "types", "binary", "delete", "append", "nested", "folder"]
    how = draw(st.sampled_from(ways))
    data = target.read_bytes()
    if how == "truncate":
        target.write_bytes(data[: draw(st.integers(0, len(data)))])
    elif how == "shape":
        target.write_text(draw(st.sampled_from(["[1, 2, 3]", "{}", "null", '"x"', "3"])))
    elif how == "types":
        text = data.decode("utf-8")
        target.write_text(text.replace("0", draw(st.sampled_from(['"x"', "nan", "[]", "-"]))))
    elif how == "binary":
        target.write_bytes(draw(st.binary(min_size=1, max_size=64)))
    elif how == "append":
        with target.open("ab") as handle:
            handle.write(draw(st.binary(max_size=32)) + b"\n")
    elif how == "nested":  # deeper than a recursive parser goes
        target.write_text("[" * 100_000 + "]" * 100_000)
    elif how == "folder":  # a folder where the file should be
        target.unlink()
        target.mkdir()
    else:
        target.unlink()


FACTORY = """
from tuning import build_model

BUILDS = {{"n": 0}}


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message")


class Halt(BaseException):
    pass


def build(**arguments):
    BUILDS["n"] += 1
    if BUILDS["n"] > {after}:
        raise {error}
    return build_model(**arguments)
"""
FACTORY_ERRORS = [
    "RuntimeError('the factory broke\\nsecond line')",
    "KeyError('width')",
    "ZeroDivisionError('division by zero')",
    "AssertionError()",
    "MemoryError('no room')",
    "Exception('plain')",
    "SystemExit(0)",
    "GeneratorExit('closed')",
    "Unprintable()",
    "Halt('a BaseException of the user')",
]


def write_inputs(inputs: Path, draw: st.DrawFn) -> None:
    """The files every generated command line may name: a user's factory that raises an
    arbitrary exception on a later build and a study file using it, and a suite whose two CSV
    tasks would name one study folder."""
    error = draw(st.sampled_from(FACTORY_ERRORS), label="factory raises")
    after = draw(st.integers(0, 5), label="after builds")  # the check builds twice
    (inputs / "factory.py").write_text(FACTORY.format(after=after, error=error))
    (inputs / "factory_study.toml").write_text(
        'backend = "random"\ndataset = "iris"\ntrials = 2\nmax_epochs = 1\nmax_rows = 40\n'
        f'model = "{inputs / "factory.py"}:build"\n' + BOOK_SPACE
    )
    rows = "\n".join(f"{i},{i % 3},{i * 0.5}" for i in range(40))
    for name in ("d/a/b_c.csv", "d/a_b/c.csv"):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / name).write_text("x1,x2,y\n" + rows + "\n")
    (inputs / "colliding.toml").write_text(
        "[defaults]\ntarget = 'y'\n"
        f"[tasks.one]\ndataset = 'csv:{inputs / 'd/a/b_c.csv'}'\n"
        f"[tasks.two]\ndataset = 'csv:{inputs / 'd/a_b/c.csv'}'\n"
    )


LINK_PLACES = [
    "california_random_s0/trials.csv",
    "california_random_s0/study.lock",
    "california_random_s0/summary.json",
    "california_random_s0/study.log",
    "iris_random_s0",
    "iris_random_s0/study.lock",
    "figures",
    "report.md",
    "leaderboard.csv",
]


def plant_link(out: Path, root: Path, draw: st.DrawFn) -> None:
    """A symbolic link inside the results folder, where the harness may write, to a file or a
    folder outside it: writing through it would change what the test watches outside --out."""
    place = out / draw(st.sampled_from(LINK_PLACES), label="link at")
    if place.is_symlink() or place.exists():
        if place.is_dir() and not place.is_symlink():
            shutil.rmtree(place)
        else:
            place.unlink()
    place.parent.mkdir(parents=True, exist_ok=True)
    if place.suffix:  # a file: the neighbour's
        place.symlink_to(root / "neighbour.txt")
    else:  # a folder: an empty one outside, which must stay empty
        (root / "elsewhere").mkdir(exist_ok=True)
        place.symlink_to(root / "elsewhere")


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``tuning ARGV`` in this process; its exit code and everything it printed."""
    out, err = io.StringIO(), io.StringIO()
    # a thread's uncaught exception printed as Python prints it (pytest would only warn)
    hook, threading.excepthook = threading.excepthook, threading.__excepthook__
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse's own refusal
            code = exit_.code if isinstance(exit_.code, int) else 2
        finally:
            threading.excepthook = hook
    return code, err.getvalue() + out.getvalue()


class NotRun:
    """The grid's worker pool, in this process, running nothing: each study it is handed ends
    as failed (the documented exit 1). The grid's own checks all run, on any version of the
    code; two studies handed to it with one folder fail the test."""

    def __init__(self) -> None:
        self.folders: set[str] = set()

    def submit(self, _function, config: dict, *_args) -> Future:
        folder = str(Path(config["out"], config.get("study") or "?"))
        assert folder not in self.folders, f"two studies of one grid share {folder}"
        self.folders.add(folder)
        future: Future = Future()
        future.set_exception(RuntimeError("not run by the fuzzer"))
        return future

    def shutdown(self, *_args, **_kwargs) -> None:
        pass


@contextlib.contextmanager
def not_run(_scheduler, _workers):
    yield NotRun()


LIBRARIES = ["random", "optuna", "hyperopt", "skopt", "sklearn", "keras_tuner"]
HOSTILE_CHOICES = ['[1, "a"]', "[1, 2.5]", "[[1, 2], [3]]", "[true, 1]", '["relu", 1]']
HOSTILE_CHOICES += ["[{ a = 1 }]", "[1, [2]]", '["relu", ["tanh"]]']
SEEDS_TO_PLAN = ["0-9999", "0-999999", "0-99999999"]


def hostile_space_study(draw: st.DrawFn) -> str:
    """A study file whose categorical choices no library can take as they are."""
    name = draw(st.sampled_from(["n_neurons", "activation", "n_hidden"]), label="parameter")
    choices = draw(st.sampled_from(HOSTILE_CHOICES), label="choices")
    text = 'dataset = "iris"\ntrials = 2\nmax_epochs = 1\nmax_rows = 40\n'
    if name != "n_hidden":
        text += '[space.n_hidden]\ntype = "int"\nlow = 0\nhigh = 1\n'
    return text + f'[space.{name}]\ntype = "categorical"\nchoices = {choices}\n'


def focused_example(focus: str, root: Path, finished: Path, draw: st.DrawFn) -> list[str]:
    """Set up ``root`` for an example of class ``focus`` (`CLASSES`) and return its command."""
    out, inputs = root / "out", root / "inputs"
    if focus in ("grid", "mixtures") or (focus == "links" and draw(st.booleans())):
        shutil.copytree(finished, out)
    if focus == "links":
        plant_link(out, root, draw)
        return draw(command_lines())
    if focus == "secrets":
        url = draw(st.sampled_from(_VALUES["--storage"][1:]), label="storage")
        return ["run", *TINY, "--backend", "optuna", "--storage", url, "--out", "out"]
    if focus == "factory":
        backend = draw(st.sampled_from(LIBRARIES), label="backend")
        return ["run", "--config", "inputs/factory_study.toml", "--backend", backend, *OUT]
    if focus == "spaces":
        (inputs / "space.toml").write_text(hostile_space_study(draw))
        backend = draw(st.sampled_from(LIBRARIES), label="backend")
        return ["run", "--config", "inputs/space.toml", "--backend", backend, *OUT]
    if focus == "collisions":
        suite = ["--suite", "inputs/colliding.toml", "--seeds", "0", "--jobs", "1"]
        small = TINY[2:]  # (not --dataset: it would replace each task's own data)
        return ["benchmark", *small, *suite, "--backends", "random", *OUT]
    if focus == "grid":
        corrupt(out, draw)
        race = (
            ["--race", "--seeds", "0,1", "--race-first", "2"]
            if draw(st.booleans(), label="race")
            else []
        )
        return ["benchmark", *FIXTURE_GRID, *race, *OUT]
    if focus == "mixtures":
        for study in finished.with_name(finished.name + "-mixed").iterdir():
            shutil.copytree(study, out / study.name)
        return ["compare", "out"]
    assert focus == "planning"
    from tuning.search import available_backends

    algorithms = ",".join(name for name in available_backends() if ":" in name)
    seeds = draw(st.sampled_from(SEEDS_TO_PLAN), label="seeds")
    return ["benchmark", *TINY, "--jobs", "1", "--seeds", seeds, "--backends", algorithms, *OUT]


OUT = ["--out", "out"]


@contextlib.contextmanager
def sigterm_while_listening(delay: float | None) -> Iterator[dict[str, float]]:
    """SIGTERM to this process ``delay`` seconds after the CLI starts listening for it (its
    handler replaces this one's); yields when it was sent. A signal after the CLI stopped
    listening reaches this one's handler, which ignores it."""
    sent: dict[str, float] = {}
    if delay is None:
        yield sent
        return
    done = threading.Event()
    ours = signal.signal(signal.SIGTERM, lambda *_: None)
    mine = signal.getsignal(signal.SIGTERM)

    def send() -> None:
        while not done.is_set() and signal.getsignal(signal.SIGTERM) is mine:
            time.sleep(0.002)
        if not done.wait(delay):
            sent["at"] = time.monotonic()
            os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield sent
    finally:
        done.set()
        sender.join()
        signal.signal(signal.SIGTERM, ours)


@FUZZ
@given(data=st.data())
def test_the_cli_refuses_bad_input_in_one_line_and_touches_nothing_outside_out(
    data: st.DataObject, finished_studies: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tuning.run.grid._executor", not_run)
    # Python writes bytecode beside a module it imports unless told not to (and a developer's
    # shell often tells it not to): the harness must write none beside a user's factory
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    focus = FOCUS or data.draw(st.sampled_from(["general", "general", *CLASSES]), label="class")
    event(f"class {focus}")
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        inputs = root / "inputs"
        inputs.mkdir()
        (inputs / "study.toml").write_bytes(data.draw(study_files(), label="study file"))
        (inputs / "suite.toml").write_bytes(data.draw(suite_files(), label="suite file"))
        (inputs / "grid.toml").write_bytes(data.draw(grid_files(), label="grid file"))
        (inputs / "binary.toml").write_bytes(b"\x00\xff\xfe binary")
        write_inputs(inputs, data.draw)
        (root / "neighbour.txt").write_text("not the harness's")
        corrupted = False
        if focus != "general":
            argv = focused_example(focus, root, finished_studies, data.draw)
        else:
            if data.draw(st.booleans(), label="results exist"):
                shutil.copytree(finished_studies, root / "out")
                corrupted = data.draw(st.booleans(), label="corrupt them")
                if corrupted:
                    corrupt(root / "out", data.draw)
            if data.draw(st.integers(0, 3), label="plant a link") == 0:
                plant_link(root / "out", root, data.draw)
            argv = data.draw(command_lines(), label="argv")
            if corrupted and data.draw(st.booleans(), label="compare them"):
                argv = ["compare", "out"]
        delay = None
        if focus == "planning":
            delay = data.draw(st.sampled_from([0.0, 0.2, 1.0]), label="SIGTERM after")
        finished_before = len(list((root / "out").rglob("summary.json")))
        before = snapshot(root, root / "out")
        cwd = Path.cwd()
        os.chdir(root)
        try:
            with sigterm_while_listening(delay) as sent:
                code, printed = run_cli(argv)
                ended = time.monotonic()
        finally:
            os.chdir(cwd)
        event(f"{argv[0]} exit {code}")
        assert "Traceback" not in printed, printed
        if argv[0] in ("benchmark", "tabulate"):  # --fresh would empty a grid or a table
            advice = [line for line in printed.splitlines() if "--fresh" in line]
            assert all("[--fresh]" in line for line in advice), printed  # (argparse's usage)
        assert code in (0, 1, 2, 143), (code, printed)
        if code == 1:  # the documented failure: a study ended without a model
            assert "no trial" in printed or "failed" in printed, printed
        if code == 143:  # SIGTERM: only when one was sent
            assert "at" in sent, printed
        if "at" in sent:  # planning a grid stops at once
            assert ended - sent["at"] < 5, f"{ended - sent['at']:.1f} s after SIGTERM: {argv}"
        if focus == "mixtures":  # one task's studies under two epoch limits are not pooled
            assert code == 2 and "max_epochs" in printed, printed
        errors = [line for line in printed.splitlines() if line.startswith("error")]
        assert len(errors) <= 1, printed
        if code == 2 and argv[0] != "compare":
            assert errors or "usage:" in printed, printed
        assert snapshot(root, root / "out") == before, f"touched outside --out: {argv}"
        # --fresh starts one study over: no other finished study in --out may go
        assert len(list((root / "out").rglob("summary.json"))) >= finished_before - 1, argv
        for secret in ("S3cret", "S3/cret", "S3@cret", "cret@127", "S3?cret", "S3%2Fcret"):
            assert secret not in printed, printed
    finally:
        shutil.rmtree(root, ignore_errors=True)
