"""Distances between distributions: population stability index and Jensen-Shannon
divergence, and the share of words a model never saw in training.

Population stability index (PSI) reads as the usual rule of thumb: below 0.1 stable,
0.1-0.25 moderate shift, above 0.25 significant shift."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from reviewops.modeling.reference import tokenize

log = logging.getLogger(__name__)


def _distribution(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: a distribution is a non-empty list of shares, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name}: shares must be finite and non-negative, got {array.tolist()}")
    total = float(array.sum())
    if total <= 0:
        raise ValueError(f"{name}: shares sum to {total}; there is no distribution to compare")
    result: np.ndarray = array / total
    return result


def _pair(expected: Sequence[float], actual: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    e, a = _distribution(expected, "expected"), _distribution(actual, "actual")
    if e.shape != a.shape:
        raise ValueError(f"distributions over different bins: {e.size} expected shares, {a.size} actual")
    return e, a


def population_stability_index(expected: Sequence[float], actual: Sequence[float], epsilon: float = 1e-4) -> float:
    """PSI = sum((actual - expected) * ln(actual / expected)) over bins.

    Both are normalised to sum to 1 (counts work too); shares below ``epsilon`` are
    raised to it, so an empty bin costs a large but finite amount.
    """
    e, a = _pair(expected, actual)
    e, a = np.clip(e, epsilon, None), np.clip(a, epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _kl_base2(p: np.ndarray, m: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits: 0 for identical distributions, 1 for disjoint
    ones. Both are normalised to sum to 1; symmetric, and finite with empty bins."""
    a, b = _pair(p, q)
    m = (a + b) / 2
    value = 0.5 * _kl_base2(a, m) + 0.5 * _kl_base2(b, m)
    return min(1.0, max(0.0, value))  # rounding can step a hair outside [0, 1]


def unknown_counts(texts: Iterable[str], vocabulary: set[str]) -> tuple[int, int]:
    unknown = total = 0
    for text in texts:
        words = tokenize(text)
        total += len(words)
        unknown += len(words) - sum(map(vocabulary.__contains__, words))
    return unknown, total


def unknown_word_share(texts: Sequence[str], vocabulary: set[str]) -> float:
    """Share of the words in ``texts`` (every occurrence) missing from ``vocabulary``."""
    unknown, total = unknown_counts(texts, vocabulary)
    if total == 0:
        raise ValueError("the texts hold no words; the unknown-word share is undefined")
    return unknown / total
