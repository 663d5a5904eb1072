"""Publication of versions made of several files (dataset and model versions, training
candidates, a batch's rejected files), and of sets of files that become visible together
(:class:`StagedFiles`: a batch's curated week partitions).

They are written to a local staging folder first. Locally they are published with one
directory rename. An object store has no rename, so there the files are uploaded first and
a marker object, ``_PUBLISHED.json`` (the list of files with their sha256), is written
last: readers trust a version only when its marker is there. Content-addressed versions
are published once: the first writer wins and a later one discards its copy. On an object
store the first writer is the one that creates the claim object ``_PUBLISHING.json``
(create-if-absent, GCS's ``ifGenerationMatch=0``); the others wait for its marker, and
take over a claim left by a writer that died."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from upath import UPath

from reviewops.storage.io import (
    create_exclusive,
    remove,
    remove_abandoned,
    sha256_file,
    upload,
    write_json,
    writer_tag,
)
from reviewops.storage.paths import StoragePath, to_uri

log = logging.getLogger(__name__)


MARKER = "_PUBLISHED.json"


CLAIM = "_PUBLISHING.json"


# A claim older than this belongs to a writer that died mid-publish (an upload of a
# version takes seconds): the next writer takes it over.
CLAIM_STALE_SECONDS = 300.0


def staging_dir(parent: StoragePath, name: str) -> Path:
    """A fresh local folder to write a version into before :func:`publish_dir`: beside
    the target locally (so the rename stays on one file system), in the temp folder for
    an object store. Its name says which process writes it, so a later publication of
    the same name can tell one left by a killed writer (:func:`remove_abandoned`)."""
    if isinstance(parent, Path):
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{name}.{writer_tag()}-", suffix=".staging", dir=parent))
    return Path(tempfile.mkdtemp(prefix=f"reviewops-{name}.", suffix=".staging"))


def publish_dir(staging: Path, target: StoragePath) -> bool:
    """Publish a fully written staging folder as ``target`` unless ``target`` exists.

    Used for immutable, content-addressed versions (datasets, models): when two runs
    build the same version, the first one to publish wins and the other's staging
    folder is discarded. Returns True when this call published. Locally one rename;
    on an object store the files are uploaded and the marker is written last.
    """
    if not isinstance(target, Path):
        try:
            return _publish_remote(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, target)
    except OSError:
        if target.exists():
            shutil.rmtree(staging, ignore_errors=True)
            return False
        raise
    remove_abandoned(target.parent, target.name)
    return True


def replace_dir(staging: Path, target: StoragePath) -> None:
    """Make a staging folder's content the whole of ``target``, replacing what was there
    (for folders rewritten by every run, not versions)."""
    if not isinstance(target, Path):
        try:
            remove_tree(target)
            _upload_tree(staging, target)
            write_json(_marker(staging), target / MARKER)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    remove_abandoned(target.parent, target.name)


class StagedFiles:
    """Files that become visible together, or not at all: each is written to a private
    staging folder under ``root`` first (:meth:`path`), and :meth:`publish` moves them
    all into place once every one is written.

    Locally, a failure while they are written (a full disk, a kill) leaves none of them
    visible and the files they replace intact; publishing creates the target folders
    first, then renames on one file system, which take no space. (A kill in the
    milliseconds of those renames can still publish part of them: the retry completes
    the set.) On an object store they are uploaded one by one when published: an upload
    that fails leaves those before it replaced, and a retry completes the set.
    A staging folder left by a killed writer is deleted by a later publication.
    """

    def __init__(self, root: StoragePath, name: str) -> None:
        self.root = root
        self.name = name
        self.staging = staging_dir(root, name)
        self.files: list[tuple[Path, StoragePath]] = []

    def path(self, target: StoragePath) -> Path:
        """The local path to write the file that :meth:`publish` makes ``target``."""
        local = self.staging / str(len(self.files)) / target.name
        local.parent.mkdir()
        self.files.append((local, target))
        return local

    def publish(self) -> None:
        try:
            if isinstance(self.root, Path):
                self._rename_into_place()
            else:
                for local, target in self.files:
                    upload(local, target)
        finally:
            self.discard()
        if isinstance(self.root, Path):
            remove_abandoned(self.root, self.name)

    def _rename_into_place(self) -> None:
        moves = [(local, target) for local, target in self.files if isinstance(target, Path)]
        for _, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
        for local, target in moves:
            os.chmod(local, 0o644)
            os.replace(local, target)
            remove_abandoned(target.parent, target.name)

    def discard(self) -> None:
        """Delete what was staged and not published."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self.discard()


