"""OpenLineage facets built from a task's lineage record (STYLE rule 6: one record,
several outlets; the XCom value and the Asset event extra are the others).

``ReviewOpsOperator.get_openlineage_facets_on_complete`` returns :func:`operator_lineage`
of the record its ``execute`` wrote. The provider's listener calls it only when
OpenLineage is configured (``[openlineage] transport`` or one of its other settings);
unconfigured, the provider's plugin registers no listener and this module is never
imported.

What a catalog receives for each task:

- **inputs** and **outputs**: one dataset per artifact of the record, named by
  ``reviewops.lineage.catalog.dataset_id`` (``file`` + absolute path, ``gs://bucket`` +
  key, ``bigquery`` + ``project.dataset.table``), with
  - ``schema``: the Parquet columns, for an artifact with a schema fingerprint, read from
    the file's footer once per fingerprint and only when the footer still has that
    fingerprint;
  - ``reviewops``: kind, sha256, bytes and schema fingerprint (:class:`ReviewOpsDatasetFacet`);
  - ``inputStatistics`` / ``outputStatistics``: row count and size;
- **run facet** ``reviewops`` (:class:`ReviewOpsRunFacet`): record id, code version,
  subject, the dataset and model versions involved, parent record ids.
"""

from __future__ import annotations

from typing import Any

import attrs
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.generated.base import Dataset, DatasetFacet, InputDataset, OutputDataset, RunFacet
from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet
from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet
from openlineage.client.generated.schema_dataset import SchemaDatasetFacet, SchemaDatasetFacetFields

from reviewops.lineage.catalog import UnnamedArtifact, dataset_id, versions
from reviewops.lineage.record import Artifact, LineageRecord, schema_fingerprint
from reviewops.storage.io import read_parquet_metadata
from reviewops.storage.paths import from_uri

# The JSON Schema of the custom facets ships in docs/openlineage/reviewops-facets.json; the
# host is a reserved, unresolvable name until the project publishes the file somewhere.
FACETS_SCHEMA = "https://reviewops.invalid/spec/facets/1-0-0/reviewops-facets.json"
FACET_KEY = "reviewops"

Lineage = OperatorLineage[Dataset, RunFacet]


@attrs.define
class ReviewOpsRunFacet(RunFacet):
    """The lineage record a task run wrote: which record, which code, which versions."""

    record_id: str
    code_version: str
    subject: str
    dataset_versions: list[str] = attrs.field(factory=list)
    model_versions: list[str] = attrs.field(factory=list)
    parents: list[str] = attrs.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/ReviewOpsRunFacet"


@attrs.define
class ReviewOpsDatasetFacet(DatasetFacet):
    """One artifact as the lineage record names it: its exact bytes."""

    kind: str
    sha256: str
    bytes: int
    schema_fingerprint: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/ReviewOpsDatasetFacet"


def operator_lineage(record: LineageRecord) -> Lineage:
    """The inputs, outputs and run facet of a task from its lineage record."""
    return Lineage(
        inputs=[_input(a) for a in record.inputs if _named(a)],
        outputs=[_output(a) for a in record.outputs if _named(a)],
        run_facets={FACET_KEY: run_facet(record)},
    )


def failed_lineage(given: list[LineageRecord]) -> Lineage:
    """What a failed task was given: the outputs of the upstream records it took from
    XCom, as inputs (it may have read only some of them); no outputs, since none was
    recorded."""
    seen: dict[tuple[str, str], Artifact] = {}
    for record in given:
        for artifact in record.outputs:
            seen.setdefault((artifact.uri, artifact.sha256), artifact)
    return Lineage(inputs=[_input(a) for a in seen.values() if _named(a)])


def run_facet(record: LineageRecord) -> ReviewOpsRunFacet:
    found = versions(record)
    return ReviewOpsRunFacet(
        record_id=record.record_id,
        code_version=record.code_version,
        subject=record.subject,
        dataset_versions=found["dataset_versions"],
        model_versions=found["model_versions"],
        parents=list(record.parents),
    )


def _named(artifact: Artifact) -> bool:
    try:
        dataset_id(artifact.uri)
    except UnnamedArtifact:
        return False
    return True


def _dataset_facets(artifact: Artifact) -> dict[str, Any]:
    facets: dict[str, Any] = {
        FACET_KEY: ReviewOpsDatasetFacet(
            kind=str(artifact.kind),
            sha256=artifact.sha256,
            bytes=artifact.bytes,
            schema_fingerprint=artifact.schema_fingerprint,
        )
    }
    fields = _schema_fields(artifact)
    if fields:
        facets["schema"] = SchemaDatasetFacet(
            fields=[SchemaDatasetFacetFields(name=name, type=kind) for name, kind in fields]
        )
    return facets


def _input(artifact: Artifact) -> InputDataset:
    namespace, name = dataset_id(artifact.uri)
    stats = InputStatisticsInputDatasetFacet(rowCount=artifact.rows, size=artifact.bytes or None)
    return InputDataset(namespace, name, facets=_dataset_facets(artifact), inputFacets={"inputStatistics": stats})


def _output(artifact: Artifact) -> OutputDataset:
    namespace, name = dataset_id(artifact.uri)
    stats = OutputStatisticsOutputDatasetFacet(rowCount=artifact.rows, size=artifact.bytes or None)
    return OutputDataset(namespace, name, facets=_dataset_facets(artifact), outputFacets={"outputStatistics": stats})


def _schema_fields(artifact: Artifact) -> tuple[tuple[str, str], ...]:
    """The columns behind the record's schema fingerprint, from a Parquet footer that
    still has that fingerprint; none for other files or a file changed since."""
    if artifact.schema_fingerprint is None or not artifact.uri.endswith(".parquet"):
        return ()
    return _columns(artifact.schema_fingerprint, artifact.uri)


# Columns by schema fingerprint, for the life of the process (the provider forks one to
# build and send each task's events).
_KNOWN: dict[str, tuple[tuple[str, str], ...]] = {}


def _columns(fingerprint: str, uri: str) -> tuple[tuple[str, str], ...]:
    """A fingerprint is a hash of the columns' names and types, so one footer read per
    fingerprint serves every file that has it (a dataset's 300 curated weeks: one)."""
    if fingerprint in _KNOWN:
        return _KNOWN[fingerprint]
    try:
        schema = read_parquet_metadata(from_uri(uri)).schema.to_arrow_schema()
    except (OSError, ValueError):  # gone or unreadable since the record: no schema facet
        return ()
    if schema_fingerprint(schema) != fingerprint:
        return ()
    _KNOWN[fingerprint] = tuple((field.name, str(field.type)) for field in schema)
    return _KNOWN[fingerprint]
