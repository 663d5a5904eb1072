"""The lifecycle with ``data_root=gs://reviewops-test/prefix``, through ``dag.test()``.

Google is replaced at the client boundary only: ``gs://`` is served by the fake object
store of tests/gcsfake.py, registered in this process (``dag.test`` runs the tasks here).
The same runs on a local data root give the shape the gs:// lineage must have.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests import gcsfake
from tests.conftest import ROOT, shipped_records, write_shipped_slice

pytestmark = pytest.mark.integration

GS_ROOT = "gs://reviewops-test/prefix"
GS_SOURCE = "gs://reviewops-test/incoming/reviews.tsv"
# One short trial: this module checks where artifacts go, not how good the model is.
QUICK = {
    "search_space": {"representation": ["tfidf"], "ngrams": [1], "hidden_units": [64], "class_weighting": [True]},
    "max_trials": 1,
    "hyperparameters": {"epochs": 2},
}


def _run_lifecycle(dagbag: Any, source: str, data_root: str) -> dict[str, Any]:
    """Initial load, training, then the latest week with reviews, as ``make demo`` does."""
    from reviewops.data.transform import curated_weeks
    from reviewops.registry.store import Registry

    load = dagbag.dags["reviews_initial_load"].test(run_conf={"source": source, "data_root": data_root})
    training = dagbag.dags["reviews_training"].test(run_conf={"data_root": data_root, **QUICK})
    registry = Registry(data_root)
    version = _record(training, "register_model")["subject"]
    if registry.champion() is None:  # two epochs may not pass the gate: promote by hand
        registry.promote(version, "test: a quick model, promoted by hand", "test_gcs_root")
    week = [w for w, rows in curated_weeks(data_root).items() if rows][-1]
    weekly = dagbag.dags["reviews_weekly"].test(run_conf={"source": source, "data_root": data_root, "week": week})
    return {"load": load, "training": training, "weekly": weekly, "week": week, "data_root": data_root}


@pytest.fixture(scope="module")
def runs(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from airflow.dag_processing.dagbag import DagBag

    from reviewops.storage import io as storage_io
    from reviewops.storage import paths as storage_paths

    base = tmp_path_factory.mktemp("gcs-root")
    header, records = shipped_records()
    source = write_shipped_slice(base / "reviews.tsv", records, header)
    dagbag = DagBag(dag_folder=str(ROOT / "dags"))
    assert dagbag.import_errors == {}
    local = _run_lifecycle(dagbag, str(source), str(base / "data-root"))
    with gcsfake.installed(base / "fake-gcs") as bucket_root:
        storage_io.upload(source, storage_paths.from_uri(GS_SOURCE))
        remote = _run_lifecycle(dagbag, GS_SOURCE, GS_ROOT)
        yield {"local": local, "gs": remote, "objects": bucket_root / "reviewops-test" / "prefix"}


def _record(dag_run: Any, task_id: str) -> dict[str, Any]:
    value: dict[str, Any] = dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id)
    return value


def test_every_run_succeeds_on_both_roots(runs: dict[str, Any]) -> None:
    for root in ("local", "gs"):
        for name in ("load", "training", "weekly"):
            run = runs[root][name]
            states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
            assert str(run.state) == "success", (root, name, states)


def test_artifacts_land_in_the_bucket_with_versions_published_by_marker(runs: dict[str, Any]) -> None:
    from reviewops.storage.publish import CLAIM, MARKER

    objects: Path = runs["objects"]
    week = runs["gs"]["week"]
    assert {p.name for p in objects.iterdir()} >= {
        "raw",
        "validated",
        "quarantine",
        "curated",
        "datasets",
        "models",
        "predictions",
        "monitoring",
        "lineage",
    }
    assert (objects / "predictions" / f"week={week}" / "predictions.parquet").is_file()
    assert (objects / "monitoring" / f"week={week}" / "report.html").is_file()
    assert (objects / "models" / "champion.json").is_file()
    versions = [*objects.glob("datasets/ds-*"), *objects.glob("models/m-*"), *objects.glob("models/candidates/*")]
    assert len(versions) == 3
    for folder in versions:
        marker = json.loads((folder / MARKER).read_text())
        for name, described in marker["files"].items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == described["sha256"], (folder, name)
    leftovers = [p for p in objects.rglob("*") if p.name == CLAIM or "staging" in p.name or p.name.endswith(".tmp")]
    assert leftovers == []


def test_every_lineage_uri_is_gs_and_every_hash_matches_the_object(runs: dict[str, Any]) -> None:
    from reviewops.lineage.store import LineageStore
    from reviewops.storage.io import sha256_file
    from reviewops.storage.paths import from_uri

    records = LineageStore(GS_ROOT).records()
    assert len(records) >= 17
    for record in records:
        for artifact in (*record.inputs, *record.outputs):
            assert artifact.uri.startswith("gs://reviewops-test/"), (record.task_id, artifact.uri)
            assert sha256_file(from_uri(artifact.uri)) == artifact.sha256, (record.task_id, artifact.uri)
    predictions = _record(runs["gs"]["weekly"], "score")["outputs"][0]
    table = pq.read_table(runs["objects"] / "predictions" / f"week={runs['gs']['week']}" / "predictions.parquet")
    assert predictions["rows"] == table.num_rows > 0


def _shape(data_root: str, week: str) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """The chain from the week's predictions up to the source, without URIs or hashes."""
    from reviewops.lineage.store import LineageStore
    from reviewops.storage.paths import Layout, to_uri

    index = LineageStore(data_root).index()
    chain = index.upstream(index.resolve(to_uri(Layout(data_root).predictions(week))))
    return [
        (r.dag_id, r.task_id, tuple(sorted(a.kind for a in r.inputs)), tuple(sorted(a.kind for a in r.outputs)))
        for r in chain
    ]


