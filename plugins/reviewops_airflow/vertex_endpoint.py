"""The champion on a Vertex AI endpoint with a traffic split, through the Google
provider's operators (built when their task runs, by
:class:`~reviewops_airflow.provider.LazyProviderOperator`):

``export_serving_model`` (:class:`ExportServingModelOperator`: the champion's Keras file,
sha256 checked, as a TF SavedModel under ``<data_root>/vertex/serving/<version>/``) ->
``upload_model`` (``UploadModelOperator``: that folder, a prebuilt TF prediction
container, ``parent_model`` for versioning) -> ``plan_rollout``
(:class:`PlanEndpointRolloutOperator`: reads the endpoint, decides the traffic split) ->
``deploy_model`` (``DeployModelOperator``, e.g. ``{"0": 10, "<serving id>": 90}``).

``full`` and ``rollback`` need no new model: ``plan_rollout`` -> ``undeploy_model``
(``UndeployModelOperator`` with the split that remains). Use :func:`canary_tasks` and
:func:`finish_tasks`; they wire the templates between the tasks.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk.exceptions import AirflowFailException

from reviewops.contracts import ArtifactKind
from reviewops_airflow.base import ReviewOpsOperator, verified
from reviewops_airflow.provider import LazyProviderOperator
from reviewops_airflow.vertex_batch import vertex_project

if TYPE_CHECKING:
    from airflow.sdk import Context

    from reviewops.lineage.record import Artifact, LineageRecord, StepResult

StepOutput = tuple["StepResult", list["Artifact"]]

_VERTEX_AI = "airflow.providers.google.cloud.operators.vertex_ai"
UPLOAD_OPERATOR = f"{_VERTEX_AI}.model_service.UploadModelOperator"
DEPLOY_OPERATOR = f"{_VERTEX_AI}.endpoint_service.DeployModelOperator"
UNDEPLOY_OPERATOR = f"{_VERTEX_AI}.endpoint_service.UndeployModelOperator"
# An upload or a deployment (replicas started, the model loaded) takes minutes; without a
# retry, a stuck one must still end.
OPERATION_TIMEOUT = dt.timedelta(hours=1)


class ExportServingModelOperator(ReviewOpsOperator):
    """Export the champion (or ``model_version``) as a SavedModel for Vertex AI's prebuilt
    TF prediction container; the record's ``metrics["vertex"]["upload"]`` holds the
    ``UploadModelOperator`` arguments.

    :param model_version: a registry version (templated); empty: the champion.
    :param parent_model: a Vertex AI model id the upload becomes a new version of (templated).
    :param image: the serving container image (templated); empty: the prebuilt TF CPU one.
    """

    template_fields = (
        *ReviewOpsOperator.template_fields,
        "model_version",
        "parent_model",
        "image",
        "project",
        "location",
    )
    ui_color = "#e3eefc"

    def __init__(
        self,
        *,
        model_version: str = "",
        parent_model: str = "",
        image: str = "",
        project: str = "",
        location: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_version = model_version
        self.parent_model = parent_model
        self.image = image
        self.project = project
        self.location = location

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.config import VertexSettings
        from reviewops.gcp.endpoint import SERVING_IMAGE, ServingParams, export_serving_model
        from reviewops.registry.store import RegistryError

        project, conn_id = vertex_project(self.project or "")
        params = ServingParams(
            data_root=self.settings().data_root,
            version=str(self.model_version or ""),
            project=project,
            location=self.location or VertexSettings.from_env().location,
            gcp_conn_id=conn_id,
            image=self.image or SERVING_IMAGE,
            parent_model=str(self.parent_model or ""),  # an all-digit id renders as an int
        )
        try:
            exported: StepOutput = export_serving_model(params)
        except RegistryError as exc:  # no champion, a Vertex AI champion, a changed file: not a retry
            raise AirflowFailException(str(exc)) from exc
        return exported


class PlanEndpointRolloutOperator(ReviewOpsOperator):
    """Read the endpoint and decide the next request for ``stage``
    (:func:`reviewops.gcp.endpoint.plan_rollout`); the record's
    ``metrics["vertex"]["rollout"]`` is what ``deploy_model`` / ``undeploy_model`` render.

    :param endpoint_id: the Vertex AI endpoint (templated).
    :param stage: ``canary``, ``full`` or ``rollback`` (templated).
    :param percent: the canary's share of the traffic, 1..100 (templated).
    :param uploaded: the ``upload_model`` task's return value (templated; canary only).
    """

    template_fields = (
        *ReviewOpsOperator.template_fields,
        "endpoint_id",
        "stage",
        "percent",
        "uploaded",
        "project",
        "location",
    )
    ui_color = "#e3eefc"

    def __init__(
        self,
        *,
        endpoint_id: str,
        stage: str = "canary",
        percent: int | str = 10,
        uploaded: dict[str, Any] | str | None = None,
        project: str = "",
        location: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint_id = endpoint_id
        self.stage = stage
        self.percent = percent
        self.uploaded = uploaded
        self.project = project
        self.location = location

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from airflow.providers.google.cloud.hooks.vertex_ai.endpoint_service import EndpointServiceHook
        from google.cloud.aiplatform_v1.types import Endpoint

        from reviewops.config import VertexSettings
        from reviewops.gcp.endpoint import EndpointError, plan_rollout
        from reviewops.lineage.record import StepResult

        project, conn_id = vertex_project(self.project or "")
        location = self.location or VertexSettings.from_env().location
        hook = EndpointServiceHook(gcp_conn_id=conn_id)
        endpoint = Endpoint.to_dict(
            hook.get_endpoint(project_id=project, region=location, endpoint=str(self.endpoint_id))
        )
        uploaded = self.uploaded if isinstance(self.uploaded, dict) else {}
        model = str(uploaded.get("model") or "")
        if model and uploaded.get("model_version_id"):
            model = f"{model}@{uploaded['model_version_id']}"
        try:
            plan = plan_rollout(str(self.stage), endpoint, int(self.percent), model=model)
        except (EndpointError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc
        self.log.info("endpoint %s now %s; %s: %s", plan.endpoint_id, endpoint.get("traffic_split"), plan.action, plan)
        metrics = {
            "endpoint_traffic_split": endpoint.get("traffic_split") or {},
            "vertex": {
                "project": project,
                "location": location,
                "gcp_conn_id": conn_id,
                "rollout": plan.as_dict(),
            },
        }
        # Canary: the SavedModel it deploys is an input, so the record's parents reach the export.
        exported = upstream.get("export")
        inputs = [verified(a) for a in exported.outputs_of(ArtifactKind.MODEL)] if exported else []
        return StepResult(subject=f"endpoint-{plan.endpoint_id}", outputs=(), metrics=metrics), inputs


class ChooseEndpointStageOperator(BaseBranchOperator):
    """Follow ``canary`` (export, upload, deploy) when ``stage`` is ``canary``, else
    ``finish`` (undeploy one of the two models)."""

    template_fields = ("stage",)
    ui_color = "#fdf3e1"

    def __init__(self, *, stage: str, canary: str, finish: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stage = stage
        self.canary = canary
        self.finish = finish

    def choose_branch(self, context: Context) -> str:
        from reviewops.gcp.endpoint import STAGES

        if self.stage not in STAGES:
            raise AirflowFailException(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        return self.canary if self.stage == "canary" else self.finish


def _plan_field(plan_task_id: str, *keys: str, text: bool = False) -> str:
    """A template of one field of the plan's record; ``text``: kept a string under native
    rendering (``| tojson`` quotes it), else an all-digit id such as a deployed model's
    would render as an int, which the request's string field refuses."""
    pulled = "ti.xcom_pull(task_ids='" + plan_task_id + "')['metrics']['vertex']" + "".join(f"['{k}']" for k in keys)
    return "{{ " + pulled + (" | tojson" if text else "") + " }}"


