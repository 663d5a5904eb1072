"""A scored week's metrics: volume, speed, drift, accuracy where ratings arrived, slices,
unknown words, the local safety flags, and a Vertex AI model's own safety signals."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from reviewops.contracts import ANSWERED, VertexSignals, WeekMetrics
from reviewops.data.safety import CATEGORIES as SAFETY_CATEGORIES
from reviewops.modeling.evaluation import classification_metrics
from reviewops.modeling.reference import DIGITS, checked_labels, length_shares, share_by_class
from reviewops.monitoring.drift import jensen_shannon, population_stability_index, unknown_counts
from reviewops.monitoring.thresholds import Thresholds

log = logging.getLogger(__name__)


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
    y_true = checked_labels(labelled["label"], classes, "labels")
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


ESTIMATE_Z = 1.96  # a 95 % normal interval


def estimated_accuracy(frame: pd.DataFrame, classes: Sequence[str]) -> tuple[float | None, list[float] | None]:
    """The week's accuracy estimated before any rating arrives, from calibrated
    probabilities (NannyML's confidence-based performance estimation, CBPE): each review
    is right with the probability of its predicted class, so the expected accuracy is the
    mean top probability, and the number right is a sum of independent Bernoulli trials
    whose variance is ``sum p (1 - p)``; the interval is the normal one around the mean,
    cut to [0, 1]. Only as good as the calibration: the model is calibrated on
    out-of-fold predictions, and ``estimation_error`` shows how well it held."""
    if frame.empty:
        return None, None
    top = frame[[f"prob_{name}" for name in classes]].to_numpy(dtype=np.float64).max(axis=1)
    estimate = float(top.mean())
    half = ESTIMATE_Z * math.sqrt(float((top * (1 - top)).sum())) / len(top)
    return _rounded(estimate), [round(max(0.0, estimate - half), DIGITS), round(min(1.0, estimate + half), DIGITS)]


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
) -> WeekMetrics:
    """The monitoring metrics of one week's scored reviews (one row per review)."""
    _require_columns(frame, classes)
    rows = len(frame)
    # A Gemini model on Vertex AI may not classify a review (blocked, unparseable, error,
    # missing: null predicted_label); the class mix, confidence and accuracy are over the
    # answered reviews, volume, lengths, words and safety over all of them.
    answered = frame[frame["predicted_label"].notna()]
    predicted = checked_labels(answered["predicted_label"], classes, "predicted labels")
    if frame["text"].isna().any():
        raise ValueError(f"{int(frame['text'].isna().sum())} scored reviews have no text; curated text is never null")
    texts = [str(text) for text in frame["text"]]
    lengths = [len(text) for text in texts]
    edges = reference["length_distribution"]["edges"]
    class_shares = share_by_class(Counter(predicted), classes) if predicted else None
    week_lengths = length_shares(lengths, edges) if rows else None
    unknown, words = unknown_counts(texts, vocabulary)
    speed = _speed(rows, batch_seconds)
    quality = _quality(answered, classes, thresholds.min_slice_size)
    estimate, interval = None, None
    # A Gemini answer's "probabilities" are 1 for the class it named (Vertex AI scoring):
    # their mean estimates nothing, so such a week has no pre-label estimate.
    if not set(frame.columns) >= VERTEX_COLUMNS:
        estimate, interval = estimated_accuracy(answered, classes)
    metrics: WeekMetrics = {
        "review_count": rows,
        "answered_count": len(answered),
        "answered_rate": round(len(answered) / rows, DIGITS) if rows else None,
        "throughput_rows_per_second": speed["throughput_rows_per_second"],
        "batch_latency_seconds": speed["batch_latency_seconds"],
        "predicted_class_counts": {name: predicted.count(name) for name in classes},
        "predicted_class_distribution": class_shares,
        "mean_confidence": _mean_confidence(answered, classes),
        "length_distribution": {"edges": list(edges), "shares": week_lengths},
        "mean_length": round(float(np.mean(lengths)), 1) if rows else None,
        "reference": _reference_view(reference, classes),
        "drift": _drift(class_shares, week_lengths, reference, classes),
        "labelled_count": quality["labelled_count"],
        "accuracy": quality["accuracy"],
        "macro_f1": quality["macro_f1"],
        "estimated_accuracy": estimate,
        "estimated_accuracy_interval": interval,
        "estimation_error": None
        if estimate is None or quality["accuracy"] is None
        else _rounded(estimate - quality["accuracy"]),
        "slices": quality["slices"],
        "worst_slice_gap": quality["worst_slice_gap"],
        "unknown_word_share": round(unknown / words, DIGITS) if words else None,
        "safety": _safety(frame),
        "thresholds": thresholds.as_dict(),
    }
    log.info(
        "week of %d reviews: prediction PSI %s, length PSI %s, accuracy %s on %d labelled (estimated %s %s), "
        "%d flagged",
        rows,
        metrics["drift"]["prediction_psi"],
        metrics["drift"]["length_psi"],
        metrics["accuracy"],
        metrics["labelled_count"],
        estimate,
        interval,
        metrics["safety"]["flagged_count"],
    )
    return metrics


VERTEX_COLUMNS = frozenset({"response_status", "model_safety_categories", "citation_count"})


def is_vertex_predictions(predictions: pa.Table) -> bool:
    """Predictions by a Gemini model on Vertex AI: they carry its response columns."""
    return set(predictions.column_names) >= VERTEX_COLUMNS


def model_safety_metrics(predictions: pa.Table) -> VertexSignals:
    """The model's own safety signals in a predictions table, like the local safety
    flags: reviews the model rated MEDIUM/HIGH or blocked in a category (by category),
    reviews blocked, answers with citations, and the count of each response status.
    A table without the Vertex columns (local scoring) gives an empty dict."""
    if not is_vertex_predictions(predictions):
        return {}
    rows = predictions.num_rows
    statuses = predictions.column("response_status").to_pylist()
    categories = predictions.column("model_safety_categories").to_pylist()
    citations = predictions.column("citation_count").to_pylist()
    by_status: dict[str, int] = {}
    for status in statuses:
        by_status[status] = by_status.get(status, 0) + 1
    by_category: dict[str, int] = {}
    for found in categories:
        for category in found or ():
            by_category[category] = by_category.get(category, 0) + 1
    flagged = sum(1 for found in categories if found)
    cited = sum(1 for count in citations if count)
    answered = by_status.get(ANSWERED, 0)
    return {
        "model_safety_flagged": flagged,
        "model_safety_rate": round(flagged / rows, 4) if rows else None,
        "model_safety_by_category": dict(sorted(by_category.items())),
        "model_blocked": by_status.get("blocked", 0),
        "model_blocked_rate": round(by_status.get("blocked", 0) / rows, 4) if rows else None,
        "citations_reviews": cited,
        "citations_total": int(sum(c or 0 for c in citations)),
        "citation_rate": round(cited / rows, 4) if rows else None,
        "response_status": dict(sorted(by_status.items())),
        "answered_rate": round(answered / rows, 4) if rows else None,
    }
