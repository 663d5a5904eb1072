"""The canonical review schema and the mapping from source columns onto it."""

from __future__ import annotations

import pyarrow as pa

CLASSES: tuple[str, ...] = ("negative", "neutral", "positive")

# Canonical columns: required first, then optional.
REQUIRED: tuple[str, ...] = ("review_id", "product", "text", "label", "review_date")
OPTIONAL: tuple[str, ...] = ("condition", "useful_count")
CANONICAL: tuple[str, ...] = REQUIRED + OPTIONAL

# Lineage columns carried from ingestion onwards, so every row can be traced to
# the exact line of the exact source file it came from.
SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"

# Source column name (as written in the file) -> canonical name. Canonical names map
# to themselves. The Drugs.com export has an unnamed first column holding the id.
COLUMN_ALIASES: dict[str, str] = {
    "": "review_id",
    "Unnamed: 0": "review_id",
    "id": "review_id",
    "uniqueID": "review_id",
    "drugName": "product",
    "review": "text",
    "rating": "label",
    "date": "review_date",
    "usefulCount": "useful_count",
    **{name: name for name in CANONICAL},
}

CURATED_SCHEMA = pa.schema(
    [
        ("review_id", pa.string()),
        ("product", pa.string()),
        ("condition", pa.string()),
        ("text", pa.string()),
        ("label", pa.string()),
        ("review_date", pa.date32()),
        ("week", pa.date32()),
        ("useful_count", pa.int64()),
        (SOURCE_FILE, pa.string()),
        (SOURCE_ROW, pa.int64()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("reason", pa.string()),
        ("detail", pa.string()),
        (SOURCE_FILE, pa.string()),
        (SOURCE_ROW, pa.int64()),
        *[(name, pa.string()) for name in CANONICAL],
    ]
)


def prediction_schema(classes: tuple[str, ...] = CLASSES, with_context: bool = True) -> pa.Schema:
    """Schema of predictions by a model trained on ``classes``. Weekly partitions also
    carry the week, the label that arrived with the review (for monitoring) and the
    review's safety flags."""
    fields = [
        ("review_id", pa.string()),
        ("predicted_label", pa.string()),
        *[(f"prob_{name}", pa.float32()) for name in classes],
        ("model_version", pa.string()),
    ]
    if with_context:
        fields += [
            ("week", pa.date32()),
            ("label", pa.string()),
            ("safety_categories", pa.list_(pa.string())),
            ("safety_score", pa.float32()),
        ]
    return pa.schema(fields)


def canonical_name(column: str) -> str | None:
    """The canonical name of a source column, or None when it is not mapped."""
    return COLUMN_ALIASES.get(column.strip() if column.strip() else column)
