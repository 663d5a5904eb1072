"""The monitoring gate: limits on a week's metrics (``Thresholds``), and the breaches
(``Breach``) that fail the week's check, each saying what to do."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

log = logging.getLogger(__name__)


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
    ``min_estimated_accuracy``: the week's accuracy as estimated from the calibrated
    probabilities before any rating arrives (confidence-based performance estimation:
    the mean of each review's top probability). Gated from ``min_labelled`` scored
    reviews on, as realised accuracy is from that many labelled ones: the two are
    means of as many 0-1 outcomes. 0.5 is well below the ~0.7 the model scores out of
    sample; an estimate that low means the model is unsure of most of the week's
    reviews (new products, new wording), weeks before the ratings could say so.
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
    min_estimated_accuracy: float = 0.5
    max_safety_rate: float = 0.2
    min_slice_size: int = 5
    min_drift_rows: int = 100
    min_labelled: int = 30
    min_answered_rate: float = 0.9

    def __post_init__(self) -> None:
        for name in ("min_volume", "min_slice_size", "min_drift_rows", "min_labelled"):
            if getattr(self, name) < 0:
                raise ValueError(f"threshold {name} must not be negative, got {getattr(self, name)}")
        for name in ("min_accuracy", "min_estimated_accuracy", "max_safety_rate", "min_answered_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"threshold {name} is a share in [0, 1], got {getattr(self, name)}")
        for name in ("max_prediction_psi", "max_length_psi"):
            if getattr(self, name) < 0:
                raise ValueError(f"threshold {name} must not be negative, got {getattr(self, name)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None) -> Thresholds:
        """The defaults with a run's overrides (e.g. ``{"max_prediction_psi": 0.3}``); a
        ``ValueError`` naming the known thresholds for an unknown one."""
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return cls(**overrides)
        except TypeError as exc:
            raise ValueError(f"thresholds: {exc}") from exc


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
    "estimated_accuracy": ("estimated_accuracy",),
    "safety_flagged_rate": ("safety", "flagged_rate"),
    "answered_rate": ("answered_rate",),
}


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
    if metrics.get("answered_count", 0) >= max(1, thresholds.min_labelled) and "estimated_accuracy" in metrics:
        checks.append(
            _below(
                metrics,
                "estimated_accuracy",
                thresholds.min_estimated_accuracy,
                "the model is unsure of too many of the week's reviews (estimated from its calibrated "
                "probabilities, before the ratings arrive); look at the week's new products and wording, "
                "then retrain on recent reviews",
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
