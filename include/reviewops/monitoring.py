"""Weekly monitoring of scored reviews: drift against the training data, accuracy where
ratings arrived, slices, unknown words, safety flags and scoring speed; the threshold
gate over those metrics, and a self-contained HTML report of them.

Every metric is plain JSON (numbers, strings, lists, dicts, null). A metric that a week
cannot define (accuracy without labels, drift of an empty week) is null, never a default
that looks like a measurement.

Drift is measured on two distributions, each against the same one in the training data:
the predicted class mix and the text length histogram (bins at the training deciles).
Population stability index (PSI) reads as the usual rule of thumb: below 0.1 stable,
0.1-0.25 moderate shift, above 0.25 significant shift.
"""

from __future__ import annotations

import html
import json
import logging
import math
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from reviewops.evaluation import classification_metrics
from reviewops.lineage import Artifact, StepResult
from reviewops.safety import CATEGORIES as SAFETY_CATEGORIES

log = logging.getLogger(__name__)

# Text length bins: edges at these quantiles of the training texts' lengths.
LENGTH_QUANTILES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DIGITS = 4
SLICE_DIMENSIONS: tuple[str, ...] = ("product", "condition")
BASE_COLUMNS: tuple[str, ...] = (
    "review_id",
    "predicted_label",
    "label",
    "product",
    "condition",
    "text",
    "safety_categories",
    "safety_score",
)

# Keras TextVectorization's "lower_and_strip_punctuation" runs tf.strings.lower, which
# lowercases ASCII letters only, and removes these characters; its whitespace split
# splits on ASCII whitespace only (a no-break space stays inside a word).
PUNCTUATION = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'"
ASCII_WHITESPACE = "\t\n\v\f\r"
# One pass: ASCII letters lowercased, punctuation deleted, ASCII whitespace made spaces.
_STANDARDIZE = str.maketrans(
    string.ascii_uppercase + ASCII_WHITESPACE, string.ascii_lowercase + " " * len(ASCII_WHITESPACE), PUNCTUATION
)


