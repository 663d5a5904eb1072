"""Dataset versions: immutable, content-addressed snapshots of the curated data.

A version is named after the hash of its rows, so snapshotting unchanged data again
gives the same version and writes nothing. Rows are split into train and eval by a
hash of review_id, so a review stays on the same side in every later version.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reviewops.contracts import ArtifactKind
from reviewops.data.schema import CLASSES, CURATED_SCHEMA
from reviewops.lineage.record import Artifact, StepResult, schema_fingerprint
from reviewops.storage.io import parquet_options, read_json, sha256_file, write_json
from reviewops.storage.paths import Layout, StoragePath, glob, to_uri
from reviewops.storage.publish import is_published, publish_dir, staging_dir

log = logging.getLogger(__name__)

SPLITS = ("train", "eval")
FORMATS = ("jsonl", "tfrecord", "parquet")
DATASET_COLUMNS = ("review_id", "product", "condition", "text", "label", "review_date", "week")


class DatasetError(RuntimeError):
    """No data to snapshot, or a dataset version that is not there."""


@dataclass(frozen=True)
class SnapshotParams:
    data_root: str
    eval_fraction: float = 0.2
    # Only the weeks that start before this day (YYYY-MM-DD), e.g. a demo's cutoff;
    # None: every curated week.
    until_week: str | None = None


def eval_bucket(review_id: str) -> float:
    """Where a review falls in [0, 1): the split is ``eval`` below the eval fraction."""
    return int(hashlib.sha256(review_id.encode()).hexdigest()[:8], 16) / 2**32


def curated_partitions(data_root: str, until_week: str | None = None) -> list[StoragePath]:
    """The curated week partitions, all or only those of weeks before ``until_week``."""
    partitions = glob(Layout(data_root).curated_dir(), "week=*/reviews.parquet")
    if until_week is None:
        return partitions
    return [p for p in partitions if p.parent.name.removeprefix("week=") < until_week]


def read_partitions(partitions: list[StoragePath]) -> tuple[list[Artifact], list[pa.Table]]:
    """Each non-empty partition read once: its artifact (hash of the bytes read) and its
    table parsed from those same bytes, so a concurrent rewrite cannot make the recorded
    input differ from the data used."""
    inputs, tables = [], []
    for path in partitions:
        data = path.read_bytes()
        table = pq.read_table(pa.BufferReader(data))
        if not table.num_rows:
            continue
        inputs.append(
            Artifact(
                uri=to_uri(path),
                kind=ArtifactKind.CURATED,
                sha256=hashlib.sha256(data).hexdigest(),
                rows=table.num_rows,
                bytes=len(data),
                schema_fingerprint=schema_fingerprint(table.schema),
            )
        )
        tables.append(table)
    return inputs, tables


def load_curated(tables: list[pa.Table]) -> pd.DataFrame:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        raise DatasetError("no curated reviews yet: run reviews_initial_load or reviews_weekly first")
    frame = pa.concat_tables(tables).to_pandas()
    frame = frame.sort_values(["week", "review_id"], kind="stable")
    frame = frame.drop_duplicates(subset=["review_id"], keep="first")
    return frame.sort_values("review_id", kind="stable").reset_index(drop=True)


def exclude_flagged(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Leave out reviews with safety flags (personal data, abusive language): a model
    must not learn from them. Returns the kept rows and counts by reason."""
    from reviewops.data.safety import scan_texts

    flags = scan_texts(frame["text"].tolist())
    keep = [not f.flagged for f in flags]
    excluded: dict[str, int] = {}
    for f in flags:
        for category in f.categories:
            excluded[f"safety:{category}"] = excluded.get(f"safety:{category}", 0) + 1
    if excluded:
        log.info("left out %d flagged reviews: %s", len(keep) - sum(keep), excluded)
    return frame[keep].reset_index(drop=True), dict(sorted(excluded.items()))


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame[list(DATASET_COLUMNS)].copy()
    out["review_date"] = out["review_date"].astype(str)
    out["week"] = out["week"].astype(str)
    out["condition"] = out["condition"].where(out["condition"].notna(), None)
    rows: list[dict[str, Any]] = out.to_dict(orient="records")
    return rows


def content_version(frame: pd.DataFrame, eval_fraction: float) -> str:
    digest = hashlib.sha256(f"eval_fraction={eval_fraction}\n".encode())
    for row in _rows(frame):
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return f"ds-{digest.hexdigest()[:12]}"


