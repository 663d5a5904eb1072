"""The Vertex AI batch prediction trio of the weekly DAG, task by task, on a fake gs://
data root. Only the cloud clients are replaced: Cloud Storage at fsspec (tests/gcsfake.py)
and Vertex AI at ``BatchPredictionJob.submit`` (tests/vertexfake.py). The operators are
the DAG's own, the provider's ``CreateBatchPredictionJobOperator`` and its hook included."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowFailException

from reviewops.gcp.batch import vertex_prediction_schema
from reviewops.storage.paths import Layout, as_path
from reviewops_airflow.operators import IngestReviewsOperator, TransformReviewsOperator, ValidateReviewsOperator
from reviewops_airflow.provider import LazyProviderOperator
from tests import gcsfake
from tests.conftest import ROOT, SHIPPED
from tests.plugins.stubs import StubTaskInstance
from tests.vertexfake import PROJECT, FakeVertex, FakeVertexError

DATA_ROOT = "gs://reviewops-test/data"
WEEK = "2017-11-27"


@pytest.fixture(scope="module")
def weekly() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "reviews_weekly.py"))
    assert bag.import_errors == {}
    return bag.dags["reviews_weekly"]


@pytest.fixture
def fake_vertex(monkeypatch: pytest.MonkeyPatch) -> FakeVertex:
    return FakeVertex().patch(monkeypatch)


@pytest.fixture
def gcs(tmp_path: Path) -> Iterator[Path]:
    with gcsfake.installed(tmp_path / "fake-gcs") as root:
        yield root


class _OutletEvents(SimpleNamespace):
    """An outlet's event accessor: ``extra`` for an asset, ``add`` for an asset alias."""

    def add(self, asset: Any, extra: Any = None) -> None:
        self.added = [*getattr(self, "added", []), (asset, extra)]


def context(task: Any, xcoms: dict[str, Any], **params: Any) -> dict[str, Any]:
    values = {"data_root": DATA_ROOT, "prompt": "", "model_version": "", "scoring_backend": "vertex", **params}
    events: defaultdict[Any, _OutletEvents] = defaultdict(_OutletEvents)
    return {"ti": StubTaskInstance(task_id=task.task_id, xcoms=xcoms), "params": values, "outlet_events": events}


def run(task: Any, xcoms: dict[str, Any], **params: Any) -> Any:
    """Render the DAG's task (a copy) like the worker does, then execute it."""
    rendered = copy.copy(task)
    ctx = context(rendered, xcoms, **params)
    rendered.render_template_fields(ctx)
    return rendered, rendered.execute(ctx)


def transformed_week() -> dict[str, Any]:
    common = {"source": str(SHIPPED), "data_root": DATA_ROOT}
    ti = StubTaskInstance(task_id="ingest")
    raw = IngestReviewsOperator(task_id="ingest", week=WEEK, **common).execute({"ti": ti})
    ti = StubTaskInstance(task_id="validate", xcoms={"ingest": raw})
    checked = ValidateReviewsOperator(task_id="validate", upstream={"raw": "ingest"}, **common).execute({"ti": ti})
    ti = StubTaskInstance(task_id="transform", xcoms={"validate": checked})
    op = TransformReviewsOperator(task_id="transform", upstream={"validated": "validate"}, **common)
    record: dict[str, Any] = op.execute({"ti": ti})
    return record


def test_the_trio_renders_the_provider_operator_from_prepare_and_collects_every_review(
    weekly: Any, gcs: Path, fake_vertex: FakeVertex
) -> None:
    from airflow.providers.google.cloud.operators.vertex_ai.batch_prediction_job import (
        CreateBatchPredictionJobOperator,
    )

    transform = transformed_week()
    _, prepared = run(weekly.get_task("prepare_batch"), {"transform": transform}, prompt="review_sentiment@v1")
    spec = prepared["metrics"]["vertex"]
    assert prepared["metrics"]["prompt_template"] == "review_sentiment@v1"
    assert prepared["parents"][0] == transform["record_id"]

    task = weekly.get_task("batch_predict")
    # Parsing the DAG imports no provider module: the provider's own operator is built
    # from the rendered arguments when the task runs.
    assert type(task) is LazyProviderOperator and task.operator.endswith(".CreateBatchPredictionJobOperator")
    rendered, job = run(task, {"prepare_batch": prepared})
    predict = rendered.provider_operator
    assert type(predict) is CreateBatchPredictionJobOperator  # the provider's own, not a subclass
    assert predict.region == "us-central1"
    assert predict.project_id == PROJECT  # resolved by prepare_batch from the Connection
    assert predict.model_name == "publishers/google/models/gemini-2.5-flash"
    assert predict.gcs_source == f"{DATA_ROOT}/vertex/batch/week={WEEK}/review_sentiment@v1/requests.jsonl"
    assert predict.gcs_destination_prefix == f"{DATA_ROOT}/vertex/batch/week={WEEK}/review_sentiment@v1/output"
    assert predict.job_display_name == spec["job_display_name"] and predict.gcp_conn_id == "google_cloud_default"
    assert predict.instances_format == predict.predictions_format == "jsonl"
    assert task.execution_timeout is not None
    (submitted,) = fake_vertex.jobs
    assert submitted["project"] == PROJECT and submitted["location"] == "us-central1"
    assert submitted["gcs_source"] == predict.gcs_source and submitted["model_name"] == predict.model_name
    assert job["outputInfo"]["gcsOutputDirectory"] == submitted["output_directory"]

    _, collected = run(weekly.get_task("collect_batch"), {"prepare_batch": prepared, "batch_predict": job})
    curated = next(a for a in transform["outputs"] if a["kind"] == "curated")
    reviews = pq.read_table(pa.BufferReader(as_path(curated["uri"]).read_bytes())).column("review_id").to_pylist()
    table = pq.read_table(pa.BufferReader(Layout(DATA_ROOT).predictions(WEEK).read_bytes()))
    assert sorted(table.column("review_id").to_pylist()) == sorted(reviews)  # nothing dropped
    assert table.schema == vertex_prediction_schema()  # the local columns, then the Vertex ones
    assert collected["outputs"][0]["uri"] == f"{DATA_ROOT}/predictions/week={WEEK}/predictions.parquet"
    assert [a["kind"] for a in collected["inputs"]] == ["curated", "vertex_requests", "vertex_output"]
    assert collected["inputs"][0]["sha256"] == curated["sha256"]
    assert collected["parents"][0] == prepared["record_id"]
    metrics = collected["metrics"]
    assert metrics["rows_scored"] == len(reviews) == sum(metrics["response_summary"]["by_status"].values())
    assert metrics["prompt_sha256"] == prepared["metrics"]["prompt_sha256"]
    assert metrics["model_version"] == "vertex:gemini-2.5-flash+review_sentiment@v1"
    assert set(table.column("model_version").to_pylist()) == {metrics["model_version"]}


