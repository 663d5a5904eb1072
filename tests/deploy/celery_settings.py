"""The Celery configuration of reviewops, defined once.

``docker-compose.yaml`` runs it (``tests/deploy/test_docker_compose.py`` checks the file
against :func:`celery_environment`), and the Celery system test runs the real scheduler,
api-server and ``airflow celery worker`` with it (``tests/system/airflow_stack.py`` builds
its environment from :func:`celery_environment`). Only the endpoints differ: the compose
services' names and the ``.env`` password there, the local servers in the test.

The option names are those of Airflow 3.3 and apache-airflow-providers-celery 3.26
(``airflow/providers/celery/get_provider_info.py``, ``executors/default_celery.py``):
``[core] executor``, ``[celery] broker_url``, ``[celery] result_backend``,
``[celery] worker_concurrency`` and the ``[celery_broker_transport_options]`` section.
"""

from __future__ import annotations

EXECUTOR = "CeleryExecutor"
# Two task processes per worker: each task of this project may load TensorFlow (about 1 GB
# while scoring); the provider's default of 16 would overcommit any machine this runs on.
WORKER_CONCURRENCY = 2
# Redis redelivers a task not acknowledged within this time (tasks are acked late, when they
# end): it must exceed the longest task (score has a 2 h execution_timeout). Set explicitly,
# as the provider warns when it is not; 86400 s is the provider's own fallback.
VISIBILITY_TIMEOUT_SECONDS = 86400


def result_backend(metadata_db_url: str) -> str:
    """Celery's result backend: Celery's database backend (``db+`` and an SQLAlchemy URL) in
    the Airflow metadata database itself, with the same driver."""
    return f"db+{metadata_db_url}"


def celery_environment(*, metadata_db_url: str, broker_url: str) -> dict[str, str]:
    """Every Celery-related Airflow setting, as environment variables.

    :param metadata_db_url: ``[database] sql_alchemy_conn`` (``postgresql+psycopg2://…``);
        Celery keeps its results in the same database.
    :param broker_url: the Redis broker, ``redis://[:password@]host:port/db``.
    """
    return {
        "AIRFLOW__CORE__EXECUTOR": EXECUTOR,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend(metadata_db_url),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_SECONDS),
    }


def is_celery_setting(name: str) -> bool:
    """Whether an environment variable belongs to the Celery configuration (the keys
    :func:`celery_environment` defines, and any other ``[celery*]`` option)."""
    return name == "AIRFLOW__CORE__EXECUTOR" or name.startswith("AIRFLOW__CELERY")
