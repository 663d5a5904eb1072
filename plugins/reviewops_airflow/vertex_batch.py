"""Batch prediction with Gemini on Vertex AI, as three tasks any DAG can reuse:

``prepare_batch`` (requests file + resolved job spec) -> ``batch_predict`` (the Google
provider's ``CreateBatchPredictionJobOperator``, unchanged, built when the task runs by
:class:`~reviewops_airflow.provider.LazyProviderOperator`, every argument templated from
``prepare_batch``'s lineage record) -> ``collect_batch`` (the job's output joined back to
every review, written as predictions with a lineage record).

Use :func:`batch_prediction_tasks` rather than the operators one by one: it wires the
templates between the three.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from reviewops.contracts import ArtifactKind
from reviewops_airflow.base import ReviewOpsOperator, verified
from reviewops_airflow.provider import LazyProviderOperator

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context

    from reviewops.lineage.record import Artifact, LineageRecord, StepResult

StepOutput = tuple["StepResult", list["Artifact"]]

# The Google provider's operator batch_predict runs, imported when it runs (see provider.py).
BATCH_PREDICTION_OPERATOR = (
    "airflow.providers.google.cloud.operators.vertex_ai.batch_prediction_job.CreateBatchPredictionJobOperator"
)
# A Gemini batch job may queue for hours (Vertex AI aims at finishing within 24 h).
DEFAULT_JOB_TIMEOUT = dt.timedelta(hours=24)


class MapIndexAwareOperator(ReviewOpsOperator):
    """Pulls upstream records of its own map index when it runs inside a mapped task
    group (e.g. one batch per prompt template), the unmapped record otherwise."""

    def pull_upstream(self, context: Context, task_id: str) -> Any:
        return pull_own_index(context, task_id)


def pull_own_index(context: Context, task_id: str) -> Any:
    """The return value of ``task_id``: of this task's own map index when both are mapped
    in the same task group, else of the unmapped task (map index -1)."""
    ti = context["ti"]
    index = getattr(ti, "map_index", -1)
    if index is not None and index >= 0:
        value = ti.xcom_pull(task_ids=task_id, map_indexes=index)
        if value is not None:
            return value
    return ti.xcom_pull(task_ids=task_id, map_indexes=-1)


def vertex_project(project: str) -> tuple[str, str]:
    """(project, gcp_conn_id) of a Vertex AI task: its own project, else
    ``REVIEWOPS_VERTEX_PROJECT``, else the Connection's, resolved when the task runs."""
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    from reviewops.config import VertexSettings

    settings = VertexSettings.from_env(project=project)
    found = settings.project or GoogleBaseHook(gcp_conn_id=settings.gcp_conn_id).project_id
    if not found:
        raise AirflowFailException(
            f"no Google Cloud project: set the task's project, REVIEWOPS_VERTEX_PROJECT, or the project of the "
            f"Connection {settings.gcp_conn_id!r}"
        )
    return str(found), settings.gcp_conn_id


