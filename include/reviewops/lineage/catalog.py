"""How a lineage record's artifacts are named for data catalogs (OpenLineage).

OpenLineage identifies a dataset by a namespace and a name, per storage system
(https://openlineage.io/docs/spec/naming):

| artifact URI                        | namespace       | name                      |
|-------------------------------------|-----------------|---------------------------|
| ``file:///abs/path``                | ``file``        | ``/abs/path``             |
| ``gs://bucket/key``                 | ``gs://bucket`` | ``key``                   |
| ``bigquery://project.dataset.table`` | ``bigquery``    | ``project.dataset.table`` |

The same file gets the same identity whichever task reads or writes it, so a catalog joins
one task's output to the next task's input exactly where the lineage store does (by URI;
the sha256 rides along in the ``reviewops`` dataset facet). Nothing here imports
OpenLineage: the Airflow glue builds the events (``reviewops_airflow.openlineage``).
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from reviewops.contracts import DATASET_VERSION_PATTERN, MODEL_VERSION_PATTERN
from reviewops.lineage.record import LineageRecord

_DATASET_VERSION = re.compile(rf"^{DATASET_VERSION_PATTERN}$")
_MODEL_VERSION = re.compile(rf"^{MODEL_VERSION_PATTERN}$")


class DatasetId(NamedTuple):
    namespace: str
    name: str


class UnnamedArtifact(ValueError):
    """An artifact URI no OpenLineage naming covers."""


def dataset_id(uri: str) -> DatasetId:
    """The OpenLineage namespace and name of an artifact URI (see the module's table)."""
    parts = urlsplit(uri)
    if parts.scheme == "file" and parts.path:
        return DatasetId("file", unquote(parts.path))
    if parts.scheme in ("gs", "gcs") and parts.netloc:
        return DatasetId(f"gs://{parts.netloc}", parts.path.lstrip("/") or "/")
    if parts.scheme == "bigquery" and parts.netloc.count(".") == 2:
        return DatasetId("bigquery", parts.netloc)
    if not parts.scheme and uri.startswith("/"):
        return DatasetId("file", uri)
    raise UnnamedArtifact(f"{uri}: not a file://, gs:// or bigquery://project.dataset.table URI")


def versions(record: LineageRecord) -> dict[str, list[str]]:
    """The dataset and model versions a record read or wrote, from its subject and the
    folders of its artifacts (``datasets/ds-…/``, ``models/m-…/``)."""
    found: dict[str, list[str]] = {"dataset_versions": [], "model_versions": []}
    segments = [record.subject] + [
        s for a in (*record.inputs, *record.outputs) for s in urlsplit(a.uri).path.split("/")
    ]
    for segment in segments:
        kind = (
            "dataset_versions"
            if _DATASET_VERSION.match(segment)
            else "model_versions"
            if _MODEL_VERSION.match(segment)
            else None
        )
        if kind is not None and segment not in found[kind]:
            found[kind].append(segment)
    return found
