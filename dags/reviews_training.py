"""
### reviews_training

Every Monday at 06:00 UTC (after `reviews_weekly` has curated the week):

1. **snapshot_dataset**: all curated partitions into an immutable, content-addressed
   dataset version (`datasets/ds-…/`): train/eval split by a hash of `review_id`,
   as JSONL, TFRecord (`tf.train.Example`) and Parquet, plus `manifest.json`.
2. **plan_trials**: the search space (Param `search_space`) expanded into at most
   `max_trials` trials.
3. **train_trial** (mapped, one per trial, labelled in the UI): fit on the train split
   minus a validation carve (by a hash of `review_id`), score on the carve.
4. **select_best**: the trial with the best validation macro-F1.
5. **train_model**: the best parameters retrained on the whole train split (or, with
   `warm_start`, the champion fine-tuned on the newest dataset).
6. **evaluate_model**: the challenger and the champion on the same eval split, beside the
   majority-class and TF-IDF + logistic regression baselines.
7. **gate**: promote only if the challenger beats the champion's macro-F1 by
   `min_macro_f1_gain` and no class loses more than `max_recall_drop` recall; with no
   champion, it must beat both baselines. A rejection is a decision: the run succeeds,
   the reasons are in the task log and record.
8. **register_model**: an immutable registry version (`models/m-…/` with its model card);
   it becomes champion only when the gate said so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param

from reviewops.config import DEFAULT_MAX_TRIALS, DEFAULT_SEARCH_SPACE
from reviewops_airflow.assets import DATASET_VERSIONS, MODEL_VERSIONS
from reviewops_airflow.operators import (
    EvaluateModelOperator,
    GateModelOperator,
    PlanTrialsOperator,
    RegisterModelOperator,
    SelectBestTrialOperator,
    SnapshotDatasetOperator,
    TrainModelOperator,
    TrainTrialOperator,
)
from reviewops_airflow.params import location_params

with DAG(
    dag_id="reviews_training",
    doc_md=__doc__,
    # Training snapshots everything curated so far: it needs a time, not a data interval.
    schedule=CronTriggerTimetable("0 6 * * 1", timezone="UTC"),
    start_date=datetime(2008, 1, 7, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["reviewops", "training"],
    default_args={"owner": "reviewops", "retries": 1, "retry_delay": timedelta(minutes=2)},
    params={
        "eval_fraction": Param(0.2, type="number", minimum=0.05, maximum=0.5, title="Eval fraction"),
        "search_space": Param(
            DEFAULT_SEARCH_SPACE,
            type="object",
            title="Search space",
            description="Hyperparameter -> list of values to try (fields of reviewops.training.TrainParams).",
        ),
        "max_trials": Param(DEFAULT_MAX_TRIALS, type="integer", minimum=1, maximum=64, title="Tuning budget (trials)"),
        "hyperparameters": Param(
            {},
            type="object",
            title="Fixed hyperparameters",
            description='Applied to every trial and the final model, e.g. {"epochs": 5} for a quick run.',
        ),
        "warm_start": Param(False, type="boolean", title="Fine-tune the champion instead of training from scratch"),
        "min_macro_f1_gain": Param(0.01, type="number", title="Gate: macro-F1 gain over the champion"),
        "max_recall_drop": Param(0.05, type="number", title="Gate: largest recall loss allowed for any class"),
        **location_params(source=False),  # training reads curated data, not the source
    },
    render_template_as_native_obj=True,
) as dag:
    snapshot_dataset = SnapshotDatasetOperator(
        task_id="snapshot_dataset", eval_fraction="{{ params.eval_fraction }}", outlets=[DATASET_VERSIONS]
    )
    plan_trials = PlanTrialsOperator(
        task_id="plan_trials",
        upstream={"dataset": "snapshot_dataset"},
        search_space="{{ params.search_space }}",
        max_trials="{{ params.max_trials }}",
        hyperparameters="{{ params.hyperparameters }}",
    )
    train_trial = TrainTrialOperator.partial(
        task_id="train_trial",
        upstream={"dataset": "snapshot_dataset"},
        map_index_template="{{ trial_label }}",
        execution_timeout=timedelta(minutes=30),
    ).expand(trial=plan_trials.output)
    select_best = SelectBestTrialOperator(task_id="select_best", upstream_many={"trials": "train_trial"})
    train_model = TrainModelOperator(
        task_id="train_model",
        upstream={"dataset": "snapshot_dataset", "best": "select_best"},
        hyperparameters="{{ params.hyperparameters }}",
        warm_start="{{ params.warm_start }}",
        execution_timeout=timedelta(hours=1),
    )
    evaluate_model = EvaluateModelOperator(
        task_id="evaluate_model",
        upstream={"candidate": "train_model", "dataset": "snapshot_dataset"},
    )
    gate = GateModelOperator(
        task_id="gate",
        upstream={"evaluation": "evaluate_model"},
        min_macro_f1_gain="{{ params.min_macro_f1_gain }}",
        max_recall_drop="{{ params.max_recall_drop }}",
    )
    register_model = RegisterModelOperator(
        task_id="register_model",
        upstream={
            "candidate": "train_model",
            "evaluation": "evaluate_model",
            "decision": "gate",
            "dataset": "snapshot_dataset",
        },
        outlets=[MODEL_VERSIONS],
    )

    snapshot_dataset >> plan_trials >> train_trial >> select_best >> train_model >> evaluate_model >> gate
    gate >> register_model
