"""Params shared by the reviewops DAGs: the per-run overrides of the configured defaults."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

DATE_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"


def location_params(source: bool = True) -> dict[str, Any]:
    """``source`` (unless the DAG reads no source) and ``data_root``: empty means
    REVIEWOPS_SOURCE / REVIEWOPS_DATA_ROOT, else the shipped reviews and ./artifacts."""
    params = {
        "source": Param(
            "",
            type="string",
            title="Review source",
            description="File, folder or glob of CSV/TSV/JSONL/Parquet reviews (local or gs://), or a BigQuery table "
            "bigquery://project.dataset.table. Empty: $REVIEWOPS_SOURCE or the shipped reviews.",
        ),
        "data_root": Param(
            "",
            type="string",
            title="Data root",
            description="Root of every artifact: a folder or gs://bucket/prefix. Empty: $REVIEWOPS_DATA_ROOT or ./artifacts in the project.",
        ),
    }
    if not source:
        del params["source"]
    return params


def date_param(description: str, title: str) -> Param:
    return Param("", type="string", pattern=DATE_PATTERN, title=title, description=description)
