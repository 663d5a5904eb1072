"""A Vertex AI tuned model in the registry: registered as kind ``vertex`` with its
resource names, described by its model card, and refused with what to do by everything
that needs Keras weights (local scoring, the local evaluation's champion)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewops.contracts import ArtifactKind, ModelKind
from reviewops.gcp.tuning import TunedModelParams, evaluate_tuned_model, export_tuning_data, record_tuned_model
from reviewops.lineage.record import Artifact
from reviewops.modeling.promotion import GatePolicy, decide
from reviewops.modeling.scoring import ScoreParams, score_week
from reviewops.monitoring.step import MonitoringError, MonitorParams, monitor_week
from reviewops.registry.store import RegisterParams, Registry, RegistryError, register_model
from reviewops.storage.io import read_json
from reviewops.storage.paths import from_uri

from .test_vertex_tuning import ENDPOINT, MODEL, _params, dataset_dir  # noqa: F401  (fixture)


@pytest.fixture
def registered(dataset_dir: Path, tmp_path: Path) -> dict[str, Any]:  # noqa: F811
    export = export_tuning_data(_params(dataset_dir, tmp_path))
    candidate = record_tuned_model(TunedModelParams(str(tmp_path), MODEL, ENDPOINT, export.metrics, 60.0))
    folder = from_uri(candidate.outputs[0].uri).parent
    rows = pq.read_table(dataset_dir / "eval.parquet").to_pylist()
    evaluation = evaluate_tuned_model(
        folder, dataset_dir, candidate.subject, {r["review_id"]: r["label"] for r in rows}
    ).metrics
    decision = decide(evaluation, GatePolicy()).to_dict()
    training = json.loads((folder / "training.json").read_text())
    result = register_model(
        RegisterParams(str(tmp_path), actor="test"),
        folder,
        evaluation,
        decision,
        training,
        read_json(dataset_dir / "manifest.json"),
    )
    return {"result": result, "data_root": tmp_path, "decision": decision}


def test_a_tuned_model_registers_as_kind_vertex(registered: dict[str, Any]) -> None:
    result = registered["result"]
    registry = Registry(str(registered["data_root"]))
    meta = registry.metadata(result.subject)
    assert meta["kind"] == "vertex"
    assert meta["vertex"]["tuned_model_name"] == MODEL and meta["vertex"]["endpoint"] == ENDPOINT
    assert meta["vertex"]["prompt_ref"] == "review_sentiment@v2"
    assert [Path(a.uri).name for a in result.outputs] == ["vertex_model.json", "metadata.json", "model_card.md"]
    card = (registry.path(result.subject) / "model_card.md").read_text()
    assert "tuned on Vertex AI" in card and MODEL in card and "TensorFlow/Keras" not in card
    # A perfect answer sheet passes the gate against the baselines: it is the champion now.
    assert registered["decision"]["verdict"] == "promote" and registry.champion() == result.subject


def test_local_scoring_refuses_a_vertex_champion_with_what_to_do(registered: dict[str, Any], tmp_path: Path) -> None:
    registry = Registry(str(registered["data_root"]))
    champion = registry.require_champion()
    with pytest.raises(RegistryError, match=r"is a vertex model .*score it with scoring_backend=vertex"):
        registry.keras_model(champion)
    week = tmp_path / "curated" / "week=2017-11-27" / "reviews.parquet"
    with pytest.raises(RegistryError, match="scoring_backend=vertex"):
        score_week(ScoreParams(data_root=str(registered["data_root"])), Artifact(str(week), "curated", ""))


def test_reproduce_and_the_cli_refuse_a_vertex_version(registered: dict[str, Any]) -> None:
    from reviewops.modeling.reproduce import reproduce

    version = registered["result"].subject
    with pytest.raises(RegistryError, match=r"is a vertex model: its weights live on Vertex AI"):
        reproduce(str(registered["data_root"]), version)


def test_the_score_command_refuses_a_vertex_model(
    registered: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reviewops.cli import main
    from reviewops.config import SHIPPED_REVIEWS

    output = tmp_path / "predictions.parquet"
    root = ["--data-root", str(registered["data_root"])]
    assert main([*root, "score", "--input", str(SHIPPED_REVIEWS), "--output", str(output)]) == 2
    assert "score it with scoring_backend=vertex" in capsys.readouterr().err and not output.exists()


def test_monitoring_reference_is_the_keras_champion_else_the_newest_keras_version(registered: dict[str, Any]) -> None:
    registry = Registry(str(registered["data_root"]))
    assert registry.metadata(registry.require_champion())["kind"] == "vertex"
    assert registry.keras_reference() is None  # only a Vertex model: monitoring must say what to do
    for version, at in (("m-keras-old", "2017-01-01T00:00:00+00:00"), ("m-keras-new", "2017-06-01T00:00:00+00:00")):
        folder = registry.path(version)
        folder.mkdir(parents=True)
        (folder / "metadata.json").write_text(json.dumps({"version": version, "kind": "keras", "registered_at": at}))
    assert registry.keras_reference() == "m-keras-new"
    registry.promote("m-keras-old", "test: a Keras champion", "test")
    assert registry.keras_reference() == "m-keras-old"
    assert registry.kind("m-keras-old") is ModelKind.KERAS and registry.kind(registered["result"].subject) == "vertex"


def test_a_vertex_week_without_a_keras_reference_says_what_to_run(registered: dict[str, Any], tmp_path: Path) -> None:
    # The monitoring step (not the operator) chooses the reference: a week scored on
    # Vertex AI, recognised by its response columns, needs a registered Keras model.
    version = registered["result"].subject
    week = tmp_path / "week=2017-12-11"
    week.mkdir()
    predictions = pa.table(
        {
            "review_id": ["r1"],
            "predicted_label": ["positive"],
            "model_version": [version],
            "response_status": ["ok"],
            "model_safety_categories": pa.array([[]], pa.list_(pa.string())),
            "citation_count": pa.array([0], pa.int32()),
        }
    )
    curated = pa.table({"review_id": ["r1"], "product": ["p"], "condition": ["c"], "text": ["fine"]})
    pq.write_table(predictions, week / "predictions.parquet")
    pq.write_table(curated, tmp_path / "curated.parquet")
    with pytest.raises(MonitoringError, match="run reviews_training with training_backend=local once"):
        monitor_week(
            MonitorParams(str(registered["data_root"])),
            Artifact.of_file(week / "predictions.parquet", ArtifactKind.PREDICTIONS),
            Artifact.of_file(tmp_path / "curated.parquet", ArtifactKind.CURATED),
            [],
            version,
        )
