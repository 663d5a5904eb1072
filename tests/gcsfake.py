"""A stand-in for Google Cloud Storage at the client boundary: an fsspec filesystem for
``gs://`` backed by a local folder that behaves like an object store.

- objects are written whole: a write goes to a hidden temporary file and becomes the
  object on close, so a reader sees the old object or the new one, never part of one;
- ``pipe_file``/``put_file`` with ``mode="create"`` fail with ``FileExistsError`` when the
  object exists, atomically (GCS's ``ifGenerationMatch=0``);
- there are no directories: ``mkdir`` does nothing, a "folder" exists while an object
  lives under it, and moving or renaming a folder is refused.

``install(root)`` registers it for ``gs`` and ``gcs`` in this process (fsspec, hence
``UPath("gs://...")``, picks it up); ``uninstall()`` puts gcsfs back.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fsspec
from fsspec.registry import _registry
from fsspec.spec import AbstractFileSystem

PROTOCOLS = ("gs", "gcs")
_TMP_PREFIX = ".fake-upload-"


class _ObjectWriter(io.FileIO):
    """A raw file on a hidden temporary name that becomes the object when closed."""

    def __init__(self, target: Path, exclusive: bool) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self._target = target
        self._exclusive = exclusive
        self._tmp = target.with_name(f"{_TMP_PREFIX}{uuid.uuid4().hex}")
        super().__init__(self._tmp, "wb")

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        _commit(self._tmp, self._target, self._exclusive)


def _commit(tmp: Path, target: Path, exclusive: bool) -> None:
    try:
        if exclusive:
            os.link(tmp, target)  # fails when the object exists: one winner
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


class FakeGCSFileSystem(AbstractFileSystem):
    protocol = PROTOCOLS
    root_marker = ""
    root: Path | None = None  # set by install()
    writes = 0  # objects written, for tests that count uploads

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        text = str(path)
        for protocol in PROTOCOLS:
            text = text.removeprefix(f"{protocol}://")
        return text.rstrip("/")

    def _local(self, path: str) -> Path:
        if self.root is None:
            raise RuntimeError("the fake GCS is not installed")
        return self.root / self._strip_protocol(path)

    def _entry(self, path: str, local: Path) -> dict[str, Any]:
        name = self._strip_protocol(path)
        if local.is_file():
            return {"name": name, "size": local.stat().st_size, "type": "file"}
        return {"name": name, "size": 0, "type": "directory"}

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        local = self._local(path)
        if local.is_file() or (local.is_dir() and any(self._children(local))):
            return self._entry(path, local)
        raise FileNotFoundError(path)

    def _children(self, local: Path) -> Iterator[Path]:
        for child in sorted(local.iterdir()):
            if child.name.startswith(_TMP_PREFIX):
                continue
            if child.is_file() or any(p.is_file() and not p.name.startswith(_TMP_PREFIX) for p in child.rglob("*")):
                yield child

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        local = self._local(path)
        name = self._strip_protocol(path)
        if local.is_file():
            entries = [self._entry(name, local)]
        elif local.is_dir():
            entries = [self._entry(f"{name}/{c.name}", c) for c in self._children(local)]
            if not entries:
                raise FileNotFoundError(path)
        else:
            raise FileNotFoundError(path)
        return entries if detail else [e["name"] for e in entries]

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        local = self._local(path)
        if mode == "rb":
            return open(local, "rb")
        if mode in ("wb", "xb"):
            if mode == "xb" and local.exists():
                raise FileExistsError(path)
            type(self).writes += 1
            return io.BufferedWriter(_ObjectWriter(local, exclusive=mode == "xb"))
        raise NotImplementedError(f"mode {mode!r}: an object is read or written whole")

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        local = self._local(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f"{_TMP_PREFIX}{uuid.uuid4().hex}")
        tmp.write_bytes(value)
        type(self).writes += 1
        _commit(tmp, local, exclusive=mode == "create")

    def put_file(self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite", **kwargs: Any) -> None:
        if os.path.isdir(lpath):
            return
        self.pipe_file(rpath, Path(lpath).read_bytes(), mode=mode)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, **kwargs: Any) -> None:
        shutil.copyfile(self._local(rpath), lpath)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        return self._local(path).read_bytes()[start:end]

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.pipe_file(path2, self.cat_file(path1))

    def rm_file(self, path: str) -> None:
        local = self._local(path)
        if not local.is_file():
            raise FileNotFoundError(path)
        local.unlink()
        self._prune(local.parent)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        for item in [path] if isinstance(path, str) else path:
            local = self._local(item)
            if local.is_dir():
                if not recursive:
                    raise IsADirectoryError(item)
                shutil.rmtree(local)
                self._prune(local.parent)
            else:
                self.rm_file(item)

    def _prune(self, folder: Path) -> None:
        """No empty "folders" on an object store."""
        assert self.root is not None
        while folder != self.root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        pass

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        pass

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        if self.isdir(path1):
            raise NotImplementedError("an object store cannot rename a folder")
        self.cp_file(path1, path2)
        self.rm_file(path1)

    def created(self, path: str) -> Any:
        raise NotImplementedError

    def modified(self, path: str) -> Any:
        raise NotImplementedError


def install(root: Path) -> None:
    """Serve ``gs://`` from ``root`` in this process."""
    root.mkdir(parents=True, exist_ok=True)
    FakeGCSFileSystem.root = root
    FakeGCSFileSystem.clear_instance_cache()
    for protocol in PROTOCOLS:
        fsspec.register_implementation(protocol, FakeGCSFileSystem, clobber=True)


def uninstall() -> None:
    FakeGCSFileSystem.root = None
    FakeGCSFileSystem.clear_instance_cache()
    for protocol in PROTOCOLS:
        _registry.pop(protocol, None)  # back to fsspec's known gcsfs


@contextmanager
def installed(root: Path) -> Iterator[Path]:
    """The fake GCS served from ``root`` for the duration of the block."""
    install(root)
    try:
        yield root
    finally:
        uninstall()
