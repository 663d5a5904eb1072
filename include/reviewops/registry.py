"""The model registry: immutable version folders and one champion pointer.

``models/<version>/`` holds the saved model and its metadata; once published it never
changes. ``models/champion.json`` names the version that scores new weeks; it is only
ever replaced in one atomic step, so readers see the old champion or the new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reviewops.lineage import Artifact, StepResult, code_version
from reviewops.storage import Layout, publish_dir, staging_dir, write_json

log = logging.getLogger(__name__)

CHAMPION_FILE = "champion.json"
METADATA_FILE = "metadata.json"
MODEL_FILE = "model.keras"


class RegistryError(RuntimeError):
    """A model version or champion that is not there; the message says what to run."""


def model_version_id(dataset_version: str, params: dict[str, Any], code: str) -> str:
    """Same dataset, parameters and code give the same version."""
    spec = json.dumps({"dataset": dataset_version, "params": params, "code": code}, sort_keys=True)
    return f"m-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Registry:
    data_root: str

    @property
    def root(self) -> Path:
        return Layout(self.data_root).models()

    def staging(self) -> Path:
        return self.root / ".staging"

    def candidates(self) -> Path:
        """Where training writes candidates; they stay there for audit after registration."""
        return self.root / "candidates"

    def path(self, version: str) -> Path:
        return self.root / version

    def versions(self) -> list[dict[str, Any]]:
        """Metadata of every registered version, oldest first."""
        found = []
        for meta in self.root.glob(f"m-*/{METADATA_FILE}"):
            found.append(json.loads(meta.read_text()))
        return sorted(found, key=lambda m: (m["registered_at"], m["version"]))

    def metadata(self, version: str) -> dict[str, Any]:
        meta = self.path(version) / METADATA_FILE
        if not meta.exists():
            known = ", ".join(m["version"] for m in self.versions()) or "none"
            raise RegistryError(f"model version {version} is not registered (registered: {known})")
        data: dict[str, Any] = json.loads(meta.read_text())
        return data

    def champion(self) -> str | None:
        pointer = self.root / CHAMPION_FILE
        if not pointer.exists():
            return None
        version: str = json.loads(pointer.read_text())["version"]
        return version

    def require_champion(self) -> str:
        version = self.champion()
        if version is None:
            raise RegistryError(
                f"no champion model under {self.root}: run the reviews_training DAG first "
                '(make demo does), or pin a version with conf {"model_version": "m-..."}'
            )
        return version

    def resolve(self, version: str | None) -> str:
        """The version to use: the pinned one (checked to exist) or the champion."""
        chosen = version or self.require_champion()
        self.metadata(chosen)
        return chosen

    def register(self, candidate: Path, metadata: dict[str, Any]) -> tuple[Path, bool]:
        """Publish a copy of a candidate folder as a version; returns (folder, newly_published).

        Versions are immutable: when the version already exists the copy is dropped and
        the registered one is kept.
        """
        staging = staging_dir(self.staging(), metadata["version"])
        for item in candidate.iterdir():
            if item.is_file():
                shutil.copy2(item, staging / item.name)
        write_json(metadata, staging / METADATA_FILE)
        target = self.path(metadata["version"])
        published = publish_dir(staging, target)
        if not published:
            log.info("model %s is already registered: kept the registered copy", metadata["version"])
        return target, published

    def promote_if_none(self, version: str, reason: str) -> bool:
        """Make ``version`` champion when there is none; atomic against concurrent callers."""
        pointer = self.root / CHAMPION_FILE
        record = {"version": version, "promoted_at": _now(), "reason": reason}
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".champion.{uuid.uuid4().hex}.tmp"
        try:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
            os.link(tmp, pointer)  # fails if a champion exists: never two, never replaced here
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RegisterParams:
    data_root: str


def register_model(
    params: RegisterParams, model_dir: Path, evaluation: dict[str, Any], training: dict[str, Any], dataset_version: str
) -> StepResult:
    """Publish an evaluated model as a registry version; the first version becomes champion."""
    registry = Registry(params.data_root)
    version = evaluation["model_version"]
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    metadata = {
        "version": version,
        "kind": "keras",
        "dataset_version": dataset_version,
        "params": training["params"],
        "code_version": code_version(),
        "registered_at": _now(),
        "train_seconds": training["train_seconds"],
        "size_bytes": size,
        "classes": training["classes"],
        "metrics": {k: evaluation[k] for k in ("accuracy", "macro_f1", "per_class")},
        "baselines": evaluation["baselines"],
    }
    folder, published = registry.register(model_dir, metadata)
    became_champion = registry.promote_if_none(version, "first registered version")
    champion = registry.champion()
    log.info("model %s registered%s; champion is %s", version, "" if published else " (already)", champion)
    stored = registry.metadata(version)
    return StepResult(
        subject=version,
        outputs=(
            Artifact.of_file(folder / MODEL_FILE, "model"),
            Artifact.of_file(folder / METADATA_FILE, "model"),
        ),
        metrics={
            "model_version": version,
            "dataset_version": stored["dataset_version"],
            "accuracy": stored["metrics"]["accuracy"],
            "macro_f1": stored["metrics"]["macro_f1"],
            "newly_registered": published,
            "became_champion": became_champion,
            "champion": champion,
        },
    )
