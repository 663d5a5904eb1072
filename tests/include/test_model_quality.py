"""The statistics behind model choice and the gate: stratified folds, bootstrap intervals
and paired differences, the decision rule's offsets, temperature scaling and the
expected calibration error. Pure numpy, no training (milliseconds)."""

from __future__ import annotations

import numpy as np
import pytest

from reviewops.modeling.bootstrap import bootstrap_comparison
from reviewops.modeling.calibration import (
    Calibration,
    choose_offsets,
    expected_calibration_error,
    fit_calibration,
    fit_temperature,
    macro_f1,
    softmax,
)
from reviewops.modeling.crossval import CrossValidationError, stratified_folds


def _labels(n: int, shares: tuple[float, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(len(shares), size=n, p=shares)


def _noisy(truth: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    """Predictions right with probability ``accuracy``, else a random other class."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(truth)) > accuracy
    return np.where(wrong, (truth + rng.integers(1, 3, len(truth))) % 3, truth)


def test_folds_are_stratified_balanced_and_follow_the_review_not_the_row_order() -> None:
    labels = [0] * 30 + [1] * 7 + [2] * 63
    ids = [f"r{i}" for i in range(100)]
    folds = stratified_folds(ids, labels, 5)
    assert sorted(np.bincount(folds).tolist()) == [20] * 5
    for label, count in ((0, 30), (1, 7), (2, 63)):
        per_fold = np.bincount(folds[np.asarray(labels) == label], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1, (label, per_fold)
        assert per_fold.sum() == count
    order = np.random.default_rng(1).permutation(100)
    shuffled = stratified_folds([ids[i] for i in order], [labels[i] for i in order], 5)
    assert {ids[i]: int(f) for i, f in zip(order, shuffled, strict=True)} == {
        ids[i]: int(f) for i, f in enumerate(folds)
    }


@pytest.mark.parametrize(("rows", "k", "message"), [(10, 1, "from 2 to 10"), (3, 5, "3 train rows cannot make 5")])
def test_impossible_folds_say_what_to_change(rows: int, k: int, message: str) -> None:
    with pytest.raises(CrossValidationError, match=message):
        stratified_folds([str(i) for i in range(rows)], [0] * rows, k)


def test_bootstrap_intervals_cover_the_scores_and_pair_the_rows() -> None:
    truth = _labels(400, (0.27, 0.09, 0.64))
    good, same = _noisy(truth, 0.8, 1), _noisy(truth, 0.8, 1)
    result = bootstrap_comparison(truth, {"good": good, "same": same, "worse": _noisy(truth, 0.6, 2)}, "good", 3)
    assert result["rows"] == 400 and result["replicates"] == 2000
    for name, scores in result["scores"].items():
        for metric, value in scores.items():
            low, high = result["intervals"][name][metric]
            assert low <= value <= high, (name, metric)
    assert result["scores"]["good"]["accuracy"] == pytest.approx(float((good == truth).mean()), abs=1e-4)
    # Identical predictions: every replicate scores both alike, so the paired difference is exactly 0.
    assert result["differences"]["same"]["accuracy"] == {"estimate": 0.0, "interval": [0.0, 0.0]}
    # 0.8 vs 0.6 accuracy on 400 rows: better beyond the noise, and the paired interval is
    # narrower than the two separate intervals side by side.
    worse = result["differences"]["worse"]["accuracy"]
    assert worse["interval"][0] > 0
    separate = [result["intervals"][n]["accuracy"] for n in ("good", "worse")]
    assert worse["interval"][1] - worse["interval"][0] < sum(high - low for low, high in separate)
    again = bootstrap_comparison(truth, {"good": good, "worse": _noisy(truth, 0.6, 2)}, "good", 3)
    assert again["differences"]["worse"] == result["differences"]["worse"], "seeded: the same rows, the same interval"


def test_an_unanswered_review_is_a_miss_of_its_class_and_no_class_s_prediction() -> None:
    # Truth negative, neutral, positive, positive; answers negative, none, positive, neutral.
    result = bootstrap_comparison([0, 1, 2, 2], {"a": [0, 3, 2, 1], "b": [0, 1, 2, 2]}, "a", 3)
    # F1: negative 1, neutral 0 (its one prediction is wrong), positive 2/3 (recall 1/2).
    assert result["scores"]["a"] == {"accuracy": 0.5, "macro_f1": round((1 + 0 + 2 / 3) / 3, 4)}
    assert result["scores"]["b"] == {"accuracy": 1.0, "macro_f1": 1.0}
    with pytest.raises(ValueError, match="a: predictions outside the 3 classes"):
        bootstrap_comparison([0, 1], {"a": [0, 4]}, "a", 3)


def test_bootstrap_refuses_mismatched_predictions() -> None:
    with pytest.raises(ValueError, match="b: 2 predictions for 3 rows"):
        bootstrap_comparison([0, 1, 2], {"a": [0, 1, 2], "b": [0, 1]}, "a", 3)
    with pytest.raises(ValueError, match="no rows"):
        bootstrap_comparison([], {"a": []}, "a", 3)


def _overconfident(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose labels were drawn from softmax(scores / temperature): the true temperature."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 2.0, size=(n, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(scores / temperature)])
    return scores, labels


def test_temperature_scaling_recovers_the_temperature_and_lowers_the_calibration_error() -> None:
    scores, labels = _overconfident(4000, 2.5)
    temperature = fit_temperature(scores, labels)
    assert temperature == pytest.approx(2.5, rel=0.1)
    before = expected_calibration_error(softmax(scores), labels)
    after = expected_calibration_error(softmax(scores / temperature), labels)
    assert before > 0.1 and after < 0.03
    assert Calibration((0.0, 0.0, 0.0), temperature).apply(scores) == pytest.approx(softmax(scores / temperature))


def test_offsets_raise_a_rare_class_the_arg_max_never_picks_and_are_zero_without_evidence() -> None:
    rng = np.random.default_rng(3)
    labels = _labels(600, (0.27, 0.09, 0.64), seed=3)
    scores = np.eye(3)[labels] * 2.0 + rng.normal(0, 0.8, (600, 3))
    scores[:, 1] -= 1.5  # the rare class is under-scored: its recall is near 0
    offsets = choose_offsets(scores, labels, reference=2)
    assert offsets[2] == 0.0 and offsets[1] >= 1.0
    plain, ruled = scores.argmax(axis=1), (scores + np.asarray(offsets)).argmax(axis=1)
    rare = labels == 1
    assert (plain[rare] == 1).mean() < 0.5 < (ruled[rare] == 1).mean()
    assert macro_f1(labels, ruled, 3) > macro_f1(labels, plain, 3) + 0.05
    # Scores that already separate the classes perfectly: no shift improves them.
    assert choose_offsets(np.eye(3)[labels] * 5.0, labels, reference=2) == (0.0, 0.0, 0.0)


def test_fit_calibration_reports_the_error_before_and_after() -> None:
    scores, labels = _overconfident(2000, 0.4, seed=5)  # underconfident scores: T < 1 sharpens them
    calibration, ece = fit_calibration(scores, labels, reference=0)
    assert calibration.temperature < 1.0
    assert ece["ece_after"] < ece["ece_before"]
    assert Calibration.from_dict(calibration.as_dict()) == calibration
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        Calibration((0.0, 0.0, 0.0), 0.0)
