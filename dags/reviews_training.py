"""
### reviews_training

Every Monday at 06:00 UTC (after `reviews_weekly` has curated the week). After the
snapshot, `choose_training_backend` follows one of two paths (Param `training_backend`,
else `$REVIEWOPS_TRAINING_BACKEND`, else `local`); both end in the same gate and registry.

1. **snapshot_dataset**: all curated partitions (or those of the weeks before Param
   `dataset_until`) into an immutable, content-addressed
   dataset version (`datasets/ds-…/`): train/eval split by a hash of `review_id`,
   as JSONL, TFRecord (`tf.train.Example`) and Parquet, plus `manifest.json`.
2. **plan_trials**: the search space (Param `search_space`) expanded into at most
   `max_trials` trials.
3. **train_trial** (mapped, one per trial, labelled in the UI): stratified k-fold
   cross-validation on the train split (Param `folds`, 5): every train review predicted
   by a model that never saw it; the neutral class's offset and a temperature are chosen
   on those out-of-fold predictions.
4. **select_best**: the trial with the best out-of-fold macro-F1, compared with the
   standard baseline (TF-IDF 1-2-grams, `min_df=2`, sublinear tf, class-balanced logistic
   regression) on the same folds, with bootstrap intervals.
5. **train_model**: the best parameters retrained on the whole train split, the offsets
   and temperature baked into its output layer (calibrated probabilities); or, with
   `warm_start`, the champion fine-tuned on the newest dataset.
6. **evaluate_model**: the challenger, the champion and the majority-class and standard
   baselines on the same eval split, with bootstrap intervals, paired differences and
   the calibration error.

Vertex AI path (a Gemini model tuned on the same train split; needs a `gs://` data root):

2. **export_tuning_data**: the train split as Vertex AI tuning JSONL with the prompt
   template (Param `prompt`), plus a validation file carved out of the train split.
3. **tune_model**: the Google provider's `GenAISupervisedFineTuningTrainOperator` (built when
   the task runs, so parsing this file imports no Google client), in the
   `vertex_tuning` pool (it holds a worker slot while it polls), with an execution timeout
   and no retry (a retry would start, and bill, a second tuning job).
4. **record_tuned_model**: the tuned model's resource names as a registry candidate.
5. **vertex_eval_prepare_batch / vertex_eval_batch_predict / vertex_eval_collect_batch**:
   the eval split scored by the tuned model with Vertex AI batch prediction.
6. **evaluate_tuned**: the same evaluation as `evaluate_model` (a Keras champion predicts
   locally on the same eval split). When the champion is itself a Vertex AI model,
   **choose_champion_scoring** runs its batch prediction of the same eval split
   (`vertex_champion_*`, in parallel with the tuning job); otherwise those are skipped.

Both paths:

7. **gate**: promote only if the challenger is not worse than any baseline beyond the
   paired bootstrap interval, beats the champion's macro-F1 by `min_macro_f1_gain` and
   no class loses more than `max_recall_drop` recall (the same rule for a tuned Gemini
   model, its unanswered reviews counted as misses). A rejection is a decision: the run
   succeeds, the reasons are in the task log and record.
8. **register_model**: an immutable registry version (`models/m-…/` with its model card);
   it becomes champion only when the gate said so.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param

from reviewops.config import DEFAULT_FOLDS, MAX_FOLDS, MIN_FOLDS, VERTEX_TUNING_POOL
from reviewops_airflow.assets import DATASET_VERSIONS, MODEL_VERSIONS
from reviewops_airflow.backends import ChooseBackendOperator, backend_param
from reviewops_airflow.dag_defaults import START_DATE, task_defaults
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
from reviewops_airflow.params import (
    data_root_param,
    date_param,
    gate_margin_param,
    hyperparameters_param,
    max_trials_param,
    prompt_param,
    search_space_param,
)
from reviewops_airflow.provider import LazyProviderOperator
from reviewops_airflow.vertex_batch import batch_prediction_tasks
from reviewops_airflow.vertex_tuning import (
    TUNING_OPERATOR,
    ChooseChampionScoringOperator,
    EvaluateTunedModelOperator,
    ExportTuningDataOperator,
    RecordTunedModelOperator,
    tuning_arguments,
)

with DAG(
    dag_id="reviews_training",
    doc_md=__doc__,
    # Training snapshots everything curated so far: it needs a time, not a data interval.
    schedule=CronTriggerTimetable("0 6 * * 1", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["reviewops", "training"],
    default_args=task_defaults(retries=1, retry_delay=timedelta(minutes=2)),
    params={
        "eval_fraction": Param(0.2, type="number", minimum=0.05, maximum=0.5, title="Eval fraction"),
        "dataset_until": date_param(
            "Only the curated weeks that start before this day (YYYY-MM-DD). Empty: every curated week.",
            "Dataset: weeks before",
        ),
        "search_space": search_space_param(),
        "max_trials": max_trials_param(),
        "folds": Param(
            DEFAULT_FOLDS, type="integer", minimum=MIN_FOLDS, maximum=MAX_FOLDS, title="Cross-validation folds"
        ),
        "hyperparameters": hyperparameters_param(),
        "warm_start": Param(False, type="boolean", title="Fine-tune the champion instead of training from scratch"),
        "min_macro_f1_gain": gate_margin_param(0.01, "Gate: macro-F1 gain over the champion"),
        "max_recall_drop": gate_margin_param(0.05, "Gate: largest recall loss allowed for any class"),
        "training_backend": backend_param("training"),
        "prompt": prompt_param("Vertex training backend only: tuning and evaluating the Gemini model"),
        "data_root": data_root_param(),  # no source: training reads curated data only
    },
    render_template_as_native_obj=True,
) as dag:
    snapshot_dataset = SnapshotDatasetOperator(
        task_id="snapshot_dataset",
        eval_fraction="{{ params.eval_fraction }}",
        until_week="{{ params.dataset_until }}",
        outlets=[DATASET_VERSIONS],
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
        folds="{{ params.folds }}",
        map_index_template="{{ trial_label }}",
        execution_timeout=timedelta(minutes=30),
    ).expand(trial=plan_trials.output)
    select_best = SelectBestTrialOperator(
        task_id="select_best", upstream={"dataset": "snapshot_dataset"}, upstream_many={"trials": "train_trial"}
    )
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
    choose_training_backend = ChooseBackendOperator(
        task_id="choose_training_backend",
        kind="training",
        local="plan_trials",
        vertex="export_tuning_data",
        backend="{{ params.training_backend }}",
    )
    export_tuning_data = ExportTuningDataOperator(
        task_id="export_tuning_data", upstream={"dataset": "snapshot_dataset"}, prompt="{{ params.prompt }}"
    )
    tune_model = LazyProviderOperator(
        task_id="tune_model",
        operator=TUNING_OPERATOR,
        arguments=tuning_arguments("export_tuning_data"),
        pool=VERTEX_TUNING_POOL,
        execution_timeout=timedelta(hours=4),
        retries=0,
    )
    record_tuned_model = RecordTunedModelOperator(
        task_id="record_tuned_model",
        upstream={"tuning_data": "export_tuning_data", "dataset": "snapshot_dataset"},
        tuned_model="{{ ti.xcom_pull(task_ids='tune_model') }}",
    )
    vertex_eval_prepare_batch, vertex_eval_batch_predict, vertex_eval_collect_batch = batch_prediction_tasks(
        source_task="snapshot_dataset",
        split="eval",
        model="{{ ti.xcom_pull(task_ids='tune_model')['tuned_model_name'] }}",
        prompt="{{ ti.xcom_pull(task_ids='export_tuning_data')['metrics']['prompt_template'] }}",
        task_prefix="vertex_eval_",
    )
    choose_champion_scoring = ChooseChampionScoringOperator(
        task_id="choose_champion_scoring", vertex="vertex_champion_prepare_batch"
    )
    vertex_champion_prepare_batch, vertex_champion_batch_predict, vertex_champion_collect_batch = (
        batch_prediction_tasks(
            source_task="snapshot_dataset",
            split="eval",
            model_version="{{ ti.xcom_pull(task_ids='choose_champion_scoring', key='champion') }}",
            task_prefix="vertex_champion_",
        )
    )
    evaluate_tuned = EvaluateTunedModelOperator(
        task_id="evaluate_tuned",
        upstream={
            "candidate": "record_tuned_model",
            "dataset": "snapshot_dataset",
            "predictions": "vertex_eval_collect_batch",
        },
        champion_predictions_task="vertex_champion_collect_batch",
        trigger_rule="none_failed_min_one_success",  # the champion's batch is skipped unless it is a Vertex model
    )
    gate = GateModelOperator(
        task_id="gate",
        upstream={"evaluation": ("evaluate_model", "evaluate_tuned")},
        min_macro_f1_gain="{{ params.min_macro_f1_gain }}",
        max_recall_drop="{{ params.max_recall_drop }}",
        trigger_rule="none_failed_min_one_success",
    )
    register_model = RegisterModelOperator(
        task_id="register_model",
        upstream={
            "candidate": ("train_model", "record_tuned_model"),
            "evaluation": ("evaluate_model", "evaluate_tuned"),
            "decision": "gate",
            "dataset": "snapshot_dataset",
        },
        outlets=[MODEL_VERSIONS],
    )

    snapshot_dataset >> choose_training_backend >> [plan_trials, export_tuning_data]
    plan_trials >> train_trial >> select_best >> train_model >> evaluate_model >> gate
    export_tuning_data >> tune_model >> record_tuned_model >> vertex_eval_prepare_batch
    export_tuning_data >> choose_champion_scoring >> vertex_champion_prepare_batch
    [vertex_eval_collect_batch, vertex_champion_collect_batch] >> evaluate_tuned >> gate
    gate >> register_model
