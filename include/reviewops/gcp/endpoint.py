"""The registry's champion on a Vertex AI endpoint: the pieces that are not Airflow.

Three steps (the upload and the deployment themselves are the Google provider's
``UploadModelOperator`` and ``DeployModelOperator`` / ``UndeployModelOperator``):

1. :func:`export_serving_model`: the champion's Keras file (sha256 checked by the registry)
   exported as a TensorFlow SavedModel under ``<data_root>/vertex/serving/<version>/``
   (``gs://`` in the cloud), the folder a prebuilt TensorFlow prediction container serves
   (``serving_default``: ``text`` string ``(None, 1)`` in, three class probabilities out,
   in the order of :data:`reviewops.data.schema.CLASSES`). The record's
   ``metrics["vertex"]["upload"]`` holds the provider operator's arguments.
2. :func:`plan_rollout`: the endpoint's deployed models and traffic split as they are now,
   plus a stage, become the next request: ``canary`` (deploy the uploaded model with
   ``{"0": percent, <serving id>: 100 - percent}``), ``full`` (undeploy the old model,
   ``{<new id>: 100}``) or ``rollback`` (undeploy the new model, the traffic back to the
   one it was canaried against).
3. :func:`traffic_split`: the arithmetic of 2, checked the way the service checks it
   (percentages sum to 100, keys are deployed ids or ``"0"`` for the model being deployed).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from reviewops.contracts import ArtifactKind
from reviewops.data.schema import CLASSES
from reviewops.lineage.record import Artifact, StepResult
from reviewops.registry.store import Registry
from reviewops.storage.paths import StoragePath, as_path, to_uri
from reviewops.storage.publish import publish_dir, staging_dir

# A Vertex AI prebuilt TensorFlow prediction container (CPU), from "Prebuilt containers for
# prediction and explanation"; not checked against the service here. Its TF must load what
# this TF (2.21) exports: pass the newest tf2-cpu image the region lists with ``image``.
SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
MACHINE_TYPE = "n1-standard-2"
STAGES = ("canary", "full", "rollback")
NEW = "0"  # the traffic split's key of the model a DeployModel request deploys
SAVED_MODEL_FILE = "saved_model.pb"

_MODEL_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class EndpointError(ValueError):
    """A deployment that the service would refuse or that makes no sense: say what to do."""


@dataclass(frozen=True)
class ServingParams:
    """What the export and the upload need; empty strings mean the defaults."""

    data_root: str
    version: str = ""  # a registry version; empty: the champion
    project: str = ""
    location: str = "us-central1"
    gcp_conn_id: str = "google_cloud_default"
    image: str = SERVING_IMAGE
    parent_model: str = ""  # a Vertex AI model id: the upload becomes its next version


def serving_dir(data_root: str, version: str) -> StoragePath:
    return as_path(data_root) / "vertex" / "serving" / version


def upload_arguments(params: ServingParams, version: str, artifact_uri: str) -> dict[str, Any]:
    """``UploadModelOperator``'s arguments: the SavedModel folder, the prebuilt TF
    container, and ``parent_model`` so each champion is a version of the same model."""
    return {
        "project_id": params.project,
        "region": params.location,
        "gcp_conn_id": params.gcp_conn_id,
        "parent_model": params.parent_model or None,
        "model": {
            "display_name": "reviewops-sentiment",
            "description": f"reviewops champion {version}",
            "artifact_uri": artifact_uri,
            "container_spec": {"image_uri": params.image or SERVING_IMAGE},
            "labels": {"reviewops_version": version},
            "version_aliases": [version],
        },
    }


def export_serving_model(params: ServingParams) -> tuple[StepResult, list[Artifact]]:
    """Export the champion (or ``params.version``) as a SavedModel for the TF container.
    The version folder is immutable: an export already published is reused."""
    from reviewops.modeling.training import load_model

    registry = Registry(params.data_root)
    version = registry.resolve(params.version or None)
    keras_file = registry.keras_model(version)  # a ModelFileError unless the registered bytes
    target = serving_dir(params.data_root, version)
    if not (target / SAVED_MODEL_FILE).exists():
        staging = staging_dir(target.parent, version)
        try:
            model = load_model(keras_file)
            shutil.rmtree(staging)  # Keras writes the folder itself
            model.export(str(staging), format="tf_saved_model", verbose=False)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish_dir(staging, target)
    saved = Artifact.of_file(target / SAVED_MODEL_FILE, ArtifactKind.MODEL)
    artifact_uri = to_uri(target)
    metrics = {
        "model_version": version,
        "artifact_uri": artifact_uri,
        "classes": list(CLASSES),
        "vertex": {"upload": upload_arguments(params, version, artifact_uri)},
    }
    return StepResult(subject=version, outputs=(saved,), metrics=metrics), [
        Artifact.of_file(keras_file, ArtifactKind.MODEL)
    ]


def traffic_split(current: Mapping[str, int], percent: int) -> dict[str, int]:
    """The split that gives a model being deployed ``percent`` and the rest to the model
    that serves most now (the others keep nothing: a canary is against one model)."""
    if not 1 <= percent <= 100:
        raise EndpointError(f"percent must be 1..100, got {percent}")
    serving = {k: int(v) for k, v in current.items() if int(v) > 0}
    if not serving or percent == 100:
        return {NEW: 100}
    incumbent = max(sorted(serving), key=lambda k: serving[k])
    return {NEW: percent, incumbent: 100 - percent}


@dataclass(frozen=True)
class RolloutPlan:
    """The next request on the endpoint: ``deploy`` (DeployModel) or ``undeploy``."""

    stage: str
    action: str
    endpoint_id: str
    traffic_split: dict[str, int]
    model: str = ""  # deploy: the uploaded model's resource name (with @version)
    deployed_model_id: str = ""  # undeploy: the deployed model to remove
    deployed_model: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_rollout(
    stage: str,
    endpoint: Mapping[str, Any],
    percent: int = 10,
    model: str = "",
    machine_type: str = MACHINE_TYPE,
) -> RolloutPlan:
    """The next step for ``stage`` on ``endpoint`` (the endpoint as a dict, as
    ``Endpoint.to_dict`` gives it: ``name``, ``deployed_models``, ``traffic_split``).

    - ``canary``: deploy ``model`` with ``percent`` of the traffic (100: all of it);
    - ``full``: the newest deployed model takes 100 and the other is undeployed;
    - ``rollback``: the newest deployed model is undeployed, the other takes 100.
    """
    if stage not in STAGES:
        raise EndpointError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    endpoint_id = str(endpoint.get("name") or "").rpartition("/")[-1]
    if not _MODEL_ID.match(endpoint_id):
        raise EndpointError(f"no endpoint id in {endpoint.get('name')!r}: create the endpoint first")
    deployed = sorted(endpoint.get("deployed_models") or [], key=lambda d: (str(d.get("create_time", "")), d["id"]))
    split = {str(k): int(v) for k, v in (endpoint.get("traffic_split") or {}).items()}
    if stage == "canary":
        if not model:
            raise EndpointError("canary needs the uploaded model's resource name (the upload task's 'model')")
        if any(d.get("model") == model for d in deployed):
            raise EndpointError(f"{model} is already deployed on endpoint {endpoint_id}: use stage full or rollback")
        resources = {"machine_spec": {"machine_type": machine_type}, "min_replica_count": 1, "max_replica_count": 1}
        return RolloutPlan(
            stage,
            "deploy",
            endpoint_id,
            traffic_split(split, percent),
            model=model,
            deployed_model={
                "model": model,
                "display_name": model.rpartition("/")[-1],
                "dedicated_resources": resources,
            },
        )
    if len(deployed) != 2:
        raise EndpointError(
            f"{stage} needs exactly two models deployed on endpoint {endpoint_id} (the canary and the one it is "
            f"compared with), found {len(deployed)}: run stage canary first"
        )
    old, new = deployed[0]["id"], deployed[1]["id"]
    keep, remove = (new, old) if stage == "full" else (old, new)
    return RolloutPlan(stage, "undeploy", endpoint_id, {keep: 100}, deployed_model_id=remove)
