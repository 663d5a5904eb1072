"""OpenLineage facets from the lineage record: dataset names by OpenLineage's naming
spec, schema and statistics facets, the custom ``reviewops`` facets; a real operator run
hands its record to the facet methods; assets resolve to URIs catalogs map."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openlineage.client.naming.dataset import GCS, BigQuery, LocalFileSystem
from openlineage.client.serde import Serde

from reviewops.lineage.catalog import UnnamedArtifact, dataset_id
from reviewops.lineage.record import Artifact, LineageRecord
from reviewops_airflow.assets import CURATED_REVIEWS, PREDICTIONS, located
from reviewops_airflow.openlineage import failed_lineage, operator_lineage
from tests.plugins.test_operators import run, weekly_ops


def _record(inputs: tuple[Artifact, ...], outputs: tuple[Artifact, ...], subject: str = "m-abc123") -> LineageRecord:
    return LineageRecord(
        "r" * 32, "reviews_training", "run", "register_model", 1, subject, "git:abc+dirty", {},
        inputs, outputs, ("p" * 32,), {}, "2024-01-01T00:00:00+00:00", "2024-01-01T00:01:00+00:00",
    )  # fmt: skip


def test_names_follow_openlineage_naming_for_files_gcs_and_bigquery() -> None:
    local = dataset_id("file:///data/curated/week=2017-12-11/reviews%20x.parquet")
    assert local == (
        LocalFileSystem("/data/curated/week=2017-12-11/reviews x.parquet").get_namespace(),
        LocalFileSystem("/data/curated/week=2017-12-11/reviews x.parquet").get_name(),
    )
    gcs = GCS("my-bucket", "prefix/models/m-1/model.keras")
    assert dataset_id("gs://my-bucket/prefix/models/m-1/model.keras") == (gcs.get_namespace(), gcs.get_name())
    table = BigQuery("proj", "reviews", "drugs_com")
    assert dataset_id("bigquery://proj.reviews.drugs_com") == (table.get_namespace(), table.get_name())
    with pytest.raises(UnnamedArtifact, match="x-reviewops://curated"):
        dataset_id("x-reviewops://curated")


def test_a_record_becomes_inputs_outputs_and_facets(tmp_path: Path) -> None:
    curated = tmp_path / "curated" / "week=2017-12-11" / "reviews.parquet"
    curated.parent.mkdir(parents=True)
    pq.write_table(pa.table({"review_id": ["a", "b"], "rating": pa.array([3, 9], pa.int8())}), curated)
    model = Artifact("gs://bucket/root/models/m-abc123/model.keras", "model", "1" * 64, None, 1234)
    dataset = Artifact("gs://bucket/root/datasets/ds-0f0f/manifest.json", "dataset", "2" * 64, None, 99)
    record = _record((Artifact.of_file(curated, "curated"), dataset), (model,))

    lineage = operator_lineage(record)

    (week, manifest), (out,) = lineage.inputs, lineage.outputs
    assert (week.namespace, week.name) == ("file", str(curated))
    assert (manifest.namespace, manifest.name) == ("gs://bucket", "root/datasets/ds-0f0f/manifest.json")
    assert (out.namespace, out.name) == ("gs://bucket", "root/models/m-abc123/model.keras")
    assert [(f.name, f.type) for f in week.facets["schema"].fields] == [("review_id", "string"), ("rating", "int8")]
    assert "schema" not in manifest.facets, "no schema for a file without a fingerprint"
    stats = week.inputFacets["inputStatistics"]
    assert (stats.rowCount, stats.size) == (2, curated.stat().st_size)
    assert (out.outputFacets["outputStatistics"].rowCount, out.outputFacets["outputStatistics"].size) == (None, 1234)
    assert week.facets["reviewops"].sha256 == record.inputs[0].sha256

    facet = lineage.run_facets["reviewops"]
    assert (facet.record_id, facet.code_version, facet.subject) == (record.record_id, "git:abc+dirty", "m-abc123")
    assert facet.dataset_versions == ["ds-0f0f"] and facet.model_versions == ["m-abc123"]
    assert facet.parents == ["p" * 32]


def test_custom_facets_serialise_with_their_schema_url() -> None:
    record = _record((), (Artifact("file:///d/models/m-abc123/model.keras", "model", "1" * 64, None, 5),))
    lineage = operator_lineage(record)

    run_facet = Serde.to_dict(lineage.run_facets["reviewops"])
    dataset_facet = Serde.to_dict(lineage.outputs[0].facets["reviewops"])

    assert run_facet["_schemaURL"].endswith("reviewops-facets.json#/$defs/ReviewOpsRunFacet")
    assert dataset_facet["_schemaURL"].endswith("reviewops-facets.json#/$defs/ReviewOpsDatasetFacet")
    assert run_facet["record_id"] == record.record_id and dataset_facet["sha256"] == "1" * 64
    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "docs" / "openlineage" / "reviewops-facets.json").read_text()
    )
    for name, facet in (("ReviewOpsRunFacet", run_facet), ("ReviewOpsDatasetFacet", dataset_facet)):
        declared = schema["$defs"][name]["allOf"][1]
        assert set(declared["required"]) <= set(facet), name
        assert {k for k in facet if not k.startswith("_")} <= set(declared["properties"]), name


def test_a_parquet_file_changed_since_the_record_gets_no_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Columns already read for the same fingerprint would be the right answer: none here.
    monkeypatch.setattr("reviewops_airflow.openlineage._KNOWN", {})
    path = tmp_path / "predictions.parquet"
    pq.write_table(pa.table({"review_id": ["a"]}), path)
    artifact = Artifact.of_file(path, "predictions")
    pq.write_table(pa.table({"other": [1.0]}), path)  # a later run rewrote it with another schema

    (out,) = operator_lineage(_record((), (artifact,))).outputs

    assert "schema" not in out.facets
    assert out.facets["reviewops"].schema_fingerprint == artifact.schema_fingerprint


def test_a_failed_task_reports_what_its_upstream_records_gave_it() -> None:
    given = Artifact("file:///d/validated/week=1/reviews.parquet", "validated", "3" * 64, 10, 100)
    upstream = _record((), (given, given))

    lineage = failed_lineage([upstream])

    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", "/d/validated/week=1/reviews.parquet")]
    assert lineage.outputs == []


def test_an_operator_run_hands_its_record_to_the_facet_methods(data_root: Path) -> None:
    ingest, validate, _ = weekly_ops(data_root)
    raw = run(ingest)
    checked = run(validate, {"ingest": raw})

    lineage = validate.get_openlineage_facets_on_complete(task_instance=None)

    assert lineage.run_facets["reviewops"].record_id == checked["record_id"]
    expected = {(dataset_id(a["uri"]), a["sha256"]) for a in checked["outputs"]}
    assert {((d.namespace, d.name), d.facets["reviewops"].sha256) for d in lineage.outputs} == expected
    assert [d.name for d in lineage.inputs] == [dataset_id(raw["outputs"][0]["uri"]).name]
    failed = validate.get_openlineage_facets_on_failure(task_instance=None)
    assert [d.name for d in failed.inputs] == [dataset_id(raw["outputs"][0]["uri"]).name]


def test_aliases_resolve_to_assets_under_the_run_data_root(tmp_path: Path) -> None:
    local = located(CURATED_REVIEWS, str(tmp_path / "root"))
    assert local.uri == f"file://{tmp_path / 'root'}/curated" and local.name == local.uri
    remote = located(PREDICTIONS, "gs://bucket/prefix")
    assert remote.uri == "gs://bucket/prefix/predictions"


def test_an_alias_resolves_to_the_one_partition_a_task_wrote_else_to_its_folder(tmp_path: Path) -> None:
    # Parallel runs of different weeks must never create the same asset (Airflow inserts an
    # alias's new asset without a lock): one week's outputs name that week's asset.
    root = f"file://{tmp_path / 'root'}"
    week = [f"{root}/predictions/week=2017-12-11/predictions.parquet", f"{root}/quarantine/x.parquet"]
    assert located(PREDICTIONS, str(tmp_path / "root"), week).uri == f"{root}/predictions/week=2017-12-11"
    weeks = [f"{root}/curated/week=2017-12-{d}/reviews.parquet" for d in ("04", "11")]
    assert located(CURATED_REVIEWS, str(tmp_path / "root"), weeks).uri == f"{root}/curated"
    remote = located(PREDICTIONS, "gs://bucket/prefix", ["gs://bucket/prefix/predictions/week=2017-12-11/p.parquet"])
    assert remote.uri == "gs://bucket/prefix/predictions/week=2017-12-11"


def test_on_cloud_storage_the_schema_comes_from_the_object_footer(tmp_path: Path) -> None:
    from reviewops.storage.io import write_parquet
    from reviewops.storage.paths import as_path
    from tests import gcsfake

    with gcsfake.installed(tmp_path / "fake-gcs"):
        target = as_path("gs://reviewops-test/root/predictions/week=2017-12-11/predictions.parquet")
        write_parquet(pa.table({"review_id": ["a"], "predicted_label": ["positive"]}), target)
        (out,) = operator_lineage(_record((), (Artifact.of_file(target, "predictions"),))).outputs

    assert (out.namespace, out.name) == ("gs://reviewops-test", "root/predictions/week=2017-12-11/predictions.parquet")
    assert [f.name for f in out.facets["schema"].fields] == ["review_id", "predicted_label"]
    assert out.outputFacets["outputStatistics"].rowCount == 1