class PrepareBatchPredictionOperator(MapIndexAwareOperator):
    """Render the input's reviews with a prompt template into ``requests.jsonl`` on the
    (gs://) data root, and resolve the job: project, location, model, source, output
    prefix. The record's ``metrics["vertex"]`` is what ``batch_predict`` templates from.

    :param prompt: ``NAME`` or ``NAME@vN`` (templated); empty: ``REVIEWOPS_VERTEX_PROMPT``,
        else the default template's latest version.
    :param model: a Vertex AI model resource name (templated; e.g. a tuned model from an
        upstream XCom). Empty: the champion when it is of kind ``vertex``, else
        ``VertexSettings.model`` (the base Gemini model).
    :param model_version: a pinned registry version of kind ``vertex`` (templated).
    :param dataset: with no ``source`` upstream: the dataset version whose ``split`` to
        score (templated; empty: the newest).
    :param split: the dataset split (``eval`` or ``train``) when the input is a dataset.
    :param project: Google Cloud project (templated); empty: ``REVIEWOPS_VERTEX_PROJECT``,
        else the project of the ``gcp_conn_id`` Connection (resolved when the task runs).
    :param location: Vertex AI region (templated); empty: ``VertexSettings.location``.

    The input is the single curated week, or the dataset's ``<split>.parquet``, among the
    outputs of the ``source`` upstream record (``upstream={"source": "transform"}``).
    """

    template_fields = (
        *ReviewOpsOperator.template_fields,
        "prompt",
        "model",
        "model_version",
        "dataset",
        "split",
        "project",
        "location",
    )
    ui_color = "#e3eefc"

    def __init__(
        self,
        *,
        prompt: str = "",
        model: str = "",
        model_version: str = "",
        dataset: str = "",
        split: str = "eval",
        project: str = "",
        location: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.model = model
        self.model_version = model_version
        self.dataset = dataset
        self.split = split
        self.project = project
        self.location = location

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.gcp.batch import BatchError, PrepareParams, dataset_input, prepare_batch, select_input
        from reviewops.gcp.prompts import PromptError

        data_root = self.settings().data_root
        try:
            project = self.resolve_project()
            if "source" in upstream:
                source = verified(select_input(upstream["source"].outputs, self.split or "eval"))
            else:
                source = dataset_input(data_root, self.dataset or "", self.split or "eval")
            params = PrepareParams(
                data_root=data_root,
                prompt=self.prompt or "",
                model=self.model or "",
                model_version=self.model_version or "",
                project=project,
                location=self.location or "",
            )
            return prepare_batch(params, source)
        except (BatchError, PromptError) as exc:  # a wrong input or choice does not heal on retry
            raise AirflowFailException(str(exc)) from exc

    def resolve_project(self) -> str:
        """Resolved here, at run time, because the job's deferrable wait needs it spelled out."""
        return vertex_project(self.project or "")[0]


class CollectBatchPredictionOperator(MapIndexAwareOperator):
    """Read the batch job's output (only the ``outputInfo.gcsOutputDirectory`` the job's
    XCom names: champion and challenger jobs share a prefix), join it back to every
    review of the input and write the predictions (a week: the same partition local
    scoring writes; a dataset split: beside the requests).

    :param job_task_id: the ``CreateBatchPredictionJobOperator`` task whose return value
        (the job as a dict) names the output directory.

    Upstream ``{"requests": "<prepare task>"}``: its record names the input, the
    requests file and the job spec.
    """

    ui_color = "#e3eefc"

    def __init__(self, *, job_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_task_id = job_task_id

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.gcp.batch import BatchError, BatchSpec, collect_batch
        from reviewops.gcp.prompts import PromptError

        prepared = upstream["requests"]
        job = pull_own_index(context, self.job_task_id)
        try:
            spec = BatchSpec.from_dict(prepared.metrics["vertex"])
            source = verified(prepared.inputs[0])
            requests = verified(prepared.output(ArtifactKind.VERTEX_REQUESTS))
            return collect_batch(self.settings().data_root, spec, source, requests, job)
        except (BatchError, PromptError) as exc:
            raise AirflowFailException(str(exc)) from exc

    def effective_params(self) -> dict[str, Any]:
        return {**super().effective_params(), "job_task_id": self.job_task_id}


def _spec_field(prepare_task_id: str, name: str) -> str:
    """A template of one field of the prepare task's job spec (its own map index when
    mapped, so the trio also works inside a mapped task group)."""
    return (
        "{{ ti.xcom_pull(task_ids='" + prepare_task_id + "', map_indexes=ti.map_index)"
        "['metrics']['vertex']['" + name + "'] }}"
    )


def batch_prediction_tasks(
    *,
    source_task: str | None = None,
    dataset: str = "",
    split: str = "eval",
    prompt: str = "",
    model: str = "",
    model_version: str = "",
    project: str = "",
    location: str = "",
    data_root: str = "{{ params.data_root }}",
    task_prefix: str = "",
    deferrable: bool | None = None,
    job_timeout: dt.timedelta = DEFAULT_JOB_TIMEOUT,
    outlets: Sequence[Asset] = (),
) -> tuple[PrepareBatchPredictionOperator, LazyProviderOperator, CollectBatchPredictionOperator]:
    """Build ``<prefix>prepare_batch >> <prefix>batch_predict >> <prefix>collect_batch``
    in the current DAG (and task group) and return the three tasks; wire their upstream
    and downstream yourself. Everything per run is templated, nothing is read at parse time.

    Input (one of):

    - ``source_task``: a task whose lineage record outputs one curated week (``transform``)
      or a dataset version (``snapshot_dataset``, whose ``<split>.parquet`` is scored);
    - ``dataset``: a dataset version name (templated; empty: the newest), when no task of
      the DAG produced it.

    Model (``prepare_batch`` resolves it at run time, first that applies): ``model``, a
    Vertex AI model resource name, templated, e.g. a tuned model from an upstream XCom:
    ``"{{ ti.xcom_pull(task_ids='tune_model')['tuned_model_name'] }}"``; ``model_version``,
    a registry version of kind ``vertex``; the champion if of kind ``vertex``;
    ``VertexSettings.model``. ``prompt``: ``NAME``/``NAME@vN``, empty: the configured one.

    ``batch_predict`` runs the provider's ``CreateBatchPredictionJobOperator`` (imported when
    the task runs, not at parse time: :class:`LazyProviderOperator`): ``region``,
    ``project_id``, ``model_name``, ``gcs_source``, ``gcs_destination_prefix``,
    ``job_display_name`` and ``gcp_conn_id`` are templates pulling ``prepare_batch``'s
    ``metrics["vertex"]``; ``deferrable`` None means ``[operators] default_deferrable``;
    ``job_timeout`` is its ``execution_timeout`` (in deferrable mode the wait runs in the
    triggerer and frees the worker slot); it has no retries (a retry would bill a second job).

    Output: ``collect_batch`` returns the lineage record of the predictions: for a week,
    ``predictions/week=…/predictions.parquet`` (the local scoring columns plus
    ``response_status``, ``block_reason``, ``model_safety_categories``, ``citation_count``,
    ``prompt_template``); for a dataset split,
    ``vertex/batch/<ds>/<split>/<prompt ref>/predictions-<model id>.parquet``. Its metrics
    hold ``model_version``, ``prompt_template``, ``prompt_sha256``, ``response_summary``
    and the model's safety counts (:func:`reviewops.monitoring.metrics.model_safety_metrics`).
    To score it against the labels, read the file with
    :func:`reviewops.gcp.prompt_evaluation.evaluate_predictions`.

    Example (evaluate a tuned model on the eval split of the training DAG's dataset)::

        prepare, predict, collect = batch_prediction_tasks(
            source_task="snapshot_dataset",
            model="{{ ti.xcom_pull(task_ids='tune_vertex')['metrics']['tuned_model_name'] }}",
            task_prefix="vertex_eval_",
        )
        snapshot_dataset >> tune_vertex >> prepare

    With ``task_prefix="vertex_eval_"`` the ids are ``vertex_eval_prepare_batch``,
    ``vertex_eval_batch_predict`` and ``vertex_eval_collect_batch``.
    """
    prepare = PrepareBatchPredictionOperator(
        task_id=f"{task_prefix}prepare_batch",
        upstream={"source": source_task} if source_task else None,
        dataset=dataset,
        split=split,
        prompt=prompt,
        model=model,
        model_version=model_version,
        project=project,
        location=location,
        data_root=data_root,
    )
    optional: dict[str, Any] = {} if deferrable is None else {"deferrable": deferrable}
    predict = LazyProviderOperator(
        task_id=f"{task_prefix}batch_predict",
        operator=BATCH_PREDICTION_OPERATOR,
        arguments={
            "region": _spec_field(prepare.task_id, "location"),
            "project_id": _spec_field(prepare.task_id, "project"),
            "model_name": _spec_field(prepare.task_id, "model"),
            "job_display_name": _spec_field(prepare.task_id, "job_display_name"),
            "gcs_source": _spec_field(prepare.task_id, "gcs_source"),
            "gcs_destination_prefix": _spec_field(prepare.task_id, "gcs_destination_prefix"),
            "gcp_conn_id": _spec_field(prepare.task_id, "gcp_conn_id"),
            "instances_format": "jsonl",
            "predictions_format": "jsonl",
            **optional,
        },
        execution_timeout=job_timeout,
        # A retry submits (and bills) a second job over the same requests; the Google
        # client already retries transient API errors, a failed job needs a look.
        retries=0,
    )
    collect = CollectBatchPredictionOperator(
        task_id=f"{task_prefix}collect_batch",
        upstream={"requests": prepare.task_id},
        job_task_id=predict.task_id,
        data_root=data_root,
        outlets=list(outlets),
    )
    prepare >> predict >> collect
    return prepare, predict, collect
