"""The reviewops pages in a real browser, inside the real Airflow UI.

One api-server and one Chromium for the module (``tests/ui/conftest.py``); the tests run in
order on one logged-in page, as a person would click: the navigation entry, the trends, a
week, its lineage, a task instance, the registry. A review whose text and condition are
``<script>alert(1)</script><b>bold</b>`` is in the data: it must show as that literal text,
and no dialog may ever open.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from tests.ui.build_data import HOSTILE, HOSTILE_WEEK, WEEKS
from tests.ui.conftest import UiStack, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHARTS = ["Volume (reviews)", "Accuracy", "Drift (PSI)", "Safety flagged rate", "Breaches"]


def _plugin_frame(page: Any) -> Any:
    """The frame the Airflow UI shows a plugin's external view in."""
    frame = page.frame_locator("iframe").first
    frame.locator("main").wait_for()
    return frame


def test_the_nav_entry_opens_the_monitoring_trends_inside_airflow(page: Any, ui_stack: UiStack) -> None:
    page.get_by_role("button", name="Plugins").click()
    page.get_by_role("menuitem", name="Weekly monitoring").click()
    page.wait_for_url("**/plugin/reviewops-monitoring/**")
    frame = _plugin_frame(page)

    assert frame.locator("h1").inner_text() == "Weekly monitoring"
    charts = frame.locator("figure.chart")
    assert [c.get_attribute("data-chart") for c in charts.all()] == CHARTS
    volume = frame.locator('figure[data-chart="Volume (reviews)"] svg')
    assert volume.locator("circle.point").count() == len(WEEKS)
    assert volume.locator("polyline").count() == 1
    accuracy = frame.locator('figure[data-chart="Accuracy"]')
    assert accuracy.locator("circle.point").count() >= len(WEEKS), "realised accuracy, and the estimate when written"
    weeks = frame.locator("#weeks tr td:first-child a")
    assert weeks.all_inner_texts() == sorted(WEEKS, reverse=True)
    screenshot(page, "monitoring", docs=True)


def test_a_week_shows_hostile_review_text_as_text_and_runs_no_script(
    page: Any, ui_stack: UiStack, dialogs: list[str]
) -> None:
    frame = _plugin_frame(page)
    frame.get_by_role("link", name=HOSTILE_WEEK, exact=True).click()
    frame.locator("#worst-slice").wait_for()

    assert frame.locator("h1").inner_text() == f"Week {HOSTILE_WEEK}"
    assert frame.locator("#worst-slice").inner_text() == f"condition {HOSTILE}"
    assert frame.locator("b", has_text="bold").count() == 0, "the review's <b> became markup"
    assert frame.locator("script", has_text="alert").count() == 0
    report = frame.frame_locator("iframe[sandbox]")
    report.locator("svg").first.wait_for()
    assert report.get_by_text(HOSTILE[:30]).count() >= 1, "the report lists the hostile slice by its literal name"
    assert report.locator("b", has_text="bold").count() == 0
    assert dialogs == []
    screenshot(page, "week")


def test_the_week_links_to_its_lineage_graph_with_every_hash_checked(page: Any, ui_stack: UiStack) -> None:
    frame = _plugin_frame(page)
    frame.locator("#week-lineage").click()
    graph = frame.locator("#lineage-graph")
    graph.wait_for()

    artifacts = graph.locator("g.node.artifact")
    kinds = {a.get_attribute("data-kind") for a in artifacts.all()}
    assert {"source", "raw", "validated", "curated", "model", "predictions", "report"} <= kinds, kinds
    assert {a.get_attribute("data-status") for a in artifacts.all()} == {"verified"}
    tasks = graph.locator("g.node.task")
    assert tasks.count() >= 5  # ingest, validate, transform, score, monitor (check_week reads the metrics)
    run = urllib.parse.quote(ui_stack.run_id(HOSTILE_WEEK), safe="")
    monitor = graph.locator(f'g.node.task a[href="/dags/reviews_weekly/runs/{run}/tasks/monitor"]')
    assert monitor.count() == 1
    screenshot(graph, "lineage", docs=True)  # the graph itself: taller than the frame shows at once

    # The graph's task link opens the task instance in the Airflow UI, within the plugin's
    # frame (Airflow's sandbox for it does not allow navigating the top window); its Details
    # tab lists the extra links the plugin registers.
    monitor.click()
    task_page = page.frame_locator("iframe").first
    task_page.get_by_role("link", name="Details", exact=True).click()
    week_report = task_page.get_by_role("link", name="ReviewOps week report", exact=True)
    week_report.wait_for()
    assert task_page.get_by_role("link", name="ReviewOps lineage", exact=True).count() == 1
    screenshot(page, "task-instance")
    week_report.click()  # back to the week, through the link's redirect
    assert task_page.locator("h1").inner_text() == f"Week {HOSTILE_WEEK}"