def test_collect_fails_without_retry_when_the_prompt_changed(weekly: Any, gcs: Path, fake_vertex: FakeVertex) -> None:
    _, prepared = run(weekly.get_task("prepare_batch"), {"transform": transformed_week()})
    _, job = run(weekly.get_task("batch_predict"), {"prepare_batch": prepared})
    prepared["metrics"]["vertex"]["prompt_sha256"] = "0" * 64
    with pytest.raises(AirflowFailException, match="changed since the requests were written"):
        run(weekly.get_task("collect_batch"), {"prepare_batch": prepared, "batch_predict": job})


def test_prepare_fails_without_retry_on_a_local_data_root_or_an_unknown_prompt(
    weekly: Any, gcs: Path, tmp_path: Path, fake_vertex: FakeVertex
) -> None:
    transform = transformed_week()
    with pytest.raises(AirflowFailException, match="no version 9"):
        run(weekly.get_task("prepare_batch"), {"transform": transform}, prompt="review_sentiment@v9")
    with pytest.raises(AirflowFailException, match="not on Cloud Storage"):
        run(weekly.get_task("prepare_batch"), {"transform": transform}, data_root=str(tmp_path))


def test_the_fake_refuses_what_vertex_refuses(weekly: Any, gcs: Path, fake_vertex: FakeVertex) -> None:
    _, prepared = run(weekly.get_task("prepare_batch"), {"transform": transformed_week()})
    requests = as_path(prepared["metrics"]["vertex"]["gcs_source"])
    requests.write_text('{"instances": []}\n')
    with pytest.raises(FakeVertexError, match="expected one object with the key 'request'"):
        run(weekly.get_task("batch_predict"), {"prepare_batch": prepared})
    prepared["metrics"]["vertex"]["model"] = "gemini-pro"
    with pytest.raises(FakeVertexError, match="not a Gemini publisher model"):
        run(weekly.get_task("batch_predict"), {"prepare_batch": prepared})


def test_the_deferrable_job_hands_collect_the_job_from_its_trigger(
    weekly: Any, gcs: Path, fake_vertex: FakeVertex
) -> None:
    import asyncio

    from airflow.providers.google.cloud.triggers.vertex_ai import CreateBatchPredictionJobTrigger
    from airflow.sdk.exceptions import TaskDeferred

    _, prepared = run(weekly.get_task("prepare_batch"), {"transform": transformed_week()})
    task = copy.copy(weekly.get_task("batch_predict"))
    task.arguments = {**task.arguments, "deferrable": True}  # as batch_prediction_tasks(deferrable=True) sets it
    ctx = context(task, {"prepare_batch": prepared})
    task.render_template_fields(ctx)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(ctx)
    trigger = deferred.value.trigger
    assert isinstance(trigger, CreateBatchPredictionJobTrigger)
    assert (trigger.project_id, trigger.location) == (PROJECT, "us-central1")

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload
        return None

    payload = asyncio.run(first_event())
    assert payload["status"] == "success", payload
    job = task.execute_complete(ctx, payload)  # resumed on the task, as the task runner does
    assert "output_info" in job  # the trigger's proto-plus dict: snake_case

    _, collected = run(weekly.get_task("collect_batch"), {"prepare_batch": prepared, "batch_predict": job})
    assert collected["inputs"][2]["uri"] == f"{fake_vertex.jobs[0]['output_directory']}/predictions.jsonl"
