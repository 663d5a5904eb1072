"""The reviewops pages in the Airflow UI: monitoring trends, lineage graphs, the registry.

A FastAPI app mounted by the api-server under ``/reviewops``. Airflow mounts plugin apps
without any authentication, so every route here requires the logged-in Airflow user (the
UI's session cookie or a bearer token), exactly as the REST API does.

Pages are Jinja2 templates (``templates/``) with autoescaping on, so everything read from
the data root (review-derived slice names, breach messages, model cards, folder names)
is text, never markup. Charts and graphs are inline SVG drawn from geometry the domain
computes (:mod:`reviewops.monitoring.trends`, :mod:`reviewops.lineage.graph`); nothing is
loaded from the internet. Every page has a JSON twin under ``/reviewops/api/``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from reviewops.contracts import METRICS_FILE, MODEL_CARD_FILE, REPORT_FILE

if TYPE_CHECKING:
    from reviewops.lineage.graph import Graph
    from reviewops.storage.paths import StoragePath

log = logging.getLogger(__name__)

WEEK = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RECORD_ID = re.compile(r"^[0-9a-f]{32}$")
PREFIX = "/reviewops"

app = FastAPI(title="reviewops", docs_url=None, redoc_url=None, openapi_url=None)
User = Annotated[Any, Depends(get_user)]

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def task_url(dag_id: str | None, run_id: str | None, task_id: str | None) -> str | None:
    """The task instance's page in the Airflow UI."""
    if not (dag_id and run_id and task_id):
        return None
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"


def lineage_url(uri: str) -> str:
    return f"{PREFIX}/lineage/?{urlencode({'uri': uri})}"


templates.globals.update(prefix=PREFIX, task_url=task_url, lineage_url=lineage_url)


def _page(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context))


def _data_root() -> str:
    from reviewops.config import Settings

    return Settings.from_env().data_root


def _monitoring_root() -> StoragePath:
    from reviewops.storage.paths import Layout

    return Layout(_data_root()).monitoring_dir()


# --- monitoring ----------------------------------------------------------------------------


def _read_weeks() -> list[dict[str, Any]]:
    """Every monitored week, oldest first: its folder name, whether it is a real week, and
    its metrics (None and the reason when ``metrics.json`` cannot be read)."""
    from reviewops.storage.paths import glob

    weeks = []
    for path in glob(_monitoring_root(), f"week=*/{METRICS_FILE}"):
        week = path.parent.name.removeprefix("week=")
        entry: dict[str, Any] = {"week": week, "linked": bool(WEEK.match(week)), "metrics": None, "error": None}
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(metrics, dict):
                raise ValueError(f"a JSON {type(metrics).__name__}, not an object")
            entry["metrics"] = metrics
        except (OSError, ValueError) as exc:
            log.warning("monitoring index: %s cannot be read (%s): listed as damaged", path, exc)
            entry["error"] = f"damaged: {METRICS_FILE} cannot be read (re-run the week's monitor task)"
        weeks.append(entry)
    return weeks


def _uri(path: StoragePath) -> str:
    from reviewops.storage.paths import to_uri

    return to_uri(path)


