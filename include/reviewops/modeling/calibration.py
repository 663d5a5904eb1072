"""The decision rule and the calibration fitted on out-of-fold predictions.

A classifier's scores are log-probabilities (``log softmax`` of its logits). Two things
are chosen from the out-of-fold scores of cross-validation, never from the rows they
are judged on:

* **per-class offsets** added to the scores before the arg-max: the rare neutral class
  (9 % of the shipped reviews) is almost never the arg-max of a model trained on them,
  so its recall is near zero unless its score is raised;
* **a temperature** ``T`` dividing the offset scores before the softmax, chosen to
  minimise the negative log-likelihood (Guo et al., 2017, "On calibration of modern
  neural networks"), so a probability of 0.8 is right about 80 % of the time.

Both are linear in the logits, so they are baked into the final Dense layer's kernel and
bias: the saved model returns calibrated probabilities whose arg-max is the decision
rule, and scoring and serving change nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Offsets tried for each non-reference class: a grid wide enough for a class at a tenth
# of the data (its best offset on the shipped reviews is about +0.5), coarse enough that
# the choice does not chase the noise of a few hundred out-of-fold rows.
OFFSET_GRID: tuple[float, ...] = tuple(round(x, 2) for x in np.arange(-1.0, 2.01, 0.25))
ECE_BINS = 10
_TEMPERATURE_RANGE = (0.05, 20.0)


@dataclass(frozen=True)
class Calibration:
    """What is baked into a model's output layer: ``offsets`` (one per class, added to
    the log-probabilities) and ``temperature`` (dividing them)."""

    offsets: tuple[float, ...]
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {self.temperature!r}")
        if not all(np.isfinite(o) for o in self.offsets):
            raise ValueError(f"offsets must be finite numbers, got {self.offsets!r}")

    @classmethod
    def identity(cls, classes: int) -> Calibration:
        return cls(tuple(0.0 for _ in range(classes)), 1.0)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Calibration:
        return cls(tuple(float(o) for o in value["offsets"]), float(value["temperature"]))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"offsets": list(self.offsets)}

    def apply(self, log_probabilities: Any) -> Any:
        """Calibrated probabilities from log-probabilities (rows x classes)."""
        return softmax((np.asarray(log_probabilities, dtype=np.float64) + np.asarray(self.offsets)) / self.temperature)


def softmax(scores: Any) -> Any:
    z = np.asarray(scores, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_probabilities(probabilities: Any) -> Any:
    """Log-probabilities of a model's softmax output, floored so a 0 stays finite."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0))


def macro_f1(y_true: Any, y_pred: Any, classes: int) -> float:
    """Macro-F1 over ``classes`` label ids (a class never seen nor predicted scores 0)."""
    confusion = np.bincount(np.asarray(y_true) * classes + np.asarray(y_pred), minlength=classes * classes)
    confusion = confusion.reshape(classes, classes)
    tp = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)
    f1 = np.divide(2 * tp, denominator, out=np.zeros(classes), where=denominator > 0)
    return float(f1.mean())


def balanced_score(y_true: Any, y_pred: Any, classes: int) -> float:
    """The mean of accuracy and macro-F1: what the decision rule and the trial ranking
    maximise. Macro-F1 alone buys the rare class's recall with any amount of accuracy (on
    the shipped reviews, offsets chosen for macro-F1 alone gained 0.05 of it and lost 0.06
    of accuracy, worse than the standard baseline beyond the noise); accuracy alone never
    predicts the rare class."""
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    return (float((truth == predicted).mean()) + macro_f1(truth, predicted, classes)) / 2


def choose_offsets(
    log_probs: Any, y_true: Sequence[int], reference: int, grid: Sequence[float] = OFFSET_GRID
) -> tuple[float, ...]:
    """Per-class offsets maximising :func:`balanced_score` of the arg-max over
    ``log_probs``; the ``reference`` class (the most common one) keeps 0, every other
    class tries each value of ``grid``. Ties go to the smallest total shift, so no
    evidence means no offset."""
    scores = np.asarray(log_probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    k = scores.shape[1]
    others = [c for c in range(k) if c != reference]
    best: tuple[float, float, tuple[float, ...]] | None = None
    for combination in itertools.product(grid, repeat=len(others)):
        offsets = np.zeros(k)
        offsets[others] = combination
        score = balanced_score(y, (scores + offsets).argmax(axis=1), k)
        key = (round(score, 10), -float(np.abs(offsets).sum()))
        if best is None or key > best[:2]:
            best = (key[0], key[1], tuple(float(o) for o in offsets))
    assert best is not None  # the grid is never empty
    return best[2]


def negative_log_likelihood(log_probs: Any, y_true: Sequence[int], temperature: float) -> float:
    p = softmax(np.asarray(log_probs, dtype=np.float64) / temperature)
    y = np.asarray(y_true, dtype=np.int64)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def fit_temperature(log_probs: Any, y_true: Sequence[int]) -> float:
    """The temperature minimising the negative log-likelihood, by golden-section search
    on log T (the likelihood is unimodal in T for a fixed arg-max)."""
    if len(y_true) == 0:
        raise ValueError("no rows to fit a temperature on")
    low, high = np.log(_TEMPERATURE_RANGE[0]), np.log(_TEMPERATURE_RANGE[1])
    ratio = (np.sqrt(5) - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = (
        negative_log_likelihood(log_probs, y_true, np.exp(c)),
        negative_log_likelihood(log_probs, y_true, np.exp(d)),
    )
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = negative_log_likelihood(log_probs, y_true, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = negative_log_likelihood(log_probs, y_true, np.exp(d))
    return round(float(np.exp((a + b) / 2)), 4)


def expected_calibration_error(probabilities: Any, y_true: Sequence[int], bins: int = ECE_BINS) -> float:
    """ECE: the row-weighted mean gap between confidence (the top probability) and
    accuracy over ``bins`` equal-width confidence bins."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    if len(y) == 0:
        raise ValueError("no rows: the calibration error of nothing is undefined")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.sum() * abs(confidence[members].mean() - correct[members].mean())
    return round(float(gap / len(y)), 4)


def fit_calibration(log_probs: Any, y_true: Sequence[int], reference: int) -> tuple[Calibration, dict[str, float]]:
    """Offsets, then the temperature of the offset scores, from out-of-fold predictions;
    with the expected calibration error before (offsets, T = 1) and after."""
    offsets = choose_offsets(log_probs, y_true, reference)
    shifted = np.asarray(log_probs, dtype=np.float64) + np.asarray(offsets)
    temperature = fit_temperature(shifted, y_true)
    calibration = Calibration(offsets, temperature)
    before = expected_calibration_error(softmax(shifted), y_true)
    after = expected_calibration_error(calibration.apply(log_probs), y_true)
    return calibration, {"ece_before": before, "ece_after": after}
