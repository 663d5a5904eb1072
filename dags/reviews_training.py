"""
### reviews_training

Every Monday at 06:00 UTC (after `reviews_weekly` has curated the week):

1. **snapshot_dataset**: all curated partitions into an immutable, content-addressed
   dataset version (`datasets/ds-…/`): train/eval split by a hash of `review_id`,
   as JSONL, TFRecord (`tf.train.Example`) and Parquet, plus `manifest.json`.
2. **train_model**: a Keras text classifier (TF-IDF vectoriser inside the model, raw
   text in, class probabilities out) trained from the TFRecord split with `tf.data`.
3. **evaluate_model**: accuracy, macro-F1, per-class precision/recall and the confusion
   matrix on the eval split, beside the always-majority-class baseline.
4. **register_model**: an immutable registry version (`models/m-…/`); the first
   registered version becomes the champion that `reviews_weekly` scores with.

Hyperparameters can be overridden per run with the `hyperparameters` Param.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param

from reviewops_airflow.assets import DATASET_VERSIONS, MODEL_VERSIONS
from reviewops_airflow.operators import (
    EvaluateModelOperator,
    RegisterModelOperator,
    SnapshotDatasetOperator,
    TrainModelOperator,
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
        "hyperparameters": Param(
            {},
            type="object",
            title="Hyperparameters",
            description='Overrides of reviewops.training.TrainParams, e.g. {"epochs": 10}.',
        ),
        **location_params(),
    },
    render_template_as_native_obj=True,
) as dag:
    snapshot_dataset = SnapshotDatasetOperator(
        task_id="snapshot_dataset", eval_fraction="{{ params.eval_fraction }}", outlets=[DATASET_VERSIONS]
    )
    train_model = TrainModelOperator(
        task_id="train_model",
        upstream={"dataset": "snapshot_dataset"},
        hyperparameters="{{ params.hyperparameters }}",
        execution_timeout=timedelta(hours=1),
    )
    evaluate_model = EvaluateModelOperator(
        task_id="evaluate_model",
        upstream={"candidate": "train_model", "dataset": "snapshot_dataset"},
    )
    register_model = RegisterModelOperator(
        task_id="register_model",
        upstream={"candidate": "train_model", "evaluation": "evaluate_model", "dataset": "snapshot_dataset"},
        outlets=[MODEL_VERSIONS],
    )

    snapshot_dataset >> train_model >> evaluate_model >> register_model
