"""The monitoring step: a scored week's metrics against the scoring model's training
reference, written as ``monitoring/week=…/metrics.json`` and ``report.html``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from reviewops.contracts import (
    ESTIMATION_FILE,
    METRICS_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    REPORT_FILE,
    VOCABULARY_FILE,
    ArtifactKind,
    WeekMetrics,
)
from reviewops.lineage.record import Artifact, StepResult
from reviewops.monitoring.metrics import is_vertex_predictions, model_safety_metrics, week_metrics
from reviewops.monitoring.report import render_report_html
from reviewops.monitoring.thresholds import Thresholds, check_thresholds

if TYPE_CHECKING:
    import pyarrow as pa

    from reviewops.registry.store import Registry
    from reviewops.storage.paths import StoragePath

log = logging.getLogger(__name__)


class MonitoringError(RuntimeError):
    """A week that cannot be monitored as asked; the message says what to do."""


@dataclass(frozen=True)
class MonitorParams:
    data_root: str
    thresholds: Thresholds = field(default_factory=Thresholds)


def monitor_week(
    params: MonitorParams,
    predictions: Artifact,
    curated: Artifact,
    batch_seconds: Sequence[float],
    model_version: str,
) -> tuple[StepResult, list[Artifact]]:
    """Compute a scored week's metrics against the scoring model's training reference;
    write ``monitoring/week=…/metrics.json`` and ``report.html``. Breaches are reported
    in the metrics (the gate task fails on them), never raised here.

    A week scored by a Gemini model on Vertex AI (its predictions carry the response
    columns) is compared with the training reference and vocabulary of a registered
    Keras model (:meth:`Registry.keras_reference`), and also gets the model's own safety
    counts (:func:`reviewops.monitoring.metrics.model_safety_metrics`)."""
    from reviewops.registry.store import Registry
    from reviewops.storage.io import read_json, read_table, write_json, write_text
    from reviewops.storage.paths import Layout

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
    reference_version = _reference_version(registry, model_version, table)
    model_dir = registry.path(reference_version)
    reference = read_json(model_dir / REFERENCE_FILE)
    vocabulary = set((model_dir / VOCABULARY_FILE).read_text(encoding="utf-8").split("\n")) - {""}
    classes = tuple(registry.metadata(reference_version)["classes"])
    metrics = week_metrics(frame, reference, vocabulary, classes, batch_seconds, params.thresholds)
    # {} for local scoring. mypy refuses update() with a base TypedDict (an instance may
    # carry extra keys); model_safety_metrics builds its dict literally, with none.
    metrics.update(cast("WeekMetrics", model_safety_metrics(table)))
    breaches = check_thresholds(metrics, params.thresholds)
    week = predictions.path.parent.name.removeprefix("week=")
    metrics["week"] = week
    metrics["model_version"] = model_version
    metrics["reference_model_version"] = reference_version
    metrics["breaches"] = [b.as_dict() for b in breaches]
    folder = Layout(params.data_root).monitoring(week)
    metrics_path = write_json(metrics, folder / METRICS_FILE)
    report_path = write_text(render_report_html(week, metrics, breaches), folder / REPORT_FILE)
    over_weeks = estimation_over_weeks(params.data_root)
    for breach in breaches:
        log.warning("week %s: %s", week, breach.message)
    result = StepResult(
        subject=f"week={week}",
        outputs=(
            Artifact.of_file(metrics_path, ArtifactKind.REPORT),
            Artifact.of_file(report_path, ArtifactKind.REPORT),
        ),
        metrics={**metrics, "estimation_over_weeks": {k: v for k, v in over_weeks.items() if k != "weeks"}},
    )
    model_file = model_dir / MODEL_FILE
    return result, [
        predictions,
        curated,
        Artifact.of_file(model_dir / REFERENCE_FILE, ArtifactKind.MODEL),
        Artifact.of_file(model_file, ArtifactKind.MODEL),
    ]


def estimation_over_weeks(data_root: str) -> dict[str, Any]:
    """How well the pre-label accuracy estimate held over every monitored week with
    ratings: each week's estimate, interval and realised accuracy, the mean absolute
    error, the row-weighted error and the share of weeks whose realised accuracy fell in
    the interval; written as ``monitoring/estimation.json`` (re-read from the weeks'
    ``metrics.json`` on every run, so a re-monitored week replaces its old figures)."""
    import json

    from reviewops.storage.io import read_texts, write_json
    from reviewops.storage.paths import Layout

    root = Layout(data_root).monitoring_dir()
    # One listing, not a request per week: on Cloud Storage each exists() is a round trip.
    paths: list[StoragePath] = sorted(root.glob(f"week=*/{METRICS_FILE}"), key=str) if root.exists() else []
    weeks = []
    for path, text in zip(paths, read_texts(paths), strict=True):
        try:
            metrics = json.loads(text)
        except ValueError:  # a damaged week is the UI's to report; it has no estimate to add
            continue
        if metrics.get("estimated_accuracy") is None or metrics.get("accuracy") is None:
            continue
        weeks.append(
            {
                "week": path.parent.name.removeprefix("week="),
                "model_version": metrics.get("model_version"),
                "labelled_count": metrics["labelled_count"],
                "estimated_accuracy": metrics["estimated_accuracy"],
                "estimated_accuracy_interval": metrics["estimated_accuracy_interval"],
                "accuracy": metrics["accuracy"],
                "estimation_error": metrics["estimation_error"],
            }
        )
    rows = sum(w["labelled_count"] for w in weeks)
    summary: dict[str, Any] = {
        "weeks_with_ratings": len(weeks),
        "labelled_reviews": rows,
        "mean_absolute_error": round(sum(abs(w["estimation_error"]) for w in weeks) / len(weeks), 4) if weeks else None,
        # Over all rated reviews: estimate and realised weighted by each week's ratings.
        "pooled_estimated_accuracy": round(sum(w["estimated_accuracy"] * w["labelled_count"] for w in weeks) / rows, 4)
        if rows
        else None,
        "pooled_accuracy": round(sum(w["accuracy"] * w["labelled_count"] for w in weeks) / rows, 4) if rows else None,
        "interval_coverage": round(
            sum(
                w["estimated_accuracy_interval"][0] <= w["accuracy"] <= w["estimated_accuracy_interval"][1]
                for w in weeks
            )
            / len(weeks),
            4,
        )
        if weeks
        else None,
        "weeks": weeks,
    }
    write_json(summary, root / ESTIMATION_FILE)
    return summary


def _reference_version(registry: Registry, model_version: str, predictions: pa.Table) -> str:
    """The registered Keras model whose training reference the week is compared with:
    the scoring model itself, or for a week scored on Vertex AI (no Keras reference of
    its own) the registry's Keras reference."""
    if not is_vertex_predictions(predictions):
        return model_version
    version = registry.keras_reference()
    if version is None:
        raise MonitoringError(
            "a week scored on Vertex AI is monitored against the training reference of a Keras model, "
            "and none is registered: run reviews_training with training_backend=local once"
        )
    return version
