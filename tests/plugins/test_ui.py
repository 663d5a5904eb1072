"""The monitoring pages the plugin serves: login required everywhere, escaped content."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.api_fastapi.core_api.security import get_user
from fastapi.testclient import TestClient

from reviewops_airflow.ui import app


@pytest.fixture
def monitored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("REVIEWOPS_DATA_ROOT", str(tmp_path))
    folder = tmp_path / "monitoring" / "week=2017-11-27"
    folder.mkdir(parents=True)
    breach = {"metric": "prediction_psi", "message": "prediction_psi 1.1 > max 0.25: <b>drifted</b>"}
    metrics = {"review_count": 3, "accuracy": 0.667, "model_version": "m-<script>", "breaches": [breach]}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "report.html").write_text("<html>report of week 2017-11-27</html>")
    yield tmp_path


def test_every_route_requires_an_airflow_login(monitored: Path) -> None:
    client = TestClient(app)
    for url in ("/monitoring/", "/monitoring/2017-11-27/"):
        response = client.get(url)
        assert response.status_code == 401, url
        assert "report of week" not in response.text


def test_a_logged_in_user_sees_the_weeks_and_their_reports(monitored: Path) -> None:
    app.dependency_overrides[get_user] = lambda: object()
    try:
        client = TestClient(app)
        index = client.get("/monitoring/")
        assert index.status_code == 200
        assert "<a href='2017-11-27/'>2017-11-27</a>" in index.text
        assert "&lt;b&gt;drifted&lt;/b&gt;" in index.text and "<b>drifted" not in index.text
        assert "m-&lt;script&gt;" in index.text
        assert client.get("/monitoring/2017-11-27/").text == "<html>report of week 2017-11-27</html>"
        assert client.get("/monitoring/2017-12-04/").status_code == 404
        assert client.get("/monitoring/..%2F..%2Fetc/").status_code == 404
    finally:
        app.dependency_overrides.clear()


def test_a_folder_name_is_escaped_and_a_damaged_week_does_not_hide_the_others(monitored: Path) -> None:
    hostile = monitored / "monitoring" / "week=<img src=x onerror=alert(1)>"
    hostile.mkdir()
    (hostile / "metrics.json").write_text(json.dumps({"review_count": 1, "breaches": []}))
    damaged = monitored / "monitoring" / "week=2017-12-04"
    damaged.mkdir()
    (damaged / "metrics.json").write_text('{"review_count": 3, "accur')  # cut short
    wrong_shape = monitored / "monitoring" / "week=2017-12-11"
    wrong_shape.mkdir()
    (wrong_shape / "metrics.json").write_text(json.dumps({"accuracy": "high", "breaches": [1]}))
    app.dependency_overrides[get_user] = lambda: object()
    try:
        index = TestClient(app).get("/monitoring/")
    finally:
        app.dependency_overrides.clear()

    assert index.status_code == 200
    assert "<img" not in index.text and "&lt;img src=x onerror=alert(1)&gt;" in index.text
    assert "href='&lt;img" not in index.text, "only a real week is a link"
    rows = index.text.split("<tr>")
    assert any("2017-12-04" in r and "damaged: metrics.json cannot be read" in r for r in rows)
    assert any("2017-12-11" in r and "damaged" in r for r in rows)
    assert "<a href='2017-11-27/'>2017-11-27</a>" in index.text and "m-&lt;script&gt;" in index.text
