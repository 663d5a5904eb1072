"""
### reviews_vertex_endpoint

Manual: put the registry's champion on a Vertex AI endpoint, one stage a run, through the
Google provider's operators (docs/serving.md, "The same champion on a Vertex AI endpoint").
Nothing here touches `reviewops serve`; the endpoint is a second way to serve the same model.

- **canary** (`percent`, default 10): `export_serving_model` (the champion's Keras file,
  sha256 checked, as a TF SavedModel under `<data_root>/vertex/serving/<version>/`) ->
  `upload_model` (`UploadModelOperator`, a prebuilt TF prediction container; `parent_model`
  makes it a new version of that model) -> `plan_rollout` (reads the endpoint) ->
  `deploy_model` (`DeployModelOperator`, `traffic_split` `{"0": percent, <serving id>: 100 - percent}`;
  on an empty endpoint, or with `percent` 100, the new model takes all).
- **full**: the canary takes 100% and the model it was compared with is undeployed.
- **rollback**: the canary is undeployed and the traffic goes back to the other model.

The endpoint must exist (`CreateEndpointOperator` once, or the console): Param
`endpoint_id`. Project: `REVIEWOPS_VERTEX_PROJECT`, else the `google_cloud_default`
Connection's. No retries on upload and deploy: a retry would upload or deploy twice.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param

from reviewops_airflow.dag_defaults import START_DATE, task_defaults
from reviewops_airflow.params import data_root_param, model_version_param
from reviewops_airflow.vertex_endpoint import ChooseEndpointStageOperator, canary_tasks, finish_tasks

with DAG(
    dag_id="reviews_vertex_endpoint",
    doc_md=__doc__,
    schedule=None,  # a deployment is a decision: run it by hand, stage by stage
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # two runs would plan against the same endpoint at once
    tags=["reviewops", "serving", "vertex"],
    default_args=task_defaults(retries=1),
    dagrun_timeout=timedelta(hours=2),
    params={
        "stage": Param("canary", type="string", enum=["canary", "full", "rollback"], title="Stage"),
        "percent": Param(10, type="integer", minimum=1, maximum=100, title="Canary percent"),
        "endpoint_id": Param("", type="string", pattern=r"^[A-Za-z0-9_-]*$", title="Vertex AI endpoint id"),
        "parent_model": Param(
            "", type="string", pattern=r"^[A-Za-z0-9_-]*$", title="Upload as a new version of this model id"
        ),
        "model_version": model_version_param("Deploy this registered Keras version instead of the champion."),
        "data_root": data_root_param(),
    },
    render_template_as_native_obj=True,  # model, deployed_model and traffic_split are dicts
) as dag:
    export_serving_model, upload_model, plan_rollout, deploy_model = canary_tasks(
        endpoint_id="{{ params.endpoint_id }}",
        percent="{{ params.percent }}",
        model_version="{{ params.model_version }}",
        parent_model="{{ params.parent_model }}",
    )
    finish_plan_rollout, finish_undeploy_model = finish_tasks(
        endpoint_id="{{ params.endpoint_id }}", stage="{{ params.stage }}", task_prefix="finish_"
    )
    choose_stage = ChooseEndpointStageOperator(
        task_id="choose_stage",
        stage="{{ params.stage }}",
        canary=export_serving_model.task_id,
        finish=finish_plan_rollout.task_id,
    )
    choose_stage >> [export_serving_model, finish_plan_rollout]
