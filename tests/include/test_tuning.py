"""Planning the hyperparameter search and choosing its winner (no training here)."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest

from reviewops.config import DEFAULT_MAX_TRIALS, DEFAULT_SEARCH_SPACE
from reviewops.modeling.search import SearchSpaceError, plan_trials, rank_trials, select_best, trial_label
from reviewops.modeling.training import TrainParams


def test_default_plan_is_deterministic_valid_and_within_budget() -> None:
    first = plan_trials(DEFAULT_SEARCH_SPACE, DEFAULT_MAX_TRIALS)
    assert first == plan_trials(DEFAULT_SEARCH_SPACE, DEFAULT_MAX_TRIALS)
    assert len(first) == DEFAULT_MAX_TRIALS
    assert len({t["label"] for t in first}) == len(first), "labels tell trials apart in the UI"
    for trial in first:
        TrainParams(**trial["params"])


def test_budget_smaller_than_the_grid_samples_distinct_combinations() -> None:
    space = {"hidden_units": [0, 16, 32, 64], "dropout": [0.1, 0.2, 0.3]}
    trials = plan_trials(space, 5, seed=7)
    assert len(trials) == 5
    combos = {(t["params"]["hidden_units"], t["params"]["dropout"]) for t in trials}
    assert len(combos) == 5
    assert plan_trials(space, 5, seed=8) != trials  # the seed orders the grid


def test_bad_search_spaces_are_refused_with_what_to_fix() -> None:
    with pytest.raises(SearchSpaceError, match=r"unknown hyperparameter.*hiden_units"):
        plan_trials({"hiden_units": [1]}, 2)
    with pytest.raises(SearchSpaceError, match="empty axis dropout"):
        plan_trials({"dropout": []}, 2)
    with pytest.raises(ValueError, match="representation 'bert'"):
        plan_trials({"representation": ["bert"]}, 2)


def test_label_is_short_and_readable() -> None:
    label = trial_label({"representation": "tfidf", "ngrams": 2, "hidden_units": 64, "class_weighting": True})
    assert label == "tfidf cw h64 ng2"


def test_best_trial_is_the_highest_cross_validated_balanced_score_then_macro_f1() -> None:
    # The mean of accuracy and macro-F1 out of fold: "a" has the best macro-F1 but pays
    # for it with accuracy.
    trials = [
        {"label": "a", "cv_balanced": 0.55, "cv_macro_f1": 0.50, "cv_accuracy": 0.60},
        {"label": "b", "cv_balanced": 0.58, "cv_macro_f1": 0.46, "cv_accuracy": 0.70},
        {"label": "c", "cv_balanced": 0.58, "cv_macro_f1": 0.47, "cv_accuracy": 0.69},
    ]
    assert select_best(trials)["label"] == "c"
    with pytest.raises(SearchSpaceError):
        select_best([])


def test_the_ranking_the_operator_logs_starts_with_the_chosen_trial() -> None:
    # Ties on both scores: the ranking and the choice break them the same way (they once
    # differed, so the logged ranking could disagree with the chosen trial).
    trials = [
        {"label": "b", "cv_balanced": 0.6, "cv_macro_f1": 0.5},
        {"label": "a", "cv_balanced": 0.6, "cv_macro_f1": 0.5},
        {"label": "c", "cv_balanced": 0.6, "cv_macro_f1": 0.55},
        {"label": "d", "cv_balanced": 0.5, "cv_macro_f1": 0.6},
    ]
    ranking = rank_trials(trials)
    assert [t["label"] for t in ranking] == ["c", "b", "a", "d"]
    assert select_best(trials) is ranking[0]
    assert select_best(list(reversed(trials)))["label"] == "c"


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"hidden_units": list(range(1000)), "epochs": list(range(1, 1001)), "dropout": [0.1, 0.2, 0.3]},
            "axis epochs has 1,000 values, more than the 100 allowed",
        ),
        (
            {"hidden_units": list(range(100)), "epochs": list(range(1, 101)), "max_tokens": list(range(100, 200))},
            "the search space has 1,000,000 combinations (100 epochs x 100 hidden_units x 100 max_tokens), "
            "more than the 100,000",
        ),
    ],
    ids=["1000x1000x3", "100x100x100"],
)
def test_an_oversized_search_space_is_refused_before_any_grid_is_built(space: dict[str, Any], message: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(SearchSpaceError) as raised:
            plan_trials(space, 8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(raised.value).startswith(message)
    assert time.perf_counter() - started < 1.0 and peak < 5_000_000  # the grid would take 11 s and 668 MB


def test_a_large_space_within_the_bounds_is_sampled_without_building_the_grid() -> None:
    space = {"hidden_units": list(range(100)), "epochs": list(range(1, 101)), "ngrams": [1, 2, 3]}
    tracemalloc.start()
    try:
        trials = plan_trials(space, 8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len({t["label"] for t in trials}) == 8
    assert peak < 5_000_000  # 30,000 indexes, not 30,000 dicts


@pytest.mark.parametrize(
    ("space", "budget", "message"),
    [
        ({"epochs": [10**9]}, 2, "hyperparameter epochs must be a whole number from 1 to 200, got 1000000000"),
        ({"dropout": [-0.5]}, 2, "hyperparameter dropout must be a number from 0.0 to 0.9, got -0.5"),
        ({"learning_rate": [float("nan")]}, 2, "hyperparameter learning_rate must be a number"),
        ({"hidden_units": [True]}, 2, "hyperparameter hidden_units must be a whole number"),
        ({"epochs": 5}, 2, "axis epochs of the search space must be a list of values, got 5"),
        ({"epochs": [5]}, 0, "max_trials must be a whole number from 1 to 64, got 0"),
        ({"epochs": [5]}, 65, "max_trials must be a whole number from 1 to 64, got 65"),
    ],
)
def test_values_and_budgets_outside_their_ranges_are_refused(space: dict[str, Any], budget: int, message: str) -> None:
    with pytest.raises(SearchSpaceError) as raised:
        plan_trials(space, budget)
    assert str(raised.value).startswith(message)
