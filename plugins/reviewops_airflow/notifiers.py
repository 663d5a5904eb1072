"""Alerts when a weekly monitoring gate fails: a JSON POST to the URL of an Airflow
Connection. A Slack incoming webhook accepts the payload as it is (it reads ``text``);
PagerDuty's Events API v2 does not (it needs ``routing_key``, ``event_action`` and
``payload``): point the Connection at a relay that maps the fields, or use the provider's
own notifier."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

ALERT_CONN_ID = "reviewops_alerts"


class WebhookAlertNotifier(BaseNotifier):
    """POST ``{"text": ..., "dag_id", "run_id", "task_id", "breaches"}`` to the
    Connection's URL (``host``, with ``schema``/``port`` when given, or ``extra.url``).

    Without the Connection nothing is sent and the log says how to add it: alerting is
    optional, the red task in the UI is the primary signal.
    """

    template_fields = ("conn_id",)

    def __init__(self, conn_id: str = ALERT_CONN_ID, timeout: float = 10.0) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.timeout = timeout

    def url(self) -> str | None:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError

        try:
            conn = BaseHook.get_connection(self.conn_id)
        except (AirflowNotFoundException, AirflowRuntimeError):
            return None
        extra = conn.extra_dejson or {}
        if extra.get("url"):
            return str(extra["url"])
        if not conn.host:
            return None
        if "://" in conn.host:
            return str(conn.host)
        scheme = conn.schema or "https"
        port = f":{conn.port}" if conn.port else ""
        return f"{scheme}://{conn.host}{port}"

    def notify(self, context: Context) -> None:
        url = self.url()
        ti = context["ti"]
        if url is None:
            self.log.info(
                "no alert sent: add a Connection %r whose host (or extra.url) is a webhook URL to get one",
                self.conn_id,
            )
            return
        exception = context.get("exception")
        payload: dict[str, Any] = {
            "text": f"reviewops: {ti.dag_id}.{ti.task_id} failed for run {ti.run_id}: {exception}",
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "breaches": getattr(exception, "breaches", []),
        }
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            self.log.info("alert sent to %s: HTTP %s", self.conn_id, response.status)