@dataclass(frozen=True)
class Thresholds:
    """Limits of the weekly monitoring gate.

    ``min_volume``: fewer scored reviews in a week is a breach (an empty week usually
    means ingestion or scoring lost the week's data).
    ``max_prediction_psi``: PSI of the week's predicted class mix against training;
    above 0.25 is the conventional "significant shift".
    ``max_length_psi``: PSI of the week's text length histogram against training.
    ``min_accuracy``: accuracy on the week's reviews whose rating arrived; 0.4 is far
    below the model's usual ~0.75 and below always answering "positive" (~0.64), so a
    breach means the model is broken or the labels changed meaning, not noise.
    ``max_safety_rate``: share of reviews flagged for personal data or toxic language.
    ``min_slice_size``: a product or condition is reported as a slice from this many
    labelled reviews on.
    ``min_drift_rows``: drift is gated only for weeks with at least this many reviews;
    smaller weeks still report it. PSI of a few reviews is noise: weeks drawn at random
    from the shipped training reviews themselves have a length PSI whose 95th
    percentile is 1.55 at 30 reviews, 0.43 at 50 and 0.18 at 100 (class PSI: 0.58,
    0.12, 0.06), and a single review gives a class PSI near 3.
    ``min_labelled``: accuracy is gated only with at least this many labelled reviews;
    below it one wrong review moves accuracy by more than the margin the gate allows.
    ``min_answered_rate``: share of the week's reviews the model classified. Local
    scoring classifies every review; a Gemini model on Vertex AI may block, garble or
    lose answers, and the class mix and accuracy are computed over the answered ones
    only, so a week the model mostly did not answer must not pass on their strength.
    """

    min_volume: int = 1
    max_prediction_psi: float = 0.25
    max_length_psi: float = 0.25
    min_accuracy: float = 0.4
    max_safety_rate: float = 0.2
    min_slice_size: int = 5
    min_drift_rows: int = 100
    min_labelled: int = 30
    min_answered_rate: float = 0.9

    def __post_init__(self) -> None:
        for name in ("min_volume", "min_slice_size", "min_drift_rows", "min_labelled"):
            if getattr(self, name) < 0:
                raise ValueError(f"threshold {name} must not be negative, got {getattr(self, name)}")
        for name in ("min_accuracy", "max_safety_rate", "min_answered_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"threshold {name} is a share in [0, 1], got {getattr(self, name)}")
        for name in ("max_prediction_psi", "max_length_psi"):
            if getattr(self, name) < 0:
                raise ValueError(f"threshold {name} must not be negative, got {getattr(self, name)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Breach:
    """A metric outside its threshold, with a one-line message for the operator."""

    metric: str
    value: float | int | None
    threshold: float | int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Gated metric -> where it lives in the metrics dict.
METRIC_PATHS: dict[str, tuple[str, ...]] = {
    "review_count": ("review_count",),
    "prediction_psi": ("drift", "prediction_psi"),
    "length_psi": ("drift", "length_psi"),
    "accuracy": ("accuracy",),
    "safety_flagged_rate": ("safety", "flagged_rate"),
    "answered_rate": ("answered_rate",),
}


# --- distributions ---------------------------------------------------------------


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


def _shares(counts: Mapping[str, int], classes: Sequence[str]) -> dict[str, float]:
    total = sum(counts[name] for name in classes)
    return {name: round(counts[name] / total, DIGITS) for name in classes}


def _checked(values: Iterable[Any], classes: Sequence[str], what: str) -> list[str]:
    items = list(values)
    unknown = sorted({repr(v) for v in items if v not in classes})
    if unknown:
        raise ValueError(f"{what} outside the classes {list(classes)}: {', '.join(unknown[:5])}")
    return items


def length_edges(lengths: Sequence[int]) -> list[int]:
    """Bin edges at the training deciles of text length (characters), deduplicated."""
    if len(lengths) == 0:
        raise ValueError("no texts: length bins come from the training texts' lengths")
    quantiles = np.quantile(np.asarray(lengths, dtype=np.float64), LENGTH_QUANTILES)
    return sorted({round(float(q)) for q in quantiles})


def length_shares(lengths: Sequence[int], edges: Sequence[int]) -> list[float]:
    """Shares of texts per bin: below the first edge, ``[edge_i, edge_i+1)``, from the
    last edge up."""
    if len(lengths) == 0:
        raise ValueError("no texts: the length histogram of nothing is undefined")
    counts = np.bincount(
        np.searchsorted(np.asarray(edges), np.asarray(lengths), side="right"), minlength=len(edges) + 1
    )
    return [round(float(c) / len(lengths), DIGITS) for c in counts]


def training_reference(
    texts: Sequence[str], labels: Sequence[str], predicted: Sequence[str] | None, classes: Sequence[str]
) -> dict[str, Any]:
    """What drift is measured against: the training data's class shares (of labels, and
    of the model's predictions on it when given) and its text length histogram."""
    if len(texts) != len(labels) or (predicted is not None and len(predicted) != len(texts)):
        raise ValueError(
            f"texts, labels and predictions differ in length: {len(texts)}, {len(labels)}, "
            f"{None if predicted is None else len(predicted)}"
        )
    lengths = [len(text) for text in texts]
    edges = length_edges(lengths)
    label_counts = Counter(_checked(labels, classes, "training labels"))
    reference: dict[str, Any] = {
        "rows": len(texts),
        "classes": list(classes),
        "label_distribution": _shares(label_counts, classes),
        "predicted_class_distribution": None,
        "length_distribution": {"edges": edges, "shares": length_shares(lengths, edges)},
        "mean_length": round(float(np.mean(lengths)), 1),
    }
    if predicted is not None:
        predicted_counts = Counter(_checked(predicted, classes, "training predictions"))
        reference["predicted_class_distribution"] = _shares(predicted_counts, classes)
    return reference


# --- words ------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Words as Keras ``TextVectorization(standardize="lower_and_strip_punctuation",
    split="whitespace")`` sees them: ASCII letters lowercased, punctuation removed, split
    on ASCII whitespace. Checked token for token against Keras 3 on the shipped reviews."""
    return [word for word in text.translate(_STANDARDIZE).split(" ") if word]


def _unknown_counts(texts: Iterable[str], vocabulary: set[str]) -> tuple[int, int]:
    unknown = total = 0
    for text in texts:
        words = tokenize(text)
        total += len(words)
        unknown += len(words) - sum(map(vocabulary.__contains__, words))
    return unknown, total


def unknown_word_share(texts: Sequence[str], vocabulary: set[str]) -> float:
    """Share of the words in ``texts`` (every occurrence) missing from ``vocabulary``."""
    unknown, total = _unknown_counts(texts, vocabulary)
    if total == 0:
        raise ValueError("the texts hold no words; the unknown-word share is undefined")
    return unknown / total


# --- one week ---------------------------------------------------------------------


def _require_columns(frame: pd.DataFrame, classes: Sequence[str]) -> None:
    wanted = (*BASE_COLUMNS, *(f"prob_{name}" for name in classes))
    missing = [name for name in wanted if name not in frame.columns]
    if missing:
        raise ValueError(f"the week's frame lacks columns {missing}; it has {list(frame.columns)}")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), DIGITS)


def _speed(rows: int, batch_seconds: Sequence[float]) -> dict[str, Any]:
    seconds = np.asarray(batch_seconds, dtype=np.float64)
    if seconds.size and (not np.all(np.isfinite(seconds)) or np.any(seconds < 0)):
        raise ValueError(f"batch durations must be finite and non-negative, got {seconds.tolist()}")
    total = float(seconds.sum())
    latency: dict[str, Any] = {"p50": None, "p95": None, "max": None, "batches": int(seconds.size)}
    if seconds.size:
        latency.update(
            p50=_rounded(float(np.quantile(seconds, 0.5))),
            p95=_rounded(float(np.quantile(seconds, 0.95))),
            max=_rounded(float(seconds.max())),
        )
    return {
        "throughput_rows_per_second": round(rows / total, 1) if total > 0 else None,
        "batch_latency_seconds": latency,
    }


def _drift(
    predicted: dict[str, float] | None,
    lengths: list[float] | None,
    reference: Mapping[str, Any],
    classes: Sequence[str],
) -> dict[str, Any]:
    source = "predicted" if reference.get("predicted_class_distribution") else "label"
    expected = reference["predicted_class_distribution" if source == "predicted" else "label_distribution"]
    drift: dict[str, Any] = {"reference_source": source}
    if predicted is None or lengths is None:
        return {**drift, "prediction_psi": None, "prediction_js": None, "length_psi": None, "length_js": None}
    expected_classes = [expected[name] for name in classes]
    actual_classes = [predicted[name] for name in classes]
    expected_lengths = reference["length_distribution"]["shares"]
    return {
        **drift,
        "prediction_psi": _rounded(population_stability_index(expected_classes, actual_classes)),
        "prediction_js": _rounded(jensen_shannon(expected_classes, actual_classes)),
        "length_psi": _rounded(population_stability_index(expected_lengths, lengths)),
        "length_js": _rounded(jensen_shannon(expected_lengths, lengths)),
    }


def _scores(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> tuple[float, float]:
    # Macro-F1 over the classes present in labels or predictions (as scikit-learn does):
    # a slice of only positive reviews is not averaged with two classes it cannot show.
    present = [name for name in classes if name in set(y_true) | set(y_pred)]
    metrics = classification_metrics(y_true, y_pred, present)
    return float(metrics["accuracy"]), float(metrics["macro_f1"])


def _slices(labelled: pd.DataFrame, classes: Sequence[str], min_size: int) -> dict[str, list[dict[str, Any]]]:
    slices: dict[str, list[dict[str, Any]]] = {}
    for dimension in SLICE_DIMENSIONS:
        rows = []
        for name, group in labelled.groupby(dimension, dropna=True, sort=True):
            if len(group) < min_size:
                continue
            accuracy, macro_f1 = _scores(list(group["label"]), list(group["predicted_label"]), classes)
            rows.append({"name": str(name), "count": len(group), "accuracy": accuracy, "macro_f1": macro_f1})
        slices[dimension] = sorted(rows, key=lambda s: (s["accuracy"], -s["count"], s["name"]))
    return slices


def _worst_slice(slices: Mapping[str, list[dict[str, Any]]], accuracy: float | None) -> dict[str, Any] | None:
    candidates = [(s["accuracy"], -s["count"], dimension, s) for dimension, rows in slices.items() for s in rows]
    if accuracy is None or not candidates:
        return None
    worst_accuracy, _, dimension, worst = min(candidates, key=lambda c: c[:3])
    return {
        "dimension": dimension,
        "name": worst["name"],
        "count": worst["count"],
        "accuracy": worst_accuracy,
        "gap": round(accuracy - worst_accuracy, DIGITS),
    }


def _quality(frame: pd.DataFrame, classes: Sequence[str], min_slice_size: int) -> dict[str, Any]:
    labelled = frame[frame["label"].notna()]
    y_true = _checked(labelled["label"], classes, "labels")
    accuracy = macro_f1 = None
    if y_true:
        accuracy, macro_f1 = _scores(y_true, list(labelled["predicted_label"]), classes)
    slices = _slices(labelled, classes, min_slice_size)
    return {
        "labelled_count": len(y_true),
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "slices": slices,
        "worst_slice_gap": _worst_slice(slices, accuracy),
    }


def _categories(value: Any) -> list[str]:
    """A row's safety categories: a list or array from Parquet, or null for none."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return []
    return [str(item) for item in value]


def _safety(frame: pd.DataFrame) -> dict[str, Any]:
    per_row = [_categories(value) for value in frame["safety_categories"]]
    counts = Counter(name for row in per_row for name in set(row))
    flagged = sum(bool(row) for row in per_row)
    scores = pd.to_numeric(frame["safety_score"]).dropna()
    return {
        "flagged_count": flagged,
        "flagged_rate": round(flagged / len(frame), DIGITS) if len(frame) else None,
        "by_category": {
            **{name: counts.get(name, 0) for name in SAFETY_CATEGORIES},
            **{name: counts[name] for name in sorted(counts) if name not in SAFETY_CATEGORIES},
        },
        "max_score": _rounded(float(scores.max())) if len(scores) else None,
    }


def _mean_confidence(frame: pd.DataFrame, classes: Sequence[str]) -> float | None:
    if frame.empty:
        return None
    probabilities = frame[[f"prob_{name}" for name in classes]].to_numpy(dtype=np.float64)
    return _rounded(float(probabilities.max(axis=1).mean()))


def _reference_view(reference: Mapping[str, Any], classes: Sequence[str]) -> dict[str, Any]:
    if list(reference["classes"]) != list(classes):
        raise ValueError(f"the reference is over classes {reference['classes']}, the week over {list(classes)}")
    source = "predicted_class_distribution" if reference.get("predicted_class_distribution") else "label_distribution"
    return {
        "rows": reference["rows"],
        "class_distribution": reference[source],
        "length_distribution": reference["length_distribution"],
        "mean_length": reference.get("mean_length"),
    }


def week_metrics(
    frame: pd.DataFrame,
    reference: Mapping[str, Any],
    vocabulary: set[str],
    classes: Sequence[str],
    batch_seconds: Sequence[float],
    thresholds: Thresholds,
) -> dict[str, Any]:
    """The monitoring metrics of one week's scored reviews (one row per review)."""
    _require_columns(frame, classes)
    rows = len(frame)
    # A Gemini model on Vertex AI may not classify a review (blocked, unparseable, error,
    # missing: null predicted_label); the class mix, confidence and accuracy are over the
    # answered reviews, volume, lengths, words and safety over all of them.
    answered = frame[frame["predicted_label"].notna()]
    predicted = _checked(answered["predicted_label"], classes, "predicted labels")
    if frame["text"].isna().any():
        raise ValueError(f"{int(frame['text'].isna().sum())} scored reviews have no text; curated text is never null")
    texts = [str(text) for text in frame["text"]]
    lengths = [len(text) for text in texts]
    edges = reference["length_distribution"]["edges"]
    class_shares = _shares(Counter(predicted), classes) if predicted else None
    week_lengths = length_shares(lengths, edges) if rows else None
    unknown, words = _unknown_counts(texts, vocabulary)
    metrics: dict[str, Any] = {
        "review_count": rows,
        "answered_count": len(answered),
        "answered_rate": round(len(answered) / rows, DIGITS) if rows else None,
        **_speed(rows, batch_seconds),
        "predicted_class_counts": {name: predicted.count(name) for name in classes},
        "predicted_class_distribution": class_shares,
        "mean_confidence": _mean_confidence(answered, classes),
        "length_distribution": {"edges": list(edges), "shares": week_lengths},
        "mean_length": round(float(np.mean(lengths)), 1) if rows else None,
        "reference": _reference_view(reference, classes),
        "drift": _drift(class_shares, week_lengths, reference, classes),
        **_quality(answered, classes, thresholds.min_slice_size),
        "unknown_word_share": round(unknown / words, DIGITS) if words else None,
        "safety": _safety(frame),
        "thresholds": thresholds.as_dict(),
    }
    log.info(
        "week of %d reviews: prediction PSI %s, length PSI %s, accuracy %s on %d labelled, %d flagged",
        rows,
        metrics["drift"]["prediction_psi"],
        metrics["drift"]["length_psi"],
        metrics["accuracy"],
        metrics["labelled_count"],
        metrics["safety"]["flagged_count"],
    )
    return metrics


# --- the gate ---------------------------------------------------------------------


def metric_value(metrics: Mapping[str, Any], metric: str) -> Any:
    """A gated metric's value, looked up by its name in ``METRIC_PATHS``."""
    value: Any = metrics
    for key in METRIC_PATHS[metric]:
        value = value[key]
    return value


def _number(value: float | int | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _above(metrics: Mapping[str, Any], metric: str, limit: float, meaning: str) -> Breach | None:
    value = metric_value(metrics, metric)
    if value is None or value <= limit:
        return None
    return Breach(metric, value, limit, f"{metric} {_number(value)} > max {_number(limit)}: {meaning}")


def _below(metrics: Mapping[str, Any], metric: str, limit: float | int, meaning: str) -> Breach | None:
    value = metric_value(metrics, metric)
    if value is None or value >= limit:
        return None
    return Breach(metric, value, limit, f"{metric} {_number(value)} < min {_number(limit)}: {meaning}")


def check_thresholds(metrics: Mapping[str, Any], thresholds: Thresholds) -> list[Breach]:
    """The metrics outside their thresholds; an empty list passes the gate.

    Drift is judged from ``min_drift_rows`` reviews on and accuracy from
    ``min_labelled`` labelled reviews on (see ``Thresholds``).
    """
    checks: list[Breach | None] = [
        _below(
            metrics,
            "review_count",
            thresholds.min_volume,
            "fewer reviews were scored this week than expected; check the week's ingestion and scoring",
        )
    ]
    if metrics["review_count"] >= thresholds.min_drift_rows:
        checks += [
            _above(
                metrics,
                "prediction_psi",
                thresholds.max_prediction_psi,
                "the predicted class mix drifted from training",
            ),
            _above(metrics, "length_psi", thresholds.max_length_psi, "review lengths drifted from the training texts"),
        ]
    checks.append(
        _below(
            metrics,
            "answered_rate",
            thresholds.min_answered_rate,
            "the model left too many reviews unclassified (blocked, unparseable, failed or lost answers); "
            "see response_status in the week's predictions",
        )
    )
    if metrics["labelled_count"] >= max(1, thresholds.min_labelled):
        checks.append(
            _below(
                metrics,
                "accuracy",
                thresholds.min_accuracy,
                "the model misclassifies too many of the week's rated reviews; retrain or roll back the model",
            )
        )
    checks.append(
        _above(
            metrics,
            "safety_flagged_rate",
            thresholds.max_safety_rate,
            "too many reviews carry personal data or toxic language; review the flagged reviews before publishing",
        )
    )
    breaches = [check for check in checks if check is not None]
    for breach in breaches:
        log.warning("threshold breached: %s", breach.message)
    return breaches


# --- the HTML report --------------------------------------------------------------

_E = html.escape
_WEEK_COLOUR = "#2f6db5"
_REFERENCE_COLOUR = "#b8b8b8"
_LABEL_WIDTH = 230
_BAR_WIDTH = 360
_BAR_HEIGHT = 14
_MAX_SLICE_BARS = 15

Series = tuple[str, Sequence[float | None], str]


def _short(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], fmt: Callable[[float], str]) -> str:
    """A horizontal grouped bar chart as inline SVG; every text is escaped here."""
    values = [v for _, vs, _ in series for v in vs if v is not None]
    if not labels or not values:
        return f"<h3>{_E(title)}</h3><p class='none'>No data this week.</p>"
    top = max(max(values), 1e-12)
    group = len(series) * (_BAR_HEIGHT + 2) + 8
    height = 24 + group * len(labels)
    width = _LABEL_WIDTH + _BAR_WIDTH + 80
    parts = [f"<h3>{_E(title)}</h3>", f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
    for k, (name, _, colour) in enumerate(series):
        x = _LABEL_WIDTH + k * 140
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="14">{_E(name)}</text>')
    for i, label in enumerate(labels):
        y = 24 + i * group
        parts.append(f'<text x="{_LABEL_WIDTH - 6}" y="{y + group / 2}" text-anchor="end">')
        parts.append(f"<title>{_E(label)}</title>{_E(_short(label))}</text>")
        for k, (_, vs, colour) in enumerate(series):
            parts.append(_bar(vs[i], top, y + k * (_BAR_HEIGHT + 2), colour, fmt))
    parts.append("</svg>")
    return "".join(parts)


def _bar(value: float | None, top: float, y: float, colour: str, fmt: Callable[[float], str]) -> str:
    if value is None:
        return f'<text x="{_LABEL_WIDTH}" y="{y + _BAR_HEIGHT - 3}" class="none">n/a</text>'
    length = max(0.0, value) / top * _BAR_WIDTH
    return (
        f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{_BAR_HEIGHT}" fill="{colour}"/>'
        f'<text x="{_LABEL_WIDTH + length + 4:.1f}" y="{y + _BAR_HEIGHT - 3}">{_E(fmt(value))}</text>'
    )


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _length_labels(edges: Sequence[int]) -> list[str]:
    if not edges:
        return ["all lengths"]
    inner = [f"{low}–{high - 1}" for low, high in pairwise(edges)]
    return [f"< {edges[0]}", *inner, f"≥ {edges[-1]}"]


def _class_chart(metrics: Mapping[str, Any]) -> str:
    week = metrics.get("predicted_class_distribution") or {}
    reference = metrics["reference"]["class_distribution"]
    names = list(reference)
    return _bar_chart(
        "Predicted class distribution",
        names,
        [
            ("this week", [week.get(n) for n in names], _WEEK_COLOUR),
            ("training", list(reference.values()), _REFERENCE_COLOUR),
        ],
        _percent,
    )


def _length_chart(metrics: Mapping[str, Any]) -> str:
    reference = metrics["reference"]["length_distribution"]
    week = metrics["length_distribution"]["shares"] or [None] * len(reference["shares"])
    return _bar_chart(
        "Text length (characters)",
        _length_labels(reference["edges"]),
        [("this week", week, _WEEK_COLOUR), ("training", reference["shares"], _REFERENCE_COLOUR)],
        _percent,
    )


def _latency_chart(metrics: Mapping[str, Any]) -> str:
    latency = metrics["batch_latency_seconds"]
    names = ["p50", "p95", "max"]
    return _bar_chart(
        f"Scoring batch latency ({latency['batches']} batches)",
        names,
        [("seconds", [latency[n] for n in names], _WEEK_COLOUR)],
        lambda v: f"{v:.3g} s",
    )


def _slice_charts(metrics: Mapping[str, Any]) -> str:
    charts = []
    overall = metrics["accuracy"]
    for dimension, rows in metrics["slices"].items():
        shown = rows[:_MAX_SLICE_BARS]  # worst first
        title = f"Accuracy by {dimension} (worst {len(shown)} of {len(rows)} slices"
        title += f"; overall {overall:.1%})" if overall is not None else ")"
        labels = [f"{row['name']} (n={row['count']})" for row in shown]
        charts.append(_bar_chart(title, labels, [("accuracy", [r["accuracy"] for r in shown], _WEEK_COLOUR)], _percent))
    return "".join(charts)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        return [item for key, inner in value.items() for item in _flatten(inner, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), value)]


def _metrics_table(metrics: Mapping[str, Any], breaches: Sequence[Breach]) -> str:
    breached = {".".join(METRIC_PATHS.get(b.metric, (b.metric,))) for b in breaches}
    rows = []
    for key, value in _flatten({k: v for k, v in metrics.items() if k not in ("slices", "reference")}):
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
        css = ' class="breach"' if key in breached else ""
        rows.append(f"<tr{css}><th>{_E(key)}</th><td>{_E(shown)}</td></tr>")
    return "<h2>Metrics</h2><table>" + "".join(rows) + "</table>"


def _gate(breaches: Sequence[Breach]) -> str:
    if not breaches:
        return "<div class='ok'>No threshold breached.</div>"
    items = "".join(f"<li>{_E(b.message)}</li>" for b in breaches)
    return f"<div class='breaches'><strong>{len(breaches)} threshold(s) breached</strong><ul>{items}</ul></div>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 60em; }
svg text { font-size: 12px; fill: #222; } .none { color: #777; fill: #777; }
table { border-collapse: collapse; margin-top: 0.5em; } th, td { padding: 2px 10px; border-bottom: 1px solid #ddd; }
th { text-align: left; font-weight: normal; color: #444; } td { font-family: monospace; }
tr.breach { background: #fde2e1; font-weight: bold; }
.breaches { background: #fde2e1; border-left: 6px solid #c62828; padding: 0.5em 1em; }
.ok { background: #e3f4e4; border-left: 6px solid #2e7d32; padding: 0.5em 1em; }
"""


def render_report_html(week: str, metrics: Mapping[str, Any], breaches: list[Breach]) -> str:
    """A self-contained HTML page of a week's metrics: no script, no external asset;
    charts are inline SVG and every text taken from data is escaped."""
    title = f"Review monitoring, week {week}"
    body = [
        f"<h1>{_E(title)}</h1>",
        f"<p>{_E(str(metrics['review_count']))} reviews scored; "
        f"{_E(str(metrics['labelled_count']))} arrived with a rating.</p>",
        _gate(breaches),
        "<h2>Charts</h2>",
        _class_chart(metrics),
        _length_chart(metrics),
        _latency_chart(metrics),
        _slice_charts(metrics),
        _metrics_table(metrics, breaches),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_E(title)}</title><style>{_STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )


# --- the monitoring step ------------------------------------------------------------


@dataclass(frozen=True)
class MonitorParams:
    data_root: str
    thresholds: Thresholds = Thresholds()


def monitor_week(
    params: MonitorParams,
    predictions: Artifact,
    curated: Artifact,
    batch_seconds: Sequence[float],
    model_version: str,
    reference_version: str | None = None,
) -> tuple[StepResult, list[Artifact]]:
    """Compute a scored week's metrics against the scoring model's training reference;
    write ``monitoring/week=…/metrics.json`` and ``report.html``. Breaches are reported
    in the metrics (the gate task fails on them), never raised here.

    ``reference_version``: the registered Keras model whose training reference and
    vocabulary to compare with when the scoring model is not one (Gemini on Vertex AI).
    Predictions from Vertex AI also get the model's own safety counts
    (``reviewops.vertex_batch.model_safety_metrics``)."""
    from reviewops.registry import Registry
    from reviewops.storage import Layout, read_json, read_table, write_json, write_text
    from reviewops.training import REFERENCE_FILE, VOCABULARY_FILE
    from reviewops.vertex_batch import model_safety_metrics

    table = read_table(predictions.path)
    scored = table.to_pandas()
    texts = read_table(curated.path, columns=["review_id", "product", "condition", "text"]).to_pandas()
    frame = scored.merge(texts, on="review_id", how="left", validate="one_to_one")
    registry = Registry(params.data_root)
    found = set(scored["model_version"])
    if found - {model_version}:
        raise ValueError(
            f"{predictions.uri} holds predictions of {sorted(found)}, not {model_version}: re-score the week"
        )
    versions = [reference_version or model_version]
    model_dir = registry.path(versions[0])
    reference = read_json(model_dir / REFERENCE_FILE)
    vocabulary = set((model_dir / VOCABULARY_FILE).read_text(encoding="utf-8").split("\n")) - {""}
    classes = tuple(registry.metadata(versions[0])["classes"])
    metrics = week_metrics(frame, reference, vocabulary, classes, batch_seconds, params.thresholds)
    metrics.update(model_safety_metrics(table))  # {} for local scoring
    breaches = check_thresholds(metrics, params.thresholds)
    week = predictions.path.parent.name.removeprefix("week=")
    metrics["week"] = week
    metrics["model_version"] = model_version
    metrics["reference_model_version"] = versions[0]
    metrics["breaches"] = [b.as_dict() for b in breaches]
    folder = Layout(params.data_root).monitoring(week)
    metrics_path = write_json(metrics, folder / "metrics.json")
    report_path = write_text(render_report_html(week, metrics, breaches), folder / "report.html")
    for breach in breaches:
        log.warning("week %s: %s", week, breach.message)
    result = StepResult(
        subject=f"week={week}",
        outputs=(Artifact.of_file(metrics_path, "report"), Artifact.of_file(report_path, "report")),
        metrics=metrics,
    )
    model_file = model_dir / "model.keras"
    return result, [
        predictions,
        curated,
        Artifact.of_file(model_dir / REFERENCE_FILE, "model"),
        Artifact.of_file(model_file, "model"),
    ]
