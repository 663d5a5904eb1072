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

from reviewops_airflow.base import ReviewOpsOperator, verified

if TYPE_CHECKING:
    from airflow.sdk import Context

    from reviewops.lineage.record import Artifact, LineageRecord, StepResult

StepOutput = tuple["StepResult", list["Artifact"]]


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

        manifest = verified(_output_named(upstream["dataset"], "manifest.json"))
        train = verified(_output_named(upstream["dataset"], "train.jsonl"))
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
        tuning_files = [verified(a) for a in export.outputs_of("tuning_data")]
        manifest = verified(_output_named(upstream["dataset"], "manifest.json"))
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
        from reviewops.config import Settings
        from reviewops.registry.store import Registry

        registry = Registry(Settings.from_env(data_root=self.data_root).data_root)
        champion = registry.champion()
        kind = registry.metadata(champion).get("kind", "keras") if champion else None
        context["ti"].xcom_push(key="champion", value=champion or "")
        self.log.info("champion: %s (%s)", champion or "none", kind or "-")
        return self.vertex if kind == "vertex" else None


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
        from reviewops.gcp.tuning import VERTEX_MODEL_FILE, TuningError, evaluate_tuned_model

        candidate = verified(_output_named(upstream["candidate"], VERTEX_MODEL_FILE))
        eval_file = verified(_output_named(upstream["dataset"], "eval.parquet"))
        predictions_record = upstream["predictions"]
        predictions = [verified(a) for a in predictions_record.outputs_of("predictions")]
        inputs = [candidate, eval_file, *predictions]
        keras_champion, vertex_champion, champion_inputs = self.champion(context)
        try:
            result = evaluate_tuned_model(
                candidate.path.parent,
                eval_file.path.parent,
                upstream["candidate"].subject,
                _predicted_labels(predictions),
                keras_champion,
                predictions_summary=predictions_record.metrics.get("response_summary") or {},
                vertex_champion=vertex_champion,
            )
        except TuningError as exc:
            raise AirflowFailException(str(exc)) from exc
        return result, [*inputs, *champion_inputs]

    def champion(
        self, context: Context
    ) -> tuple[tuple[str, Any] | None, tuple[str, dict[str, str | None]] | None, list[Artifact]]:
        """(Keras champion, Vertex AI champion with its predictions, their input artifacts)."""
        from reviewops.lineage.record import Artifact, LineageRecord
        from reviewops.registry.store import Registry, RegistryError

        registry = Registry(self.settings().data_root)
        champion = registry.champion()
        if champion is None:
            return None, None, []
        try:
            model_file = registry.keras_model(champion)
        except RegistryError:
            pass
        else:
            return (champion, model_file), None, [Artifact.of_file(model_file, "model")]
        value = (
            context["ti"].xcom_pull(task_ids=self.champion_predictions_task) if self.champion_predictions_task else None
        )
        record = LineageRecord.from_dict(value) if value else None
        if record is None or record.metrics.get("registry_version") != champion:
            found = record.metrics.get("registry_version") if record else "none"
            raise AirflowFailException(
                f"the champion {champion} is a Vertex AI model, but the champion's batch predictions of this eval "
                f"split are of {found}: the champion changed during the run. Run reviews_training again"
            )
        predictions = [verified(a) for a in record.outputs_of("predictions")]
        return None, (champion, _predicted_labels(predictions)), predictions

    def effective_params(self) -> dict[str, Any]:
        return {**super().effective_params(), "champion_predictions_task": self.champion_predictions_task}


def _predicted_labels(predictions: list[Artifact]) -> dict[str, str | None]:
    """review_id -> predicted class (None when the model gave no usable answer) from
    the batch predictions' Parquet files."""
    from reviewops.storage.io import read_table

    if not predictions:
        raise AirflowFailException("the batch prediction step recorded no predictions output")
    predicted: dict[str, str | None] = {}
    for artifact in predictions:
        table = read_table(artifact.path, columns=["review_id", "predicted_label"])
        for review_id, label in zip(
            table.column("review_id").to_pylist(), table.column("predicted_label").to_pylist(), strict=True
        ):
            predicted[str(review_id)] = label or None
    return predicted


def _output_named(record: LineageRecord, name: str) -> Artifact:
    for artifact in record.outputs:
        if artifact.uri.endswith("/" + name):
            return artifact
    raise AirflowFailException(f"record {record.record_id} of task {record.task_id} has no output {name}")
