"""The champion on a Vertex AI endpoint, task by task: export -> the provider's
``UploadModelOperator`` -> plan -> the provider's ``DeployModelOperator`` (a 10% canary),
then ``full`` and ``rollback`` through ``UndeployModelOperator``. Only the Vertex AI
clients are replaced (tests/vertexfake.py ``FakeEndpoints``); the requests they received
are what is asserted."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from reviewops.gcp.endpoint import SERVING_IMAGE
from reviewops.modeling.training import TrainParams
from reviewops.pipeline import build_champion
from reviewops.registry.store import Registry
from reviewops_airflow.provider import LazyProviderOperator
from reviewops_airflow.vertex_endpoint import ChooseEndpointStageOperator, canary_tasks, finish_tasks
from tests.plugins.stubs import StubTaskInstance
from tests.vertexfake import PROJECT, FakeEndpoints

QUICK = TrainParams(epochs=2, hidden_units=0, max_tokens=2000)
ENDPOINT = "1234567890"
LOCATION = "us-central1"


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("endpoint-registry")
    build_champion(root, QUICK, "tests/vertex_endpoint", promote_if_rejected=True)
    return root


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEndpoints:
    fake = FakeEndpoints().patch(monkeypatch)
    fake.create_endpoint(ENDPOINT)
    return fake


def run(task: Any, xcoms: dict[str, Any], root: Path, **params: Any) -> Any:
    """Render the task (a copy) like the worker does, then execute it; its XCom goes to ``xcoms``."""
    rendered = copy.copy(task)
    ti = StubTaskInstance(task_id=task.task_id, xcoms=xcoms)
    ctx: dict[str, Any] = {"ti": ti, "params": {"data_root": str(root), **params}, "outlet_events": {}}
    rendered.render_template_fields(ctx)
    result = rendered.execute(ctx)
    xcoms[task.task_id] = result
    return rendered, result


def canary(data_root: Path, xcoms: dict[str, Any], percent: int = 10, **kwargs: Any) -> dict[str, Any]:
    with DAG("reviews_vertex_endpoint_test", schedule=None, render_template_as_native_obj=True):
        tasks = canary_tasks(endpoint_id=ENDPOINT, percent=percent, **kwargs)
    out = {}
    for task in tasks:
        out[task.task_id] = run(task, xcoms, data_root)
    return out


def finish(data_root: Path, xcoms: dict[str, Any], stage: str) -> dict[str, Any]:
    with DAG(f"reviews_vertex_endpoint_{stage}", schedule=None, render_template_as_native_obj=True):
        tasks = finish_tasks(endpoint_id=ENDPOINT, stage=stage, task_prefix=f"{stage}_")
    return {task.task_id: run(task, xcoms, data_root) for task in tasks}


def test_canary_uploads_the_exported_champion_and_deploys_it_with_a_traffic_split(
    registry_root: Path, fake: FakeEndpoints
) -> None:
    from airflow.providers.google.cloud.operators.vertex_ai.endpoint_service import DeployModelOperator
    from airflow.providers.google.cloud.operators.vertex_ai.model_service import UploadModelOperator

    champion = Registry(str(registry_root)).require_champion()
    first = canary(registry_root, {}, percent=100)
    _, exported = first["export_serving_model"]
    artifact_uri = exported["metrics"]["artifact_uri"]
    assert artifact_uri.endswith(f"/vertex/serving/{champion}") and exported["subject"] == champion
    assert (Path(artifact_uri.removeprefix("file://")) / "saved_model.pb").exists()
    assert exported["inputs"][0]["uri"].endswith(f"{champion}/model.keras")
    upload_task, uploaded = first["upload_model"]
    assert type(upload_task) is LazyProviderOperator
    assert type(upload_task.provider_operator) is UploadModelOperator
    name, request = fake.requests[0]
    assert name == "upload_model" and request["parent"] == f"projects/{PROJECT}/locations/{LOCATION}"
    assert request["model"]["artifact_uri"] == artifact_uri
    assert request["model"]["container_spec"] == {"image_uri": SERVING_IMAGE}
    assert "parent_model" not in request
    model = uploaded["model"]
    assert uploaded["model_version_id"] == "1"
    deploy_task, deployed = first["deploy_model"]
    assert type(deploy_task.provider_operator) is DeployModelOperator
    name, request = fake.requests[-1]
    assert name == "deploy_model"
    assert request["endpoint"] == f"projects/{PROJECT}/locations/{LOCATION}/endpoints/{ENDPOINT}"
    assert request["traffic_split"] == {"0": 100}  # an empty endpoint: the first model takes all
    assert request["deployed_model"]["model"] == f"{model}@1"
    first_id = deployed["deployed_model"]["id"]

    # The next champion (here the same one, re-exported) as a new version of that model, 10% canary.
    xcoms: dict[str, Any] = {}
    second = canary(registry_root, xcoms, percent=10, parent_model=model.rpartition("/")[-1])
    _, request = next(r for r in reversed(fake.requests) if r[0] == "upload_model")
    assert request["parent_model"] == model
    assert second["upload_model"][1]["model_version_id"] == "2"
    plan = second["plan_rollout"][1]
    assert plan["metrics"]["endpoint_traffic_split"] == {first_id: 100}
    _, request = fake.requests[-1]
    assert request["traffic_split"] == {"0": 10, first_id: 90}
    assert request["deployed_model"]["model"] == f"{model}@2"
    canary_id = second["deploy_model"][1]["deployed_model"]["id"]
    endpoint = fake.endpoints[request["endpoint"]]
    assert dict(endpoint.traffic_split) == {first_id: 90, canary_id: 10}

    # Rollback: the canary goes, the traffic goes back to the first.
    finish(registry_root, xcoms, "rollback")
    name, request = fake.requests[-1]
    assert name == "undeploy_model" and request["deployed_model_id"] == canary_id
    assert request["traffic_split"] == {first_id: 100}
    assert dict(endpoint.traffic_split) == {first_id: 100}


def test_full_moves_all_traffic_to_the_canary_and_undeploys_the_old_model(
    registry_root: Path, fake: FakeEndpoints
) -> None:
    canary(registry_root, {}, percent=100)
    old = fake.requests[-1]
    xcoms: dict[str, Any] = {}
    out = canary(registry_root, xcoms, percent=25)
    new_id = out["deploy_model"][1]["deployed_model"]["id"]
    assert fake.requests[-1][1]["traffic_split"]["0"] == 25 and old[0] == "deploy_model"
    finish(registry_root, xcoms, "full")
    name, request = fake.requests[-1]
    assert name == "undeploy_model" and request["traffic_split"] == {new_id: 100}
    endpoint = next(iter(fake.endpoints.values()))
    assert [d.id for d in endpoint.deployed_models] == [new_id]


def test_full_without_a_canary_fails_with_what_to_do(registry_root: Path, fake: FakeEndpoints) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="run stage canary first"):
        finish(registry_root, {}, "full")
    assert [name for name, _ in fake.requests] == ["get_endpoint"]


def test_the_dag_runs_a_stage_from_its_params(registry_root: Path, fake: FakeEndpoints) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import ROOT

    bag = DagBag(dag_folder=str(ROOT / "dags" / "reviews_vertex_endpoint.py"))
    assert bag.import_errors == {}
    dag = bag.dags["reviews_vertex_endpoint"]
    params = {
        **{name: dag.params[name] for name in dag.params},
        "endpoint_id": ENDPOINT,
        "data_root": str(registry_root),
    }
    xcoms: dict[str, Any] = {}
    for stage, percent in (("canary", 100), ("canary", 30)):
        branch = copy.copy(dag.get_task("choose_stage"))
        assert isinstance(branch, ChooseEndpointStageOperator)
        branch.render_template_fields({"params": {**params, "stage": stage}})
        assert branch.choose_branch({}) == "export_serving_model"
        for task_id in ("export_serving_model", "upload_model", "plan_rollout", "deploy_model"):
            run(dag.get_task(task_id), xcoms, registry_root, **{**params, "stage": stage, "percent": percent})
    endpoint = next(iter(fake.endpoints.values()))
    first, canary_id = (d.id for d in endpoint.deployed_models)
    assert dict(endpoint.traffic_split) == {first: 70, canary_id: 30}
    for task_id in ("finish_plan_rollout", "finish_undeploy_model"):
        run(dag.get_task(task_id), xcoms, registry_root, **{**params, "stage": "rollback"})
    assert dict(endpoint.traffic_split) == {first: 100}
