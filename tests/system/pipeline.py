"""The training pipeline's steps called directly (no Airflow), for system tests that need
a registered model on the shipped reviews without paying for DAG runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reviewops.config import SHIPPED_REVIEWS
from reviewops.datasets import SnapshotParams, snapshot_dataset
from reviewops.evaluation import evaluate_candidate
from reviewops.gate import GatePolicy, decide
from reviewops.ingest import IngestParams, ingest_reviews
from reviewops.registry import MODEL_FILE, RegisterParams, Registry, register_model
from reviewops.sources import source_window
from reviewops.storage import write_json
from reviewops.transform import TransformParams, transform_reviews
from reviewops.validate import ValidateParams, validate_reviews


def curate_shipped_history(data_root: Path) -> Path:
    """Ingest, validate and curate every shipped review, snapshot a dataset; its folder."""
    window = source_window(str(SHIPPED_REVIEWS))
    raw, _ = ingest_reviews(IngestParams(str(SHIPPED_REVIEWS), str(data_root), window))
    validated = validate_reviews(ValidateParams(str(data_root), window.key), raw.outputs[0])
    transform_reviews(TransformParams(str(data_root), window), validated.outputs[0])
    dataset, _ = snapshot_dataset(SnapshotParams(str(data_root)))
    return data_root / "datasets" / dataset.subject


def evaluate_and_register(data_root: Path, candidate_model: Path, dataset_dir: Path, version: str) -> dict[str, Any]:
    """The training DAG's evaluate, gate and register steps."""
    registry = Registry(str(data_root))
    champion = registry.champion()
    against = (champion, registry.path(champion) / MODEL_FILE) if champion else None
    report = evaluate_candidate(candidate_model, dataset_dir, version, against).metrics
    decision = decide(report, GatePolicy()).to_dict()
    write_json(decision, candidate_model.parent / "decision.json")
    training = json.loads((candidate_model.parent / "training.json").read_text())
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    return register_model(
        RegisterParams(str(data_root), "test"), candidate_model.parent, report, decision, training, manifest
    ).metrics
