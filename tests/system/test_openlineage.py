"""OpenLineage end to end: a weekly run with the file transport configured emits, for
every reviewops task, a COMPLETE event whose inputs and outputs form the same graph as
the lineage store; unconfigured, the same run emits nothing and logs nothing about it.

Each run is a ``dag.test()`` in its own interpreter: the OpenLineage provider decides at
import whether its listener exists, so the transport must be in the environment before
Airflow is imported. ``dag.test()`` runs the tasks in that process and the provider's
listener fires there as it does on a worker (checked: START and COMPLETE per task).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reviewops.lineage.catalog import dataset_id
from reviewops.lineage.record import LineageRecord
from reviewops.lineage.store import LineageStore
from reviewops.modeling.training import TrainParams
from reviewops.pipeline import build_champion
from tests.conftest import ROOT, SHIPPED

pytestmark = pytest.mark.integration

WEEK = "2017-12-11"  # the shipped reviews' last week with reviews
DAG_ID = "reviews_weekly"

Node = tuple[str, str, str]  # OpenLineage namespace, name, sha256


def _run_weekly(data_root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        f"""
        import sys
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder={str(ROOT / "dags" / f"{DAG_ID}.py")!r})
        assert bag.import_errors == {{}}, bag.import_errors
        run = bag.dags[{DAG_ID!r}].test(
            run_conf={{"source": {str(SHIPPED)!r}, "data_root": {str(data_root)!r}, "week": {WEEK!r}}}
        )
        print("RUN-STATE", run.state)
        """
    )
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def weekly(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A quick champion, then the same week run twice: without OpenLineage, and with the
    file transport."""
    base = tmp_path_factory.mktemp("weekly-lineage")
    data_root = base / "data-root"
    build_champion(data_root, TrainParams(epochs=2), "test_openlineage", promote_if_rejected=True)
    quiet = _run_weekly(data_root, {k: v for k, v in os.environ.items() if "OPENLINEAGE" not in k})
    assert "RUN-STATE" in quiet.stdout, quiet.stderr[-3000:]
    events_file = base / "events.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    loud = _run_weekly(data_root, {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)})
    assert "RUN-STATE" in loud.stdout, loud.stderr[-3000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    yield {"data_root": data_root, "quiet": quiet, "events": events}


def _nodes(datasets: list[dict[str, Any]]) -> set[Node]:
    return {(d["namespace"], d["name"], d["facets"]["reviewops"]["sha256"]) for d in datasets}


def _record_nodes(record: LineageRecord) -> tuple[set[Node], set[Node]]:
    def node(uri: str, sha256: str) -> Node:
        namespace, name = dataset_id(uri)
        return namespace, name, sha256

    return {node(a.uri, a.sha256) for a in record.inputs}, {node(a.uri, a.sha256) for a in record.outputs}


def _edges(tasks: dict[str, tuple[set[Node], set[Node]]]) -> set[tuple[str, str, Node]]:
    """Producer task -> consumer task, through the dataset one wrote and the other read."""
    return {
        (producer, consumer, node)
        for producer, (_, outputs) in tasks.items()
        for consumer, (inputs, _) in tasks.items()
        for node in outputs & inputs
    }


def test_an_unconfigured_run_emits_nothing_and_logs_nothing_about_openlineage(weekly: dict[str, Any]) -> None:
    quiet = weekly["quiet"]
    assert "RUN-STATE" in quiet.stdout
    assert "OpenLineage" not in quiet.stdout + quiet.stderr and "openlineage" not in quiet.stdout + quiet.stderr


def test_every_reviewops_task_completes_with_the_graph_of_the_lineage_store(weekly: dict[str, Any]) -> None:
    completes = [
        e
        for e in weekly["events"]
        if e["eventType"] == "COMPLETE"
        and e["job"]["name"].startswith(f"{DAG_ID}.")
        and "reviewops" in e["run"]["facets"]
    ]
    by_record = {e["run"]["facets"]["reviewops"]["record_id"]: e for e in completes}
    assert len(by_record) == len(completes), "one COMPLETE event per record"
    stored = {r.record_id: r for r in LineageStore(weekly["data_root"]).records() if r.dag_id == DAG_ID}
    # The same week ran twice; only the second run emitted, and every one of its records did.
    (run_id,) = {stored[rid].run_id for rid in by_record}
    records = {rid: r for rid, r in stored.items() if r.run_id == run_id}
    assert set(records) == set(by_record)
    tasks = {records[rid].task_id for rid in records}
    assert {"ingest", "validate", "transform", "score", "monitor"} <= tasks

    from_events = {
        by_record[rid]["job"]["name"].split(".", 1)[1]: (_nodes(e["inputs"]), _nodes(e["outputs"]))
        for rid, e in by_record.items()
    }
    from_store = {r.task_id: _record_nodes(r) for r in records.values()}
    assert from_events == from_store
    edges = _edges(from_store)
    assert {(p, c) for p, c, _ in edges} >= {("ingest", "validate"), ("validate", "transform"), ("transform", "score")}
    assert _edges(from_events) == edges


def test_datasets_carry_schema_statistics_and_the_record_facets(weekly: dict[str, Any]) -> None:
    (score,) = [e for e in weekly["events"] if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{DAG_ID}.score"]
    (predictions,) = score["outputs"]
    assert predictions["namespace"] == "file"
    assert predictions["name"] == str(weekly["data_root"] / "predictions" / f"week={WEEK}" / "predictions.parquet")
    columns = [f["name"] for f in predictions["facets"]["schema"]["fields"]]
    assert {"review_id", "predicted_label"} <= set(columns)
    assert predictions["outputFacets"]["outputStatistics"]["rowCount"] > 0
    facet = score["run"]["facets"]["reviewops"]
    assert facet["_schemaURL"].endswith("#/$defs/ReviewOpsRunFacet")
    assert facet["subject"] == f"week={WEEK}" and len(facet["model_versions"]) == 1
    assert facet["code_version"]


def test_the_run_resolved_its_asset_aliases_to_the_data_root_folders(weekly: dict[str, Any]) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    root = weekly["data_root"].resolve().as_uri()
    with create_session() as session:
        found = session.execute(
            select(AssetModel.uri, AssetEvent.extra).join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
        ).all()
    records = {uri: extra["lineage"]["task_id"] for uri, extra in found if uri.startswith(root)}
    week = WEEK
    assert records == {f"{root}/curated/week={week}": "transform", f"{root}/predictions/week={week}": "score"}
