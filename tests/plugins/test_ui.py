"""The plugin's pages and their JSON twins: login required everywhere, escaped content,
trends, lineage graphs, the registry and the extra links."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.api_fastapi.core_api.security import get_user
from fastapi.testclient import TestClient

from reviewops.contracts import MODEL_CARD_FILE, MODEL_FILE
from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import LineageStore
from reviewops.registry.store import Registry
from reviewops.storage.paths import to_uri
from reviewops_airflow.links import LineageLink, WeekReportLink
from reviewops_airflow.operators import CheckWeekOperator, MonitorWeekOperator, TransformReviewsOperator
from reviewops_airflow.ui import app, lineage_url
from tests.include.lineage_samples import lineage_record

HOSTILE = "<script>alert(1)</script><b>bold</b>"
ROUTES = (
    "/monitoring/",
    "/monitoring/2017-11-27/",
    "/monitoring/2017-11-27/report.html",
    "/lineage/",
    "/models/",
    "/tasks/report?dag_id=d&run_id=r&task_id=t",
    "/api/monitoring",
    "/api/monitoring/2017-11-27",
    "/api/lineage?uri=x",
    "/api/models",
)


def _week(root: Path, week: str, **metrics: object) -> Path:
    folder = root / "monitoring" / f"week={week}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "report.html").write_text(f"<html>report of week {week}</html>")
    return folder


@pytest.fixture
def monitored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("REVIEWOPS_DATA_ROOT", str(tmp_path))
    breach = {"metric": "prediction_psi", "message": "prediction_psi 1.1 > max 0.25: <b>drifted</b>"}
    worst = {"dimension": "condition", "name": HOSTILE, "count": 6, "accuracy": 0.5, "gap": 0.2}
    _week(tmp_path, "2017-11-20", review_count=5, accuracy=0.6, drift={"prediction_psi": 0.1}, breaches=[])
    _week(
        tmp_path,
        "2017-11-27",
        review_count=3,
        accuracy=0.667,
        estimated_accuracy=0.71,
        model_version="m-<script>",
        drift={"prediction_psi": 1.1, "length_psi": None},
        safety={"flagged_rate": 0.25},
        worst_slice_gap=worst,
        breaches=[breach],
    )
    yield tmp_path


@pytest.fixture
def client() -> Iterator[TestClient]:
    app.dependency_overrides[get_user] = lambda: object()
    try:
        yield TestClient(app)
    finally:
        app.dependency_overrides.clear()


def test_every_route_requires_an_airflow_login(monitored: Path) -> None:
    client = TestClient(app)
    for url in ROUTES:
        response = client.get(url)
        assert response.status_code == 401, url
        assert "report of week" not in response.text and "2017-11-27" not in response.text


def test_the_monitoring_page_draws_the_trends_and_lists_the_weeks_escaped(monitored: Path, client: TestClient) -> None:
    index = client.get("/monitoring/")
    assert index.status_code == 200
    page = index.text
    assert '<a href="2017-11-27/">2017-11-27</a>' in page
    assert "&lt;b&gt;drifted&lt;/b&gt;" in page and "<b>drifted" not in page
    assert "m-&lt;script&gt;" in page and "<script" not in page
    assert "condition &lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page
    charts = {c.split('"')[0]: c for c in page.split('data-chart="')[1:]}
    assert set(charts) == {"Volume (reviews)", "Accuracy", "Drift (PSI)", "Safety flagged rate", "Breaches"}
    assert charts["Volume (reviews)"].count("<circle") == 2  # one point a week
    assert "estimated accuracy, week 2017-11-27: 0.71" in charts["Accuracy"]
    assert charts["Accuracy"].count("<polyline") == 1, "only the realised accuracy has two weeks to join"
    assert "length PSI" not in charts["Drift (PSI)"], "a series no week defines is left out"

    api = client.get("/api/monitoring").json()
    assert [w["week"] for w in api["weeks"]] == ["2017-11-27", "2017-11-20"]
    assert api["trends"]["weeks"] == ["2017-11-20", "2017-11-27"]
    assert api["trends"]["series"]["Accuracy"]["estimated accuracy"] == [None, 0.71]
    assert client.get("/api/monitoring/2017-11-27").json()["metrics"]["review_count"] == 3


def test_a_week_page_frames_its_report_in_a_sandbox_that_runs_no_script(monitored: Path, client: TestClient) -> None:
    week = client.get("/monitoring/2017-11-27/")
    assert week.status_code == 200
    assert '<iframe sandbox title="report of week 2017-11-27" src="report.html">' in week.text
    assert "estimated accuracy" in week.text and "&lt;script&gt;alert(1)" in week.text
    uri = to_uri(monitored / "monitoring" / "week=2017-11-27" / "metrics.json")
    assert f'href="{lineage_url(uri)}"' in week.text
    report = client.get("/monitoring/2017-11-27/report.html")
    assert report.text == "<html>report of week 2017-11-27</html>"
    assert report.headers["content-security-policy"].startswith("default-src 'none'")
    assert client.get("/monitoring/2017-12-04/").status_code == 404
    assert client.get("/monitoring/..%2F..%2Fetc/").status_code == 404


def test_a_folder_name_is_escaped_and_a_damaged_week_does_not_hide_the_others(
    monitored: Path, client: TestClient
) -> None:
    _week(monitored, "<img src=x onerror=alert(1)>", review_count=1, breaches=[])
    (_week(monitored, "2017-12-04") / "metrics.json").write_text('{"review_count": 3, "accur')  # cut short
    _week(monitored, "2017-12-11", accuracy="high", breaches=[1])

    index = client.get("/monitoring/")

    assert index.status_code == 200
    assert "<img" not in index.text and "&lt;img src=x onerror=alert(1)&gt;" in index.text
    assert 'href="&lt;img' not in index.text, "only a real week is a link"
    rows = index.text.split("<tr>")
    assert any("2017-12-04" in r and "damaged: metrics.json cannot be read" in r for r in rows)
    assert any("2017-12-11" in r and "damaged" in r for r in rows)
    assert '<a href="2017-11-27/">2017-11-27</a>' in index.text and "m-&lt;script&gt;" in index.text


RUN_ID = "manual__2026-11-29T10:00:00+00:00"


def _record(
    record_id: str, task_id: str, inputs: tuple[Artifact, ...], outputs: tuple[Artifact, ...], at: str
) -> LineageRecord:
    return lineage_record(record_id, task_id, inputs, outputs, at, run_id=RUN_ID)


@pytest.fixture
def chain(monitored: Path) -> dict[str, Path]:
    """source -> transform -> curated -> monitor -> metrics.json, in the lineage store."""
    source = monitored / "reviews.tsv"
    source.write_text("id\ttext\n1\tfine\n")
    curated = monitored / "curated" / "week=2017-11-27" / "reviews.jsonl"
    curated.parent.mkdir(parents=True)
    curated.write_text('{"text": "fine"}\n')
    metrics = monitored / "monitoring" / "week=2017-11-27" / "metrics.json"
    store = LineageStore(str(monitored))
    store.write(
        _record(
            "a" * 32,
            "transform",
            (Artifact.of_file(source, "source"),),
            (Artifact.of_file(curated, "curated"),),
            "2026-11-29T10:00:01+00:00",
        )
    )
    store.write(
        _record(
            "b" * 32,
            "monitor",
            (Artifact.of_file(curated, "curated"),),
            (Artifact.of_file(metrics, "metrics"),),
            "2026-11-29T10:00:02+00:00",
        )
    )
    return {"source": source, "curated": curated, "metrics": metrics}


def test_the_lineage_graph_of_an_artifact_links_each_task_and_checks_each_hash(
    chain: dict[str, Path], client: TestClient
) -> None:
    graph = client.get("/api/lineage", params={"uri": to_uri(chain["metrics"])}).json()
    kinds = sorted((n["type"], n["kind"]) for n in graph["nodes"])
    assert kinds == [
        ("artifact", "curated"),
        ("artifact", "metrics"),
        ("artifact", "source"),
        ("task", "task"),
        ("task", "task"),
    ]
    assert {n["status"] for n in graph["nodes"] if n["type"] == "artifact"} == {"verified"}
    assert len(graph["edges"]) == 4
    (focus,) = [n for n in graph["nodes"] if n["focus"] and n["type"] == "artifact"]
    assert focus["kind"] == "metrics" and focus["task_id"] == "monitor" and focus["version"] == "week=2017-11-27"

    chain["source"].write_text("changed since\n")
    page = client.get("/lineage/", params={"uri": str(chain["curated"])})  # a plain path works too
    assert page.status_code == 200
    assert page.text.count('<g class="node') == 5
    assert 'data-kind="source" data-status="changed"' in page.text
    assert 'href="/dags/reviews_weekly/runs/manual__2026-11-29T10%3A00%3A00%2B00%3A00/tasks/transform"' in page.text


def test_lineage_refuses_paths_outside_the_data_root_and_says_what_is_unknown(
    chain: dict[str, Path], client: TestClient
) -> None:
    outside = client.get("/api/lineage", params={"uri": "/etc"})
    assert outside.status_code == 400 and "under the data root" in outside.json()["detail"]
    assert client.get("/api/lineage", params={"uri": "file:///"}).status_code == 400
    unknown = client.get("/api/lineage", params={"uri": str(chain["source"].parent / "nothing.parquet")})
    assert unknown.status_code == 404 and "no lineage record produced it" in unknown.json()["detail"]
    assert client.get("/api/lineage").status_code == 400
    by_id = client.get("/api/lineage", params={"uri": "a" * 32}).json()  # a record id
    assert [n["task_id"] for n in by_id["nodes"] if n["focus"] and n["type"] == "task"] == ["transform"]
    task = {"dag_id": "reviews_weekly", "run_id": "manual__2026-11-29T10:00:00+00:00", "task_id": "monitor"}
    by_task = client.get("/api/lineage", params=task).json()
    assert any(n["kind"] == "metrics" and n["focus"] for n in by_task["nodes"])
    missing = client.get("/api/lineage", params={**task, "task_id": "score"})
    assert missing.status_code == 404 and "wrote no lineage record" in missing.json()["detail"]


def test_the_week_report_link_of_a_task_goes_to_its_week(chain: dict[str, Path], client: TestClient) -> None:
    task = {"dag_id": "reviews_weekly", "run_id": "manual__2026-11-29T10:00:00+00:00", "task_id": "monitor"}
    response = client.get("/tasks/report", params=task, follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/reviewops/monitoring/2017-11-27/"


def test_extra_links_point_each_reviewops_task_at_its_pages() -> None:
    from airflow.models.taskinstancekey import TaskInstanceKey

    key = TaskInstanceKey("reviews_weekly", "monitor", "manual__2026-11-29T10:00:00+00:00", 1, -1)
    assert TransformReviewsOperator in LineageLink.operators and MonitorWeekOperator in LineageLink.operators
    assert WeekReportLink.operators == [MonitorWeekOperator, CheckWeekOperator]
    query = "dag_id=reviews_weekly&run_id=manual__2026-11-29T10%3A00%3A00%2B00%3A00&task_id=monitor"
    assert LineageLink().get_link(None, ti_key=key) == f"/reviewops/lineage/?{query}"
    assert WeekReportLink().get_link(None, ti_key=key) == f"/reviewops/tasks/report?{query}"


def test_every_reviewops_operator_of_the_plugins_has_the_lineage_link() -> None:
    # The link's operators are the subclasses known when links.py is imported (the api-server
    # loads the plugin, not the DAG files): a module of operators it does not import is missed.
    import importlib
    import pkgutil

    import reviewops_airflow
    from reviewops_airflow.base import ReviewOpsOperator
    from reviewops_airflow.links import _subclasses

    for module in pkgutil.iter_modules(reviewops_airflow.__path__):
        importlib.import_module(f"reviewops_airflow.{module.name}")
    ours = {c for c in _subclasses(ReviewOpsOperator) if c.__module__.startswith("reviewops_airflow.")}
    assert ours - set(LineageLink.operators) == set()


def test_the_registry_page_shows_versions_the_champion_history_gates_and_model_cards(
    monitored: Path, client: TestClient
) -> None:
    registry = Registry(str(monitored))
    for i, version in enumerate(("m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb")):
        candidate = registry.candidates() / f"{version}.1"
        candidate.mkdir(parents=True)
        (candidate / MODEL_FILE).write_bytes(b"PK a saved model")
        (candidate / MODEL_CARD_FILE).write_text(f"# Model card: {version}\n\ntrained on {HOSTILE}\n")
        gate = {"promote": i == 0, "verdict": "promote" if i == 0 else "reject", "reasons": [f"reason <i>{i}</i>"]}
        meta = {
            "version": version,
            "registered_at": f"2026-11-2{i}",
            "metrics": {"accuracy": 0.6 + i / 10},
            "gate": gate,
        }
        registry.register(candidate, meta)  # type: ignore[arg-type]
    registry.promote("m-aaaaaaaaaaaa", "gate", "test")
    registry.promote("m-bbbbbbbbbbbb", "by hand <u>now</u>", "test")

    api = client.get("/api/models").json()
    assert api["champion"] == "m-bbbbbbbbbbbb"
    assert [v["version"] for v in api["versions"]] == ["m-bbbbbbbbbbbb", "m-aaaaaaaaaaaa"]
    assert [h["version"] for h in api["history"]] == ["m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb"]
    page = client.get("/models/").text
    assert '<strong id="champion">m-bbbbbbbbbbbb</strong>' in page
    assert "by hand &lt;u&gt;now&lt;/u&gt;" in page and "reason &lt;i&gt;1&lt;/i&gt;" in page
    assert page.count('<pre class="model-card">') == 2 and "trained on &lt;script&gt;" in page
    assert "<script" not in page

    (registry.root / "champion.json").write_text("{broken")
    damaged = client.get("/models/")
    assert damaged.status_code == 200 and "is damaged" in damaged.text


def test_the_lineage_page_says_why_there_is_no_graph(chain: dict[str, Path], client: TestClient) -> None:
    page = client.get("/lineage/", params={"uri": "/etc/passwd"})
    assert page.status_code == 400 and 'id="lineage-error"' in page.text and "under the data root" in page.text
    assert client.get("/lineage/").status_code == 200
