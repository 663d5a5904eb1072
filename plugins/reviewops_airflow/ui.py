"""The weekly monitoring reports in the Airflow UI.

A FastAPI app mounted by the api-server under ``/reviewops``. Airflow mounts plugin apps
without any authentication, so every route here requires the logged-in Airflow user (the
UI's session cookie or a bearer token), exactly as the REST API does.
"""

from __future__ import annotations

import html
import json
import logging
import re
from typing import TYPE_CHECKING, Annotated, Any

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from reviewops.contracts import METRICS_FILE

if TYPE_CHECKING:
    from reviewops.storage.paths import StoragePath

log = logging.getLogger(__name__)

WEEK = re.compile(r"^\d{4}-\d{2}-\d{2}$")

app = FastAPI(title="reviewops monitoring", docs_url=None, redoc_url=None, openapi_url=None)
User = Annotated[Any, Depends(get_user)]


def _monitoring_root() -> StoragePath:
    from reviewops.config import Settings
    from reviewops.storage.paths import Layout

    return Layout(Settings.from_env().data_root).monitoring_dir()


@app.get("/monitoring/", response_class=HTMLResponse)
def monitoring_index(user: User) -> str:
    """Every monitored week, newest first, with its volume, accuracy and breaches. A week
    whose metrics cannot be read is listed as damaged; the other weeks still show."""
    from reviewops.storage.paths import glob

    rows = [_week_row(path) for path in reversed(glob(_monitoring_root(), f"week=*/{METRICS_FILE}"))]
    body = "".join(rows) or "<tr><td colspan='5'>no week has been monitored yet</td></tr>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>reviewops: weekly monitoring</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em 1em;text-align:left}"
        ".bad{color:#b00020}.ok{color:#1b5e20}</style></head><body><h1>Weekly monitoring</h1>"
        "<table><tr><th>week</th><th>reviews</th><th>accuracy</th><th>model</th><th>gate</th></tr>"
        f"{body}</table></body></html>"
    )


def _week_row(metrics_file: StoragePath) -> str:
    """One table row; everything read from the data root is escaped (a folder name too)."""
    week = metrics_file.parent.name.removeprefix("week=")
    # Only a real week gets a link: the report route serves nothing else.
    cell = f"<a href='{week}/'>{week}</a>" if WEEK.match(week) else html.escape(week, quote=True)
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        accuracy = metrics.get("accuracy")
        breaches = metrics.get("breaches", [])
        status = "; ".join(html.escape(str(b["message"])) for b in breaches) or "ok"
        return (
            f"<tr><td>{cell}</td><td>{html.escape(str(metrics.get('review_count')))}</td>"
            f"<td>{'' if accuracy is None else f'{float(accuracy):.3f}'}</td>"
            f"<td>{html.escape(str(metrics.get('model_version', '')))}</td>"
            f"<td class='{'bad' if breaches else 'ok'}'>{status}</td></tr>"
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("monitoring index: %s cannot be read (%s): listed as damaged", metrics_file, exc)
        return (
            f"<tr><td>{cell}</td><td colspan='4' class='bad'>damaged: {METRICS_FILE} cannot be read "
            "(re-run the week's monitor task)</td></tr>"
        )


@app.get("/monitoring/{week}/", response_class=HTMLResponse)
def monitoring_report(week: str, user: User) -> str:
    """The week's report.html, as the monitor task wrote it (data in it is escaped)."""
    if not WEEK.match(week):
        raise HTTPException(status_code=404, detail="weeks are named YYYY-MM-DD")
    from reviewops.contracts import REPORT_FILE

    report = _monitoring_root() / f"week={week}" / REPORT_FILE
    if not report.is_file():
        raise HTTPException(status_code=404, detail=f"week {week} has not been monitored")
    return report.read_text(encoding="utf-8")
