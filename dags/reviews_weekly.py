"""
### reviews_weekly

Every Monday at 00:00 UTC, process the calendar week that just ended
(`[Monday 00:00 UTC, next Monday)`):

1. **ingest**: the week's rows of the review source, kept exactly as read (`raw/week=…`).
2. **validate**: each row valid, or quarantined with its reason (`quarantine/week=…`).
3. **transform**: HTML entities decoded, scrape quotes and whitespace stripped, repeated
   reviews set aside; the curated week is written to `curated/week=…/reviews.parquet`.
4. **choose_scoring_backend**: Param `scoring_backend` (else `$REVIEWOPS_SCORING_BACKEND`,
   else `local`) picks one of two paths; the other is skipped.
   - local, **score**: the week scored by the champion model (or conf `model_version`) into
     `predictions/week=…/predictions.parquet`, with each review's safety flags.
   - vertex, **prepare_batch** → **batch_predict** → **collect_batch**: the week rendered
     with a versioned prompt template (Param `prompt`) into `requests.jsonl` on the gs://
     data root, one Vertex AI batch prediction job (Gemini: the champion when it is a
     Vertex-tuned model, else the configured base model), and its output joined back to
     every review into the same predictions partition, with the response status, the
     model's safety categories, citations and the prompt template (nothing dropped: a
     review with no answer has status `missing`).
5. **monitor**: volume, throughput and batch latency, predicted class mix, drift against
   the model's training data, accuracy against the ratings that arrived, slices by
   product and condition, unknown words, safety flags: `monitoring/week=…/metrics.json`
   and `report.html`.
6. **monitor_online**: the week's online traffic from the request log of `reviewops serve`
   (volume, latency p50/p95, class mix, errors, by model version and roll-out stage):
   `monitoring/week=…/online.json`, beside the batch report (zero rows when nothing was served).
7. **check_week**: fails (red in the UI, no retry) when a threshold is breached, with a
   one-line message per metric; the predictions stay written. An alert goes to the
   webhook of the `reviewops_alerts` Connection when it exists.

Every output is keyed by the week, so re-running a week (manually, by backfill, or by
clearing) replaces its outputs. Manual run for one week: conf `{"week": "2017-11-27"}`
(a Monday). Each task returns its lineage record (XCom `return_value`).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable

from reviewops_airflow.assets import CURATED_REVIEWS, PREDICTIONS
from reviewops_airflow.backends import ChooseBackendOperator, backend_param
from reviewops_airflow.dag_defaults import START_DATE, task_defaults
from reviewops_airflow.notifiers import ALERT_CONN_ID, WebhookAlertNotifier
from reviewops_airflow.operators import (
    CheckWeekOperator,
    IngestReviewsOperator,
    MonitorWeekOperator,
    ScoreReviewsOperator,
    TransformReviewsOperator,
    ValidateReviewsOperator,
)
from reviewops_airflow.params import (
    data_root_param,
    date_param,
    model_version_param,
    prompt_param,
    source_param,
    thresholds_param,
)
from reviewops_airflow.rollout import SummariseOnlineTrafficOperator
from reviewops_airflow.vertex_batch import batch_prediction_tasks

with DAG(
    dag_id="reviews_weekly",
    doc_md=__doc__,
    # A data-interval timetable: a bare cron string would give a zero-length window.
    schedule=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,  # history is loaded by reviews_initial_load or an explicit backfill
    max_active_runs=4,
    tags=["reviewops", "weekly", "scoring"],
    default_args=task_defaults(retries=2),
    params={
        "week": date_param("Monday of the week to process. Empty: the run's data interval.", "Week (Monday)"),
        "thresholds": thresholds_param(),
        "model_version": model_version_param(
            "Pin a registered model version (a Keras one for the local backend, a Vertex-tuned one "
            "for vertex). Empty: the champion (vertex: the base Gemini model unless the champion is Vertex-tuned).",
        ),
        "scoring_backend": backend_param("scoring"),
        "prompt": prompt_param("Vertex scoring backend only"),
        "source": source_param(),
        "data_root": data_root_param(),
    },
    render_template_as_native_obj=True,
) as dag:
    ingest = IngestReviewsOperator(task_id="ingest", week="{{ params.week }}")
    validate = ValidateReviewsOperator(task_id="validate", upstream={"raw": "ingest"})
    transform = TransformReviewsOperator(
        task_id="transform", upstream={"validated": "validate"}, outlets=[CURATED_REVIEWS]
    )
    choose_scoring_backend = ChooseBackendOperator(
        task_id="choose_scoring_backend",
        kind="scoring",
        backend="{{ params.scoring_backend }}",
        local="score",
        vertex="prepare_batch",
    )
    score = ScoreReviewsOperator(
        task_id="score",
        upstream={"curated": "transform"},
        model_version="{{ params.model_version }}",
        execution_timeout=timedelta(hours=2),
        outlets=[PREDICTIONS],
    )
    prepare_batch, batch_predict, collect_batch = batch_prediction_tasks(
        source_task="transform",
        prompt="{{ params.prompt }}",
        model_version="{{ params.model_version }}",
        outlets=[PREDICTIONS],
    )
    monitor = MonitorWeekOperator(
        task_id="monitor",
        upstream={"predictions": ("score", "collect_batch")},
        thresholds="{{ params.thresholds }}",
        trigger_rule="none_failed_min_one_success",  # after whichever backend ran
    )
    monitor_online = SummariseOnlineTrafficOperator(task_id="monitor_online", upstream={"monitoring": "monitor"})
    check_week = CheckWeekOperator(
        task_id="check_week",
        upstream={"monitoring": "monitor"},
        on_failure_callback=WebhookAlertNotifier(conn_id=ALERT_CONN_ID),
    )

    ingest >> validate >> transform >> choose_scoring_backend >> [score, prepare_batch]
    score >> monitor
    collect_batch >> monitor >> [check_week, monitor_online]
