"""A BigQuery table as a review source: one week's rows, landed as Parquet, then ingested
like any file.

``bigquery://project.dataset.table`` names the table. The week's rows are selected with
the query in ``include/reviewops/gcp/sql/reviews_week.sql``: the window arrives only as typed query
parameters (``@window_start``, ``@window_end``), never formatted into the SQL; the table
and the column names cannot be parameters, so they are checked against strict patterns
and backquoted. The table's columns are mapped onto the canonical ones in the query
(``SELECT `drugName` AS product``), from :class:`BigQueryColumns` (defaults: the
canonical names; ``REVIEWOPS_BIGQUERY_COLUMNS`` as JSON and a per-run mapping override
them key by key).

The result is converted to the canonical columns as strings and landed under
``<data_root>/landing/bigquery/<table>/<batch>/reviews.parquet``; the file is then read
by :func:`reviewops.data.ingest.ingest_reviews`, so validation and transformation see exactly
what a file source would give them. The lineage names the table as the input
(``bigquery://…``, kind ``source``) with the sha256 of the landed bytes (the same whenever
the week's rows are the same, since the query orders them), and the query's hash, job id,
parameters, rows and bytes processed in the metrics under ``bigquery``.

Nothing here imports Airflow: the client comes from the caller (the Airflow glue gets it
from the provider's ``BigQueryHook``), and anything with ``query(sql, job_config=...)``
returning a job will do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import pyarrow as pa
import pyarrow.compute as pc

from reviewops.contracts import ArtifactKind
from reviewops.data.ingest import IngestParams, ingest_reviews
from reviewops.data.schema import CANONICAL, REQUIRED
from reviewops.data.sources import SourceError
from reviewops.data.windows import Window
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.io import write_parquet
from reviewops.storage.paths import Layout

log = logging.getLogger(__name__)

SCHEME = "bigquery://"
ENV_COLUMNS = "REVIEWOPS_BIGQUERY_COLUMNS"
ENV_DATE_TYPE = "REVIEWOPS_BIGQUERY_DATE_TYPE"
ENV_MAX_BYTES_BILLED = "REVIEWOPS_BIGQUERY_MAX_BYTES_BILLED"

SQL_DIR = Path(__file__).resolve().parent / "sql"
WEEK_SQL = SQL_DIR / "reviews_week.sql"
EXTENT_SQL = SQL_DIR / "reviews_extent.sql"

# project.dataset.table (standard SQL refuses partition decorators such as $20171127 in FROM).
TABLE_PATTERN = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_-]+$")
COLUMN_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
DATE_TYPES = ("DATE", "TIMESTAMP", "DATETIME")
JOB_LABELS = {"app": "reviewops", "step": "ingest"}

# Result column types that have one obvious string form; anything else (bytes, arrays,
# records) is a mapping mistake, reported for the column rather than row by row.
_SCALAR_TYPES = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_decimal,
    pa.types.is_boolean,
    pa.types.is_date,
    pa.types.is_timestamp,
    pa.types.is_time,
    pa.types.is_null,
)


class BigQuerySourceError(SourceError):
    """A BigQuery source that cannot be read: a bad name, mapping or query. One line,
    naming what to fix; retrying does not help."""


def is_bigquery(source: str) -> bool:
    return source.strip().startswith(SCHEME)


def parse_table(source: str) -> str:
    """``project.dataset.table`` of a ``bigquery://`` source, checked against :data:`TABLE_PATTERN`."""
    text = source.strip()
    if not text.startswith(SCHEME):
        raise BigQuerySourceError(f"{source!r} is not a BigQuery source: use bigquery://project.dataset.table")
    table = text[len(SCHEME) :]
    if not TABLE_PATTERN.fullmatch(table):
        raise BigQuerySourceError(
            f"{source!r}: the table must be project.dataset.table (letters, digits, '_' and '-'), "
            "e.g. bigquery://my-project.reviews.drugs_com"
        )
    return table