def _location_arguments(plan_task_id: str) -> dict[str, Any]:
    return {
        "project_id": _plan_field(plan_task_id, "project"),
        "region": _plan_field(plan_task_id, "location"),
        "gcp_conn_id": _plan_field(plan_task_id, "gcp_conn_id"),
        "endpoint_id": _plan_field(plan_task_id, "rollout", "endpoint_id", text=True),
        # A dict rendered whole: the DAG must render templates as native objects.
        "traffic_split": _plan_field(plan_task_id, "rollout", "traffic_split"),
    }


def canary_tasks(
    *,
    endpoint_id: str,
    percent: str | int = 10,
    model_version: str = "",
    parent_model: str = "",
    image: str = "",
    project: str = "",
    location: str = "",
    data_root: str = "{{ params.data_root }}",
    task_prefix: str = "",
) -> tuple[ExportServingModelOperator, LazyProviderOperator, PlanEndpointRolloutOperator, LazyProviderOperator]:
    """``export_serving_model >> upload_model >> plan_rollout >> deploy_model`` in the
    current DAG, which must render templates as native objects
    (``render_template_as_native_obj=True``: ``model`` and ``traffic_split`` are dicts).
    Every argument may be a template (e.g. ``"{{ params.percent }}"``)."""
    export = ExportServingModelOperator(
        task_id=f"{task_prefix}export_serving_model",
        model_version=model_version,
        parent_model=parent_model,
        image=image,
        project=project,
        location=location,
        data_root=data_root,
    )
    upload_field = "ti.xcom_pull(task_ids='" + export.task_id + "')['metrics']['vertex']['upload']"
    upload = LazyProviderOperator(
        task_id=f"{task_prefix}upload_model",
        operator=UPLOAD_OPERATOR,
        arguments={
            name: "{{ " + upload_field + f"['{name}'] }}}}"
            for name in ("project_id", "region", "gcp_conn_id", "parent_model", "model")
        },
        retries=0,  # a retry uploads another model version
        execution_timeout=OPERATION_TIMEOUT,
    )
    plan = PlanEndpointRolloutOperator(
        task_id=f"{task_prefix}plan_rollout",
        upstream={"export": export.task_id},
        endpoint_id=endpoint_id,
        stage="canary",
        percent=percent,
        uploaded="{{ ti.xcom_pull(task_ids='" + upload.task_id + "') }}",
        project=project,
        location=location,
        data_root=data_root,
    )
    deploy = LazyProviderOperator(
        task_id=f"{task_prefix}deploy_model",
        operator=DEPLOY_OPERATOR,
        arguments={
            **_location_arguments(plan.task_id),
            "deployed_model": _plan_field(plan.task_id, "rollout", "deployed_model"),
        },
        retries=0,  # a retry deploys a second copy
        execution_timeout=OPERATION_TIMEOUT,
    )
    export >> upload >> plan >> deploy
    return export, upload, plan, deploy


def finish_tasks(
    *,
    endpoint_id: str,
    stage: str,
    project: str = "",
    location: str = "",
    data_root: str = "{{ params.data_root }}",
    task_prefix: str = "",
) -> tuple[PlanEndpointRolloutOperator, LazyProviderOperator]:
    """``plan_rollout >> undeploy_model`` for stage ``full`` (the canary takes all the
    traffic, the old model is undeployed) or ``rollback`` (the canary is undeployed, the
    traffic goes back to the old model)."""
    plan = PlanEndpointRolloutOperator(
        task_id=f"{task_prefix}plan_rollout",
        endpoint_id=endpoint_id,
        stage=stage,
        project=project,
        location=location,
        data_root=data_root,
    )
    undeploy = LazyProviderOperator(
        task_id=f"{task_prefix}undeploy_model",
        operator=UNDEPLOY_OPERATOR,
        arguments={
            **_location_arguments(plan.task_id),
            "deployed_model_id": _plan_field(plan.task_id, "rollout", "deployed_model_id", text=True),
        },
    )
    plan >> undeploy
    return plan, undeploy
