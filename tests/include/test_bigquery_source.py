"""The BigQuery source without Google: query text, typed parameters, identifier checks,
the column mapping and the conversion of a real-shaped result, on the shipped reviews.

Only the client is replaced: :class:`FakeBigQueryClient` holds the shipped reviews as a
BigQuery table would return them (INT64 ids and counts, a DATE column) under the
Drugs.com column names, and answers a query the way BigQuery would: it reads the select
list and the date column from the SQL it is sent and the window from the typed
parameters of the job config (it never parses a date out of the SQL).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions
from google.cloud import bigquery

from reviewops.data.parsing import parse_date
from reviewops.data.schema import CANONICAL
from reviewops.data.sources import read_source_file
from reviewops.data.windows import Window
from reviewops.gcp.bigquery import (
    ENV_COLUMNS,
    ENV_DATE_TYPE,
    ENV_MAX_BYTES_BILLED,
    BigQueryColumns,
    BigQuerySourceConfig,
    BigQuerySourceError,
    bigquery_window,
    extent_query,
    land,
    parse_table,
    run_query,
    to_raw,
    week_query,
)
from tests.conftest import shipped_records

DRUGS_COM = {
    "review_id": "uniqueID",
    "product": "drugName",
    "text": "review",
    "label": "rating",
    "review_date": "date",
    "useful_count": "usefulCount",
}
WEEK = Window.week(dt.date(2017, 9, 25))  # 4 shipped reviews
TABLE = "proj.ds.reviews"

_SELECTED = re.compile(r"^\s*(?:`(\w+)`|CAST\(NULL AS STRING\)) AS (\w+),?$", re.MULTILINE)
_DATE_FILTER = re.compile(r"`(\w+)` >= @window_start")
_EXTENT = re.compile(r"MIN\(`(\w+)`\)")


def shipped_rows() -> list[list[str]]:
    return shipped_records()[1]


def shipped_bigquery_table(extra: list[dict[str, Any]] | None = None) -> pa.Table:
    """The shipped reviews as a BigQuery table of them returns them to ``to_arrow()``."""
    rows = [
        {
            "uniqueID": int(r[0]),
            "drugName": r[1],
            "condition": r[2],
            "review": r[3],
            "rating": r[4],
            "date": parse_date(r[5]),
            "usefulCount": int(r[6]),
        }
        for r in shipped_rows()
    ]
    schema = pa.schema(
        [
            ("uniqueID", pa.int64()),
            ("drugName", pa.string()),
            ("condition", pa.string()),
            ("review", pa.string()),
            ("rating", pa.string()),
            ("date", pa.date32()),
            ("usefulCount", pa.int64()),
        ]
    )
    return pa.Table.from_pylist(rows + (extra or []), schema=schema)


@dataclass
class FakeRowIterator:
    rows: pa.Table

    def to_arrow(self, **kwargs: Any) -> pa.Table:
        return self.rows


@dataclass
class FakeQueryJob:
    """What is read of ``google.cloud.bigquery.QueryJob``."""

    rows: pa.Table
    job_id: str
    total_bytes_processed: int
    total_bytes_billed: int
    cache_hit: bool = False
    location: str = "US"

    def result(self) -> FakeRowIterator:
        return FakeRowIterator(self.rows)


@dataclass
class FakeBigQueryClient:
    """Stands in for ``google.cloud.bigquery.Client``; records every call."""

    table: pa.Table
    calls: list[tuple[str, Any]] = field(default_factory=list)
    error: Exception | None = None

    def query(self, query: str, job_config: Any = None) -> FakeQueryJob:
        self.calls.append((query, job_config))
        if self.error is not None:
            raise self.error
        params = {p.name: p.value for p in job_config.query_parameters}
        rows = self._week(query, params) if "window_start" in params else self._extent(query, params)
        return FakeQueryJob(
            rows,
            job_id=f"job_{len(self.calls)}",
            total_bytes_processed=4096 * len(self.calls),
            total_bytes_billed=10485760,
        )

    def _week(self, sql: str, params: dict[str, Any]) -> pa.Table:
        match = _DATE_FILTER.search(sql)
        assert match, sql
        date_column = match.group(1)
        selected = [(column, alias) for column, alias in _SELECTED.findall(sql)]
        start, end = params["window_start"], params["window_end"]
        out = []
        for row in self.table.to_pylist():
            day = row[date_column]
            if day is None or start <= day < end:
                out.append({alias: row[column] if column else None for column, alias in selected})
        out.sort(key=lambda r: (r["review_date"] is not None, r["review_date"] or dt.date.min, str(r["review_id"])))
        schema = pa.schema(
            [(alias, self.table.schema.field(column).type if column else pa.string()) for column, alias in selected]
        )
        return pa.Table.from_pylist(out, schema=schema)

    def _extent(self, sql: str, params: dict[str, Any]) -> pa.Table:
        match = _EXTENT.search(sql)
        assert match, sql
        days = [d for d in self.table.column(match.group(1)).to_pylist() if d is not None and d < params["until"]]
        return pa.table({"first_date": [min(days, default=None)], "last_date": [max(days, default=None)]})


def drugs_com_config(**kwargs: Any) -> BigQuerySourceConfig:
    return BigQuerySourceConfig(columns=BigQueryColumns.from_mapping(DRUGS_COM), **kwargs)


# -- the query ---------------------------------------------------------------------------


def test_week_query_has_no_dates_in_its_text_and_typed_parameters() -> None:
    query = week_query(TABLE, WEEK, drugs_com_config())

    assert not re.search(r"\d{4}-\d{2}-\d{2}|2017", query.sql)
    assert "FROM `proj.ds.reviews`" in query.sql
    assert "`date` >= @window_start AND `date` < @window_end" in query.sql
    assert "`date` IS NULL" in query.sql
    assert [(p.name, p.type, p.value) for p in query.parameters] == [
        ("window_start", "DATE", dt.date(2017, 9, 25)),
        ("window_end", "DATE", dt.date(2017, 10, 2)),
    ]
    assert query.sha256 == week_query(TABLE, Window.week(dt.date(2017, 10, 2)), drugs_com_config()).sha256


def test_job_config_carries_scalar_parameters_and_standard_sql() -> None:
    config = week_query(TABLE, WEEK, drugs_com_config(date_type="TIMESTAMP")).job_config(10**9)

    assert isinstance(config, bigquery.QueryJobConfig)
    assert config.use_legacy_sql is False
    assert config.maximum_bytes_billed == 10**9
    assert config.labels == {"app": "reviewops", "step": "ingest"}
    start, end = config.query_parameters
    assert isinstance(start, bigquery.ScalarQueryParameter)
    assert (start.name, start.type_, start.value) == (
        "window_start",
        "TIMESTAMP",
        dt.datetime(2017, 9, 25, tzinfo=dt.UTC),
    )
    assert end.to_api_repr() == {
        "name": "window_end",
        "parameterType": {"type": "TIMESTAMP"},
        "parameterValue": {"value": "2017-10-02 00:00:00+00:00"},
    }
    assert week_query(TABLE, WEEK, drugs_com_config()).job_config().maximum_bytes_billed is None


def test_datetime_columns_get_naive_datetime_parameters() -> None:
    (start, end) = week_query(TABLE, WEEK, drugs_com_config(date_type="DATETIME")).parameters
    assert (start.type, start.value, end.value) == (
        "DATETIME",
        dt.datetime(2017, 9, 25),
        dt.datetime(2017, 10, 2),
    )


def test_select_list_maps_table_columns_onto_canonical_names_in_order() -> None:
    columns = BigQueryColumns.from_mapping({**DRUGS_COM, "condition": None})
    sql = week_query(TABLE, WEEK, BigQuerySourceConfig(columns=columns)).sql

    assert _SELECTED.findall(sql) == [
        ("uniqueID", "review_id"),
        ("drugName", "product"),
        ("review", "text"),
        ("rating", "label"),
        ("date", "review_date"),
        ("", "condition"),
        ("usefulCount", "useful_count"),
    ]
    # The template orders by position: review_date must stay the fifth selected column.
    assert CANONICAL.index("review_date") == 4
    assert sql.rstrip().endswith("ORDER BY 5, 1, 2, 3, 4, 6, 7")


def test_default_mapping_is_the_canonical_names() -> None:
    assert BigQueryColumns().as_dict() == {name: name for name in CANONICAL}


@pytest.mark.parametrize(
    "source",
    [
        "bigquery://proj.ds",
        "bigquery://a.b.c.d",
        "bigquery://proj.ds.t`; DROP TABLE x; --",
        "bigquery://proj.ds.t WHERE 1=1",
        "bigquery://proj.d-s.t",
        "bigquery://proj.ds.t/x",
        "bigquery://example.com:proj.ds.t",
        "proj.ds.t",
        "bigquery://",
    ],
)
def test_bad_table_names_are_rejected(source: str) -> None:
    with pytest.raises(BigQuerySourceError):
        parse_table(source)


def test_good_table_names_pass() -> None:
    assert parse_table("bigquery://my-project.reviews_v2.drugs_com") == "my-project.reviews_v2.drugs_com"
    assert parse_table(" bigquery://p.d.t ") == "p.d.t"


def test_a_partition_decorator_is_refused_before_bigquery_would() -> None:
    # Standard SQL does not take `table$20171127` in FROM; the week's filter prunes partitions.
    with pytest.raises(BigQuerySourceError, match=r"project\.dataset\.table"):
        parse_table("bigquery://p.d.t$20171127")


@pytest.mark.parametrize(
    "mapping",
    [
        {"product": "drug Name"},
        {"product": "drug`Name"},
        {"text": "1review"},
        {"text": ""},
        {"review_id": None},
        {"label": 7},
        {"product": "a" * 301},
        {"produkt": "drugName"},
    ],
)
def test_bad_column_mappings_are_rejected(mapping: dict[str, Any]) -> None:
    with pytest.raises(BigQuerySourceError, match="column mapping"):
        BigQueryColumns.from_mapping(mapping)


def test_mapping_from_env_then_per_run_override_key_by_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_COLUMNS, '{"product": "drugName", "text": "review"}')
    monkeypatch.setenv(ENV_DATE_TYPE, "timestamp")
    monkeypatch.setenv(ENV_MAX_BYTES_BILLED, "5000000000")

    config = BigQuerySourceConfig.from_env(columns='{"text": "body", "condition": null}')

    assert config.columns.as_dict() == {
        "review_id": "review_id",
        "product": "drugName",
        "text": "body",
        "label": "label",
        "review_date": "review_date",
        "condition": None,
        "useful_count": "useful_count",
    }
    assert (config.date_type, config.max_bytes_billed) == ("TIMESTAMP", 5_000_000_000)
    assert BigQuerySourceConfig.from_env(columns={"label": "stars"}).columns.label == "stars"


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        (ENV_COLUMNS, "{product: drugName}", "not JSON"),
        (ENV_COLUMNS, '["drugName"]', "JSON object"),
        (ENV_DATE_TYPE, "STRING", "date type"),
        (ENV_MAX_BYTES_BILLED, "10GB", "number of bytes"),
    ],
)
def test_bad_settings_fail_with_what_to_set(monkeypatch: pytest.MonkeyPatch, name: str, value: str, match: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(BigQuerySourceError, match=match):
        BigQuerySourceConfig.from_env()


# -- the result --------------------------------------------------------------------------


def test_real_shaped_result_becomes_the_raw_string_columns(tmp_path: Path) -> None:
    undated = {"uniqueID": 1, "drugName": "Aspirin", "condition": None, "review": "ok", "rating": "positive"}
    client = FakeBigQueryClient(shipped_bigquery_table(extra=[{**undated, "date": None, "usefulCount": None}]))
    config = drugs_com_config()

    rows, facts = run_query(client, week_query(TABLE, WEEK, config), config)
    raw = to_raw(rows)

    expected = [r for r in shipped_rows() if WEEK.contains(parse_date(r[5]) or dt.date.min)]
    assert len(expected) == 4 and raw.num_rows == 5
    assert raw.schema == pa.schema([(name, pa.string()) for name in CANONICAL])
    by_id = {r["review_id"]: r for r in raw.to_pylist()}
    for record in expected:
        row = by_id[record[0]]
        assert row["product"] == record[1] and row["text"] == record[3] and row["label"] == record[4]
        assert row["review_date"] == parse_date(record[5]).isoformat()  # type: ignore[union-attr]
        assert row["useful_count"] == record[6]
    assert by_id["1"]["review_date"] is None and by_id["1"]["useful_count"] is None
    sql, job_config = client.calls[0]
    assert facts["job_id"] == "job_1" and facts["rows"] == 5 and facts["total_bytes_processed"] == 4096
    assert facts["query_sha256"] == week_query(TABLE, WEEK, config).sha256
    assert facts["parameters"] == [
        {"name": "window_start", "type": "DATE", "value": "2017-09-25"},
        {"name": "window_end", "type": "DATE", "value": "2017-10-02"},
    ]
    assert "2017" not in sql and job_config.query_parameters[0].value == dt.date(2017, 9, 25)


def test_landed_file_reads_back_through_the_file_reader(tmp_path: Path) -> None:
    client = FakeBigQueryClient(shipped_bigquery_table())
    config = drugs_com_config()
    rows, _ = run_query(client, week_query(TABLE, WEEK, config), config)

    landed = land(rows, str(tmp_path), TABLE, WEEK)

    path = tmp_path.resolve() / "landing" / "bigquery" / TABLE / "week=2017-09-25" / "reviews.parquet"
    assert landed.path == path and landed.kind == "landing" and landed.rows == 4
    read = read_source_file(path)
    assert read.num_rows == 4
    assert all(WEEK.contains(parse_date(d) or dt.date.min) for d in read.column("review_date").to_pylist())
    assert read.column("malformed").null_count == read.column("wrong_type").null_count == 4
    assert land(rows, str(tmp_path), TABLE, WEEK).sha256 == landed.sha256  # same rows, same bytes


def test_timestamps_become_iso_text_that_keeps_the_utc_day() -> None:
    stamps = pa.array([dt.datetime(2017, 9, 25, 23, 30, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC"))
    rows = pa.table(
        {
            "review_id": pa.array([7, 8]),
            "product": ["p", "q"],
            "text": ["a", "b"],
            "label": pa.array([9.0, 1.0]),
            "review_date": stamps,
            "condition": pa.nulls(2, pa.string()),
            "useful_count": pa.array([3, None], pa.int64()),
        }
    )

    raw = to_raw(rows)

    dates = raw.column("review_date").to_pylist()
    assert parse_date(dates[0]) == dt.date(2017, 9, 25) and dates[1] is None
    assert raw.column("review_id").to_pylist() == ["7", "8"]
    assert raw.column("label").to_pylist() == ["9", "1"]
    assert raw.column("useful_count").to_pylist() == ["3", None]


def test_result_without_a_selected_column_is_an_error() -> None:
    with pytest.raises(BigQuerySourceError, match="no column 'product'"):
        to_raw(pa.table({"review_id": ["1"]}))


def test_nested_or_bytes_columns_are_a_mapping_error() -> None:
    rows = pa.table({"review_id": ["1"], "text": pa.array([["a", "b"]]), "product": ["p"], "label": ["9"]})
    with pytest.raises(BigQuerySourceError, match="column text is list<item: string>"):
        to_raw(rows.append_column("review_date", pa.array([dt.date(2017, 9, 25)])))
    with pytest.raises(BigQuerySourceError, match="column product is binary"):
        to_raw(pa.table({"review_id": ["1"], "product": pa.array([b"p"], pa.binary())}))


def test_empty_result_lands_an_empty_file(tmp_path: Path) -> None:
    client = FakeBigQueryClient(shipped_bigquery_table())
    config = drugs_com_config()
    rows, facts = run_query(client, week_query(TABLE, Window.week(dt.date(2030, 1, 7)), config), config)

    landed = land(rows, str(tmp_path), TABLE, Window.week(dt.date(2030, 1, 7)))

    assert facts["rows"] == 0 and landed.rows == 0
    assert pq.read_schema(landed.path).names == list(CANONICAL)


def test_rejected_query_fails_naming_the_table_and_the_settings() -> None:
    client = FakeBigQueryClient(shipped_bigquery_table(), error=exceptions.BadRequest("Unrecognized name: drugNam"))
    config = drugs_com_config()
    with pytest.raises(
        BigQuerySourceError,
        match=r"bigquery://proj.ds.reviews: BigQuery rejected the query: Unrecognized name: drugNam: check",
    ):
        run_query(client, week_query(TABLE, WEEK, config), config)


def test_transient_errors_are_left_to_retries() -> None:
    client = FakeBigQueryClient(shipped_bigquery_table(), error=exceptions.ServiceUnavailable("try again"))
    config = drugs_com_config()
    with pytest.raises(exceptions.ServiceUnavailable):
        run_query(client, week_query(TABLE, WEEK, config), config)


# -- the whole source ----------------------------------------------------------------------


def test_whole_source_window_covers_the_table_up_to_today() -> None:
    future = {"uniqueID": 2, "drugName": "X", "condition": "Y", "review": "z", "rating": "positive"}
    client = FakeBigQueryClient(
        shipped_bigquery_table(extra=[{**future, "date": dt.date(2099, 1, 1), "usefulCount": 0}])
    )
    config = drugs_com_config()

    window = bigquery_window("bigquery://proj.ds.reviews", config, client, today=dt.date(2024, 6, 3))

    days = [parse_date(r[5]) for r in shipped_rows()]
    assert window == Window.covering(min(d for d in days if d), max(d for d in days if d))
    sql, job_config = client.calls[0]
    assert "2024" not in sql and "FROM `proj.ds.reviews`" in sql
    (until,) = job_config.query_parameters
    assert (until.name, until.type_, until.value) == ("until", "DATE", dt.date(2024, 6, 4))
    assert extent_query(TABLE, config, dt.date(2024, 6, 3)).parameters[0].value == dt.date(2024, 6, 4)


def test_whole_source_of_an_empty_table_fails() -> None:
    client = FakeBigQueryClient(shipped_bigquery_table().slice(0, 0))
    with pytest.raises(BigQuerySourceError, match="no row has a review date"):
        bigquery_window("bigquery://proj.ds.reviews", drugs_com_config(), client, today=dt.date(2024, 6, 3))