def check_column(name: str, field: str) -> str:
    if not isinstance(name, str) or not COLUMN_PATTERN.fullmatch(name):
        raise BigQuerySourceError(
            f"column mapping: {field} -> {name!r} is not a column name "
            "(letters, digits and '_', not starting with a digit; set REVIEWOPS_BIGQUERY_COLUMNS)"
        )
    return name


@dataclass(frozen=True)
class BigQueryColumns:
    """Which column of the table holds each canonical field. An optional field mapped to
    None is selected as NULL (the table does not have it)."""

    review_id: str = "review_id"
    product: str = "product"
    text: str = "text"
    label: str = "label"
    review_date: str = "review_date"
    condition: str | None = "condition"
    useful_count: str | None = "useful_count"

    def __post_init__(self) -> None:
        for name in CANONICAL:
            value = getattr(self, name)
            if value is None and name not in REQUIRED:
                continue
            check_column(value, name)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str | None], base: BigQueryColumns | None = None) -> BigQueryColumns:
        """``base`` (default: the canonical names) with the fields named in ``mapping`` replaced."""
        unknown = sorted(set(mapping) - set(CANONICAL))
        if unknown:
            raise BigQuerySourceError(
                f"column mapping: unknown field(s) {', '.join(unknown)}; the fields are {', '.join(CANONICAL)}"
            )
        return dataclasses.replace(base or cls(), **cast(dict[str, Any], dict(mapping)))

    def as_dict(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in CANONICAL}

    def select_list(self) -> str:
        """The query's select list: each table column under its canonical name, in
        :data:`~reviewops.data.schema.CANONICAL` order (the query's ORDER BY counts on it)."""
        items = []
        for name in CANONICAL:
            column = getattr(self, name)
            source = "CAST(NULL AS STRING)" if column is None else f"`{check_column(column, name)}`"
            items.append(f"  {source} AS {name}")
        return ",\n".join(items)


@dataclass(frozen=True)
class BigQuerySourceConfig:
    """How a BigQuery table is read: the column mapping, the type of its date column
    (the type of the window parameters), and an optional cap on bytes billed per query."""

    columns: BigQueryColumns = BigQueryColumns()
    date_type: str = "DATE"
    max_bytes_billed: int | None = None

    def __post_init__(self) -> None:
        if self.date_type not in DATE_TYPES:
            raise BigQuerySourceError(
                f"date type {self.date_type!r}: use one of {', '.join(DATE_TYPES)} (the type of the table's "
                f"date column; set {ENV_DATE_TYPE}). A STRING column needs a view that parses it."
            )
        if self.max_bytes_billed is not None and self.max_bytes_billed <= 0:
            raise BigQuerySourceError(f"{ENV_MAX_BYTES_BILLED} must be a positive number of bytes")

    @classmethod
    def from_env(cls, columns: Mapping[str, str | None] | str | None = None) -> BigQuerySourceConfig:
        """Defaults, then the ``REVIEWOPS_BIGQUERY_*`` environment variables, then the
        per-run column mapping (a mapping or its JSON text), key by key. Run time only."""
        mapping = BigQueryColumns.from_mapping(_json_mapping(os.environ.get(ENV_COLUMNS), ENV_COLUMNS))
        mapping = BigQueryColumns.from_mapping(_json_mapping(columns, "the column mapping"), mapping)
        date_type = (os.environ.get(ENV_DATE_TYPE) or "DATE").strip().upper()
        max_bytes = os.environ.get(ENV_MAX_BYTES_BILLED, "").strip()
        if max_bytes and not max_bytes.isdigit():
            raise BigQuerySourceError(f"{ENV_MAX_BYTES_BILLED}={max_bytes!r}: give a number of bytes")
        return cls(columns=mapping, date_type=date_type, max_bytes_billed=int(max_bytes) if max_bytes else None)


