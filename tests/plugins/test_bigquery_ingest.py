"""The real IngestReviewsOperator on a ``bigquery://`` source, then the real validate and
transform operators on what it landed.

The provider's BigQueryHook is real and reads a real Connection (from an
``AIRFLOW_CONN_*`` variable, anonymous credentials, so nothing leaves the machine); only
the client it returns is replaced, by the fake of the domain tests, which answers from
the shipped reviews as BigQuery would return them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException

from reviewops.data.parsing import parse_date
from reviewops.data.schema import CANONICAL
from reviewops.data.windows import Window
from reviewops.lineage.store import LineageStore
from reviewops.storage.io import sha256_file
from reviewops.storage.paths import as_path
from reviewops_airflow.operators import IngestReviewsOperator, TransformReviewsOperator, ValidateReviewsOperator
from tests import gcsfake
from tests.conftest import SHIPPED
from tests.include.test_bigquery_source import DRUGS_COM, FakeBigQueryClient, shipped_bigquery_table, shipped_rows
from tests.plugins.test_operators import run

SOURCE = "bigquery://proj.ds.reviews"
WEEK = "2017-09-25"  # 4 shipped reviews
UNDATED = {
    "uniqueID": 1,
    "drugName": "Aspirin",
    "condition": "Pain",
    "review": '"It helped."',
    "rating": "positive",
    "date": None,
    "usefulCount": 3,
}


@pytest.fixture
def bigquery(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A Connection for the hook to read, and the fake client its get_client returns."""
    connection = {"conn_type": "google_cloud_platform", "extra": {"project": "billing-proj", "is_anonymous": True}}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEWS_BQ", json.dumps(connection))
    client = FakeBigQueryClient(shipped_bigquery_table(extra=[UNDATED]))
    handed_out: list[dict[str, Any]] = []

    def get_client(hook: BigQueryHook, **kwargs: Any) -> FakeBigQueryClient:
        handed_out.append({"conn_id": hook.gcp_conn_id, **kwargs})
        return client

    with (
        mock.patch.object(BigQueryHook, "get_client", autospec=True, side_effect=get_client),
        mock.patch.object(BaseHook, "get_connection", wraps=BaseHook.get_connection) as get_connection,
    ):
        yield {"client": client, "get_client": handed_out, "get_connection": get_connection}


def chain(data_root: Path | str, source: str, **ingest: Any) -> tuple[Any, Any, Any]:
    common = {"source": source, "data_root": str(data_root)}
    return (
        IngestReviewsOperator(task_id="ingest", **common, **ingest),
        ValidateReviewsOperator(task_id="validate", upstream={"raw": "ingest"}, **common),
        TransformReviewsOperator(task_id="transform", upstream={"validated": "validate"}, **common),
    )


