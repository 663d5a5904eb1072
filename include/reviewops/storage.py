"""Files under the data root: layout, atomic writes and content hashes.

Readers only ever see whole files: every artifact is written next to its final name
and moved into place with ``os.replace``, which is atomic on a POSIX file system.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.parquet as pq

CHUNK = 1 << 20


def to_uri(path: Path | str) -> str:
    """``file://`` URI of a local path; ``=`` stays readable (``week=2017-12-11``)."""
    return "file://" + quote(str(Path(path).resolve()), safe="/=-._~")


def from_uri(uri: str) -> Path:
    """The local path of a ``file://`` URI (a bare path is accepted too)."""
    if uri.startswith("file://"):
        return Path(unquote(uri[len("file://") :]))
    if "://" in uri:
        raise ValueError(f"{uri}: only local paths and file:// URIs are supported here")
    return Path(uri)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success move it onto ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet(table: pa.Table, target: Path) -> Path:
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return target


def write_json(payload: Any, target: Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return target


def publish_dir(staging: Path, target: Path) -> bool:
    """Move a fully written staging folder to ``target`` unless ``target`` exists.

    Used for immutable, content-addressed versions (datasets, models): when two runs
    build the same version, the first one to publish wins and the other's staging
    folder is discarded. Returns True when this call published.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, target)
    except OSError:
        if target.exists():
            _rmtree(staging)
            return False
        raise
    return True


def staging_dir(parent: Path, name: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".staging", dir=parent))


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class Layout:
    """Where each kind of artifact lives under the data root."""

    def __init__(self, data_root: str | Path) -> None:
        self.root = from_uri(str(data_root)).resolve()

    def raw(self, batch_key: str) -> Path:
        return self.root / "raw" / batch_key / "reviews.parquet"

    def validated(self, batch_key: str) -> Path:
        return self.root / "validated" / batch_key / "reviews.parquet"

    def quarantine(self, batch_key: str) -> Path:
        return self.root / "quarantine" / batch_key / "quarantine.parquet"

    def curated_dir(self) -> Path:
        return self.root / "curated"

    def curated(self, week: str) -> Path:
        return self.curated_dir() / f"week={week}" / "reviews.parquet"

    def datasets(self) -> Path:
        return self.root / "datasets"

    def models(self) -> Path:
        return self.root / "models"

    def predictions(self, week: str) -> Path:
        return self.root / "predictions" / f"week={week}" / "predictions.parquet"

    def monitoring(self, week: str) -> Path:
        return self.root / "monitoring" / f"week={week}"
