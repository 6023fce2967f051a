"""The search contract, for every registered algorithm, against a fake evaluator (no Keras).

Each algorithm drives its library's own loop through `SearchBackend.search`; the evaluator here
answers from a fixed landscape in microseconds, counting one epoch (and one second of a fake
clock) per epoch "trained" into the study's meter, as the real evaluators do. The checks: the
trial, epoch and seconds budgets are spent exactly; nothing is evaluated once the meter is
exhausted; a study killed mid-trial and resumed records what an uninterrupted one does (Optuna:
its finished trials, then a seeded stream of its own); pruning reaches
the evaluator as its ``report`` argument. (That the backends import nothing of the harness that
trains: `tests/test_layers.py`.)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tuning.core.budget import Budget, BudgetMeter
from tuning.core.errors import ResumeError
from tuning.core.evaluator import DataDescription, Evaluator, Report, WarmStart
from tuning.core.ledger import ResumeLedger, TrialResult, same_params
from tuning.core.space import default_space
from tuning.search import available_backends, create_backend, missing_extra
from tuning.search.base import SearchBackend, SearchTask

pytestmark = pytest.mark.one_keras_backend
MAX_EPOCHS = 9


def _on_the_contract(name: str) -> bool:
    backend_class = type(create_backend(name))
    return backend_class.search is not SearchBackend.search


def _installed(name: str) -> bool:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="tuning.backends") if e.name == name]
    return missing_extra(ep) is None


ALGORITHMS = [name for name in available_backends() if _installed(name)]
PRUNING = ("+hyperband", "+asha", "+median")


def landscape(params: Mapping[str, Any]) -> float:
    """The book's space's fake loss: best at depth 2, 40 units, learning rate 3e-3."""
    return (
        (params["n_hidden"] - 2) ** 2
        + ((params["n_neurons"] - 40) / 40) ** 2
        + (math.log10(params["learning_rate"]) + 2.5) ** 2
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Killed(BaseException):
    """The study's process dies in the middle of a trial (as kill -9: nothing more is written)."""


class FakeEvaluator(Evaluator):
    """Learning curves ``landscape(params) + 1 / epoch``; each epoch costs one epoch of the
    meter and one second of its clock, and stops at the budget as a real fit does."""

    def __init__(
        self,
        meter: BudgetMeter,
        ledger: ResumeLedger,
        clock: FakeClock,
        killed_after: int | None = None,
    ) -> None:
        self.meter, self.ledger, self.clock = meter, ledger, clock
        self.space = default_space()
        self.killed_after = killed_after  # rows recorded, then the process "dies"
        self.calls: list[dict[str, Any]] = []

    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        epochs: int | None = None,
        warm_start: WarmStart | None = None,
        report: Report | None = None,
        number: int | None = None,
    ) -> TrialResult:
        replayed = self.ledger.replay(params)
        if replayed is not None:
            return replayed
        assert not self.meter.exhausted, "a trial started after the budget was spent"
        if self.killed_after is not None and self.ledger.recorded >= self.killed_after:
            raise Killed
        self.calls.append(
            {"params": dict(params), "epochs": epochs, "report": report, "warm_start": warm_start}
        )
        status, trained, best = "complete", 0, math.inf
        first = warm_start.epochs if warm_start is not None else 0
        for epoch in range(first + 1, (epochs or MAX_EPOCHS) + 1):
            self.clock.now += 1.0
            self.meter.add_epoch()
            trained = epoch - first
            loss = landscape(params) + 1 / epoch
            best = min(best, loss)
            if report is not None and report(epoch, loss):
                status = "pruned"
                break
            if self.meter.exhausted:
                break
        self.calls[-1]["reached"] = first + trained  # the epoch its model ends at
        result = TrialResult(
            trial=self.ledger.next_number() if number is None else number,
            params=dict(params),
            status=status,
            val_loss=best,
            epochs=trained,
            fit_seconds=float(trained),
        )
        self.calls[-1]["row"] = result.trial
        self.ledger.count()
        self.meter.add_trial()
        return result

    def final_result(self, params: Mapping[str, Any], folder: Path) -> dict[str, Any]:
        loss = landscape(params)
        return {"final_val_loss": loss, "final_epochs": MAX_EPOCHS, "test_loss": loss}

    def data(self) -> DataDescription:
        return DataDescription("landscape", "regression", (0, 0, 0))


