"""The ``reviews_rollout`` DAG with ``dag.test()`` against a real server on 127.0.0.1
carrying recorded traffic (the shipped reviews, their ratings arriving afterwards as
feedback): a challenger goes through shadow, canary and full; a degraded one (trained on
shuffled labels) is rolled back by the gate on its own, and the alert goes out."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from reviewops.contracts import MODEL_FILE
from reviewops.lineage.store import LineageStore
from reviewops.modeling.training import TrainParams, TrainStepParams, train_candidate
from reviewops.monitoring.online import OnlineWeekParams, summarise_online_week
from reviewops.pipeline import evaluate_and_register
from reviewops.registry.rollout import read_plan
from reviewops.registry.store import Registry
from reviewops.serving.rollout import feedback_dir
from reviewops.serving.server import BackgroundServer
from tests.conftest import ROOT, shipped_records
from tests.serving.conftest import ACTOR, QUICK, SETTINGS, TwoModels, infer_body, shuffled_copy, token, two_models
from tests.serving.test_hot_swap import wait_for

pytestmark = pytest.mark.integration

__all__ = ["token", "two_models"]  # the serving tests' session fixtures, shared

INFER = "/v2/models/reviews/infer"
# The shared registry's request log holds the serving tests' traffic: not this test's.
OTHER_TRAFFIC = shutil.ignore_patterns("serving")
# Enough evidence for a test, not for production (the defaults want 200 rows and an hour
# a stage): every other limit is the default.
LIMITS = {"min_rows": 40, "min_stage_minutes": 0, "min_breach_rows": 20, "min_feedback_rows": 20}
TRAFFIC = 60  # requests a stage


@dataclass(frozen=True)
class Recorded:
    texts: list[str]
    ratings: list[str]


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    header, records = shipped_records()
    review, rating = header.index("review"), header.index("rating")
    picked = random.Random(14).sample(records, 4 * TRAFFIC)
    return Recorded([r[review] for r in picked], [r[rating] for r in picked])


@pytest.fixture(scope="module")
def dag(airflow_db: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "reviews_rollout.py"))
    assert bag.import_errors == {}
    return bag.dags["reviews_rollout"]


@pytest.fixture(scope="module")
def degraded(two_models: TwoModels, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The session's two models plus a third trained on shuffled labels, registered
    (the gate rejects it; the champion stays)."""
    root = tmp_path_factory.mktemp("rollout-degraded") / "registry"
    shutil.copytree(two_models.root, root, ignore=OTHER_TRAFFIC)
    shuffled = shuffled_copy(two_models.dataset_dir, root.parent / "ds-shuffled")
    worse = train_candidate(TrainStepParams(str(root), str(shuffled), TrainParams(**{**QUICK.as_dict(), "seed": 3})))
    evaluate_and_register(root, worse.output_named(MODEL_FILE).path, two_models.dataset_dir, worse.subject, ACTOR)
    registry = Registry(str(root))
    if registry.champion() != two_models.champion:
        registry.promote(two_models.champion, "tests: the first model stays champion", ACTOR)
    return root, worse.subject


