"""Registers reviewops with Airflow: the weekly monitoring pages, behind Airflow's login."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from reviewops_airflow.ui import app


class ReviewOpsPlugin(AirflowPlugin):
    name = "reviewops"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": app, "url_prefix": "/reviewops", "name": "reviewops monitoring"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Weekly monitoring",
            "href": "/reviewops/monitoring/",
            "destination": "nav",
            "url_route": "reviewops-monitoring",
        }
    ]
