"""Hot swap under load: while clients keep sending, the champion is promoted to another
real registered model and then rolled back; every request is answered (200), each by
one version, and each client sees the versions change in the order the pointer moved."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reviewops.registry.store import Registry
from reviewops.serving.server import BackgroundServer

from .conftest import ACTOR, SETTINGS, TwoModels, infer_body

# A real server over two models trained for the session (about 30 s once, shared by the
# three modules that need it): integration, like the other tests that train.
pytestmark = pytest.mark.integration

CLIENTS = 6
MAX_REQUESTS = 3_000  # per client, at the most
MAX_SECONDS = 60.0  # the whole test's load, at the most
PROBE = "It worked for my back pain but made me dizzy"


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_champion_change_swaps_the_model_under_load_without_a_failed_request(
    two_models: TwoModels, token: str, tmp_path: Path
) -> None:
    root = tmp_path / "registry"
    shutil.copytree(two_models.root, root)  # the session's registry keeps its champion
    registry = Registry(str(root))
    first, second = two_models.champion, two_models.challenger
    stop = threading.Event()
    seen: list[list[str]] = [[] for _ in range(CLIENTS)]  # per client, the version of each answer in order
    failures: list[str] = []
    probabilities: dict[str, list[float]] = {}

    def load(index: int, url: str) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            deadline = time.monotonic() + MAX_SECONDS
            while not stop.is_set() and len(seen[index]) < MAX_REQUESTS and time.monotonic() < deadline:
                texts = [PROBE] + [f"client {index} review {len(seen[index])}"] * (index % 3)
                try:
                    response = http.post("/v2/models/reviews/infer", json=infer_body(texts))
                except httpx.HTTPError as exc:
                    failures.append(f"client {index}: {type(exc).__name__}: {exc}")
                    continue
                if response.status_code != 200:
                    failures.append(f"client {index}: {response.status_code} {response.text}")
                    continue
                data = {t["name"]: t["data"] for t in response.json()["outputs"]}
                versions = set(data["model_version"])
                assert len(versions) == 1, versions  # one version answers a whole request
                seen[index].append(data["model_version"][0])
                probabilities.setdefault(data["model_version"][0], data["probabilities"][:3])

    with BackgroundServer(str(root), token=token, settings=SETTINGS) as server:
        assert server.wait_ready(60)
        watcher = server.runtime.watcher
        clients = [threading.Thread(target=load, args=(i, server.url)) for i in range(CLIENTS)]
        for client in clients:
            client.start()
        try:
            assert wait_for(lambda: all(len(s) >= 5 for s in seen), 20), "the clients did not get going"
            registry.promote(second, "tests/serving: hot swap under load", ACTOR)
            promoted_at = sum(map(len, seen))
            assert wait_for(lambda: watcher.status().serving == second, 30), watcher.status()
            answered_while_loading = sum(map(len, seen)) - promoted_at
            assert wait_for(lambda: all(s[-1:] == [second] for s in seen), 10), "a client never saw the new model"
            registry.rollback("tests/serving: and back", ACTOR)
            assert wait_for(lambda: watcher.status().serving == first, 30), watcher.status()
            assert wait_for(lambda: all(s[-1:] == [first] for s in seen), 10), "a client never saw the old model again"
        finally:
            stop.set()
            for client in clients:
                client.join(30)
        stats = server.runtime.batcher.stats()

    assert failures == []
    assert answered_while_loading > 0  # the old model kept answering while the new one loaded
    assert watcher.status().swaps == 3  # the first load, the promotion, the rollback
    for versions in seen:  # each client: old, then new, then old again, never back and forth
        changes = [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]
        assert changes == [first, second, first], changes
    assert probabilities[first] != probabilities[second]  # two different models really answered
    assert stats.failure_count == 0 and stats.request_count == sum(map(len, seen))


def test_a_champion_that_cannot_be_loaded_leaves_the_loaded_one_serving(
    two_models: TwoModels, token: str, tmp_path: Path
) -> None:
    root = tmp_path / "registry"
    shutil.copytree(two_models.root, root)
    damaged = root / "models" / two_models.challenger / "model.keras"
    damaged.write_bytes(damaged.read_bytes()[:1000])  # truncated: not the file registered, not a whole zip
    with BackgroundServer(str(root), token=token, settings=SETTINGS) as server:
        assert server.wait_ready(60)
        watcher = server.runtime.watcher
        Registry(str(root)).promote(two_models.challenger, "tests/serving: a damaged champion", ACTOR)
        assert wait_for(lambda: two_models.challenger in (watcher.status().last_error or ""), 30), watcher.status()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            response = http.post("/v2/models/reviews/infer", json=infer_body([PROBE]))
            stats = http.get("/v2/models/reviews/stats").json()["model_stats"][0]
            assert http.get("/v2/health/ready").status_code == 200
    assert response.status_code == 200 and response.json()["model_version"] == two_models.champion
    assert stats["champion"] == two_models.challenger and stats["serving"] == two_models.champion
    assert "cannot be served" in stats["last_error"] and "still serving the loaded model" in stats["last_error"]