def run_search(
    name: str,
    budget: Budget,
    workdir,
    finished: list[TrialResult] = (),
    seed: int = 3,
    killed_after: int | None = None,
) -> tuple[FakeEvaluator, list[TrialResult]]:
    """One study of ``name`` under ``budget`` in ``workdir``, resumed from ``finished``."""
    workdir.mkdir(parents=True, exist_ok=True)  # the study's folder, where the library saves
    clock = FakeClock()
    meter = BudgetMeter(budget, clock)
    if finished:
        epochs = sum(r.epochs for r in finished)
        meter.restore(len(finished), epochs, float(epochs))
        clock.now = float(epochs)
    ledger = ResumeLedger(finished, name)
    evaluator = FakeEvaluator(meter, ledger, clock, killed_after)
    recorded: list[TrialResult] = list(finished)
    original = evaluator.evaluate

    def evaluate_and_keep(params, **options):
        before = ledger.recorded
        result = original(params, **options)
        if ledger.recorded > before:
            recorded.append(result)
        return result

    evaluator.evaluate = evaluate_and_keep  # type: ignore[method-assign]
    task = SearchTask(
        evaluator=evaluator,
        meter=meter,
        ledger=ledger,
        space=default_space(),
        budget=budget,
        seed=seed,
        max_epochs=MAX_EPOCHS,
        workdir=workdir,
    )
    with contextlib.suppress(Killed):  # (the kill ends the search where it stands)
        create_backend(name).search(task)
    return evaluator, recorded


@pytest.fixture(params=ALGORITHMS)
def algorithm(request):
    if not _on_the_contract(request.param):
        pytest.skip(f"{request.param} still drives the first interface (run(objective, ...))")
    return request.param


def test_a_trial_budget_is_spent_exactly(algorithm, tmp_path):
    evaluator, recorded = run_search(algorithm, Budget(trials=4), tmp_path)
    assert len(recorded) == 4 and evaluator.meter.trials == 4
    assert [r.trial for r in recorded] == [0, 1, 2, 3]
    for result in recorded:
        assert default_space().contains(result.params)
    # only a pruning algorithm listens to the epochs (`test_pruning_reaches_the_evaluator...`)
    prunes = algorithm.endswith(PRUNING)
    assert all((call["report"] is not None) == prunes for call in evaluator.calls)


def test_an_epoch_budget_is_spent_exactly_and_nothing_starts_after_it(algorithm, tmp_path):
    evaluator, recorded = run_search(algorithm, Budget(epochs=20), tmp_path)
    assert evaluator.meter.epochs == 20 == sum(r.epochs for r in recorded)
    assert evaluator.meter.exhausted


def test_a_seconds_budget_ends_the_search_at_the_first_epoch_past_it(algorithm, tmp_path):
    evaluator, recorded = run_search(algorithm, Budget(seconds=15), tmp_path)
    # one fake second per epoch: the evaluation running when the clock reached 15 stopped there
    assert evaluator.meter.seconds == 15 == sum(r.epochs for r in recorded)


