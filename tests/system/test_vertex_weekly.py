"""``reviews_weekly`` with ``scoring_backend=vertex`` end to end through ``dag.test()`` on a
``gs://`` data root, beside the local backend on the same week.

Google is replaced at the client boundary only: ``gs://`` by the fake object store of
tests/gcsfake.py, Vertex AI batch prediction by tests/vertexfake.py at
``BatchPredictionJob.submit`` (the provider's operator and hook run for real, with a
``google_cloud_default`` Connection of anonymous credentials from the environment).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests import gcsfake
from tests.conftest import ROOT, shipped_records, write_shipped_slice
from tests.vertexfake import FakeVertex, outcome, user_text

pytestmark = pytest.mark.integration

GS_ROOT = "gs://reviewops-test/vertex"
GS_SOURCE = "gs://reviewops-test/incoming/reviews.tsv"
QUICK = {
    "search_space": {"representation": ["tfidf"], "ngrams": [1], "hidden_units": [64], "class_weighting": [True]},
    "max_trials": 1,
    "hyperparameters": {"epochs": 2},
}
STATUS_OF = {
    "blocked_prompt": "blocked",
    "blocked_answer": "blocked",
    "error": "error",
    "unparseable": "unparseable",
    "missing": "missing",
}



def _record(dag_run: Any, task_id: str) -> dict[str, Any]:
    value: dict[str, Any] = dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id)
    return value


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _data_path(data_root: str, week: str) -> list[tuple[str, str]]:
    """From the week's predictions up to the source file along the reviews (not the
    model): (task, kind of the artifact it was reached through) per hop."""
    from reviewops.lineage.store import LineageStore
    from reviewops.storage.paths import Layout, to_uri

    index = LineageStore(data_root).index()
    (record,) = index.resolve(to_uri(Layout(data_root).predictions(week)))
    hops = [(record.task_id, "predictions")]
    for kind in ("curated", "validated", "raw", "source"):
        (artifact,) = [a for a in record.inputs if a.kind == kind]
        producer = index.producer(artifact, before=record.started_at)
        if producer is None:
            hops.append(("(source file)", kind))
            break
        hops.append((producer.task_id, kind))
        record = producer
    return hops


@pytest.fixture(scope="module")
def runs(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from airflow.dag_processing.dagbag import DagBag

    from reviewops.data.transform import curated_weeks
    from reviewops.registry.store import Registry
    from reviewops.storage import io as storage_io
    from reviewops.storage import paths as storage_paths

    base = tmp_path_factory.mktemp("vertex-weekly")
    header, records = shipped_records()
    source = write_shipped_slice(base / "reviews.tsv", records, header)
    dagbag = DagBag(dag_folder=str(ROOT / "dags"))
    assert dagbag.import_errors == {}
    weekly = dagbag.dags["reviews_weekly"]
    fake = FakeVertex()
    with pytest.MonkeyPatch.context() as monkeypatch, gcsfake.installed(base / "fake-gcs"):
        fake.patch(monkeypatch)
        storage_io.upload(source, storage_paths.from_uri(GS_SOURCE))
        conf = {"source": GS_SOURCE, "data_root": GS_ROOT}
        load = dagbag.dags["reviews_initial_load"].test(run_conf=conf)
        training = dagbag.dags["reviews_training"].test(run_conf={"data_root": GS_ROOT, **QUICK})
        registry = Registry(GS_ROOT)
        champion = _record(training, "register_model")["subject"]
        if registry.champion() is None:  # two epochs may not pass the gate: promote by hand
            registry.promote(champion, "test: a quick model, promoted by hand", "test_vertex_weekly")
        counts = curated_weeks(GS_ROOT)
        week = max(counts, key=lambda w: (counts[w], w))  # the busiest week: most statuses
        # The fake answers only part of the week (blocked, failed, lost, garbled lines on
        # purpose), below the gate's default min_answered_rate of 0.9.
        loose = {"thresholds": {"min_answered_rate": 0.5}}
        vertex = weekly.test(run_conf={**conf, **loose, "week": week, "scoring_backend": "vertex"})
        vertex_predictions = pq.read_table(
            pa.BufferReader(storage_paths.Layout(GS_ROOT).predictions(week).read_bytes())
        )
        vertex_path = _data_path(GS_ROOT, week)
        local = weekly.test(run_conf={**conf, "week": week, "scoring_backend": "local"})
        local_path = _data_path(GS_ROOT, week)
        yield {
            "load": load,
            "training": training,
            "champion": champion,
            "vertex": vertex,
            "local": local,
            "week": week,
            "rows": counts[week],
            "fake": fake,
            "vertex_predictions": vertex_predictions,
            "vertex_path": vertex_path,
            "local_path": local_path,
        }


def test_the_vertex_branch_runs_and_the_local_one_is_skipped(runs: dict[str, Any]) -> None:
    states = _states(runs["vertex"])
    for task in ("ingest", "validate", "transform", "choose_scoring_backend", "prepare_batch", "batch_predict"):
        assert states[task] == "success", states
    assert states["collect_batch"] == "success" and states["score"] == "skipped"
    assert str(runs["vertex"].state) == "success", states
    local = _states(runs["local"])
    assert str(runs["local"].state) == "success", local
    assert local["score"] == "success"
    assert {local[t] for t in ("prepare_batch", "batch_predict", "collect_batch")} == {"skipped"}


def test_one_job_ran_with_the_base_model_because_the_champion_is_keras(runs: dict[str, Any]) -> None:
    (job,) = runs["fake"].jobs
    week = runs["week"]
    assert job["model_name"] == "publishers/google/models/gemini-2.5-flash"
    assert job["project"] == "reviewops-test" and job["location"] == "us-central1"
    assert job["gcs_source"] == f"{GS_ROOT}/vertex/batch/week={week}/review_sentiment@v2/requests.jsonl"
    assert job["gcs_destination_prefix"] == f"{GS_ROOT}/vertex/batch/week={week}/review_sentiment@v2/output"


def test_every_review_of_the_week_has_a_vertex_prediction_with_its_status(runs: dict[str, Any]) -> None:
    from reviewops.gcp.batch import vertex_prediction_schema
    from reviewops.gcp.gemini import batch_request
    from reviewops.gcp.prompts import load_template
    from reviewops.storage.paths import as_path

    table = runs["vertex_predictions"]
    assert table.schema == vertex_prediction_schema()
    collect = _record(runs["vertex"], "collect_batch")
    curated = next(a for a in collect["inputs"] if a["kind"] == "curated")
    reviews = pq.read_table(pa.BufferReader(as_path(curated["uri"]).read_bytes())).to_pylist()
    assert table.num_rows == len(reviews) == runs["rows"] == collect["metrics"]["rows_scored"]
    template = load_template("review_sentiment@v2")
    by_id = {r["review_id"]: r for r in table.to_pylist()}
    for review in reviews:
        kind = outcome(user_text(batch_request(template, review)["request"]))
        assert by_id[review["review_id"]]["response_status"] == STATUS_OF.get(kind, "ok"), review["review_id"]


def test_the_lineage_has_the_shape_of_the_local_path_and_names_the_prompt(runs: dict[str, Any]) -> None:
    vertex, local = runs["vertex_path"], runs["local_path"]
    assert (
        [kind for _, kind in vertex]
        == [kind for _, kind in local]
        == [
            "predictions",
            "curated",
            "validated",
            "raw",
            "source",
        ]
    )
    assert (
        [task for task, _ in vertex[1:]]
        == [task for task, _ in local[1:]]
        == ["transform", "validate", "ingest", "(source file)"]
    )
    assert (vertex[0][0], local[0][0]) == ("collect_batch", "score")

    prepare = _record(runs["vertex"], "prepare_batch")
    collect = _record(runs["vertex"], "collect_batch")
    from reviewops.gcp.prompts import load_template

    sha = load_template("review_sentiment@v2").sha256
    assert prepare["metrics"]["prompt_sha256"] == collect["metrics"]["prompt_sha256"] == sha
    assert prepare["metrics"]["prompt_template"] == collect["metrics"]["prompt_template"] == "review_sentiment@v2"
    assert prepare["record_id"] in collect["parents"]
    assert [a["kind"] for a in collect["inputs"]] == ["curated", "vertex_requests", "vertex_output"]
    assert prepare["outputs"][0]["sha256"] == collect["inputs"][1]["sha256"]


def test_the_model_safety_counts_reach_monitoring(runs: dict[str, Any]) -> None:
    collect = _record(runs["vertex"], "collect_batch")["metrics"]
    table = runs["vertex_predictions"]
    statuses = table.column("response_status").to_pylist()
    flagged = sum(1 for c in table.column("model_safety_categories").to_pylist() if c)
    assert collect["model_safety_flagged"] == flagged
    assert collect["model_blocked"] == statuses.count("blocked")
    assert collect["citations_reviews"] == sum(1 for c in table.column("citation_count").to_pylist() if c)
    assert collect["response_status"] == collect["response_summary"]["by_status"]
    monitor = _record(runs["vertex"], "monitor")["metrics"]
    for key in ("model_safety_flagged", "model_safety_by_category", "model_blocked", "citations_reviews"):
        assert monitor[key] == collect[key], key
    assert monitor["answered_rate"] == round(statuses.count("ok") / len(statuses), 4)
    assert 0.5 <= monitor["answered_rate"] < 0.9  # gated at 0.9 by default: the run loosened it
