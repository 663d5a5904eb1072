"""Storage paths: local ``pathlib.Path`` or object store ``upath.UPath`` (``gs://``),
their URIs, and the ``Layout`` of every kind of artifact under the data root.

Remote paths are ``upath.UPath`` objects over fsspec (``gcsfs`` for ``gs://``, which
uses Application Default Credentials); local paths stay ``pathlib.Path``."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import quote, unquote

from upath import UPath

log = logging.getLogger(__name__)


StoragePath: TypeAlias = Path | UPath
"""A local path (``pathlib.Path``) or an object store path (``UPath``)."""


REMOTE_PROTOCOLS = ("gs", "gcs")


# Listings are never cached: another process may have published a version since.
STORAGE_OPTIONS: dict[str, Any] = {"use_listings_cache": False}


class StorageError(RuntimeError):
    """A version left half-published, or a location this module cannot use."""


def is_remote(path: StoragePath) -> bool:
    return not isinstance(path, Path)


def as_path(location: str | os.PathLike[str] | StoragePath) -> StoragePath:
    """A local path, a ``file://`` URI or a ``gs://`` URI as the path to read or write."""
    if isinstance(location, Path):
        return location
    if isinstance(location, UPath):
        return location
    text = os.fspath(location)
    if text.startswith("file://"):
        return Path(unquote(text[len("file://") :]))
    scheme, sep, _ = text.partition("://")
    if sep:
        if scheme in REMOTE_PROTOCOLS:
            remote: UPath = UPath(text.rstrip("/"), **STORAGE_OPTIONS)
            return remote
        raise ValueError(f"{text}: only local paths, file:// and gs:// URIs are supported here")
    return Path(text)


def to_uri(path: StoragePath | str) -> str:
    """``file://`` URI of a local path (``=`` stays readable: ``week=2017-12-11``), or the
    ``gs://bucket/key`` URI of an object."""
    found = as_path(path)
    if isinstance(found, Path):
        return "file://" + quote(str(found.resolve()), safe="/=-._~")
    return str(found).rstrip("/")


def from_uri(uri: str) -> StoragePath:
    """The path of a ``file://`` or ``gs://`` URI (a bare local path is accepted too)."""
    return as_path(uri)


def glob(folder: StoragePath, pattern: str) -> list[StoragePath]:
    """The files and folders under ``folder`` matching ``pattern``, sorted."""
    found: list[StoragePath] = list(folder.glob(pattern))
    return sort_paths(found)


def sort_paths(paths: Iterable[StoragePath]) -> list[StoragePath]:
    """Local paths in pathlib's order, object store paths by URI."""
    found = list(paths)
    local = [p for p in found if isinstance(p, Path)]
    if len(local) == len(found):
        return list(sorted(local))
    return sorted(found, key=str)


class Layout:
    """Where each kind of artifact lives under the data root."""

    def __init__(self, data_root: str | os.PathLike[str] | StoragePath) -> None:
        root = as_path(data_root)
        self.root: StoragePath = root.resolve() if isinstance(root, Path) else root

    def raw(self, batch_key: str) -> StoragePath:
        return self.root / "raw" / batch_key / "reviews.parquet"

    def validated(self, batch_key: str) -> StoragePath:
        return self.root / "validated" / batch_key / "reviews.parquet"

    def quarantine(self, batch_key: str) -> StoragePath:
        return self.root / "quarantine" / batch_key / "quarantine.parquet"

    def curated_dir(self) -> StoragePath:
        return self.root / "curated"

    def curated(self, week: str) -> StoragePath:
        return self.curated_dir() / f"week={week}" / "reviews.parquet"

    def datasets(self) -> StoragePath:
        return self.root / "datasets"

    def models(self) -> StoragePath:
        return self.root / "models"

    def predictions(self, week: str) -> StoragePath:
        return self.root / "predictions" / f"week={week}" / "predictions.parquet"

    def monitoring_dir(self) -> StoragePath:
        return self.root / "monitoring"

    def monitoring(self, week: str) -> StoragePath:
        return self.monitoring_dir() / f"week={week}"

    def rejected_files(self, batch_key: str) -> StoragePath:
        """Source files rejected whole, set aside beside the batch's quarantined rows."""
        return self.quarantine(batch_key).parent / "files"

    def landing(self, source_kind: str, name: str, batch_key: str) -> StoragePath:
        """Rows landed from a source that is not a file (e.g. a BigQuery table)."""
        return self.root / "landing" / source_kind / name / batch_key / "reviews.parquet"

    def trials(self, dataset_version: str) -> StoragePath:
        return self.models() / "trials" / dataset_version

    def lineage_records(self) -> StoragePath:
        return self.root / "lineage" / "records"

    def vertex_batch(self, subject: str, prompt_ref: str) -> StoragePath:
        return self.root / "vertex" / "batch" / subject / prompt_ref

    def vertex_tuning(self, dataset_version: str, prompt_ref: str) -> StoragePath:
        return self.root / "vertex" / "tuning" / dataset_version / prompt_ref

    def prompt_evaluation(self, dataset_version: str, model_slug: str) -> StoragePath:
        return self.root / "prompt_evaluation" / dataset_version / model_slug