def _summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The table row of a week; a value of the wrong shape shows as damaged, not as a 500."""
    metrics = entry["metrics"]
    row: dict[str, Any] = {"week": entry["week"], "linked": entry["linked"], "error": entry["error"]}
    if metrics is None:
        return row
    try:
        breaches = metrics.get("breaches", [])
        worst = metrics.get("worst_slice_gap") or {}
        row |= {
            "review_count": metrics.get("review_count"),
            "accuracy": _optional_float(metrics.get("accuracy")),
            "estimated_accuracy": _optional_float(metrics.get("estimated_accuracy")),
            "model_version": metrics.get("model_version"),
            "breaches": [str(b["message"]) for b in breaches],
            "worst_slice": f"{worst['dimension']} {worst['name']}" if worst else None,
        }
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        log.warning("monitoring index: week %s has metrics of the wrong shape (%s)", entry["week"], exc)
        row["error"] = f"damaged: {METRICS_FILE} is not a monitoring report (re-run the week's monitor task)"
    return row


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@app.get("/monitoring/", response_class=HTMLResponse)
def monitoring_index(user: User) -> HTMLResponse:
    """Trends over every monitored week, then each week newest first with its volume,
    accuracy and breaches. A damaged week is listed as such; the others still show."""
    from reviewops.monitoring.trends import trend_charts

    rows, charted = _weeks_and_trends()
    return _page("monitoring.html", charts=trend_charts(charted), rows=rows[::-1])


@app.get("/api/monitoring")
def monitoring_api(user: User) -> dict[str, Any]:
    """The weeks (newest first) and the trend series (oldest week first)."""
    from reviewops.monitoring.trends import values

    rows, charted = _weeks_and_trends()
    return {"weeks": rows[::-1], "trends": {"weeks": [w for w, _ in charted], "series": values(charted)}}


def _weeks_and_trends() -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any] | None]]]:
    """Each week's table row, and what the trends draw of it (nothing of a damaged week),
    oldest first."""
    weeks = _read_weeks()
    rows = [_summary(w) for w in weeks]
    return rows, [(w["week"], None if row["error"] else w["metrics"]) for w, row in zip(weeks, rows, strict=True)]


def _week_folder(week: str) -> StoragePath:
    if not WEEK.match(week):
        raise HTTPException(status_code=404, detail="weeks are named YYYY-MM-DD")
    folder = _monitoring_root() / f"week={week}"
    if not (folder / METRICS_FILE).is_file():
        raise HTTPException(status_code=404, detail=f"week {week} has not been monitored")
    return folder


def _week_metrics(week: str) -> tuple[StoragePath, dict[str, Any]]:
    folder = _week_folder(week)
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HTTPException(
            status_code=500, detail=f"week {week}: {METRICS_FILE} cannot be read; re-run the week's monitor task"
        ) from exc
    return folder, metrics


@app.get("/monitoring/{week}/", response_class=HTMLResponse)
def monitoring_week(week: str, user: User) -> HTMLResponse:
    """The week's summary, links to its lineage, and its report as the monitor task wrote it."""
    folder, metrics = _week_metrics(week)
    row = _summary({"week": week, "linked": True, "error": None, "metrics": metrics})
    return _page("week.html", week=week, row=row, metrics_uri=_uri(folder / METRICS_FILE))


@app.get("/monitoring/{week}/report.html", response_class=HTMLResponse)
def monitoring_report(week: str, user: User) -> Response:
    """The week's report.html, as the monitor task wrote it (data in it is escaped there).
    Shown in a sandboxed frame with a policy that allows no script at all."""
    report = _week_folder(week) / REPORT_FILE
    if not report.is_file():
        raise HTTPException(status_code=404, detail=f"week {week} has no {REPORT_FILE}; re-run its monitor task")
    return HTMLResponse(
        report.read_text(encoding="utf-8"),
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"},
    )


@app.get("/api/monitoring/{week}")
def monitoring_week_api(week: str, user: User) -> dict[str, Any]:
    _, metrics = _week_metrics(week)
    return {"week": week, "metrics": metrics}


# --- lineage ----------------------------------------------------------------------------------


Target = Annotated[str | None, Query(max_length=2000)]


def _lineage(uri: str | None, dag_id: str | None, run_id: str | None, task_id: str | None) -> tuple[str, Graph]:
    """The graph around an artifact URI, a path under the data root or a record id, or
    around what a task instance wrote; 400/404 with the reason otherwise."""
    from reviewops.lineage.graph import lineage_graph, task_records
    from reviewops.lineage.store import LineageNotFound, LineageStore

    index = LineageStore(_data_root()).index()
    try:
        if uri:
            target = _inside_data_root(uri)
            return uri, lineage_graph(
                index, index.resolve(target), [] if RECORD_ID.match(target) else [_uri_of(target)]
            )
        if dag_id and run_id and task_id:
            return f"{dag_id} / {run_id} / {task_id}", lineage_graph(
                index, task_records(index, dag_id, run_id, task_id)
            )
    except LineageNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    raise HTTPException(
        status_code=400, detail="give uri= (an artifact URI, a path or a record id), or dag_id, run_id and task_id"
    )


