"""Params shared by the reviewops DAGs: the per-run overrides of the configured defaults.

Each function returns a new ``Param`` (a DAG owns its Params; none is shared between
DAGs). The DAGs render templates as native objects, so ``{{ params.x }}`` hands an
operator the Param's own type.
"""

from __future__ import annotations

from airflow.sdk import Param

DATE_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"
PROMPT_TEMPLATES = "include/reviewops/gcp/prompt_templates/"


def source_param() -> Param:
    """Where the reviews are read from; empty means REVIEWOPS_SOURCE, else the shipped reviews."""
    return Param(
        "",
        type="string",
        title="Review source",
        description="File, folder or glob of CSV/TSV/JSONL/Parquet reviews (local or gs://), or a BigQuery table "
        "bigquery://project.dataset.table. Empty: $REVIEWOPS_SOURCE or the shipped reviews.",
    )


def data_root_param() -> Param:
    """The root of every artifact; empty means REVIEWOPS_DATA_ROOT, else ./artifacts."""
    return Param(
        "",
        type="string",
        title="Data root",
        description="Root of every artifact: a folder or gs://bucket/prefix. "
        "Empty: $REVIEWOPS_DATA_ROOT or ./artifacts in the project.",
    )


def date_param(description: str, title: str) -> Param:
    """A day as ``YYYY-MM-DD``, or empty."""
    return Param("", type="string", pattern=DATE_PATTERN, title=title, description=description)


def prompt_param(use: str) -> Param:
    """The prompt template of the Vertex AI path; ``use`` says what the DAG uses it for."""
    return Param(
        "",
        type="string",
        title="Prompt template (Vertex AI)",
        description=f"{use}: NAME or NAME@vN under {PROMPT_TEMPLATES}. "
        "Empty: $REVIEWOPS_VERTEX_PROMPT, else the latest review_sentiment.",
    )
