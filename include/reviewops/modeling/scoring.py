"""Batch scoring: a week's curated reviews through a registered model, streamed."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reviewops.contracts import ArtifactKind
from reviewops.data.schema import prediction_schema
from reviewops.lineage.record import Artifact, StepResult
from reviewops.registry.store import Registry
from reviewops.storage.io import atomic_path, parquet_file, parquet_options
from reviewops.storage.paths import Layout, StoragePath

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreParams:
    data_root: str
    model_version: str | None = None
    batch_size: int = 4096


def score_table_batches(
    batches: Iterable[pa.RecordBatch],
    model_file: StoragePath,
    model_version: str,
    classes: tuple[str, ...],
    out: Path,
    with_context: bool = True,
) -> dict[str, Any]:
    """Score record batches (review_id, text, and with context week and label) into one
    Parquet file, one batch in memory at a time. With context, each review also gets its
    safety flags. Returns row count, total and per-batch seconds."""
    from reviewops.data.safety import scan_text_array
    from reviewops.modeling.training import load_model, predict_proba

    model = load_model(model_file)
    schema = prediction_schema(classes, with_context)
    names = pa.array(classes, pa.string())
    rows = 0
    batch_seconds: list[float] = []
    started = time.monotonic()
    with pq.ParquetWriter(out, schema, **parquet_options(schema)) as writer:
        for batch in batches:
            batch_started = time.monotonic()
            texts = batch.column("text")
            probabilities = predict_proba(model, texts.to_pylist())
            columns = {
                "review_id": batch.column("review_id"),
                "predicted_label": names.take(pa.array(probabilities.argmax(axis=1), pa.int64())),
                **{f"prob_{name}": pa.array(probabilities[:, i], pa.float32()) for i, name in enumerate(classes)},
                "model_version": pa.repeat(pa.scalar(model_version, pa.string()), len(texts)),
            }
            if with_context:
                columns["week"] = batch.column("week")
                columns["label"] = batch.column("label")
                columns["safety_categories"], columns["safety_score"] = scan_text_array(texts)
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            rows += len(texts)
            batch_seconds.append(round(time.monotonic() - batch_started, 4))
            log.info("scored %d rows", rows)
    return {"rows_scored": rows, "score_seconds": round(time.monotonic() - started, 3), "batch_seconds": batch_seconds}


def score_week(params: ScoreParams, curated: Artifact) -> tuple[StepResult, list[Artifact]]:
    """Write ``predictions/week=.../predictions.parquet`` for one curated week partition,
    replacing any earlier one in a single atomic step. Returns the result and its inputs
    (the partition and the model that scored it)."""
    registry = Registry(params.data_root)
    version = registry.resolve(params.model_version)
    model_file = registry.keras_model(version)  # a Vertex AI champion is refused, with what to do
    meta = registry.metadata(version)
    classes = tuple(meta["classes"])
    week = curated.path.parent.name.removeprefix("week=")
    target = Layout(params.data_root).predictions(week)
    with parquet_file(curated.path) as source, atomic_path(target) as tmp:
        stats = score_table_batches(
            source.iter_batches(batch_size=params.batch_size, columns=["review_id", "week", "text", "label"]),
            model_file,
            version,
            classes,
            tmp,
        )
    how = "pinned" if params.model_version else "champion"
    log.info("week %s: %d reviews scored by %s model %s", week, stats["rows_scored"], how, version)
    result = StepResult(
        subject=f"week={week}",
        outputs=(Artifact.of_file(target, ArtifactKind.PREDICTIONS),),
        metrics={"week": week, "model_version": version, "model_choice": how, **stats},
    )
    return result, [curated, Artifact.of_file(model_file, ArtifactKind.MODEL)]
