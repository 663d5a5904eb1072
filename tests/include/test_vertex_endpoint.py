"""The Vertex AI endpoint domain: the traffic split of each stage, checked like the
service checks it, and the champion's SavedModel export (a real model, trained quickly)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reviewops.contracts import MODEL_FILE
from reviewops.data.schema import CLASSES
from reviewops.gcp.endpoint import (
    SERVING_IMAGE,
    EndpointError,
    ServingParams,
    export_serving_model,
    plan_rollout,
    traffic_split,
)
from reviewops.modeling.training import TrainParams
from reviewops.pipeline import build_champion
from reviewops.registry.store import ModelFileError, Registry

NAME = "projects/p/locations/us-central1/endpoints/42"
MODEL = "projects/p/locations/us-central1/models/9@2"


def endpoint(*deployed: tuple[str, int]) -> dict[str, Any]:
    return {
        "name": NAME,
        "deployed_models": [
            {
                "id": i,
                "model": f"projects/p/locations/us-central1/models/9@{n}",
                "create_time": f"2026-11-0{n}T00:00:00Z",
            }
            for n, (i, _) in enumerate(deployed, start=1)
        ],
        "traffic_split": {i: p for i, p in deployed if p},
    }


@pytest.mark.parametrize(
    ("current", "percent", "expected"),
    [
        ({}, 10, {"0": 100}),  # nothing serves: the first model takes all
        ({"111": 100}, 10, {"0": 10, "111": 90}),
        ({"111": 100}, 100, {"0": 100}),
        ({"111": 70, "222": 30}, 20, {"0": 20, "111": 80}),  # a canary is against the main model
        ({"111": 0, "222": 100}, 5, {"0": 5, "222": 95}),
    ],
)
def test_traffic_split(current: dict[str, int], percent: int, expected: dict[str, int]) -> None:
    split = traffic_split(current, percent)
    assert split == expected and sum(split.values()) == 100


@pytest.mark.parametrize("percent", [0, -5, 101])
def test_a_percent_outside_1_to_100_is_refused(percent: int) -> None:
    with pytest.raises(EndpointError, match=r"1\.\.100"):
        traffic_split({"111": 100}, percent)


def test_canary_deploys_the_uploaded_model_beside_the_serving_one() -> None:
    plan = plan_rollout("canary", endpoint(("111", 100)), 10, model=MODEL)
    assert plan.action == "deploy" and plan.endpoint_id == "42"
    assert plan.traffic_split == {"0": 10, "111": 90}
    assert plan.deployed_model is not None and plan.deployed_model["model"] == MODEL
    assert plan.deployed_model["dedicated_resources"]["machine_spec"]["machine_type"]


def test_full_and_rollback_undeploy_one_of_the_two() -> None:
    state = endpoint(("111", 90), ("222", 10))
    full = plan_rollout("full", state)
    assert (full.action, full.deployed_model_id, full.traffic_split) == ("undeploy", "111", {"222": 100})
    back = plan_rollout("rollback", state)
    assert (back.deployed_model_id, back.traffic_split) == ("222", {"111": 100})


@pytest.mark.parametrize(
    ("stage", "state", "model", "message"),
    [
        ("promote", endpoint(), MODEL, "stage must be one of"),
        ("canary", {"name": ""}, MODEL, "create the endpoint first"),
        ("canary", endpoint(("111", 100)), "", "uploaded model"),
        ("canary", endpoint(("111", 100)), "projects/p/locations/us-central1/models/9@1", "already deployed"),
        ("full", endpoint(("111", 100)), "", "run stage canary first"),
        ("rollback", endpoint(), "", "found 0"),
    ],
)
def test_plans_the_service_would_refuse_say_what_to_do(
    stage: str, state: dict[str, Any], model: str, message: str
) -> None:
    with pytest.raises(EndpointError, match=message):
        plan_rollout(stage, state, 10, model=model)


@pytest.fixture(scope="module")
def champion_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("endpoint-export")
    champion, _ = build_champion(root, TrainParams(epochs=2, hidden_units=0, max_tokens=2000), "tests", True)
    return root, champion


def test_export_writes_a_saved_model_the_tf_container_serves(champion_root: tuple[Path, str]) -> None:
    import tensorflow as tf

    root, champion = champion_root
    params = ServingParams(data_root=str(root), project="p", parent_model="9")
    result, inputs = export_serving_model(params)
    target = root / "vertex" / "serving" / champion
    assert result.subject == champion and inputs[0].uri.endswith(f"{champion}/{MODEL_FILE}")
    upload = result.metrics["vertex"]["upload"]
    assert upload["model"]["artifact_uri"] == result.metrics["artifact_uri"]
    assert upload["model"]["container_spec"] == {"image_uri": SERVING_IMAGE}
    assert upload["parent_model"] == "9" and upload["project_id"] == "p"
    serve = tf.saved_model.load(str(target)).signatures["serving_default"]
    scores = serve(text=tf.constant([["This drug works great"], ["terrible side effects"]]))["output_0"].numpy()
    assert scores.shape == (2, len(CLASSES))
    # Exported once: a second export reuses the published folder.
    again, _ = export_serving_model(params)
    assert again.outputs == result.outputs


def test_export_refuses_a_keras_file_that_is_not_the_registered_one(
    champion_root: tuple[Path, str], tmp_path: Path
) -> None:
    import shutil

    root, champion = champion_root
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    model_file = Registry(str(copy)).path(champion) / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    shutil.rmtree(copy / "vertex", ignore_errors=True)
    with pytest.raises(ModelFileError, match="not the file registered"):
        export_serving_model(ServingParams(data_root=str(copy)))