def test_the_extra_links_of_a_task_instance_lead_to_its_week_and_its_lineage(page: Any, ui_stack: UiStack) -> None:
    run = urllib.parse.quote(ui_stack.run_id(HOSTILE_WEEK), safe="")
    api = f"{ui_stack.url}/api/v2/dags/reviews_weekly/dagRuns/{run}/taskInstances"
    links = page.request.get(f"{api}/monitor/links").json()["extra_links"]
    assert set(links) == {"ReviewOps lineage", "ReviewOps week report"}
    transform = page.request.get(f"{api}/transform/links").json()["extra_links"]
    assert set(transform) == {"ReviewOps lineage"}

    page.goto(ui_stack.url + links["ReviewOps week report"])
    assert page.url == f"{ui_stack.url}/reviewops/monitoring/{HOSTILE_WEEK}/"
    page.goto(ui_stack.url + transform["ReviewOps lineage"])
    focus = page.locator("#lineage-graph g.node.artifact").filter(has=page.locator("rect[stroke-width='3']"))
    assert {f.get_attribute("data-kind") for f in focus.all()} >= {"curated"}


def test_every_task_instance_has_a_lineage_tab(page: Any, ui_stack: UiStack) -> None:
    run = urllib.parse.quote(ui_stack.run_id(HOSTILE_WEEK), safe="")
    page.goto(f"{ui_stack.url}/dags/reviews_weekly/runs/{run}/tasks/score")
    page.get_by_role("link", name="Lineage", exact=True).click()
    graph = _plugin_frame(page).locator("#lineage-graph")
    graph.wait_for()
    focus = graph.locator("g.node.task:has(rect[fill='#0d47a1'])")  # the task instance asked for
    assert focus.count() == 1 and "score" in (focus.text_content() or "")


def test_the_registry_shows_versions_champion_history_gates_and_model_cards(page: Any, ui_stack: UiStack) -> None:
    page.goto(ui_stack.url + "/")
    page.get_by_role("button", name="Plugins").click()
    page.get_by_role("menuitem", name="Model registry").click()
    frame = _plugin_frame(page)

    champion = ui_stack.data["champion"]
    assert frame.locator("#champion").inner_text() == champion
    versions = frame.locator("#versions tr td:first-child a").all_inner_texts()
    assert sorted(versions) == sorted(ui_stack.data["models"])
    history = frame.locator("#history tr").all_inner_texts()[1:]
    assert len(history) >= 2 and champion in history[0]
    cards = frame.locator("pre.model-card")
    assert cards.count() == 2 and f"# Model card: {champion}" in cards.first.inner_text()
    assert frame.locator("section.version h3", has_text="Gate:").count() == 2
    screenshot(page, "models", docs=True)


def test_nothing_is_served_without_a_login(browser: Any, ui_stack: UiStack) -> None:
    anonymous = browser.new_context()
    try:
        for path in (
            "/reviewops/monitoring/",
            "/reviewops/api/monitoring",
            "/reviewops/api/models",
            "/reviewops/lineage/",
        ):
            response = anonymous.request.get(ui_stack.url + path)
            assert response.status == 401, path
            assert HOSTILE_WEEK not in response.text()
    finally:
        anonymous.close()
