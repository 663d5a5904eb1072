"""``reviews_prompt_evaluation`` end to end through ``dag.test()`` on a ``gs://`` data root:
one mapped Vertex AI batch job per prompt template on a dataset's eval split, our metrics
per template, and the best one named. Google is replaced at the client boundary only
(tests/gcsfake.py, tests/vertexfake.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests import gcsfake
from tests.conftest import ROOT, shipped_records, write_shipped_slice
from tests.vertexfake import FakeVertex

pytestmark = pytest.mark.integration

GS_ROOT = "gs://reviewops-test/prompts"
PROMPTS = ["review_sentiment@v1", "review_sentiment@v2"]


@pytest.fixture(scope="module")
def run(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from airflow.dag_processing.dagbag import DagBag

    from reviewops.pipeline import curate_and_snapshot
    from reviewops.storage.paths import as_path

    base = tmp_path_factory.mktemp("prompt-evaluation")
    header, records = shipped_records()
    source = write_shipped_slice(base / "reviews.tsv", records, header)
    dagbag = DagBag(dag_folder=str(ROOT / "dags"))
    assert dagbag.import_errors == {}
    fake = FakeVertex()
    with pytest.MonkeyPatch.context() as monkeypatch, gcsfake.installed(base / "fake-gcs"):
        fake.patch(monkeypatch)
        dataset = curate_and_snapshot(GS_ROOT, source)
        eval_rows = pq.read_table(pa.BufferReader(as_path(f"{dataset}/eval.parquet").read_bytes())).num_rows
        dag_run = dagbag.dags["reviews_prompt_evaluation"].test(run_conf={"data_root": GS_ROOT})
        report_path = as_path(f"{GS_ROOT}/prompt_evaluation/{dataset.name}/vertex-gemini-2.5-flash/report.json")
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        scores = dag_run.get_task_instance("select_prompt").xcom_pull(task_ids="evaluate_prompt.score_prompt")
        yield {
            "run": dag_run,
            "dataset": dataset.name,
            "eval_rows": eval_rows,
            "fake": fake,
            "report": report,
            "scores": scores,
        }


def test_the_run_succeeds_with_one_job_per_template(run: dict[str, Any]) -> None:
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run["run"].get_task_instances()}
    assert str(run["run"].state) == "success", states
    assert sorted(i for (t, i) in states if t == "evaluate_prompt.score_prompt") == [0, 1]
    jobs = run["fake"].jobs
    assert len(jobs) == 2
    assert sorted(j["gcs_source"] for j in jobs) == [
        f"{GS_ROOT}/vertex/batch/{run['dataset']}/eval/{p}/requests.jsonl" for p in PROMPTS
    ]
    assert {j["requests"] for j in jobs} <= {run["eval_rows"]}


def test_each_template_is_scored_with_our_metrics_in_its_record(run: dict[str, Any]) -> None:
    scores = sorted(run["scores"], key=lambda r: r["subject"])
    assert [s["subject"] for s in scores] == PROMPTS
    for record in scores:
        metrics = record["metrics"]
        assert metrics["rows"] == run["eval_rows"] and metrics["dataset_version"] == run["dataset"]
        assert set(metrics["per_class_recall"]) == {"negative", "neutral", "positive"}
        assert 0 <= metrics["macro_f1"] <= 1 and 0 <= metrics["accuracy"] <= 1
        assert metrics["blocked"] + metrics["unparseable"] + metrics["errors"] + metrics["missing"] == (
            metrics["rows"] - metrics["answered"]
        )
        assert metrics["prompt_sha256"] and record["outputs"][0]["uri"].endswith(f"{metrics['prompt_template']}.json")


def test_select_prompt_names_the_best_and_writes_the_report(run: dict[str, Any]) -> None:
    from reviewops.gcp.prompt_evaluation import rank_key

    report = run["report"]
    assert report is not None
    best = max((r["metrics"] for r in run["scores"]), key=rank_key)
    assert report["best"] == best["prompt_template"] and report["best_sha256"] == best["prompt_sha256"]
    assert report["ranking"][0]["prompt_template"] == report["best"]
    assert report["dataset_version"] == run["dataset"]
    select = run["run"].get_task_instance("select_prompt").xcom_pull(task_ids="select_prompt")
    assert select["metrics"]["best"] == report["best"]
    assert len(select["inputs"]) == 2 and {a["kind"] for a in select["inputs"]} == {"prompt_evaluation"}
