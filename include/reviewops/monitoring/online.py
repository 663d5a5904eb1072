"""Online traffic: the request log the server writes, read back and summarised by week.

The server (``reviewops.serving.requestlog``) appends every row it scores to Parquet
partitions by UTC day, ``<data_root>/serving/requests/date=YYYY-MM-DD/part-*.parquet``:
one row per text of a request and per model that scored it (the one that answered, and
the one that scored a shadow copy during a roll-out). The schema is here, below serving,
so monitoring and the roll-out gate read what the server writes without importing it.

:func:`summarise_online_week` is what the weekly monitoring adds beside the batch: for
the week's online traffic, volume, latency p50/p95, class mix and errors, by model
version, stage and role.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from reviewops.contracts import ArtifactKind
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.io import read_table, write_json
from reviewops.storage.paths import Layout, StoragePath, glob

REQUESTS_DIR = ("serving", "requests")
ONLINE_REPORT_FILE = "online.json"
ANSWER, SHADOW = "answer", "shadow"
OK, ERROR = "ok", "error"

REQUEST_LOG_SCHEMA = pa.schema(
    [
        ("at", pa.timestamp("ms", tz="UTC")),
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("request_key_sha256", pa.string()),  # the routing key, hashed: it may name a user
        ("model_version", pa.string()),
        ("stage", pa.string()),  # the roll-out stage when served: none, shadow or canary
        ("role", pa.string()),  # answer: the client got it; shadow: a copy, scored to compare
        ("status", pa.string()),  # ok or error
        ("error", pa.string()),
        ("latency_ms", pa.float32()),  # the request's, from queued to scored
        ("label", pa.string()),
        ("classes", pa.string()),  # comma-separated, the order of probabilities
        ("probabilities", pa.list_(pa.float32())),
        ("safety_flagged", pa.bool_()),
        ("safety_categories", pa.string()),
        ("safety_score", pa.float32()),
        ("text_sha256", pa.string()),  # the cleaned text's hash, not the text
        ("text_chars", pa.int32()),
    ]
)


def requests_dir(data_root: str | StoragePath) -> StoragePath:
    root = Layout(data_root).root
    return root.joinpath(*REQUESTS_DIR)


def partition(data_root: str | StoragePath, day: dt.date) -> StoragePath:
    return requests_dir(data_root) / f"date={day.isoformat()}"


def read_request_log(data_root: str | StoragePath, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Rows logged in ``[start, end)`` (UTC), oldest first; an empty frame with the log's
    columns when there are none."""
    start, end = _utc(start), _utc(end)
    tables = []
    day = start.date()
    while day <= end.date():
        for part in glob(partition(data_root, day), "part-*.parquet"):
            tables.append(read_table(part).cast(REQUEST_LOG_SCHEMA))
        day += dt.timedelta(days=1)
    table = pa.concat_tables(tables) if tables else REQUEST_LOG_SCHEMA.empty_table()
    frame = table.to_pandas()
    frame = frame[(frame["at"] >= pd.Timestamp(start)) & (frame["at"] < pd.Timestamp(end))]
    return frame.sort_values("at", kind="stable").reset_index(drop=True)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def latency_summary(latency_ms: pd.Series) -> dict[str, float | None]:
    if latency_ms.empty:
        return {"p50_ms": None, "p95_ms": None}
    return {
        "p50_ms": round(float(latency_ms.quantile(0.5)), 2),
        "p95_ms": round(float(latency_ms.quantile(0.95)), 2),
    }


def summarise(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Volume, requests, errors, latency p50/p95 and class mix per (model version, stage,
    role)."""
    groups = []
    for (version, stage, role), rows in frame.groupby(["model_version", "stage", "role"], sort=True):
        ok = rows[rows["status"] == OK]
        mix = ok["label"].value_counts(normalize=True).sort_index()
        groups.append(
            {
                "model_version": version,
                "stage": stage,
                "role": role,
                "rows": len(rows),
                "requests": int(rows["request_id"].nunique()),
                "errors": int((rows["status"] == ERROR).sum()),
                # Latency is the request's: one value per request, not one per row.
                **latency_summary(rows.drop_duplicates("request_id")["latency_ms"].astype(float)),
                "class_mix": {str(k): round(float(v), 4) for k, v in mix.items()},
                "safety_flagged": int(ok["safety_flagged"].sum()),
            }
        )
    return groups


@dataclass(frozen=True)
class OnlineWeekParams:
    data_root: str
    week: str  # the Monday, YYYY-MM-DD


def summarise_online_week(params: OnlineWeekParams) -> StepResult:
    """The week's online traffic, written as ``online.json`` beside the week's monitoring
    report. A week without traffic is a report saying so (zero rows), not an error: a
    deployment may serve no traffic online at all."""
    monday = dt.date.fromisoformat(params.week)
    if monday.weekday() != 0:
        raise ValueError(f"week {params.week} is not a Monday: name a week by its Monday")
    start = dt.datetime.combine(monday, dt.time(), dt.UTC)
    frame = read_request_log(params.data_root, start, start + dt.timedelta(days=7))
    answered = frame[frame["role"] == ANSWER]
    report = {
        "week": params.week,
        "source": str(requests_dir(params.data_root)),
        "rows": len(frame),
        "answered_rows": len(answered),
        "requests": int(answered["request_id"].nunique()),
        "errors": int((answered["status"] == ERROR).sum()),
        **latency_summary(answered.drop_duplicates("request_id")["latency_ms"].astype(float)),
        "by_model": summarise(frame),
    }
    target = write_json(report, Layout(params.data_root).monitoring(params.week) / ONLINE_REPORT_FILE)
    return StepResult(
        subject=f"online traffic, week {params.week}",
        outputs=(Artifact.of_file(target, ArtifactKind.REPORT),),
        metrics={k: report[k] for k in ("rows", "answered_rows", "requests", "errors", "p50_ms", "p95_ms")},
    )
