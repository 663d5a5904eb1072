"""The Vertex AI tuning path of the training DAG, around the Google provider's
``GenAISupervisedFineTuningTrainOperator`` (used as it is):

``export_tuning_data`` (:class:`ExportTuningDataOperator`) -> ``tune_model`` (the
provider's operator, rendered from the export's record by :func:`tuning_arguments`) ->
``record_tuned_model`` (:class:`RecordTunedModelOperator`) -> batch prediction of the eval
split -> ``evaluate_tuned`` (:class:`EvaluateTunedModelOperator`); beside them,
``choose_champion_scoring`` (:class:`ChooseChampionScoringOperator`) runs the champion's
batch prediction of the same split when the champion is a Vertex AI model.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk.exceptions import AirflowFailException

from reviewops.contracts import MANIFEST_FILE, VERTEX_MODEL_FILE, ArtifactKind
from reviewops_airflow.base import ReviewOpsOperator, verified

if TYPE_CHECKING:
    from airflow.sdk import Context

    from reviewops.lineage.record import Artifact, LineageRecord, StepResult

StepOutput = tuple["StepResult", list["Artifact"]]

# The Google provider's operator tune_model runs, imported when it runs (see provider.py).
TUNING_OPERATOR = "airflow.providers.google.cloud.operators.gen_ai.GenAISupervisedFineTuningTrainOperator"


def tuning_arguments(export_task_id: str) -> dict[str, Any]:
    """The templated arguments of ``GenAISupervisedFineTuningTrainOperator``, each
    pulled at run time from the tuning request in ``export_task_id``'s lineage record
    (the DAG must render templates as native objects, so ``epoch_count`` stays a number)."""
    request = f"ti.xcom_pull(task_ids='{export_task_id}')['metrics']['tuning']"

    def field(*keys: str) -> str:
        return "{{ " + request + "".join(f"['{key}']" for key in keys) + " }}"

    return {
        "project_id": field("project_id"),
        "location": field("location"),
        "gcp_conn_id": field("gcp_conn_id"),
        "source_model": field("source_model"),
        "training_dataset": {"gcs_uri": field("training_dataset", "gcs_uri")},
        "tuning_job_config": {
            "tuned_model_display_name": field("tuning_job_config", "tuned_model_display_name"),
            "epoch_count": field("tuning_job_config", "epoch_count"),
            "validation_dataset": {"gcs_uri": field("tuning_job_config", "validation_dataset", "gcs_uri")},
        },
    }


class ExportTuningDataOperator(ReviewOpsOperator):
    """Write a dataset version's train split as Vertex AI tuning JSONL (train and
    validation files) under ``<data_root>/vertex/tuning/``; the record carries the prompt
    (ref and sha256) and the tuning request ``tune_model`` is rendered from.

    :param prompt: ``NAME`` or ``NAME@vN`` (templated); empty means the configured one.
    """

    template_fields = (*ReviewOpsOperator.template_fields, "prompt")

    def __init__(self, *, prompt: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.config import VertexSettings
        from reviewops.gcp.prompts import PromptError
        from reviewops.gcp.tuning import TuningDataParams, TuningError, export_tuning_data
        from reviewops.storage.paths import to_uri

        manifest = verified(upstream["dataset"].output_named(MANIFEST_FILE))
        train = verified(upstream["dataset"].output_named("train.jsonl"))
        params = TuningDataParams(
            data_root=self.settings().data_root,
            dataset_dir=to_uri(manifest.path.parent),
            vertex=VertexSettings.from_env(prompt=(self.prompt or "").strip()),
        )
        try:
            return export_tuning_data(params), [manifest, train]
        except (TuningError, PromptError) as exc:  # more data or another setting is needed, not a retry
            raise AirflowFailException(str(exc)) from exc


class RecordTunedModelOperator(ReviewOpsOperator):
    """Describe the tuned model as a registry candidate (``vertex_model.json`` with its
    resource names, base model, prompt, data and tuning job config, and
    ``training.json``), read from the tuning task's XCom.

    :param tuned_model: the tuning task's return value, ``{"tuned_model_name": ...,
        "tuned_model_endpoint_name": ...}`` (templated).
    """

    template_fields = (*ReviewOpsOperator.template_fields, "tuned_model")

    def __init__(self, *, tuned_model: dict[str, Any] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tuned_model = tuned_model

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.gcp.tuning import TunedModelParams, TuningError, record_tuned_model

        export = upstream["tuning_data"]
        tuning_files = [verified(a) for a in export.outputs_of(ArtifactKind.TUNING_DATA)]
        manifest = verified(upstream["dataset"].output_named(MANIFEST_FILE))
        if self.tuned_model is not None and not isinstance(self.tuned_model, dict):
            # The DAG must render templates as native objects, else the XCom dict is a string.
            raise AirflowFailException(
                f"tuned_model rendered as {type(self.tuned_model).__name__}, not the tune_model result dict: "
                "render the DAG's templates as native objects (render_template_as_native_obj=True)"
            )
        tuned = self.tuned_model or {}  # None: tune_model returned nothing (the domain says what to do)
        started = dt.datetime.fromisoformat(export.ended_at)
        params = TunedModelParams(
            data_root=self.settings().data_root,
            tuned_model_name=str(tuned.get("tuned_model_name") or ""),
            endpoint=str(tuned.get("tuned_model_endpoint_name") or ""),
            tuning=export.metrics,
            # From the data export to now: the tuning job, plus any wait for a pool slot.
            tuning_seconds=(dt.datetime.now(dt.UTC) - started).total_seconds(),
        )
        try:
            return record_tuned_model(params), [*tuning_files, manifest]
        except TuningError as exc:
            raise AirflowFailException(str(exc)) from exc


class ChooseChampionScoringOperator(BaseBranchOperator):
    """Follow ``vertex`` (the champion's batch prediction of the eval split) only when
    the champion is a Vertex AI model, and skip it otherwise: a Keras champion predicts
    locally in ``evaluate_tuned``, and with no champion there is nothing to compare. The
    champion it saw is pushed under the XCom key ``champion``, so the batch job scores
    exactly that version even if the champion changes meanwhile."""

    template_fields = ("data_root",)
    ui_color = "#fdf3e1"

    def __init__(self, *, vertex: str | list[str], data_root: str = "{{ params.data_root }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vertex = vertex
        self.data_root = data_root

    def choose_branch(self, context: Context) -> str | list[str] | None:
        from reviewops.config import LocationNotAllowed, Settings
        from reviewops.contracts import ModelKind
        from reviewops.registry.store import Registry

        try:  # a run's data root is checked like every reviewops task's (ReviewOpsOperator.settings)
            data_root = Settings.for_run(data_root=str(self.data_root or "")).data_root
        except LocationNotAllowed as exc:
            raise AirflowFailException(str(exc)) from None
        registry = Registry(data_root)
        champion = registry.champion()
        kind = registry.kind(champion) if champion else None
        context["ti"].xcom_push(key="champion", value=champion or "")
        self.log.info("champion: %s (%s)", champion or "none", kind or "-")
        return self.vertex if kind == ModelKind.VERTEX else None


class EvaluateTunedModelOperator(ReviewOpsOperator):
    """Evaluate the tuned model from its batch predictions of the eval split, beside
    the champion and the majority-class and TF-IDF + logistic regression baselines: the
    same ``evaluation.json`` as ``evaluate_model``, so the same gate decides. A Keras
    champion predicts locally, on the same eval split; a Vertex AI champion is scored
    from its own batch predictions of that split (``champion_predictions_task``, skipped
    when the champion is not a Vertex AI model).

    :param champion_predictions_task: the task that collects the champion's batch
        predictions (its record is used only when the champion is a Vertex AI model).
    """

    def __init__(self, *, champion_predictions_task: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.champion_predictions_task = champion_predictions_task

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.gcp.tuning import TuningError, evaluate_tuned_step
        from reviewops.lineage.record import LineageRecord

        candidate = verified(upstream["candidate"].output_named(VERTEX_MODEL_FILE))
        eval_file = verified(upstream["dataset"].output_named("eval.parquet"))
        scored = upstream["predictions"]
        predictions = [verified(a) for a in scored.outputs_of(ArtifactKind.PREDICTIONS)]
        pulled = (
            context["ti"].xcom_pull(task_ids=self.champion_predictions_task) if self.champion_predictions_task else None
        )
        try:
            result, champion_inputs = evaluate_tuned_step(
                self.settings().data_root,
                upstream["candidate"].subject,
                candidate,
                eval_file,
                scored,
                LineageRecord.from_dict(pulled) if pulled else None,
            )
        except TuningError as exc:
            raise AirflowFailException(str(exc)) from exc
        return result, [candidate, eval_file, *predictions, *champion_inputs]

    def effective_params(self) -> dict[str, Any]:
        return {**super().effective_params(), "champion_predictions_task": self.champion_predictions_task}
