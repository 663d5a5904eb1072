"""Retrain a registered version from what its lineage recorded and compare the metrics."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reviewops.contracts import MODEL_FILE, ModelKind
from reviewops.registry.store import Registry, RegistryError, kind_of
from reviewops.storage.io import read_table
from reviewops.storage.paths import Layout
from reviewops.storage.publish import is_published

log = logging.getLogger(__name__)

# Training is seeded and runs with op determinism, so on the same machine type the
# metrics come out identical; the tolerance absorbs float differences across CPUs.
TOLERANCE = 0.02


@dataclass(frozen=True)
class Reproduction:
    version: str
    dataset_version: str
    recorded: dict[str, float]
    reproduced: dict[str, float]
    tolerance: float

    @property
    def differences(self) -> dict[str, float]:
        return {k: round(self.reproduced[k] - self.recorded[k], 4) for k in self.recorded}

    @property
    def within_tolerance(self) -> bool:
        return all(abs(d) <= self.tolerance for d in self.differences.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "dataset_version": self.dataset_version,
            "recorded": self.recorded,
            "reproduced": self.reproduced,
            "differences": self.differences,
            "tolerance": self.tolerance,
            "within_tolerance": self.within_tolerance,
        }


def reproduce(data_root: str, version: str, tolerance: float = TOLERANCE) -> Reproduction:
    """Retrain ``version`` with its recorded dataset version, parameters and seed (and
    warm start, if it had one) and evaluate it on the same eval split."""
    from reviewops.contracts import TRAINING_FILE
    from reviewops.data.schema import CLASSES
    from reviewops.modeling.calibration import Calibration
    from reviewops.modeling.evaluation import classification_metrics
    from reviewops.modeling.training import FitPlan, TrainParams, load_model, predict_labels, train_model
    from reviewops.storage.io import read_json

    registry = Registry(data_root)
    meta = registry.metadata(version)
    if kind_of(meta) != ModelKind.KERAS:
        raise RegistryError(
            f"model {version} is a {meta['kind']} model: its weights live on Vertex AI and tuning is not "
            "deterministic, so it cannot be retrained here. Run reviews_training with training_backend=vertex "
            f"on dataset {meta['dataset_version']} to tune again, and compare the two versions' metrics"
        )
    dataset_dir = Layout(data_root).datasets() / meta["dataset_version"]
    if not is_published(dataset_dir):
        raise FileNotFoundError(f"dataset {meta['dataset_version']} of {version} is gone from {dataset_dir}")
    warm = meta.get("warm_start_from")
    init = registry.keras_model(warm) if warm else None  # checked against its registered sha256
    training_file = registry.path(version) / TRAINING_FILE
    chosen = read_json(training_file).get("calibration") if training_file.exists() else None
    plan = FitPlan(init_model=init, calibration=Calibration.from_dict(chosen) if chosen else None)
    with tempfile.TemporaryDirectory(prefix="reviewops-reproduce-") as tmp:
        train_model(TrainParams(**meta["params"]), dataset_dir / "train.tfrecord", Path(tmp), plan)
        evaluation = read_table(dataset_dir / "eval.parquet", columns=["text", "label"])
        predicted = predict_labels(load_model(Path(tmp) / MODEL_FILE), evaluation.column("text").to_pylist())
        metrics = classification_metrics(evaluation.column("label").to_pylist(), predicted, CLASSES)
    recorded = {k: float(meta["metrics"][k]) for k in ("accuracy", "macro_f1")}
    reproduced = {k: float(metrics[k]) for k in ("accuracy", "macro_f1")}
    result = Reproduction(version, meta["dataset_version"], recorded, reproduced, tolerance)
    log.info("reproduced %s: %s", version, result.as_dict())
    return result