def _write_tfrecord(rows: list[dict[str, Any]], path: Path) -> None:
    import tensorflow as tf

    index = {name: i for i, name in enumerate(CLASSES)}
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows:
            feature = {
                "review_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[row["review_id"].encode()])),
                "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[row["text"].encode()])),
                "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[row["label"].encode()])),
                "label_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[index[row["label"]]])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _write_split(frame: pd.DataFrame, folder: Path, split: str) -> dict[str, Any]:
    rows = _rows(frame)
    jsonl = folder / f"{split}.jsonl"
    with open(jsonl, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    parquet = folder / f"{split}.parquet"
    schema = pa.schema([CURATED_SCHEMA.field(name) for name in DATASET_COLUMNS])
    table = pa.Table.from_pandas(frame[list(DATASET_COLUMNS)], schema=schema, preserve_index=False)
    pq.write_table(table, parquet, **parquet_options(schema))
    _write_tfrecord(rows, folder / f"{split}.tfrecord")
    counts = frame["label"].value_counts()
    return {
        "rows": len(frame),
        "class_counts": {name: int(counts.get(name, 0)) for name in CLASSES},
        "files": {fmt: {"file": f"{split}.{fmt}", "sha256": sha256_file(folder / f"{split}.{fmt}")} for fmt in FORMATS},
    }


def snapshot_dataset(params: SnapshotParams) -> tuple[StepResult, list[Artifact]]:
    """Snapshot every curated partition into a dataset version.

    Returns the result and the curated partitions it was built from (its inputs).
    """
    inputs, tables = read_partitions(curated_partitions(params.data_root, params.until_week))
    frame, excluded = exclude_flagged(load_curated(tables))
    version = content_version(frame, params.eval_fraction)
    target = Layout(params.data_root).datasets() / version
    if is_published(target):
        log.info("dataset %s already exists: nothing to write", version)
    else:
        staging = staging_dir(target.parent, version)
        is_eval = frame["review_id"].map(eval_bucket) < params.eval_fraction
        manifest = {
            "version": version,
            "rows": len(frame),
            "classes": list(CLASSES),
            "split_rule": f"sha256(review_id)[:8] / 2**32 < {params.eval_fraction} -> eval",
            "eval_fraction": params.eval_fraction,
            "weeks": {"first": str(frame["week"].min()), "last": str(frame["week"].max())},
            "sources": [{"uri": a.uri, "sha256": a.sha256, "rows": a.rows} for a in inputs],
            "excluded": excluded,
            "splits": {
                "train": _write_split(frame[~is_eval], staging, "train"),
                "eval": _write_split(frame[is_eval], staging, "eval"),
            },
        }
        write_json(manifest, staging / "manifest.json")
        if publish_dir(staging, target):
            log.info("published dataset %s: %d rows", version, len(frame))
    return StepResult(subject=version, outputs=dataset_artifacts(target), metrics=dataset_metrics(target)), inputs


def dataset_artifacts(folder: StoragePath) -> tuple[Artifact, ...]:
    manifest = read_manifest(folder)
    files = [folder / "manifest.json"]
    for split in SPLITS:
        files += [folder / f"{split}.{fmt}" for fmt in FORMATS]
    rows = {f"{s}.{fmt}": manifest["splits"][s]["rows"] for s in SPLITS for fmt in FORMATS}
    return tuple(Artifact.of_file(p, ArtifactKind.DATASET, rows=rows.get(p.name)) for p in files)


def read_manifest(folder: StoragePath) -> dict[str, Any]:
    path = folder / "manifest.json"
    if not (is_published(folder) and path.exists()):
        raise DatasetError(f"{folder}: not a dataset version (no manifest.json)")
    data: dict[str, Any] = read_json(path)
    return data


def dataset_metrics(folder: StoragePath) -> dict[str, Any]:
    manifest = read_manifest(folder)
    return {
        "dataset_version": manifest["version"],
        "rows": manifest["rows"],
        "train_rows": manifest["splits"]["train"]["rows"],
        "eval_rows": manifest["splits"]["eval"]["rows"],
        "train_class_counts": manifest["splits"]["train"]["class_counts"],
        "eval_class_counts": manifest["splits"]["eval"]["class_counts"],
        "excluded": manifest.get("excluded", {}),
    }
