"""A trial's status, loss and error: the one rule (`tuning.core.outcome`), pinned case by case."""

from __future__ import annotations

import math

import pytest

from tuning.core.outcome import Outcome, folds_outcome, trained_outcome

NAN = math.nan


def test_a_trained_trial_scores_its_best_validation_loss():
    assert trained_outcome({"loss": [2.0, 1.0, 0.9], "val_loss": [1.5, 1.2, 1.3]}, None) == (
        Outcome("complete", 1.2, "")
    )


def test_a_trial_stopped_by_the_search_is_pruned_with_its_best_loss_so_far():
    outcome = trained_outcome({"loss": [2.0, 1.0], "val_loss": [1.5, 1.4]}, 2)
    assert outcome == Outcome("pruned", 1.4, "pruned by the search after epoch 2")


@pytest.mark.parametrize("pruned_after", [None, 1])
def test_a_diverged_trial_fails_whether_or_not_the_search_stopped_it(pruned_after):
    outcome = trained_outcome({"loss": [2.0, math.inf], "val_loss": [1.5, 1.4]}, pruned_after)
    assert outcome.status == "failed" and math.isnan(outcome.val_loss)
    assert outcome.error == "loss became non-finite at epoch 2: diverged"
    no_validation = trained_outcome({"loss": [1.0], "val_loss": []}, None)
    assert no_validation.status == "failed"
    assert no_validation.error == "no validation loss was recorded"


def test_a_candidate_whose_folds_all_fitted_scores_their_mean():
    assert folds_outcome([1.0, 2.0, 4.0], 3, budget_spent=True) == Outcome("complete", 7 / 3)


@pytest.mark.parametrize(
    ("losses", "spent", "status", "error"),
    [
        ([1.0], True, "pruned", "the budget ran out after 1 of 3 folds"),
        ([], True, "pruned", "the budget ran out after 0 of 3 folds"),
        ([], False, "failed", "every fold failed to fit"),
        ([1.0, 2.0], False, "failed", "1 of 3 folds failed to fit"),
        ([1.0, NAN, 2.0], False, "failed", "validation loss became non-finite in a fold: diverged"),
        (
            [1.0, math.inf, 2.0],
            True,
            "failed",
            "validation loss became non-finite in a fold: diverged",
        ),
    ],
)
def test_a_candidate_with_a_missing_or_diverged_fold_has_no_score(losses, spent, status, error):
    outcome = folds_outcome(losses, 3, budget_spent=spent)
    assert (outcome.status, outcome.error) == (status, error)
    assert math.isnan(outcome.val_loss)
