"""The lineage record every step hands to the next through XCom.

A record names what a step read and wrote (artifacts by URI with content hash, row
count, byte size and schema fingerprint), the parameters it ran with, the code that
ran, and the records it descends from. It is serialised as a plain dict so XCom and
Asset extras can carry it without custom deserialisers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import subprocess
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from reviewops import __version__
from reviewops.storage.io import read_parquet_metadata, sha256_file, size_of
from reviewops.storage.paths import StoragePath, from_uri, to_uri


class LineageError(RuntimeError):
    """An input does not match what its producer recorded."""


@dataclass(frozen=True)
class Artifact:
    uri: str
    kind: str
    sha256: str
    rows: int | None = None
    bytes: int = 0
    schema_fingerprint: str | None = None

    @classmethod
    def of_file(cls, path: StoragePath, kind: str, rows: int | None = None, sha256: str | None = None) -> Artifact:
        """Describe a written file or object; Parquet files also get their row count and schema.

        ``sha256``: the file's hash when the caller has just computed it from the bytes it
        read (a large source is then not read a second time only to be hashed)."""
        fingerprint = None
        if path.suffix == ".parquet":
            meta = read_parquet_metadata(path)
            rows = meta.num_rows if rows is None else rows
            fingerprint = schema_fingerprint(meta.schema.to_arrow_schema())
        return cls(
            uri=to_uri(path),
            kind=kind,
            sha256=sha256 or sha256_file(path),
            rows=rows,
            bytes=size_of(path),
            schema_fingerprint=fingerprint,
        )

    @property
    def path(self) -> StoragePath:
        return from_uri(self.uri)

    def verify(self) -> None:
        """Fail when the file is gone or its content differs from what was recorded."""
        path = self.path
        if not path.exists():
            raise LineageError(f"input {self.uri} ({self.kind}) is missing")
        found = sha256_file(path)
        if found != self.sha256:
            raise LineageError(
                f"input {self.uri} ({self.kind}) changed since it was recorded: "
                f"expected sha256 {self.sha256}, found {found}"
            )


def schema_fingerprint(schema: pa.Schema) -> str:
    text = ",".join(f"{f.name}:{f.type}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Outputs:
    """Lookups of a step's outputs, shared by ``StepResult`` and ``LineageRecord``."""

    outputs: tuple[Artifact, ...]

    def _owner(self) -> str:
        return "step result"

    def output(self, kind: str) -> Artifact:
        """The single output of ``kind``; a clear error when there is none or several."""
        found = [a for a in self.outputs if a.kind == kind]
        if len(found) != 1:
            raise LineageError(f"{self._owner()} has {len(found)} outputs of kind {str(kind)!r}, expected one")
        return found[0]

    def outputs_of(self, kind: str) -> list[Artifact]:
        return [a for a in self.outputs if a.kind == kind]

    def output_named(self, *names: str) -> Artifact:
        """The output whose file name is the first of ``names`` that there is (a
        dataset's ``manifest.json``; a candidate's ``model.keras`` or
        ``vertex_model.json``); a clear error when there is none of them."""
        by_name = {a.uri.rstrip("/").rsplit("/", 1)[-1]: a for a in self.outputs}
        for name in names:
            if name in by_name:
                return by_name[name]
        raise LineageError(f"{self._owner()} has no output named {' or '.join(names)}")


@dataclass(frozen=True)
class StepResult(_Outputs):
    """What a domain step returns: its outputs, metrics and the thing it concerns."""

    subject: str
    outputs: tuple[Artifact, ...]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LineageRecord(_Outputs):
    record_id: str
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    subject: str
    code_version: str
    params: dict[str, Any]
    inputs: tuple[Artifact, ...]
    outputs: tuple[Artifact, ...]
    parents: tuple[str, ...]
    metrics: dict[str, Any]
    started_at: str
    ended_at: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (lists, not tuples), so XCom stores it as is."""
        data: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self), default=str))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageRecord:
        values = dict(data)
        values["inputs"] = tuple(Artifact(**a) for a in data.get("inputs", ()))
        values["outputs"] = tuple(Artifact(**a) for a in data.get("outputs", ()))
        values["parents"] = tuple(data.get("parents", ()))
        return cls(**values)

    def _owner(self) -> str:
        return f"record {self.record_id} of task {self.task_id}"


def new_record_id() -> str:
    return uuid.uuid4().hex


def utcnow_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the checkout, else the package version plus a hash of the code."""
    package_dir = Path(__file__).resolve().parents[1]  # include/reviewops
    try:
        commit = subprocess.run(
            ["git", "-C", str(package_dir), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(package_dir), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        if commit:
            return f"git:{commit}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"
