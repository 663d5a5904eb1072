"""The lifecycle's steps chained directly, without Airflow, for the tests and benchmarks
that need a curated history or a registered model but not the DAG runs around them. The
DAGs chain the same functions through their operators."""

from __future__ import annotations

from typing import Any

from reviewops.config import SHIPPED_REVIEWS
from reviewops.contracts import MANIFEST_FILE, MODEL_FILE, ArtifactKind
from reviewops.data.datasets import SnapshotParams, snapshot_dataset
from reviewops.data.ingest import IngestParams, ingest_reviews
from reviewops.data.sources import source_window
from reviewops.data.transform import TransformParams, transform_reviews
from reviewops.data.validate import ValidateParams, validate_reviews
from reviewops.modeling.evaluation import evaluate_against_champion
from reviewops.modeling.promotion import GatePolicy, gate_candidate
from reviewops.modeling.training import TrainParams, TrainStepParams, train_candidate
from reviewops.registry.store import RegisterParams, Registry, register_candidate
from reviewops.storage.paths import Layout, StoragePath


def curate_source(data_root: str | StoragePath, source: str | StoragePath = SHIPPED_REVIEWS) -> None:
    """ingest -> validate -> transform over every week of the source."""
    root, source = str(data_root), str(source)
    window = source_window(source)
    raw, _ = ingest_reviews(IngestParams(source=source, data_root=root, window=window))
    validated = validate_reviews(ValidateParams(data_root=root, batch_key=window.key), raw.output(ArtifactKind.RAW))
    transform_reviews(TransformParams(data_root=root, window=window), validated.output(ArtifactKind.VALIDATED))


def curate_and_snapshot(data_root: str | StoragePath, source: str | StoragePath = SHIPPED_REVIEWS) -> StoragePath:
    """The source curated and snapshotted; returns the dataset version's folder."""
    curate_source(data_root, source)
    dataset, _ = snapshot_dataset(SnapshotParams(data_root=str(data_root)))
    return Layout(data_root).datasets() / dataset.subject


def evaluate_and_register(
    data_root: str | StoragePath, candidate_model: StoragePath, dataset_dir: StoragePath, version: str, actor: str
) -> dict[str, Any]:
    """The training DAG's evaluate, gate and register steps; returns the register metrics."""
    evaluated, _ = evaluate_against_champion(str(data_root), candidate_model, dataset_dir, version)
    evaluation = evaluated.output(ArtifactKind.EVALUATION)
    decision = gate_candidate(evaluation, GatePolicy()).output(ArtifactKind.DECISION)
    params = RegisterParams(str(data_root), actor)
    return register_candidate(
        params, candidate_model, evaluation.path, decision.path, dataset_dir / MANIFEST_FILE
    ).metrics


def build_champion(
    data_root: str | StoragePath, train: TrainParams, actor: str, promote_if_rejected: bool = False
) -> tuple[str, StoragePath]:
    """Curate the shipped reviews, train, evaluate, gate and register. With
    ``promote_if_rejected`` a model the gate rejects is promoted by hand (as
    ``reviewops models promote`` would), for callers that need any champion quickly.
    Returns the champion and the dataset folder."""
    dataset_dir = curate_and_snapshot(data_root)
    trained = train_candidate(TrainStepParams(str(data_root), str(dataset_dir), train))
    evaluate_and_register(data_root, trained.output_named(MODEL_FILE).path, dataset_dir, trained.subject, actor)
    registry = Registry(str(data_root))
    if registry.champion() is None and promote_if_rejected:
        registry.promote(trained.subject, f"{actor}: a quick model, promoted by hand", actor)
    return registry.require_champion(), dataset_dir