class Alerts:
    """A webhook on 127.0.0.1 that keeps what it is sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        alerts = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                alerts.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def alerts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Alerts]:
    hook = Alerts()
    monkeypatch.setenv("AIRFLOW_CONN_REVIEWOPS_ALERTS", json.dumps({"conn_type": "http", "host": hook.url}))
    yield hook
    hook.server.shutdown()


def serve(root: Path, token: str) -> BackgroundServer:
    return BackgroundServer(str(root), token=token, settings=SETTINGS)


def settle(server: BackgroundServer) -> None:
    """Flush the request log until it stops growing: a shadow or canary copy is scored after
    its answer was sent, so its row can be queued after a first flush (seen once: 59 of 60)."""
    written = -1
    for _ in range(60):
        assert server.runtime.request_log.flush(30)
        now = server.runtime.request_log.stats()["request_log_written_rows"]
        if now == written:
            return
        written = now
        time.sleep(1.0)
    raise AssertionError("the request log kept growing for a minute after the traffic stopped")


def send(server: BackgroundServer, token: str, recorded: Recorded, part: int, stage: str) -> list[tuple[str, str]]:
    """One stage's traffic: single reviews, a request key each, their ratings arriving
    later as feedback. Returns (model version, rollout stage) of each answer."""
    answers = []
    ids = []
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for i in range(part * TRAFFIC, (part + 1) * TRAFFIC):
            body = {**infer_body([recorded.texts[i]]), "id": f"{stage}-{i}", "parameters": {"request_key": f"user-{i}"}}
            response = http.post(INFER, json=body)
            assert response.status_code == 200, response.text
            data = {t["name"]: t["data"] for t in response.json()["outputs"]}
            answers.append((data["model_version"][0], data["rollout_stage"][0]))
            ids.append(f"{stage}-{i}")
    settle(server)
    ratings = recorded.ratings[part * TRAFFIC : (part + 1) * TRAFFIC]
    folder = feedback_dir(str(server.runtime.watcher.data_root))
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"request_id": ids, "row": 0, "rating": ratings}).to_csv(folder / f"{stage}.csv", index=False)
    return answers


def run(dag: Any, root: Path, **conf: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    """A run of the DAG; its state and the lineage record of each task that returned one."""
    dag_run = dag.test(run_conf={"data_root": str(root), "thresholds": LIMITS, "challenger": "", **conf})
    records = {}
    for task_id in ("start_rollout", "evaluate_rollout", "apply_rollout"):
        value = dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id)
        if value:
            records[task_id] = value
    return str(dag_run.state), records


def stage_of(server: BackgroundServer) -> str | None:
    return server.runtime.watcher.status().rollout_stage


def test_a_challenger_goes_through_shadow_canary_and_full_on_live_traffic(
    dag: Any, two_models: TwoModels, token: str, recorded: Recorded, tmp_path: Path
) -> None:
    root = tmp_path / "registry"
    shutil.copytree(two_models.root, root, ignore=OTHER_TRAFFIC)
    champion, challenger = two_models.champion, two_models.challenger
    registry = Registry(str(root))
    with serve(root, token) as server:
        assert server.wait_ready(60)
        state, records = run(dag, root, challenger=challenger, canary_share=0.5)
        # Started in shadow; no traffic yet, so the gate holds.
        assert state == "success" and records["evaluate_rollout"]["metrics"]["decision"] == "hold"
        assert wait_for(lambda: stage_of(server) == "shadow", 30)
        assert set(send(server, token, recorded, 0, "shadow")) == {(champion, "shadow")}

        state, records = run(dag, root)
        gate = records["evaluate_rollout"]["metrics"]
        assert state == "success" and gate["decision"] == "advance", gate
        assert gate["rows"] == gate["paired_rows"] == TRAFFIC and gate["rated_rows"] == TRAFFIC
        assert records["apply_rollout"]["metrics"]["stage"] == "canary"
        assert wait_for(lambda: stage_of(server) == "canary", 30)
        canary = send(server, token, recorded, 1, "canary")
        plan = read_plan(str(root))
        assert plan is not None
        keys = [f"user-{i}" for i in range(TRAFFIC, 2 * TRAFFIC)]
        assert [v for v, _ in canary] == [challenger if plan.answers_with_challenger(k) else champion for k in keys]
        assert {v for v, _ in canary} == {champion, challenger}

        state, records = run(dag, root)
        gate = records["evaluate_rollout"]["metrics"]
        # The canary stage's challenger rows: those it answered and the shadow copies of the rest.
        assert state == "success" and gate["decision"] == "advance" and gate["rows"] == TRAFFIC, gate
        assert 0 < gate["answered_rows"] < TRAFFIC
        assert records["apply_rollout"]["metrics"]["stage"] == "full"
        assert registry.champion() == challenger
        assert wait_for(lambda: server.runtime.watcher.status().serving == challenger, 30)
        assert set(send(server, token, recorded, 2, "after")) == {(challenger, "none")}

    # The week's online monitoring sees the same traffic, by version, stage and role.
    today = dt.datetime.now(dt.UTC).date()
    week = (today - dt.timedelta(days=today.weekday())).isoformat()
    summary = json.loads(summarise_online_week(OnlineWeekParams(str(root), week)).outputs[0].path.read_text())
    assert summary["requests"] == summary["answered_rows"] == 3 * TRAFFIC and summary["errors"] == 0
    rows = {(g["model_version"], g["stage"], g["role"]): g["rows"] for g in summary["by_model"]}
    answered_by_challenger = sum(v == challenger for v, _ in canary)
    assert rows == {
        (champion, "shadow", "answer"): TRAFFIC,
        (challenger, "shadow", "shadow"): TRAFFIC,
        (champion, "canary", "answer"): TRAFFIC - answered_by_challenger,
        (challenger, "canary", "shadow"): TRAFFIC - answered_by_challenger,
        (challenger, "canary", "answer"): answered_by_challenger,
        (champion, "canary", "shadow"): answered_by_challenger,
        (challenger, "none", "answer"): TRAFFIC,
    }

    history = [(e["action"], e.get("challenger")) for e in registry.history()]
    assert history[-4:] == [
        ("rollout-shadow", challenger),
        ("rollout-canary", challenger),
        ("promote", None),
        ("rollout-full", challenger),
    ]
    applied = [r for r in LineageStore(str(root)).records() if r.task_id == "apply_rollout"]
    # One lineage record a run: the first held (no traffic yet), the others moved a stage.
    assert [(r.metrics["decision"], r.metrics["from_stage"], r.metrics["stage"]) for r in applied] == [
        ("hold", "shadow", "shadow"),
        ("advance", "shadow", "canary"),
        ("advance", "canary", "full"),
    ]


def test_a_degraded_challenger_is_rolled_back_by_itself_and_alerts(
    dag: Any,
    degraded: tuple[Path, str],
    two_models: TwoModels,
    token: str,
    recorded: Recorded,
    alerts: Alerts,
    tmp_path: Path,
) -> None:
    root = tmp_path / "registry"
    shutil.copytree(degraded[0], root)
    champion, worse = two_models.champion, degraded[1]
    with serve(root, token) as server:
        assert server.wait_ready(60)
        assert run(dag, root, challenger=worse)[0] == "success"
        assert wait_for(lambda: stage_of(server) == "shadow", 30)
        send(server, token, recorded, 3, "shadow")

        state, records = run(dag, root)
        gate = records["evaluate_rollout"]["metrics"]
        assert state == "failed" and gate["decision"] == "roll_back", gate
        assert "agreement" in {b["metric"] for b in gate["breaches"]}
        assert records["apply_rollout"]["metrics"]["stage"] == "rolled_back"
        assert wait_for(lambda: stage_of(server) is None, 30)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            response = http.post(INFER, json={**infer_body(["fine"]), "parameters": {"request_key": "user-1"}})
            assert response.json()["model_version"] == champion
    assert Registry(str(root)).champion() == champion
    assert [a["task_id"] for a in alerts.received] == ["check_rollout"]
    assert "agreement" in {b["metric"] for b in alerts.received[0]["breaches"]}
    assert Registry(str(root)).history()[-1]["action"] == "rollout-rolled_back"
