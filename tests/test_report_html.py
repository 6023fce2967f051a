"""report.html: its figures and words from a real comparison, and the page in a real browser
(headless Chromium driven by Playwright): nothing loaded from anywhere, no error, every section
drawn, sorting and hiding a backend working."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tuning.analysis.html_figures import _setters, cliques, configuration
from tuning.analysis.html_report import _words
from tuning.core.lock import study_lock

pytestmark = pytest.mark.one_keras_backend  # tables and pages: no Keras backend

TABLE = Path(__file__).resolve().parents[1] / "benchmarks" / "tables" / "california_small"
BACKENDS = ["hyperopt", "keras_tuner", "optuna", "random", "sklearn", "skopt"]
SEEDS = 10
# CI must run the browser test (.ci/run sets this): there a missing browser is a failure.
BROWSER_REQUIRED = os.environ.get("TUNING_REQUIRE_BROWSER") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _tuning(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuning", *argv], capture_output=True, text=True, check=True
    )


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> Path:
    """Six libraries x 10 seeds on the shipped small California table (seconds), compared."""
    out = tmp_path_factory.mktemp("report_html")
    _tuning(
        "benchmark", "--objective", f"tabular:{TABLE}", "--budget-epochs", "40",
        "--seeds", f"0-{SEEDS - 1}", "--jobs", "1", "--out", str(out),
    )  # fmt: skip
    _tuning("compare", str(out))
    return out


def _values(array) -> list:
    """A Plotly JSON array: a list, or the typed array plotly.py writes for numbers."""
    if isinstance(array, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _specs(page: str) -> dict[str, dict]:
    """The figures' Plotly specs embedded in the page, by element id."""
    import re

    found = re.findall(r'<script type="application/json" id="([^"]+)-spec">(.*?)</script>', page)
    return {key: json.loads(text) for key, text in found}


def test_the_page_holds_every_study_trial_and_figure(compared):
    page = (compared / "report.html").read_text(encoding="utf-8")
    specs = _specs(page)
    assert set(specs) == {
        "critical-difference",
        "rank-over-budget",
        "test-loss",
        "best-california-cum_epochs",
        "best-california-cum_seconds",
        "best-california-ended",
        "trials-california",
        "parallel-california",
    }
    studies = pd.read_csv(compared / "leaderboard.csv")
    trials = pd.concat(pd.read_csv(p) for p in compared.glob("*/trials.csv"))
    # one best-so-far line per study, its steps the study's trials
    lines = specs["best-california-cum_epochs"]["data"]
    assert len(lines) == len(studies) == len(BACKENDS) * SEEDS
    assert sum(len(_values(t["x"])) for t in lines) == len(trials)
    assert {t["meta"]["backend"] for t in lines} == set(BACKENDS)
    # every complete trial is a point of the scatter and a line of the parallel coordinates
    complete = trials[trials["status"] == "complete"]
    assert sum(len(_values(t["x"])) for t in specs["trials-california"]["data"]) == len(complete)
    axes = specs["parallel-california"]["data"][0]["dimensions"]
    assert [a["label"] for a in axes][-2:] == ["backend", "log10 val_loss"]
    assert all(len(_values(a["values"])) == len(complete) for a in axes)
    # integer parameters get integer ticks
    assert next(a for a in axes if a["label"] == "n_hidden")["tickvals"] == [0, 1, 2, 3]
    # the rank over budget: a line per backend, each at the ten tenths of the budget
    ranks = specs["rank-over-budget"]["data"]
    assert sorted(t["name"] for t in ranks) == BACKENDS
    assert all(len(_values(t["x"])) == 10 for t in ranks)
    # the diagram: a marker per backend at its mean rank in leaderboard_suite.csv
    suite = pd.read_csv(compared / "leaderboard_suite.csv").set_index("backend")["mean_rank"]
    marks = {
        t["name"]: _values(t["x"])[0]
        for t in specs["critical-difference"]["data"]
        if t["mode"] == "markers"
    }
    assert marks == pytest.approx(suite.to_dict())
    # its ranks are among all the backends: the switches leave it whole
    assert not any("meta" in t for t in specs["critical-difference"]["data"])
    # the words of the report, without its static figures
    words = page[page.index('<section id="report">') :]
    assert "Suite verdict" in words and "Friedman test" in words and "<img" not in words


