"""The server follows the roll-out plan: in shadow the champion answers and the
challenger scores a copy; in canary the challenger answers the share of request keys the
plan gives it, the same key always on the same side; rolled back, the champion answers
all. Every scored row, answered or shadow, lands in the request log."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reviewops.monitoring.online import read_request_log
from reviewops.registry.rollout import advance_stage, read_plan, roll_back, start_rollout
from reviewops.serving.server import BackgroundServer

from .conftest import ACTOR, SETTINGS, TwoModels, infer_body, outputs
from .test_hot_swap import wait_for

pytestmark = pytest.mark.integration

INFER = "/v2/models/reviews/infer"


@pytest.fixture
def rollout_server(two_models: TwoModels, token: str, tmp_path: Path) -> Iterator[tuple[BackgroundServer, str]]:
    root = tmp_path / "registry"
    shutil.copytree(two_models.root, root)  # the session's registry keeps no plan
    with BackgroundServer(str(root), token=token, settings=SETTINGS) as running:
        assert running.wait_ready(60)
        yield running, str(root)


def stage_of(server: BackgroundServer) -> str | None:
    return server.runtime.watcher.status().rollout_stage


def answer(http: httpx.Client, text: str, **extra: object) -> tuple[str, str]:
    data = outputs(http.post(INFER, json={**infer_body([text]), **extra}))
    return str(data["model_version"][0]), str(data["rollout_stage"][0])


def test_shadow_canary_and_roll_back_route_as_the_plan_says(
    rollout_server: tuple[BackgroundServer, str], two_models: TwoModels, token: str
) -> None:
    server, root = rollout_server
    champion, challenger = two_models.champion, two_models.challenger
    started = dt.datetime.now(dt.UTC)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        start_rollout(root, challenger, "routing test", ACTOR, canary_share=0.5)
        assert wait_for(lambda: stage_of(server) == "shadow", 30), server.runtime.watcher.status()
        shadow = [answer(http, f"shadow review {i}", id=f"s-{i}") for i in range(12)]
        assert shadow == [(champion, "shadow")] * 12

        advance_stage(root, "routing test", ACTOR)
        assert wait_for(lambda: stage_of(server) == "canary", 30)
        plan = read_plan(root)
        assert plan is not None
        keys = [f"user-{i}" for i in range(24)]
        expected = {k: challenger if plan.answers_with_challenger(k) else champion for k in keys}
        assert {challenger, champion} == set(expected.values())  # a share of 0.5 over 24 keys: both sides
        by_body = {k: answer(http, "the same review", parameters={"request_key": k}) for k in keys}
        assert by_body == {k: (v, "canary") for k, v in expected.items()}
        # Sticky: the key decides, whether it comes in the body or the header.
        for k in keys[:6]:
            got = outputs(http.post(INFER, json=infer_body(["again"]), headers={"X-Request-Key": k}))
            assert got["model_version"] == [expected[k]]

        roll_back(root, "routing test", ACTOR)
        assert wait_for(lambda: stage_of(server) is None, 30)
        assert answer(http, "after", parameters={"request_key": keys[0]}) == (champion, "none")
        stats = http.get("/v2/models/reviews/stats").json()["model_stats"][0]
        assert stats["request_log_dropped_rows"] == 0 and stats["shadow_dropped_rows"] == 0

    assert server.runtime.request_log.flush(30)
    log = read_request_log(root, started, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    shadow_rows = log[log["request_id"].str.startswith("s-")]
    # Each shadow request: the champion's answer and the challenger's copy, same text hash.
    pairs: dict[str, list[tuple[str, str]]] = {}
    for row in shadow_rows.itertuples():
        pairs.setdefault(str(row.request_id), []).append((str(row.role), str(row.model_version)))
    assert len(pairs) == 12 and all(sorted(p) == [("answer", champion), ("shadow", challenger)] for p in pairs.values())
    assert (shadow_rows.groupby("request_id")["text_sha256"].nunique() == 1).all()
    assert (log["status"] == "ok").all() and log["latency_ms"].gt(0).all()
    answered = log[log["role"] == "answer"]
    assert set(answered["stage"]) == {"shadow", "canary", "none"}