def artifact(record: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [a for a in record["outputs"] if a["kind"] == kind]
    return found


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def test_week_of_a_bigquery_table_is_queried_landed_and_ingested(data_root: Path, bigquery: dict[str, Any]) -> None:
    ingest, validate, transform = chain(data_root, SOURCE, week=WEEK, bigquery_columns=DRUGS_COM)
    assert bigquery["get_connection"].call_count == 0  # nothing at construction

    raw = run(ingest)

    # One query, parameterised with the week; the connection's project runs it.
    ((sql, job_config),) = bigquery["client"].calls
    assert "2017" not in sql and "FROM `proj.ds.reviews`" in sql and "`drugName` AS product" in sql
    assert [(p.name, p.type_, p.value) for p in job_config.query_parameters] == [
        ("window_start", "DATE", dt.date(2017, 9, 25)),
        ("window_end", "DATE", dt.date(2017, 10, 2)),
    ]
    assert job_config.use_legacy_sql is False
    assert bigquery["get_client"] == [{"conn_id": "google_cloud_default", "project_id": "billing-proj"}]
    assert {c.args[0] for c in bigquery["get_connection"].call_args_list} == {"google_cloud_default"}

    # The landed file: the week's 4 reviews and the undated row, canonical string columns.
    landing = artifact(raw, "landing")
    landed = data_root / "landing" / "bigquery" / "proj.ds.reviews" / "week=2017-09-25" / "reviews.parquet"
    assert local(landing["uri"]) == landed.resolve()
    assert landing["sha256"] == sha256_file(landed) and landing["rows"] == 5
    table = pq.read_table(landed)
    assert table.schema == pa.schema([(name, pa.string()) for name in CANONICAL])
    expected = {
        r[0]: r for r in shipped_rows() if Window.week(dt.date(2017, 9, 25)).contains(parse_date(r[5]) or dt.date.min)
    }
    assert set(table.column("review_id").to_pylist()) == {*expected, "1"}
    for row in table.to_pylist():
        if row["review_id"] != "1":
            source = expected[row["review_id"]]
            assert (row["product"], row["text"], row["label"]) == (source[1], source[3], source[4])
            assert row["review_date"] == parse_date(source[5]).isoformat()  # type: ignore[union-attr]

    # The lineage record names the table, with the job's facts.
    (source_artifact,) = raw["inputs"]
    assert source_artifact["uri"] == SOURCE and source_artifact["kind"] == "source"
    assert source_artifact["rows"] == 5 and source_artifact["sha256"] == landing["sha256"]
    facts = raw["metrics"]["bigquery"]
    assert facts["job_id"] == "job_1" and facts["rows"] == 5 and facts["total_bytes_processed"] == 4096
    assert facts["table"] == "proj.ds.reviews" and len(facts["query_sha256"]) == 64
    assert facts["parameters"] == [
        {"name": "window_start", "type": "DATE", "value": "2017-09-25"},
        {"name": "window_end", "type": "DATE", "value": "2017-10-02"},
    ]
    assert facts["columns"]["product"] == "drugName"
    assert raw["params"]["bigquery_columns"] == DRUGS_COM
    assert raw["metrics"]["rows_read"] == 5 and raw["subject"] == "week=2017-09-25"

    # Validate and transform run on it as on any source; the undated row is quarantined.
    checked = run(validate, {"ingest": raw})
    curated = run(transform, {"validate": checked})
    assert checked["metrics"]["rows_valid"] == 4 and checked["metrics"]["rows_quarantined"] == 1
    assert checked["metrics"]["reasons"] == {"missing_field": 1}
    (partition,) = [a for a in curated["outputs"] if a["kind"] == "curated"]
    assert partition["rows"] == 4

    # Traced back from the curated week, the chain starts at the table.
    store = LineageStore(str(data_root)).index()
    chain_records = store.upstream(store.resolve(partition["uri"]))
    assert [r.task_id for r in chain_records] == ["transform", "validate", "ingest"]
    assert [a.uri for a in chain_records[-1].inputs] == [SOURCE]


def test_same_curated_week_as_the_file_source(tmp_path: Path, bigquery: dict[str, Any]) -> None:
    def curated_rows(data_root: Path, source: str, **kwargs: Any) -> list[dict[str, Any]]:
        data_root.mkdir()
        ingest, validate, transform = chain(data_root, source, week=WEEK, **kwargs)
        curated = run(transform, {"validate": run(validate, {"ingest": run(ingest)})})
        (partition,) = [a for a in curated["outputs"] if a["kind"] == "curated"]
        rows = pq.read_table(local(partition["uri"])).drop_columns(["source_file", "source_row"]).to_pylist()
        return sorted(rows, key=lambda r: r["review_id"])

    from_file = curated_rows(tmp_path / "file", str(SHIPPED))
    from_bigquery = curated_rows(tmp_path / "bigquery", SOURCE, bigquery_columns=DRUGS_COM)

    assert len(from_file) == 4 and from_bigquery == from_file


def test_source_and_mapping_from_the_environment_and_another_connection(
    data_root: Path, bigquery: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVIEWOPS_SOURCE", SOURCE)
    monkeypatch.setenv("REVIEWOPS_BIGQUERY_COLUMNS", json.dumps(DRUGS_COM))
    ingest = IngestReviewsOperator(
        task_id="ingest", source="", data_root=str(data_root), whole_source=True, gcp_conn_id="reviews_bq"
    )
    assert bigquery["get_connection"].call_count == 0

    raw = run(ingest)

    # The whole source: first a query for the table's extent, then its weeks.
    (extent_sql, extent_config), (_, week_config) = bigquery["client"].calls
    assert "MIN(`date`)" in extent_sql and [p.name for p in extent_config.query_parameters] == ["until"]
    days = [d for d in (parse_date(r[5]) for r in shipped_rows()) if d]
    window = Window.covering(min(days), max(days))
    assert raw["subject"] == window.key
    assert [p.value for p in week_config.query_parameters] == [window.start, window.end]
    assert raw["inputs"][0]["uri"] == SOURCE and raw["metrics"]["rows_read"] == 601
    assert {g["conn_id"] for g in bigquery["get_client"]} == {"reviews_bq"}


@pytest.mark.parametrize(
    ("source", "columns", "match"),
    [
        ("bigquery://proj.ds.reviews`; DROP TABLE x", None, "project.dataset.table"),
        (SOURCE, {"product": "drug name"}, "column mapping"),
        (SOURCE, '{"product": ', "not JSON"),
    ],
)
def test_bad_names_fail_without_retry_before_any_query(
    data_root: Path, bigquery: dict[str, Any], source: str, columns: Any, match: str
) -> None:
    ingest, _, _ = chain(data_root, source, week=WEEK, bigquery_columns=columns)
    with pytest.raises(AirflowFailException, match=match):
        run(ingest)
    assert bigquery["client"].calls == [] and bigquery["get_connection"].call_count == 0


def test_landing_on_a_gs_data_root(bigquery: dict[str, Any], tmp_path: Path) -> None:
    with gcsfake.installed(tmp_path / "fake-gcs"):
        landing_on_gs(bigquery)


def landing_on_gs(bigquery: dict[str, Any]) -> None:
    data_root = "gs://reviews-bucket/ops"
    ingest, validate, transform = chain(data_root, SOURCE, week=WEEK, bigquery_columns=DRUGS_COM)

    raw = run(ingest)
    curated = run(transform, {"validate": run(validate, {"ingest": raw})})

    landing = artifact(raw, "landing")
    assert landing["uri"] == "gs://reviews-bucket/ops/landing/bigquery/proj.ds.reviews/week=2017-09-25/reviews.parquet"
    with as_path(landing["uri"]).open("rb") as handle:
        assert pq.read_table(handle).num_rows == landing["rows"] == 5
    assert raw["inputs"][0]["uri"] == SOURCE and raw["inputs"][0]["sha256"] == landing["sha256"]
    assert artifact(raw, "raw")["uri"].startswith("gs://reviews-bucket/ops/raw/")
    (partition,) = [a for a in curated["outputs"] if a["kind"] == "curated"]
    assert partition["rows"] == 4 and partition["uri"].startswith("gs://reviews-bucket/ops/curated/")