def remove_tree(target: StoragePath) -> None:
    """Delete a folder and everything under it, if it is there (the marker first, so a
    reader never trusts a version being deleted)."""
    if isinstance(target, Path):
        shutil.rmtree(target, ignore_errors=True)
        return
    remove(target / MARKER)
    if target.fs.exists(target.path):
        target.fs.rm(target.path, recursive=True)


def is_published(folder: StoragePath) -> bool:
    """Whether a version folder is complete: it exists locally (it arrived by rename),
    it has its marker on an object store."""
    if isinstance(folder, Path):
        return folder.is_dir()
    return (folder / MARKER).is_file()


def files_in(folder: StoragePath) -> list[StoragePath]:
    """The files directly in a folder, without the publishing bookkeeping, by name."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.name not in (MARKER, CLAIM)), key=lambda p: p.name)


def _marker(staging: Path) -> dict[str, Any]:
    files = {
        p.relative_to(staging).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(staging.rglob("*"))
        if p.is_file()
    }
    return {"published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "files": files}


def _upload_tree(staging: Path, target: UPath) -> None:
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            upload(path, target.joinpath(*path.relative_to(staging).parts))


def _publish_remote(staging: Path, target: UPath) -> bool:
    """Claim the version with an exclusive-create object, upload, then write the marker.

    A writer that finds the claim taken waits for the marker: when it comes, the other
    writer won and this copy is discarded. A claim whose writer died (it is older than
    ``CLAIM_STALE_SECONDS``, or its writer failed and removed it) is taken over, so a
    retried task can publish what a killed one had half uploaded.
    """
    if is_published(target):
        return False
    claim = target / CLAIM
    if not create_exclusive(claim, _claim()):
        if _published_by_another(target, claim):
            log.info("%s was published by another writer: this copy is discarded", to_uri(target))
            return False
        log.warning("%s: taking over an abandoned publication (no %s, claim stale or gone)", to_uri(target), MARKER)
        claim.write_bytes(_claim())
    try:
        _upload_tree(staging, target)
        if not create_exclusive(target / MARKER, json.dumps(_marker(staging), indent=2, sort_keys=True).encode()):
            # Another writer took over the claim (it looked stale) and published first: its
            # marker wins, as it would had this writer seen it earlier.
            log.warning("%s was published by another writer while this one uploaded: its copy wins", to_uri(target))
            return False
    finally:
        remove(claim)
    return True


def _claim() -> bytes:
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "at": dt.datetime.now(dt.UTC).isoformat()}
    return json.dumps(owner).encode()


def _published_by_another(target: UPath, claim: UPath) -> bool:
    """Wait while another writer holds a live claim: True once its marker is there,
    False when its claim is stale or gone without a marker. A claim that does not say
    when it was made counts from when this writer first saw it."""
    first_seen = dt.datetime.now(dt.UTC)
    while True:
        if is_published(target):
            return True
        try:
            text = claim.read_text(encoding="utf-8")
        except FileNotFoundError:
            return is_published(target)
        try:
            claimed_at = dt.datetime.fromisoformat(json.loads(text)["at"])
        except (ValueError, KeyError, TypeError):
            claimed_at = first_seen
        if (dt.datetime.now(dt.UTC) - claimed_at).total_seconds() > CLAIM_STALE_SECONDS:
            return False
        time.sleep(0.2)