def test_the_gs_lineage_chain_has_the_shape_of_the_local_one(runs: dict[str, Any]) -> None:
    local, remote = runs["local"], runs["gs"]
    assert local["week"] == remote["week"]

    shape = _shape(GS_ROOT, remote["week"])

    assert shape == _shape(local["data_root"], local["week"])
    tasks = [task for _, task, _, _ in shape]
    for task in ("score", "register_model", "train_model", "snapshot_dataset", "transform", "validate", "ingest"):
        assert task in tasks


def test_the_command_and_the_ui_read_a_gs_root(
    runs: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reviewops.cli import main
    from reviewops_airflow.ui import lineage_api, monitoring_index, monitoring_report

    week = runs["gs"]["week"]
    assert main(["--data-root", GS_ROOT, "lineage", f"{GS_ROOT}/predictions/week={week}/", "--json"]) == 0
    chain = json.loads(capsys.readouterr().out)["records"]
    assert {a["uri"] for r in chain for a in r["inputs"] if a["kind"] == "source"} == {GS_SOURCE}
    assert main(["--data-root", GS_ROOT, "models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert models["champion"] == _record(runs["gs"]["training"], "register_model")["subject"]

    monkeypatch.setenv("REVIEWOPS_DATA_ROOT", GS_ROOT)
    assert f">{week}</a>" in monitoring_index(user=object()).body.decode()
    assert monitoring_report(week, user=object()).body.decode().startswith("<!DOCTYPE html>")
    graph = lineage_api(user=object(), uri=f"{GS_ROOT}/monitoring/week={week}/metrics.json")
    artifacts = [n for n in graph["nodes"] if n["type"] == "artifact"]
    assert {"source", "curated", "predictions", "report"} <= {n["kind"] for n in artifacts}
    assert {n["status"] for n in artifacts} == {"verified"}, "each gs:// artifact's hash checked"


def test_a_version_on_gs_reproduces_from_its_lineage(runs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from reviewops.cli import main

    version = _record(runs["gs"]["training"], "register_model")["subject"]

    code = main(["--data-root", GS_ROOT, "reproduce", version, "--json"])

    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["within_tolerance"], result
    assert result["dataset_version"] == _record(runs["gs"]["training"], "snapshot_dataset")["subject"]