def test_a_resumed_study_proposes_and_records_what_an_uninterrupted_one_does(algorithm, tmp_path):
    budget = Budget(trials=5)
    # (one study name: Optuna's Hyperband pruner assigns brackets by it)
    _, whole = run_search(algorithm, budget, tmp_path / "whole" / "study")
    _, first = run_search(algorithm, budget, tmp_path / "resumed" / "study", killed_after=2)
    assert len(first) == 2  # killed while its third trial trained
    if algorithm == "sklearn:halving":  # its rounds keep no state: it says so, in one line
        with pytest.raises(ResumeError, match="to start that study over"):
            run_search(algorithm, budget, tmp_path / "resumed" / "study", first)
        return
    evaluator, resumed = run_search(algorithm, budget, tmp_path / "resumed" / "study", first)
    assert len(resumed) == len(whole) == 5 and [r.trial for r in resumed] == list(range(5))
    assert len(evaluator.calls) == 3  # the first two were answered from the ledger
    # Optuna's samplers keep no random state in its storage: a resumed study draws on from a
    # stream seeded by (seed, trials stored), deterministic but not the uninterrupted one's;
    # Keras Tuner's Bayesian oracle, reloaded, proposes the killed trial again and then goes on
    # from a random state that trial had already advanced
    retraced = 2 if algorithm.startswith(("optuna", "keras_tuner:bayesian")) else 5
    for a, b in zip(whole[:retraced], resumed[:retraced], strict=True):
        assert same_params(a.params, b.params) and a.epochs == b.epochs


KERAS_TUNER = [a for a in ALGORITHMS if a.startswith("keras_tuner")]


@pytest.mark.parametrize("algorithm", KERAS_TUNER)
def test_keras_tuner_killed_after_any_of_its_writes_resumes_to_the_whole_budget(
    algorithm, tmp_path, monkeypatch
):
    """Keras Tuner keeps its state in several files (a trial's, the oracle's, the tuner's, and
    the rows each trial wrote): a kill after each one of its writes in turn, then a resume."""
    import tuning.search.keras_tuner_search as keras_tuner_search

    budget = Budget(trials=4)
    _, whole = run_search(algorithm, budget, tmp_path / "whole" / "study")
    write = keras_tuner_search.write_atomically
    writes = 0

    def write_then_die_at(point: int):
        def write_and_count(path, text):
            nonlocal writes
            write(path, text)
            writes += 1
            if writes == point:
                raise Killed

        return write_and_count

    point = 0
    while True:
        point += 1
        writes = 0
        workdir = tmp_path / f"killed_after_write_{point}" / "study"
        monkeypatch.setattr(keras_tuner_search, "write_atomically", write_then_die_at(point))
        _, first = run_search(algorithm, budget, workdir)
        monkeypatch.setattr(keras_tuner_search, "write_atomically", write)
        if writes < point:  # the study ended before that write: every point was tried
            break
        _, resumed = run_search(algorithm, budget, workdir, first)
        assert [r.trial for r in resumed] == list(range(4)), f"killed after write {point}"
        if algorithm != "keras_tuner:bayesian":  # (its reloaded random state: see above)
            for a, b in zip(whole, resumed, strict=True):
                assert same_params(a.params, b.params) and a.epochs == b.epochs, point
    assert point > 4 * 3  # a trial's file, the oracle's and the rows', at least, each trial


@pytest.mark.parametrize("pruning", [a for a in ALGORITHMS if a.endswith(PRUNING)])
def test_pruning_reaches_the_evaluator_as_its_report_argument(pruning, tmp_path):
    evaluator, recorded = run_search(pruning, Budget(trials=12), tmp_path)
    assert all(call["report"] is not None for call in evaluator.calls)
    # the pruner stopped trials worse than the others at an early rung, through `report`
    pruned = [r for r in recorded if r.status == "pruned"]
    assert pruned and all(r.epochs < MAX_EPOCHS for r in pruned)


def test_a_hyperband_promotion_reaches_the_evaluator_as_a_warm_start(tmp_path):
    evaluator, recorded = run_search("keras_tuner:hyperband", Budget(trials=14), tmp_path)
    starts = [(c["warm_start"], c["epochs"]) for c in evaluator.calls if c["warm_start"]]
    assert starts, "no trial was promoted"
    reached = {c["row"]: c["reached"] for c in evaluator.calls}
    assert {r.trial for r in recorded} >= set(reached)
    for start, epochs in starts:
        # it goes on from the epoch its parent's model reached, to a later rung
        assert start.epochs == reached[start.trial] < epochs
    others = [c for c in evaluator.calls if c["warm_start"] is None]
    assert all(c["warm_start"] is None for c in others)
    assert not any(
        c["warm_start"] for c in run_search("optuna", Budget(trials=4), tmp_path / "o")[0].calls
    )
