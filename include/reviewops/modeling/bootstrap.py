"""Bootstrap confidence intervals of accuracy and macro-F1, and of paired differences.

Every model is scored on the same resampled rows in each bootstrap replicate, so the
difference of two models is measured on identical rows: its interval is much narrower
than the two separate intervals suggest, because most of the rows' difficulty is shared.
A 95 % percentile interval of 117 eval rows spans about +-0.09 in accuracy for one model
and often a third of that for a paired difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

REPLICATES = 2000
LEVEL = 0.95
METRICS = ("accuracy", "macro_f1")
DIGITS = 4


def _replicate_scores(y_true: Any, y_pred: Any, indexes: Any, classes: int) -> dict[str, Any]:
    """Accuracy and macro-F1 of each bootstrap replicate (rows of ``indexes``), vectorised:
    one confusion matrix per replicate from a single bincount. A prediction ``classes``
    (one past the last class) is no answer: a miss for its row's class, no class's
    prediction."""
    replicates, n = indexes.shape
    columns = classes + 1
    truth, predicted = y_true[indexes], y_pred[indexes]
    cell = truth * columns + predicted + (np.arange(replicates)[:, None] * classes * columns)
    confusion = np.bincount(cell.ravel(), minlength=replicates * classes * columns)
    confusion = confusion.reshape(replicates, classes, columns).astype(np.float64)
    tp = np.diagonal(confusion[:, :, :classes], axis1=1, axis2=2)
    denominator = confusion[:, :, :classes].sum(axis=1) + confusion.sum(axis=2)
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return {"accuracy": tp.sum(axis=1) / n, "macro_f1": f1.mean(axis=1)}


def _interval(values: Any, level: float) -> list[float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [round(float(low), DIGITS), round(float(high), DIGITS)]


def _point(y_true: Any, y_pred: Any, classes: int) -> dict[str, float]:
    whole = _replicate_scores(y_true, y_pred, np.arange(len(y_true))[None, :], classes)
    return {metric: float(whole[metric][0]) for metric in METRICS}


def bootstrap_comparison(
    y_true: Sequence[int],
    predictions: Mapping[str, Sequence[int]],
    subject: str,
    classes: int,
    replicates: int = REPLICATES,
    level: float = LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Intervals of each model's accuracy and macro-F1 on the same bootstrap replicates of
    the rows, and of ``subject`` minus each other model (paired).

    A prediction equal to ``classes`` is no answer (a Vertex AI model's unanswered review),
    a miss. Returns ``{"replicates", "level", "rows", "intervals": {model: {metric: [low, high]}},
    "differences": {other: {metric: {"estimate", "interval"}}}}``: a difference whose
    interval lies wholly below 0 means ``subject`` is worse beyond the noise of these rows.
    """
    truth = np.asarray(y_true, dtype=np.int64)
    if len(truth) == 0:
        raise ValueError("no rows: a bootstrap of nothing is undefined")
    if subject not in predictions:
        raise ValueError(f"the subject {subject!r} is not among the predictions {sorted(predictions)}")
    predicted = {name: np.asarray(values, dtype=np.int64) for name, values in predictions.items()}
    for name, values in predicted.items():
        if values.shape != truth.shape:
            raise ValueError(f"{name}: {len(values)} predictions for {len(truth)} rows")
        if values.size and (values.min() < 0 or values.max() > classes):
            raise ValueError(f"{name}: predictions outside the {classes} classes")
    indexes = np.random.default_rng(seed).integers(0, len(truth), size=(replicates, len(truth)))
    scores = {name: _replicate_scores(truth, values, indexes, classes) for name, values in predicted.items()}
    points = {name: _point(truth, values, classes) for name, values in predicted.items()}
    differences = {
        other: {
            metric: {
                "estimate": round(points[subject][metric] - points[other][metric], DIGITS),
                "interval": _interval(scores[subject][metric] - scores[other][metric], level),
            }
            for metric in METRICS
        }
        for other in predicted
        if other != subject
    }
    return {
        "replicates": replicates,
        "level": level,
        "rows": len(truth),
        "subject": subject,
        "scores": {name: {m: round(v, DIGITS) for m, v in points[name].items()} for name in predicted},
        "intervals": {name: {m: _interval(scores[name][m], level) for m in METRICS} for name in predicted},
        "differences": differences,
    }