def test_a_best_so_far_step_names_the_trial_that_set_it():
    losses = [3.0, float("nan"), 2.0, 2.5, 1.0]  # a failed trial at 1
    best = pd.Series(losses).cummin().to_numpy()
    assert list(_setters(pd.Series(losses).to_numpy(), best)) == [0, 0, 2, 2, 4]
    assert configuration('{"n_hidden": 2, "learning_rate": 0.0031622}') == (
        "learning_rate=0.003162, n_hidden=2"
    )


def test_the_diagram_joins_the_runs_no_test_tells_apart():
    ranks = pd.Series({"a": 1.2, "b": 2.0, "c": 2.9, "d": 3.9})
    p = pd.DataFrame(1.0, index=ranks.index, columns=ranks.index)
    for x, y in [("a", "c"), ("a", "d"), ("b", "d")]:
        p.loc[x, y] = p.loc[y, x] = 0.01
    assert cliques(ranks, p, 0.05, rejected=True) == [["a", "b"], ["b", "c"], ["c", "d"]]
    # the Friedman test did not reject: one run holds them all, whatever the pairs say
    assert cliques(ranks, p, 0.05, rejected=False) == [["a", "b", "c", "d"]]
    p.loc["b", "c"] = p.loc["c", "b"] = 0.05  # at alpha: not told apart
    assert cliques(ranks, p, 0.05, rejected=True)[1] == ["b", "c"]


def test_the_words_leave_out_the_static_figures_only():
    text = "# Title\n\nIntro.\n\n## Verdict\n\nWords.\n\n## Figures\n\n![x](figures/x.png)\n\n## Best\n\nEnd.\n"
    words = _words(text)
    assert "Verdict" in words and "End." in words and "Title" not in words
    assert "x.png" not in words and "Figures" not in words


