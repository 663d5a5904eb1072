"""
### noop_weekly

The shape of `reviews_weekly` with nothing in it, for the orchestration benchmark
(`bench/bench_orchestration.py`; never deployed): the same six tasks in the same chain
(ingest, validate, transform, score, monitor, check_week), the same
`CronDataIntervalTimetable` and `max_active_runs`, and the same start date and task defaults
(from `reviewops_airflow.dag_defaults`, like `reviews_weekly`). Each task is a
`PythonOperator` whose callable does nothing, so a run costs exactly what the scheduler,
the executor and a task process cost. (An `EmptyOperator` would not do: the scheduler
marks it successful without starting a task process at all.)
"""

from __future__ import annotations

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, CronDataIntervalTimetable

from reviewops_airflow.dag_defaults import START_DATE, task_defaults


def _nothing() -> None:
    """A task's work, minus the work."""


with DAG(
    dag_id="noop_weekly",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=4,
    tags=["reviewops", "bench"],
    default_args=task_defaults(retries=2),
) as dag:
    ingest = PythonOperator(task_id="ingest", python_callable=_nothing)
    validate = PythonOperator(task_id="validate", python_callable=_nothing)
    transform = PythonOperator(task_id="transform", python_callable=_nothing)
    score = PythonOperator(task_id="score", python_callable=_nothing)
    monitor = PythonOperator(task_id="monitor", python_callable=_nothing)
    check_week = PythonOperator(task_id="check_week", python_callable=_nothing)

    ingest >> validate >> transform >> score >> monitor >> check_week
