"""
### reviews_prompt_evaluation

Compare prompt templates on the eval split of a dataset version, with one Gemini model
on Vertex AI, and name the best. Manual only (each run is one Vertex AI batch job per
template: see the cost notes in the README).

1. **plan_prompts**: fixes the dataset version (Param `dataset`, empty: the newest) and
   the templates (Param `prompts`, empty: every version of the default prompt); a
   template that does not exist fails here, before any job.
2. **evaluate_prompt** (one mapped instance per template):
   **prepare_batch** → **batch_predict** (the provider's `CreateBatchPredictionJobOperator`)
   → **collect_batch** → **score_prompt**: our metrics (accuracy, macro-F1, per-class
   recall, blocked/unparseable counts; a review the model did not classify counts as
   wrong) in the record and in `prompt_evaluation/<dataset>/<model>/<prompt>.json`.
3. **select_prompt**: the best by macro-F1 (ties: fewer blocked, then the newer version),
   written to `prompt_evaluation/<dataset>/<model>/report.json`.

Param `model`: a Vertex AI model resource name; empty: the champion when it is a
Vertex-tuned model, else the configured base model. Needs a gs:// data root.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from reviewops_airflow import prompt_evaluation
from reviewops_airflow.dag_defaults import START_DATE, task_defaults
from reviewops_airflow.params import MAX_PROMPTS, PROMPT_PATTERN, PROMPT_TEMPLATES, data_root_param, dataset_param
from reviewops_airflow.prompt_evaluation import PLAN_TASK, PlanPromptsOperator, SelectPromptOperator

with DAG(
    dag_id="reviews_prompt_evaluation",
    doc_md=__doc__,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["reviewops", "vertex", "prompts"],
    default_args=task_defaults(retries=1),
    params={
        "dataset": dataset_param("ds-… whose eval split to use. Empty: the newest."),
        "prompts": Param(
            [],
            type="array",
            items={"type": "string", "pattern": PROMPT_PATTERN},
            maxItems=MAX_PROMPTS,  # one paid batch job each
            title="Prompt templates",
            description=f"NAME or NAME@vN under {PROMPT_TEMPLATES}. Empty: every version of the default prompt.",
        ),
        "model": Param(
            "",
            type="string",
            title="Vertex AI model",
            description="A model resource name. Empty: the champion if it is Vertex-tuned, else the base Gemini model.",
        ),
        "data_root": data_root_param(),  # no source: the eval split of a dataset version
    },
    render_template_as_native_obj=True,
) as dag:
    plan_prompts = PlanPromptsOperator(
        task_id=PLAN_TASK, dataset="{{ params.dataset }}", prompts="{{ params.prompts }}"
    )
    evaluate_prompt = prompt_evaluation.evaluate_prompt.expand(prompt=plan_prompts.output)
    select_prompt = SelectPromptOperator(
        task_id="select_prompt", upstream_many={"scores": "evaluate_prompt.score_prompt"}
    )

    evaluate_prompt >> select_prompt
