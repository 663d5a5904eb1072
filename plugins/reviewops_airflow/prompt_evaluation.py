"""Prompt evaluation tasks: plan the templates, batch-predict and score each (a mapped
task group, one instance per template), select the best."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import task_group
from airflow.sdk.exceptions import AirflowFailException

from reviewops.contracts import ArtifactKind
from reviewops_airflow.base import ReviewOpsOperator, verified
from reviewops_airflow.vertex_batch import MapIndexAwareOperator, batch_prediction_tasks

if TYPE_CHECKING:
    from airflow.sdk import Context

    from reviewops.lineage.record import Artifact, LineageRecord, StepResult

StepOutput = tuple["StepResult", list["Artifact"]]

PLAN_TASK = "plan_prompts"
DATASET_OF_PLAN = "{{ ti.xcom_pull(task_ids='" + PLAN_TASK + "', key='lineage', map_indexes=-1)['subject'] }}"


def _as_list(value: Any) -> list[str]:
    """A rendered list Param: a list, or its text (``['a', 'b']``, JSON, or words)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        import ast

        text = value.strip()
        parsed = ast.literal_eval(text) if text.startswith("[") else text.replace(",", " ").split()
        return [str(p) for p in parsed]
    return [str(p) for p in value]


class PlanPromptsOperator(ReviewOpsOperator):
    """Fix the dataset version (empty: the newest) and the templates (empty: every version
    of the default prompt). Returns the template refs Airflow maps over; the lineage record
    goes under the XCom key ``lineage`` (its subject: the dataset version)."""

    template_fields = (*ReviewOpsOperator.template_fields, "dataset", "prompts")

    def __init__(self, *, dataset: str = "", prompts: list[str] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.prompts = prompts

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.gcp.batch import BatchError
        from reviewops.gcp.prompt_evaluation import PlanParams, PromptEvaluationError, plan_prompts
        from reviewops.gcp.prompts import PromptError

        params = PlanParams(
            data_root=self.settings().data_root, dataset=self.dataset or "", prompts=tuple(_as_list(self.prompts))
        )
        try:
            return plan_prompts(params)
        except (PromptError, BatchError, PromptEvaluationError) as exc:
            raise AirflowFailException(str(exc)) from exc

    def return_value(self, context: Context, record: dict[str, Any]) -> Any:
        context["ti"].xcom_push(key="lineage", value=record)
        return record["metrics"]["prompts"]


class ScorePromptOperator(MapIndexAwareOperator):
    """Score one template's predictions of the eval split with our metrics."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.gcp.prompt_evaluation import score_prompt

        collected = upstream["predictions"]
        predictions = verified(collected.output(ArtifactKind.PREDICTIONS))
        return score_prompt(self.settings().data_root, predictions, collected.metrics)


class SelectPromptOperator(ReviewOpsOperator):
    """Name the best template (macro-F1, then fewer blocked, then newer) and write the
    report; upstream_many ``{"scores": "<group>.score_prompt"}``."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.gcp.prompt_evaluation import PromptEvaluationError, select_prompt

        scored = self.many["scores"]
        try:
            result = select_prompt(self.settings().data_root, [r.metrics for r in scored])
        except PromptEvaluationError as exc:
            raise AirflowFailException(str(exc)) from exc
        return result, [verified(r.output(ArtifactKind.PROMPT_EVALUATION)) for r in scored]


@task_group(group_id="evaluate_prompt")
def evaluate_prompt(prompt: str, model: str = "{{ params.model }}") -> None:
    """One template: its eval-split batch prediction on Vertex AI, then our metrics."""
    _, _, collect = batch_prediction_tasks(dataset=DATASET_OF_PLAN, prompt=prompt, model=model)
    score = ScorePromptOperator(task_id="score_prompt", upstream={"predictions": collect.task_id})
    collect >> score