def _uri_of(target: str) -> str:
    return _uri(_as_path(target))


def _as_path(target: str) -> StoragePath:
    from reviewops.storage.paths import as_path

    return as_path(target)


def _inside_data_root(target: str) -> str:
    """A record id as it is; a path or URI only inside the data root: the page hashes what
    it names, and a logged-in user must not make the server read the rest of the disk."""
    if RECORD_ID.match(target):
        return target
    root = _uri(_as_path(_data_root())).rstrip("/")
    try:
        found = _uri_of(target)
    except (ValueError, OSError) as exc:
        raise HTTPException(status_code=400, detail=f"not a path or URI: {exc}") from None
    if found != root and not found.startswith(root + "/"):
        raise HTTPException(status_code=400, detail=f"only artifacts under the data root ({root}) have lineage here")
    return target


@app.get("/lineage/", response_class=HTMLResponse)
def lineage_page(
    user: User, uri: Target = None, dag_id: Target = None, run_id: Target = None, task_id: Target = None
) -> HTMLResponse:
    if not (uri or dag_id):
        return _page("lineage.html", uri=None, target=None, graph=None)
    try:
        target, graph = _lineage(uri, dag_id, run_id, task_id)
    except HTTPException as exc:  # the reason on the page, with the form to try another
        page = _page("lineage.html", uri=uri, target=None, graph=None, error=exc.detail)
        page.status_code = exc.status_code
        return page
    return _page("lineage.html", uri=uri, target=target, graph=graph)


@app.get("/api/lineage")
def lineage_api(
    user: User, uri: Target = None, dag_id: Target = None, run_id: Target = None, task_id: Target = None
) -> dict[str, Any]:
    target, graph = _lineage(uri, dag_id, run_id, task_id)
    return {"target": target, **graph.to_dict()}


@app.get("/tasks/report")
def task_report(user: User, dag_id: Target = None, run_id: Target = None, task_id: Target = None) -> RedirectResponse:
    """The week report of a task instance (the extra link of ``monitor`` and ``check_week``):
    the week is the subject of the lineage record it wrote."""
    from reviewops.lineage.graph import task_records
    from reviewops.lineage.store import LineageNotFound, LineageStore

    if not (dag_id and run_id and task_id):
        raise HTTPException(status_code=400, detail="give dag_id, run_id and task_id")
    try:
        (record,) = task_records(LineageStore(_data_root()).index(), dag_id, run_id, task_id)
    except LineageNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    week = record.subject.removeprefix("week=")
    if not WEEK.match(week):
        raise HTTPException(status_code=404, detail=f"task {task_id} concerns {record.subject}, not a week")
    return RedirectResponse(f"{PREFIX}/monitoring/{week}/", status_code=307)


# --- registry ---------------------------------------------------------------------------------


def _registry() -> dict[str, Any]:
    """Versions newest first (gate decision, metrics, model card), the champion and its
    history; a damaged champion pointer is reported, not a 500."""
    from reviewops.registry.store import Registry, RegistryError, kind_of

    registry = Registry(_data_root())
    try:
        champion, champion_error = registry.champion(), None
    except RegistryError as exc:
        champion, champion_error = None, str(exc)
    versions = []
    for meta in reversed(registry.versions()):
        version = str(meta["version"])
        card = registry.path(version) / MODEL_CARD_FILE
        metrics = meta.get("metrics") or {}
        versions.append(
            {
                "version": version,
                "kind": str(kind_of(meta)),
                "registered_at": meta.get("registered_at"),
                "dataset_version": meta.get("dataset_version"),
                "accuracy": metrics.get("accuracy"),
                "macro_f1": metrics.get("macro_f1"),
                "gate": meta.get("gate"),
                "champion": version == champion,
                "model_card": card.read_text(encoding="utf-8") if card.is_file() else None,
                "uri": _uri(registry.path(version)),
            }
        )
    return {"champion": champion, "champion_error": champion_error, "versions": versions, "history": registry.history()}


@app.get("/models/", response_class=HTMLResponse)
def models_page(user: User) -> HTMLResponse:
    return _page("models.html", **_registry())


@app.get("/api/models")
def models_api(user: User) -> dict[str, Any]:
    return _registry()
