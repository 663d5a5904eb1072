"""Vertex AI batch prediction around the job: the requests file and job spec, and the
job's output joined back to every review. The data root is a fake ``gs://`` bucket and
the job is the fake service of tests/vertexfake.py (its ``submit`` called directly)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewops.config import VertexSettings
from reviewops.data.schema import CLASSES, CURATED_SCHEMA, prediction_schema
from reviewops.gcp.batch import (
    BatchError,
    BatchSpec,
    PrepareParams,
    ResolvedModel,
    collect_batch,
    dataset_input,
    model_id,
    newest_dataset,
    prepare_batch,
    resolve_model,
    select_input,
    vertex_prediction_schema,
)
from reviewops.gcp.gemini import batch_request, request_key
from reviewops.gcp.prompts import load_template
from reviewops.lineage.record import Artifact
from reviewops.monitoring.metrics import model_safety_metrics
from reviewops.monitoring.thresholds import Thresholds, check_thresholds
from reviewops.registry.store import Registry
from reviewops.storage.io import write_json, write_parquet
from reviewops.storage.paths import Layout, as_path
from reviewops.storage.publish import MARKER
from tests import vertexfake
from tests.vertexfake import FakeVertex

from .samples import shipped_records

ROOT = "gs://reviewops-test/data"
WEEK = "2017-11-27"
STATUS_OF = {
    "blocked_prompt": "blocked",
    "blocked_answer": "blocked",
    "error": "error",
    "unparseable": "unparseable",
    "missing": "missing",
    "retried": "ok",
    "cited": "ok",
    "flagged": "ok",
    "ok": "ok",
}


def _label(rating: str) -> str:
    if rating in CLASSES:
        return rating
    value = int(rating)
    return "negative" if value < 5 else "neutral" if value < 7 else "positive"


def curated_rows(n: int = 60) -> list[dict[str, Any]]:
    """Real shipped reviews, cleaned like transform does, all in one week."""
    monday = dt.date.fromisoformat(WEEK)
    return [
        {
            "review_id": r[""],
            "product": r["drugName"],
            "condition": r["condition"] or None,
            "text": r["review"].strip().strip('"').strip(),
            "label": _label(r["rating"]),
            "review_date": monday,
            "week": monday,
            "useful_count": int(r["usefulCount"]),
            "source_file": "reviews.tsv",
            "source_row": i + 1,
        }
        for i, r in enumerate(shipped_records(n))
    ]


def write_curated(rows: list[dict[str, Any]], root: str = ROOT) -> Artifact:
    path = write_parquet(pa.Table.from_pylist(rows, schema=CURATED_SCHEMA), Layout(root).curated(WEEK))
    return Artifact.of_file(path, "curated")


@pytest.fixture
def curated(fake_gcs: Path) -> Artifact:
    return write_curated(curated_rows())


def prepared(curated: Artifact, **params: Any) -> tuple[Any, BatchSpec, Artifact]:
    result, inputs = prepare_batch(PrepareParams(data_root=ROOT, **params), curated)
    assert inputs == [curated]
    return result, BatchSpec.from_dict(result.metrics["vertex"]), result.outputs[0]


def run_job(spec: BatchSpec, fake: FakeVertex | None = None) -> dict[str, Any]:
    job = (fake or FakeVertex()).submit(
        job_display_name=spec.job_display_name,
        model_name=spec.model,
        instances_format="jsonl",
        predictions_format="jsonl",
        gcs_source=spec.gcs_source,
        gcs_destination_prefix=spec.gcs_destination_prefix,
        project="reviewops-test",
        location=spec.location,
    )
    return job.to_dict()


def expected_status(template_ref: str, row: dict[str, Any]) -> str:
    request = batch_request(load_template(template_ref), row)["request"]
    return STATUS_OF[vertexfake.outcome(vertexfake.user_text(request))]


def test_prepare_writes_one_request_per_distinct_rendering_with_the_prompt_in_lineage(curated: Artifact) -> None:
    rows = curated_rows()
    # A repeat of the first review under another id renders the same: one shared request.
    rows.append({**rows[0], "review_id": "dup-1"})
    source = write_curated(rows)
    result, spec, requests = prepared(source, prompt="review_sentiment@v1")
    template = load_template("review_sentiment@v1")
    lines = [json.loads(line) for line in as_path(requests.uri).read_text().splitlines()]
    assert len(lines) == requests.rows == result.metrics["requests"] == len(rows) - 1
    assert result.metrics["reviews"] == len(rows) and result.metrics["shared_requests"] == 1
    assert lines[0] == batch_request(template, rows[0])
    assert result.metrics["prompt_template"] == "review_sentiment@v1" == spec.prompt_template
    assert result.metrics["prompt_sha256"] == template.sha256 == spec.prompt_sha256
    assert requests.uri == f"{ROOT}/vertex/batch/week={WEEK}/review_sentiment@v1/requests.jsonl" == spec.gcs_source
    assert spec.gcs_destination_prefix == f"{ROOT}/vertex/batch/week={WEEK}/review_sentiment@v1/output"
    assert spec.model == VertexSettings().model and spec.registry_version is None
    assert spec.model_version == "vertex:gemini-2.5-flash+review_sentiment@v1"
    assert spec.subject == f"week={WEEK}" and spec.location == "us-central1" and spec.project == ""


def test_prepare_refuses_a_local_data_root(tmp_path: Path) -> None:
    source = write_curated(curated_rows(5), str(tmp_path))
    with pytest.raises(BatchError, match="not on Cloud Storage"):
        prepare_batch(PrepareParams(data_root=str(tmp_path)), source)
    result, _ = prepare_batch(PrepareParams(data_root=str(tmp_path), require_gcs=False), source)
    assert result.metrics["requests"] == 5


def test_an_empty_week_submits_nothing(fake_gcs: Path) -> None:
    with pytest.raises(BatchError, match="no reviews to score"):
        prepare_batch(PrepareParams(data_root=ROOT), write_curated([]))


def test_prepare_takes_settings_from_the_environment_and_params(
    curated: Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVIEWOPS_VERTEX_LOCATION", "europe-west4")
    monkeypatch.setenv("REVIEWOPS_VERTEX_PROMPT", "review_sentiment@v1")
    _, spec, _ = prepared(curated, project="my-project")
    assert (spec.location, spec.project, spec.prompt_template) == ("europe-west4", "my-project", "review_sentiment@v1")
    _, spec, _ = prepared(curated, prompt="review_sentiment@v2", location="us-east1")
    assert (spec.location, spec.prompt_template) == ("us-east1", "review_sentiment@v2")


def test_collect_gives_every_review_one_row_in_the_prediction_schema(curated: Artifact) -> None:
    rows = curated_rows()
    _, spec, requests = prepared(curated)
    job = run_job(spec)
    collected, inputs = collect_batch(ROOT, spec, curated, requests, job)

    target = Layout(ROOT).predictions(WEEK)
    assert collected.outputs[0].uri == f"{ROOT}/predictions/week={WEEK}/predictions.parquet"
    table = pq.read_table(pa.BufferReader(target.read_bytes()))
    assert table.schema == vertex_prediction_schema()
    local = prediction_schema()
    assert table.schema.names[: len(local)] == local.names  # the local columns first, same types
    assert all(table.schema.field(f.name).type == f.type for f in local)
    assert table.column("review_id").to_pylist() == [r["review_id"] for r in rows]  # nothing dropped
    got = table.to_pylist()
    statuses = [expected_status(spec.prompt_template, r) for r in rows]
    assert [g["response_status"] for g in got] == statuses
    assert len(set(statuses)) == 5, "the fake should give every status on 60 reviews"
    for row in got:
        probs = [row[f"prob_{c}"] for c in CLASSES]
        if row["response_status"] == "ok":
            assert row["predicted_label"] in CLASSES
            assert probs == [float(c == row["predicted_label"]) for c in CLASSES]
        else:
            assert row["predicted_label"] is None and probs == [None, None, None]
        assert row["model_version"] == spec.model_version and row["prompt_template"] == spec.prompt_template
        assert str(row["week"]) == WEEK
    blocked = [g for g in got if g["response_status"] == "blocked"]
    assert blocked and all(g["model_safety_categories"] and g["block_reason"] for g in blocked)
    assert any(g["citation_count"] for g in got) and any(g["citation_count"] == 0 for g in got)

    metrics = collected.metrics
    assert metrics["rows_scored"] == len(rows) and metrics["week"] == WEEK
    assert metrics["prompt_sha256"] == spec.prompt_sha256 and metrics["model_version"] == spec.model_version
    assert sum(metrics["response_summary"]["by_status"].values()) == len(rows)
    assert metrics["response_status"] == metrics["response_summary"]["by_status"]
    assert metrics["batch_seconds"] == [42.0] and metrics["unmatched_lines"] == 0
    kinds = [a.kind for a in inputs]
    assert kinds == ["curated", "vertex_requests", "vertex_output"]
    assert inputs[2].uri.startswith(spec.gcs_destination_prefix + "/prediction-model-")
    assert inputs[2].uri.endswith("/predictions.jsonl") and inputs[2].rows == metrics["output_lines"]


def test_collect_reads_the_job_dict_in_the_synchronous_and_the_deferrable_shape(curated: Artifact) -> None:
    _, spec, requests = prepared(curated)
    job = run_job(spec)
    first, inputs = collect_batch(ROOT, spec, curated, requests, job)
    directory = job["outputInfo"]["gcsOutputDirectory"]
    assert inputs[2].uri == f"{directory}/predictions.jsonl"
    snake = {
        "name": job["name"],
        "state": 4,
        "input_config": {"gcs_source": {"uris": [spec.gcs_source]}},
        "output_info": {"gcs_output_directory": directory},
    }
    deferred, _ = collect_batch(ROOT, spec, curated, requests, snake)
    assert first.outputs[0].sha256 == deferred.outputs[0].sha256


def test_collect_fails_on_a_failed_job_or_a_missing_output(curated: Artifact) -> None:
    _, spec, requests = prepared(curated)
    with pytest.raises(BatchError, match="JOB_STATE_FAILED"):
        collect_batch(ROOT, spec, curated, requests, {"name": "j", "state": "JOB_STATE_FAILED"})
    # Without the job's own output directory nothing is guessed: another model's job on the
    # same requests (champion and challenger on one eval split) writes under the same prefix.
    run_job(spec)
    with pytest.raises(BatchError, match="names no output directory"):
        collect_batch(ROOT, spec, curated, requests, None)
    other = {"name": "j", "state": "JOB_STATE_SUCCEEDED", "inputConfig": {"gcsSource": {"uris": ["gs://b/x.jsonl"]}}}
    with pytest.raises(BatchError, match="not this batch's requests"):
        collect_batch(ROOT, spec, curated, requests, other)


def test_lines_that_are_lost_or_garbled_leave_their_reviews_missing(curated: Artifact) -> None:
    rows = curated_rows()
    _, spec, requests = prepared(curated)
    job = run_job(spec)
    output = as_path(job["outputInfo"]["gcsOutputDirectory"]) / "predictions.jsonl"
    lines = output.read_text().splitlines()
    lines[0] = lines[0][:40]  # truncated
    output.write_text("\n".join(lines) + "\n")
    collected, _ = collect_batch(ROOT, spec, curated, requests, job)
    assert collected.metrics["invalid_lines"] == 1 and collected.metrics["rows_scored"] == len(rows)
    table = pq.read_table(pa.BufferReader(Layout(ROOT).predictions(WEEK).read_bytes()))
    assert table.num_rows == len(rows)


def test_a_template_edited_after_prepare_fails_collect(curated: Artifact) -> None:
    _, spec, requests = prepared(curated)
    changed = BatchSpec.from_dict({**spec.to_dict(), "prompt_sha256": "0" * 64})
    with pytest.raises(BatchError, match="changed since the requests were written"):
        collect_batch(ROOT, changed, curated, requests, run_job(spec))


def register(version: str, kind: str, promote: bool, tmp_path: Path, **extra: Any) -> None:
    candidate = tmp_path / f"candidate-{version}"
    candidate.mkdir()
    (candidate / "tuning.json").write_text("{}")
    registry = Registry(ROOT)
    meta = {"version": version, "kind": kind, "registered_at": "2026-11-26T00:00:00+00:00", "gate": {}, **extra}
    registry.register(candidate, meta)
    if promote:
        registry.promote(version, "test", "test")


def test_the_model_is_a_vertex_champion_else_the_base_model(fake_gcs: Path, tmp_path: Path) -> None:
    settings = VertexSettings()
    params = PrepareParams(data_root=ROOT)
    assert resolve_model(params, settings) == ResolvedModel(settings.model)
    register("m-keras", "keras", True, tmp_path)
    assert resolve_model(params, settings) == ResolvedModel(settings.model)
    tuned = "projects/123/locations/us-central1/models/456"
    v1 = load_template("review_sentiment@v1")
    vertex = {"tuned_model_name": tuned, "endpoint": "e", "prompt_ref": v1.ref, "prompt_sha256": v1.sha256}
    register("m-tuned", "vertex", True, tmp_path, vertex=vertex)
    assert resolve_model(params, settings) == ResolvedModel(tuned, "m-tuned", v1.ref, v1.sha256)
    assert model_id(tuned, "m-tuned", "review_sentiment@v2") == "m-tuned+review_sentiment@v2"
    # An explicit model wins; a pinned keras model cannot run on Vertex.
    explicit = "publishers/google/models/gemini-2.0-flash"
    assert resolve_model(PrepareParams(data_root=ROOT, model=explicit), settings) == ResolvedModel(explicit)
    with pytest.raises(BatchError, match="kind 'keras', not vertex"):
        resolve_model(PrepareParams(data_root=ROOT, model_version="m-keras"), settings)
    register("m-dotted", "vertex", False, tmp_path, **{"vertex.tuned_model_name": tuned + "9"})
    with pytest.raises(BatchError, match="not promoted"):
        resolve_model(PrepareParams(data_root=ROOT, model_version="m-dotted"), settings)
    Registry(ROOT).promote("m-dotted", "test", "test")
    pinned = resolve_model(PrepareParams(data_root=ROOT, model_version="m-dotted"), settings)
    assert pinned == ResolvedModel(tuned + "9", "m-dotted")


def test_a_tuned_champion_scores_with_the_prompt_it_was_tuned_with(curated: Artifact, tmp_path: Path) -> None:
    v1 = load_template("review_sentiment@v1")
    tuned = "projects/123/locations/us-central1/models/456"
    vertex = {"tuned_model_name": tuned, "prompt_ref": v1.ref, "prompt_sha256": v1.sha256}
    register("m-tuned", "vertex", True, tmp_path, vertex=vertex)
    _, spec, _ = prepared(curated)
    assert (spec.model, spec.registry_version, spec.prompt_template) == (tuned, "m-tuned", v1.ref)
    assert spec.model_version == "m-tuned+review_sentiment@v1"
    _, spec, _ = prepared(curated, prompt="review_sentiment@v2")  # the run's Param still wins
    assert spec.prompt_template == "review_sentiment@v2"


def test_a_tuned_champion_whose_prompt_file_changed_is_refused(curated: Artifact, tmp_path: Path) -> None:
    vertex = {"tuned_model_name": "projects/1/locations/l/models/2", "prompt_ref": "review_sentiment@v1"}
    register("m-tuned", "vertex", True, tmp_path, vertex={**vertex, "prompt_sha256": "0" * 64})
    with pytest.raises(BatchError, match="changed since model m-tuned was tuned"):
        prepared(curated)


def test_model_safety_metrics_count_like_the_local_flags() -> None:
    table = pa.table(
        {
            "response_status": ["ok", "blocked", "ok", "error", "missing"],
            "model_safety_categories": [[], ["harassment"], ["harassment", "hate_speech"], [], []],
            "citation_count": pa.array([2, 0, 0, 0, 0], pa.int32()),
        }
    )
    metrics = model_safety_metrics(table)
    assert metrics["model_safety_flagged"] == 2 and metrics["model_safety_rate"] == 0.4
    assert metrics["model_safety_by_category"] == {"harassment": 2, "hate_speech": 1}
    assert metrics["model_blocked"] == 1 and metrics["citations_reviews"] == 1 and metrics["citations_total"] == 2
    assert metrics["response_status"] == {"blocked": 1, "error": 1, "missing": 1, "ok": 2}
    assert model_safety_metrics(pa.table({"review_id": ["a"]})) == {}


def test_dataset_inputs_and_the_newest_version(fake_gcs: Path) -> None:
    datasets = Layout(ROOT).datasets()
    versions = (("ds-old", "2017-01-02", 500), ("ds-new", "2017-12-11", 400), ("ds-unpublished", "2018-01-01", 9))
    for version, last, rows in versions:
        (datasets / version / "manifest.json").write_text(
            json.dumps({"version": version, "rows": rows, "weeks": {"first": "2010-01-04", "last": last}})
        )
        write_parquet(pa.Table.from_pylist(curated_rows(3), schema=CURATED_SCHEMA), datasets / version / "eval.parquet")
        if version != "ds-unpublished":  # on an object store a version is trusted once its marker is there
            write_json({"files": {}}, datasets / version / MARKER)
    assert newest_dataset(ROOT) == "ds-new"
    artifact = dataset_input(ROOT)
    assert artifact.kind == "dataset" and artifact.uri.endswith("ds-new/eval.parquet")
    assert select_input([artifact]) == artifact
    with pytest.raises(BatchError, match="no train split"):
        dataset_input(ROOT, "ds-old", "train")
    # A dataset Param is a path component: only a version id and a known split reach the path.
    for version, split in (("../../elsewhere", "eval"), ("ds-old/../ds-new", "eval"), ("ds-old", "../eval")):
        with pytest.raises(BatchError, match="a dataset version is ds-<id>"):
            dataset_input(ROOT, version, split)
    result, _ = prepare_batch(PrepareParams(data_root=ROOT), artifact)
    assert result.subject == "ds-new/eval"
    assert result.outputs[0].uri.startswith(f"{ROOT}/vertex/batch/ds-new/eval/")
    spec = BatchSpec.from_dict(result.metrics["vertex"])
    collected, _ = collect_batch(ROOT, spec, artifact, result.outputs[0], run_job(spec))
    assert collected.outputs[0].uri.endswith(
        "/ds-new/eval/review_sentiment@v2/predictions-vertex-gemini-2.5-flash+review_sentiment@v2.parquet"
    )
    assert "week" not in collected.metrics


def test_request_keys_of_the_fake_match_ours() -> None:
    review = curated_rows(1)[0]
    request = batch_request(load_template("review_sentiment@v2"), review)["request"]
    lines = vertexfake.response_lines(request, "2026-11-26T00:00:00")
    assert all(request_key(line["request"]) == request_key(request) for line in lines)


def test_an_empty_vertex_week_has_no_rates_and_breaches_nothing() -> None:
    # An empty week's answered_rate was 0.0, which breached min_answered_rate (a false alarm):
    # a rate over no reviews is undefined (null), like every other metric of an empty week.
    empty = pa.table(
        {
            "response_status": pa.array([], pa.string()),
            "model_safety_categories": pa.array([], pa.list_(pa.string())),
            "citation_count": pa.array([], pa.int32()),
        }
    )
    metrics = model_safety_metrics(empty)
    assert metrics["answered_rate"] is None and metrics["model_safety_rate"] is None
    assert metrics["model_blocked"] == 0 and metrics["response_status"] == {}
    week = {
        "review_count": 0,
        "labelled_count": 0,
        "drift": {"prediction_psi": None, "length_psi": None},
        "accuracy": None,
        "safety": {"flagged_rate": None},
        "answered_rate": None,
    }
    assert "answered_rate" not in [b.metric for b in check_thresholds({**week, **metrics}, Thresholds())]