def test_compare_on_a_running_folder_takes_the_finished_studies_and_says_how_many_are_not(
    compared, tmp_path
):
    out = tmp_path / "running"
    shutil.copytree(compared, out)
    waiting = [out / "california_optuna_s0", out / "california_random_s3"]
    for folder in waiting:
        (folder / "summary.json").unlink()
    (waiting[1] / "study.lock").write_text("pid 999999999 on " + os.uname().nodename + "\n")
    with study_lock(waiting[0]):
        ran = subprocess.run(
            [sys.executable, "-m", "tuning", "compare", str(out)], capture_output=True, text=True
        )
    assert ran.returncode == 0, ran.stderr
    line = "1 studies still running and 1 stopped unfinished: compared without them"
    assert line in ran.stderr
    assert line[0].upper() + line[1:] in (out / "report.md").read_text()
    board = pd.read_csv(out / "leaderboard.csv")
    assert len(board) == len(BACKENDS) * SEEDS - 2
    assert "did not finish (running, or stopped): left out" in (out / "report.html").read_text()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or CHROMIUM is None:
        reason = "headless Chromium and Playwright are needed (apt chromium; pip playwright)"
        if BROWSER_REQUIRED:
            pytest.fail(reason + ": TUNING_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_the_page_in_a_real_browser(compared, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    url = (compared / "report.html").as_uri()
    errors: list[str] = []
    elsewhere: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: elsewhere.append(r.url) if r.url != url else None)

    def only_the_page(route):
        if route.request.url == url:
            route.continue_()
        else:  # (anything else the page asked for: recorded, never fetched)
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_page)
    page.goto(url)
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.figure')).every(d => d.data && d._fullLayout)"
    )
    # each figure drawn, with its traces
    drawn = page.evaluate(
        "Array.from(document.querySelectorAll('.figure')).map(d => [d.id, d.data.length, "
        "d.querySelectorAll('.main-svg').length])"
    )
    assert len(drawn) == 8 and all(traces > 0 and svgs > 0 for _, traces, svgs in drawn), drawn
    # the tables hold the studies
    studies = page.locator("#leaderboard-studies tbody tr")
    assert studies.count() == len(BACKENDS) * SEEDS
    assert page.locator("#leaderboard-backends tbody tr").count() == len(BACKENDS)
    # sorting: a click on "test loss" sorts up, a second down
    header = page.locator("#leaderboard-studies th", has_text="test loss")
    column = page.evaluate(
        "Array.from(document.querySelectorAll('#leaderboard-studies th'))"
        ".findIndex(th => th.textContent.startsWith('test loss'))"
    )
    values = f"Array.from(document.querySelectorAll('#leaderboard-studies tbody tr')).map(r => parseFloat(r.cells[{column}].textContent))"
    header.click()
    up = page.evaluate(values)
    assert up == sorted(up) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert page.evaluate(values) == sorted(up, reverse=True)
    # hiding a backend: its rows and its traces go, the others stay; back again
    page.uncheck("#backends input[data-backend='optuna']")
    assert studies.filter(visible=True).count() == (len(BACKENDS) - 1) * SEEDS
    hidden = page.evaluate(
        "document.getElementById('best-california-cum_epochs').data"
        ".filter(t => t.meta.backend === 'optuna').map(t => t.visible)"
    )
    assert hidden == [False] * SEEDS
    shown = page.evaluate(
        "document.getElementById('best-california-cum_epochs').data"
        ".filter(t => t.meta.backend !== 'optuna').every(t => t.visible !== false)"
    )
    assert shown
    # the parallel coordinates (one trace for all backends) select the others on their axis
    selection = (
        "(() => { const trace = document.getElementById('parallel-california')._fullData[0];"
        " const axis = trace.dimensions[trace.meta.backendAxis];"
        " return [axis.values, axis.ticktext, axis.constraintrange || null]; })()"
    )
    values, names, ranges = page.evaluate(selection)
    selected = [v for v in values if any(low <= v <= high for low, high in ranges)]
    assert len(selected) == len(values) - values.count(names.index("optuna")) > 0
    assert names.index("optuna") not in selected
    shown = "document.getElementById('parallel-california')._fullData[0].visible"
    for backend in BACKENDS:  # every backend hidden: no line, and no error
        page.uncheck(f"#backends input[data-backend='{backend}']")
    assert page.evaluate(shown) is False
    for backend in BACKENDS:
        page.check(f"#backends input[data-backend='{backend}']")
    assert studies.filter(visible=True).count() == len(BACKENDS) * SEEDS
    assert page.evaluate(shown) is True
    assert page.evaluate(selection)[2] is None  # every backend shown: no selection
    # hovering a study's first step shows its study, the trial and its configuration
    label = page.evaluate(
        "(() => { const div = document.getElementById('best-california-cum_epochs');"
        " Plotly.Fx.hover(div, [{curveNumber: 0, pointNumber: 0}]);"
        " return [div.data[0].customdata[0][0], div.querySelector('.hoverlayer').textContent]; })()"
    )
    study, text = label
    first = pd.read_csv(compared / study / "trials.csv").iloc[0]
    assert study in text and "set by trial 0: " + configuration(first["params"]) in text
    screenshot = Path(os.environ.get("TUNING_REPORT_SCREENSHOT") or tmp_path / "report.png")
    page.set_viewport_size({"width": 1280, "height": 2300})  # the leaderboard and first figures
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000
    assert errors == [] and elsewhere == []


PAYLOADS = [
    '<img src=x onerror="document.title=1337">',
    "</script><script>document.title=1337</script>",
    "<!--<script>",
]


