"""
### reviews_initial_load

Load a whole history of reviews in one run: the same **ingest -> validate -> transform**
as `reviews_weekly`, over every week from `window_start` to `window_end` (by default,
all the weeks the source has reviews for, up to the current week). The bounds must be
Mondays: only whole weeks are written, one curated partition per week, replacing what
was there. Duplicates are found across the whole window, so a review repeated in a later
week is set aside here but kept by a `reviews_weekly` run of that week alone.

Triggered by hand (or by `make demo`); it has no schedule.
"""

from __future__ import annotations

from airflow.sdk import DAG

from reviewops_airflow.assets import CURATED_REVIEWS
from reviewops_airflow.dag_defaults import START_DATE, task_defaults
from reviewops_airflow.operators import IngestReviewsOperator, TransformReviewsOperator, ValidateReviewsOperator
from reviewops_airflow.params import data_root_param, date_param, source_param

with DAG(
    dag_id="reviews_initial_load",
    doc_md=__doc__,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["reviewops", "ingest"],
    default_args=task_defaults(retries=2),
    params={
        "window_start": date_param("First day to load. Empty: the source's first week.", "Window start"),
        "window_end": date_param("Day after the last day to load. Empty: the source's last week.", "Window end"),
        "source": source_param(),
        "data_root": data_root_param(),
    },
    render_template_as_native_obj=True,
) as dag:
    ingest = IngestReviewsOperator(
        task_id="ingest",
        window_start="{{ params.window_start }}",
        window_end="{{ params.window_end }}",
        whole_source=True,
    )
    validate = ValidateReviewsOperator(task_id="validate", upstream={"raw": "ingest"})
    transform = TransformReviewsOperator(
        task_id="transform", upstream={"validated": "validate"}, outlets=[CURATED_REVIEWS]
    )

    ingest >> validate >> transform
