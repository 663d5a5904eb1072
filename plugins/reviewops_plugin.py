"""Registers reviewops with Airflow: its pages (monitoring trends and reports, lineage
graphs, the model registry) behind Airflow's login, a navigation entry, and extra links
from each reviewops task instance to them."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from reviewops_airflow.links import LineageLink, WeekReportLink
from reviewops_airflow.ui import app


class ReviewOpsPlugin(AirflowPlugin):
    name = "reviewops"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [{"app": app, "url_prefix": "/reviewops", "name": "reviewops"}]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Weekly monitoring",
            "href": "/reviewops/monitoring/",
            "destination": "nav",
            "url_route": "reviewops-monitoring",
        },
        {
            "name": "Model registry",
            "href": "/reviewops/models/",
            "destination": "nav",
            "url_route": "reviewops-models",
        },
        # A tab on every task instance page; the UI fills in the placeholders. A task that
        # wrote no lineage record (not a reviewops task, or not succeeded) gets the reason.
        {
            "name": "Lineage",
            "href": "/reviewops/lineage/?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}",
            "destination": "task_instance",
            "url_route": "reviewops-lineage",
        },
    ]
    operator_extra_links: ClassVar[list[Any]] = [LineageLink(), WeekReportLink()]