@pytest.mark.parametrize("where", ["task", "best parameter", "trial parameter"])
def test_names_and_values_from_the_user_are_shown_never_run(compared, tmp_path, where, request):
    """A task's name (a CSV file's), a best configuration's value and a trial's categorical
    value holding HTML: written escaped everywhere in the page, in its text and in its figures'
    JSON; in the browser (where there is one) nothing runs and every figure is drawn."""
    out = tmp_path / "hostile"
    shutil.copytree(compared, out, ignore=shutil.ignore_patterns("report.*", "leaderboard*"))
    bad = " ".join(PAYLOADS)
    for folder in (f for f in out.iterdir() if (f / "summary.json").exists()):
        summary = json.loads((folder / "summary.json").read_text())
        rows = pd.read_csv(folder / "trials.csv", dtype={"params": object})
        if where == "task":
            summary["dataset"] = bad
            rows["dataset"] = bad
        elif where == "best parameter":
            summary["best_params"]["n_neurons"] = bad
        else:
            rows["params"] = [
                json.dumps({**json.loads(p), "activation": bad}) for p in rows["params"]
            ]
        (folder / "summary.json").write_text(json.dumps(summary))
        rows.to_csv(folder / "trials.csv", index=False)
    _tuning("compare", str(out))
    page = (out / "report.html").read_text(encoding="utf-8")
    body = page[page.index("</head>") :]
    assert all(payload not in body for payload in PAYLOADS)
    specs = _specs(page)  # (their JSON still reads back whole, the values in it)
    assert len(specs) >= 7
    if where == "trial parameter":  # (in the figures' hovers)
        assert PAYLOADS[0] in json.dumps(specs, ensure_ascii=False).replace('\\"', '"')
    else:  # (in the text, as text)
        assert "&lt;img src=x" in body
    if CHROMIUM is None and not BROWSER_REQUIRED:
        return
    browser = request.getfixturevalue("browser")
    view = browser.new_page()
    errors: list[str] = []
    view.on("pageerror", lambda e: errors.append(str(e)))
    view.goto((out / "report.html").as_uri())
    view.wait_for_function(
        "Array.from(document.querySelectorAll('.figure')).every(d => d.data && d._fullLayout)"
    )
    assert view.title() != "1337" and errors == []
    assert view.evaluate("document.querySelectorAll('.figure').length") == len(specs)


def test_an_axis_of_parallel_coordinates_takes_what_the_rows_hold():
    from tuning.analysis.html_trials import _dimension

    # a choice some rows lack (another space's): "-", not a comparison of text with NaN
    mixed = _dimension("activation", pd.Series(["relu", None, "tanh", float("nan")], dtype=object))
    assert mixed["ticktext"] == ["-", "relu", "tanh"] and mixed["values"] == [1, 0, 2, 0]
    rates = _dimension("learning_rate", pd.Series([0.0003, 0.003, 0.03]))
    assert rates["label"] == "learning_rate (log)" and rates["tickvals"] == [-4, -3, -2, -1]
    assert _dimension("n_hidden", pd.Series([3, 0, 2]))["tickvals"] == [0, 2, 3]


def test_the_switches_select_on_the_backend_axis_beside_a_parameter_named_backend():
    from tuning.analysis.html_trials import parallel_coordinates_figures

    trials = pd.DataFrame(
        {
            "dataset": ["d", "d", "d"],
            "backend": ["optuna", "random", "optuna"],
            "status": ["complete"] * 3,
            "val_loss": [0.5, 0.7, 0.6],
            "params": [json.dumps({"backend": b, "lr": 0.1}) for b in (1.0, 2.0, 3.0)],
        }
    )
    (figure,) = parallel_coordinates_figures(trials)
    trace = figure.spec["data"][0]
    assert [d["label"] for d in trace["dimensions"]].count("backend") == 2
    axis = trace["dimensions"][trace["meta"]["backendAxis"]]
    assert axis["ticktext"] == ["optuna", "random"] and _values(axis["values"]) == [0, 1, 0]
