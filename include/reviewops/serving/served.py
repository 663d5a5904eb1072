"""A registered version loaded for serving, and what it answers for a list of texts.

The model is the file batch scoring reads (``Registry.keras_model``: checked against the
sha256 recorded at registration), loaded the same way (``load_model``: Keras safe mode)
and called through the same function (``predict_proba``); the safety flags are the ones
batch scoring writes (``scan_texts``). So a text gets the same label, probabilities and
flags online as in a scored week.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reviewops.contracts import MODEL_FILE, ArtifactKind, ModelMetadata
from reviewops.data.safety import SafetyFlags, scan_texts
from reviewops.lineage.record import Artifact
from reviewops.lineage.store import LineageStore
from reviewops.modeling.training import load_model, predict_proba
from reviewops.registry.store import Registry
from reviewops.storage.paths import StoragePath, to_uri

if TYPE_CHECKING:
    import numpy as np

# Traces the model's prediction graph while the version is loaded, so the first request
# it answers after a swap does not pay for it.
WARM_UP_TEXTS = ["warming up the model before it serves"]
# The history's entries that moved the champion (a roll-out's stage lines name it too).
CHAMPION_CHANGES = ("promote", "rollback")


@dataclass(frozen=True)
class Scores:
    """A model's answer for some texts: class probabilities (rows in request order,
    columns in ``classes`` order) and safety flags, with the version that answered."""

    version: str
    classes: tuple[str, ...]
    probabilities: np.ndarray[Any, np.dtype[np.float32]]
    safety: tuple[SafetyFlags, ...]

    def __len__(self) -> int:
        return len(self.safety)

    def take(self, start: int, stop: int) -> Scores:
        return Scores(self.version, self.classes, self.probabilities[start:stop], self.safety[start:stop])

    def labels(self) -> list[str]:
        """The most probable class of each row, as batch scoring picks it (argmax)."""
        return [self.classes[int(i)] for i in self.probabilities.argmax(axis=1)] if len(self) else []


@dataclass(frozen=True)
class ServedModel:
    """One registered version in memory. ``info`` is what the metadata route shows."""

    version: str
    classes: tuple[str, ...]
    model: Any
    info: dict[str, Any]

    def score(self, texts: list[str]) -> Scores:
        """Probabilities and flags of already cleaned texts, in one model call."""
        probabilities = predict_proba(self.model, texts)
        return Scores(self.version, self.classes, probabilities, tuple(scan_texts(texts)))


def load_served_model(data_root: str, version: str) -> ServedModel:
    """Load a registered Keras version and trace its graph; a ``RegistryError`` (a
    ``ModelFileError`` for a file that is not the one registered or cannot be loaded)
    saying what to do otherwise, as batch scoring raises."""
    registry = Registry(data_root)
    meta = registry.metadata(version)
    model_file = registry.keras_model(version)
    model = load_model(model_file)
    predict_proba(model, WARM_UP_TEXTS)
    return ServedModel(version, tuple(meta["classes"]), model, model_info(registry, meta, model_file))


def model_info(registry: Registry, meta: ModelMetadata, model_file: StoragePath) -> dict[str, Any]:
    """Where a version comes from: its dataset, code, registration, the lineage record that
    registered its file (None when it was registered outside Airflow, which writes no
    record), and the promotion that made it champion."""
    artifact = Artifact.of_file(model_file, ArtifactKind.MODEL)
    producer = LineageStore(registry.data_root).index().producer(artifact)
    changes = [
        e for e in registry.history() if e.get("version") == meta["version"] and e.get("action") in CHAMPION_CHANGES
    ]
    metrics = meta.get("metrics") or {}
    return {
        "model_version": meta["version"],
        "dataset_version": meta["dataset_version"],
        "code_version": meta.get("code_version"),
        "registered_at": meta.get("registered_at"),
        "model_uri": to_uri(model_file),
        "model_sha256": artifact.sha256,
        "model_file": MODEL_FILE,
        "lineage_record_id": producer.record_id if producer else None,
        "champion_change": changes[-1] if changes else None,
        "gate": {"promote": (meta.get("gate") or {}).get("promote")},
        "metrics": {name: metrics.get(name) for name in ("accuracy", "macro_f1")},
        "classes": list(meta["classes"]),
    }