def _json_mapping(value: Mapping[str, str | None] | str | None, what: str) -> dict[str, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BigQuerySourceError(
                f'{what} is not JSON ({exc}): give an object like {{"product": "drugName"}}'
            ) from None
    if not isinstance(value, Mapping):
        raise BigQuerySourceError(f"{what} must be a JSON object of field -> column, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


@dataclass(frozen=True)
class QueryParameter:
    """A named, typed query parameter as plain data (the BigQuery object is built late)."""

    name: str
    type: str
    value: dt.date | dt.datetime

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type, "value": self.value.isoformat()}


@dataclass(frozen=True)
class BigQueryQuery:
    table: str
    sql: str
    parameters: tuple[QueryParameter, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    def job_config(self, max_bytes_billed: int | None = None) -> Any:
        """The ``QueryJobConfig`` of this query: standard SQL, typed scalar parameters, labels."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter(p.name, p.type, p.value) for p in self.parameters],
            use_legacy_sql=False,
            labels=dict(JOB_LABELS),
        )
        if max_bytes_billed is not None:  # None would be sent as the text "None"
            config.maximum_bytes_billed = max_bytes_billed
        return config

    def describe(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "query_sha256": self.sha256,
            "parameters": [p.as_dict() for p in self.parameters],
        }


def day_parameter(name: str, day: dt.date, date_type: str) -> QueryParameter:
    """A day as a parameter comparable with a column of ``date_type`` (midnight UTC for timestamps)."""
    if date_type == "DATE":
        return QueryParameter(name, "DATE", day)
    midnight = dt.datetime.combine(day, dt.time())
    if date_type == "TIMESTAMP":
        return QueryParameter(name, "TIMESTAMP", midnight.replace(tzinfo=dt.UTC))
    return QueryParameter(name, "DATETIME", midnight)


def week_query(table: str, window: Window, config: BigQuerySourceConfig) -> BigQueryQuery:
    """The query selecting the window's rows (and the rows without a date) of ``table``."""
    sql = WEEK_SQL.read_text(encoding="utf-8").format(
        select_list=config.columns.select_list(),
        table=_quoted_table(table),
        date_column=f"`{check_column(config.columns.review_date, 'review_date')}`",
    )
    parameters = (
        day_parameter("window_start", window.start, config.date_type),
        day_parameter("window_end", window.end, config.date_type),
    )
    return BigQueryQuery(table=table, sql=sql, parameters=parameters)


def extent_query(table: str, config: BigQuerySourceConfig, today: dt.date) -> BigQueryQuery:
    """The query for the first and last review date of ``table`` up to ``today``."""
    sql = EXTENT_SQL.read_text(encoding="utf-8").format(
        table=_quoted_table(table),
        date_column=f"`{check_column(config.columns.review_date, 'review_date')}`",
    )
    until = day_parameter("until", today + dt.timedelta(days=1), config.date_type)
    return BigQueryQuery(table=table, sql=sql, parameters=(until,))


def _quoted_table(table: str) -> str:
    if not TABLE_PATTERN.fullmatch(table):
        raise BigQuerySourceError(f"{table!r} is not project.dataset.table")
    return f"`{table}`"


class QueryClient(Protocol):
    """What is used of ``google.cloud.bigquery.Client``."""

    def query(self, query: str, job_config: Any = ...) -> Any: ...


def run_query(
    client: QueryClient, query: BigQueryQuery, config: BigQuerySourceConfig
) -> tuple[pa.Table, dict[str, Any]]:
    """Run ``query``; return its rows as Arrow and the job's facts for lineage.

    A query BigQuery rejects (unknown column, wrong parameter type, missing table) becomes
    a :class:`BigQuerySourceError`; other errors (network, quota) propagate for a retry.
    """
    from google.api_core import exceptions

    try:
        job = client.query(query.sql, job_config=query.job_config(config.max_bytes_billed))
        # The REST download needs no read-session permission, and a week is small.
        rows: pa.Table = job.result().to_arrow(create_bqstorage_client=False)
    except (exceptions.BadRequest, exceptions.NotFound) as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise BigQuerySourceError(
            f"{SCHEME}{query.table}: BigQuery rejected the query: {message}: check the table, the column mapping "
            f"({ENV_COLUMNS}) and the date type ({ENV_DATE_TYPE}={config.date_type})"
        ) from exc
    facts = {
        **query.describe(),
        "job_id": job.job_id,
        "location": getattr(job, "location", None),
        "rows": rows.num_rows,
        "total_bytes_processed": job.total_bytes_processed,
        "total_bytes_billed": getattr(job, "total_bytes_billed", None),
        "cache_hit": getattr(job, "cache_hit", None),
    }
    log.info(
        "%s%s: job %s returned %d rows, %s bytes processed",
        SCHEME,
        query.table,
        facts["job_id"],
        rows.num_rows,
        facts["total_bytes_processed"],
    )
    return rows, facts


def to_raw(rows: pa.Table) -> pa.Table:
    """The query result as the canonical columns, as strings (dates ISO, numbers as written):
    what a file source would hold, so ingest and validation treat both alike."""
    arrays = []
    for name in CANONICAL:
        if name not in rows.column_names:
            if rows.num_rows:
                raise BigQuerySourceError(f"the query result has no column {name!r}: found {rows.column_names}")
            arrays.append(pa.chunked_array([], pa.string()))
            continue
        arrays.append(_as_string(rows.column(name), name))
    return pa.Table.from_arrays(arrays, schema=pa.schema([(name, pa.string()) for name in CANONICAL]))


def _as_string(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    if pa.types.is_string(column.type):
        return column
    if not any(check(column.type) for check in _SCALAR_TYPES):
        raise BigQuerySourceError(
            f"column {name} is {column.type} in BigQuery: map a STRING, number or date column to it"
        )
    return pc.cast(column, pa.string())


def land(rows: pa.Table, data_root: str, table: str, window: Window) -> Artifact:
    """Write the window's rows to ``<data_root>/landing/bigquery/<table>/<batch>/reviews.parquet``,
    replacing an earlier landing of the same batch, and describe the file (kind ``landing``)."""
    target = Layout(data_root).landing("bigquery", table, window.key)
    return Artifact.of_file(write_parquet(to_raw(rows), target), "landing")


def ingest_bigquery(
    params: IngestParams, config: BigQuerySourceConfig, client: QueryClient
) -> tuple[StepResult, list[Artifact]]:
    """Extract the window's rows of the table, land them, and ingest the landed file.

    Returns ingest's result with the landed file added to the outputs (kind ``landing``)
    and the query's facts in ``metrics["bigquery"]``, and the table as the one input.
    """
    table = parse_table(params.source)
    rows, facts = run_query(client, week_query(table, params.window, config), config)
    landing = land(rows, params.data_root, table, params.window)
    result, _ = ingest_reviews(dataclasses.replace(params, source=str(landing.path)))
    # The table's content as read is the landed bytes: the same sha256 whenever the
    # week's rows are, which is what a content hash of a source should say.
    source = Artifact(
        uri=f"{SCHEME}{table}",
        kind=ArtifactKind.SOURCE,
        sha256=landing.sha256,
        rows=rows.num_rows,
        schema_fingerprint=landing.schema_fingerprint,
    )
    metrics = {
        **result.metrics,
        "bigquery": {**facts, "columns": config.columns.as_dict(), "date_type": config.date_type},
    }
    return dataclasses.replace(result, outputs=(*result.outputs, landing), metrics=metrics), [source]


def bigquery_window(source: str, config: BigQuerySourceConfig, client: QueryClient, today: dt.date) -> Window:
    """The whole weeks covering every review date of the table up to ``today``."""
    table = parse_table(source)
    rows, _ = run_query(client, extent_query(table, config, today), config)
    first, last = (
        _day(rows.column(name)[0].as_py()) if rows.num_rows else None for name in ("first_date", "last_date")
    )
    if first is None or last is None:
        raise BigQuerySourceError(f"{source}: no row has a review date up to today")
    return Window.covering(first, last)


def _day(value: Any) -> dt.date | None:
    """A DATE, DATETIME or TIMESTAMP value as its day (UTC for timestamps)."""
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC) if value.tzinfo else value).date()
    return value if isinstance(value, dt.date) else None
