"""The real server (uvicorn on a free port of 127.0.0.1) over a registered champion:
access, the v2 routes, the 4xx cases, and micro-batching of concurrent requests."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from reviewops.serving.server import BackgroundServer, ServeError, serve
from reviewops.serving.settings import ENV_SERVE_TOKEN

from .conftest import SETTINGS, TwoModels, infer_body, outputs

# A real server over two models trained for the session (about 30 s once, shared by the
# three modules that need it): integration, like the other tests that train.
pytestmark = pytest.mark.integration


INFER = "/v2/models/reviews/infer"


def raw_exchange(server: BackgroundServer, data: bytes, then: bytes = b"", pause: float = 0.0) -> tuple[int, float]:
    """Send raw bytes (then more after ``pause``), read the status line; returns the
    status and the seconds from the first byte sent to the status line."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        started = time.monotonic()
        conn.sendall(data)
        if then:
            time.sleep(pause)
            conn.sendall(then)
        status_line = conn.makefile("rb").readline()
    return int(status_line.split()[1]), time.monotonic() - started


def post_head(server: BackgroundServer, token: str, extra: str) -> bytes:
    return (
        f"POST {INFER} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


# Access


def test_health_is_open_and_everything_else_needs_the_token(server: BackgroundServer, token: str) -> None:
    body = infer_body(["good"])
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        assert anonymous.get("/v2/health/live").json() == {"live": True}
        assert anonymous.get("/v2/health/ready").json() == {"ready": True}
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-of-some-length"},
            {"Authorization": f"Basic {token}"},
        ):
            for method, path in (("GET", "/v2"), ("GET", "/v2/models/reviews"), ("POST", INFER), ("GET", "/nowhere")):
                response = anonymous.request(method, path, headers=headers, json=body)
                assert response.status_code == 401, (headers, path)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert "token" in response.json()["error"]
        assert anonymous.post(INFER, json=body, headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_a_server_without_a_token_does_not_start_unless_told_to_run_open(
    two_models: TwoModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_SERVE_TOKEN, raising=False)
    with pytest.raises(ServeError, match=f"no serving token: set {ENV_SERVE_TOKEN}"):
        serve(port=0, data_root=str(two_models.root))
    with pytest.raises(ServeError, match=r"an open server on 0\.0\.0\.0 answers anyone"):
        serve(host="0.0.0.0", port=0, data_root=str(two_models.root), allow_open=True)
    monkeypatch.setenv(ENV_SERVE_TOKEN, "short")
    with pytest.raises(ServeError, match="5 characters, fewer than 16"):
        serve(port=0, data_root=str(two_models.root))
    monkeypatch.setenv(ENV_SERVE_TOKEN, "change-me-serve-token")
    with pytest.raises(ServeError, match=r"still the \.env\.example placeholder"):
        serve(port=0, data_root=str(two_models.root))


def test_an_open_server_asks_for_no_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SERVE_TOKEN, raising=False)
    with BackgroundServer(str(tmp_path), allow_open=True, settings=SETTINGS) as running:  # no champion here
        stats = httpx.get(f"{running.url}/v2/models/reviews/stats", timeout=10)
        assert stats.status_code == 200


def test_a_server_with_no_model_is_live_but_not_ready(tmp_path: Path, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with (
        BackgroundServer(str(tmp_path), token=token, settings=SETTINGS) as running,
        httpx.Client(base_url=running.url, headers=headers, timeout=10) as http,
    ):
        assert http.get("/v2/health/live").status_code == 200
        assert http.get("/v2/health/ready").status_code == 503
        assert http.get("/v2/models/reviews/ready").status_code == 503
        infer = http.post(INFER, json=infer_body(["good"]))
        assert infer.status_code == 503 and infer.headers["retry-after"] == "1"
        deadline = time.monotonic() + 10
        while running.runtime.watcher.status().last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "no champion under" in http.get("/v2/models/reviews").json()["error"]


# The v2 routes


def test_metadata_names_the_version_its_dataset_and_its_registry_entry(
    client: httpx.Client, two_models: TwoModels
) -> None:
    meta = client.get("/v2/models/reviews").json()
    assert meta["name"] == "reviews" and meta["versions"] == [two_models.champion]
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]} == {
        "label": ("BYTES", [-1]),
        "probabilities": ("FP32", [-1, 3]),
        "safety_flagged": ("BOOL", [-1]),
        "safety_categories": ("BYTES", [-1]),
        "safety_score": ("FP32", [-1]),
        "model_version": ("BYTES", [-1]),
        "rollout_stage": ("BYTES", [-1]),
    }
    info = meta["parameters"]
    registered = json.loads((two_models.root / "models" / two_models.champion / "metadata.json").read_text())
    assert info["dataset_version"] == registered["dataset_version"] == two_models.dataset_dir.name
    assert info["model_uri"].endswith(f"/models/{two_models.champion}/model.keras")
    assert info["champion_change"]["version"] == two_models.champion
    assert "lineage_record_id" in info  # None: this registry was built without Airflow
    assert info["limits"] == {"max_rows": 64, "max_text_chars": 10_000, "max_body_bytes": 256 * 1024}
    assert client.get("/v2").json()["name"] == "reviewops"
    assert client.get("/v2/models/reviews/ready").json() == {"ready": True}
    missing = client.post("/v2/models/sentiment/infer", json=infer_body(["good"]))
    assert missing.status_code == 404 and "serves 'reviews'" in missing.json()["error"]


def test_infer_answers_each_row_with_its_label_probabilities_flags_and_version(
    client: httpx.Client, two_models: TwoModels
) -> None:
    texts = ["This medicine worked wonders, no side effects", "Email me at someone@example.com", "awful"]
    response = client.post(INFER, json={**infer_body(texts), "id": "req-7"})
    data = outputs(response)
    assert response.json()["id"] == "req-7" and response.json()["model_version"] == two_models.champion
    assert len(data["label"]) == 3 and set(data["label"]) <= {"negative", "neutral", "positive"}
    rows = [data["probabilities"][i * 3 : i * 3 + 3] for i in range(3)]
    assert all(abs(sum(row) - 1) < 1e-5 for row in rows)  # type: ignore[arg-type]
    assert data["safety_flagged"] == [False, True, False] and data["safety_categories"][1] == "email"
    assert data["model_version"] == [two_models.champion] * 3
    assert data["rollout_stage"] == ["none"] * 3  # no roll-out on this registry


# Bad requests: a clear 4xx each, and the server none the worse


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"inputs": [', 400, "not JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (
            json.dumps({"inputs": [{"name": "review", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}),
            422,
            "'review'",
        ),
        (json.dumps({"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}), 422, "'BYTES'"),
        (json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2, 1], "data": ["x"]}]}), 422, "shape"),
        (json.dumps(infer_body(["x"] * 65)), 413, "65 texts in one request, at most 64"),
        (json.dumps(infer_body(["x" * 10_001])), 422, "more than the pipeline's 10000"),
        (json.dumps(infer_body(["ok", 3])), 422, "text 1 is a JSON int"),
    ],
)
def test_a_bad_request_gets_a_clear_4xx(client: httpx.Client, body: str | bytes, status: int, says: str) -> None:
    response = client.post(INFER, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert says in response.json()["error"]


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: BackgroundServer, token: str) -> None:
    declared = post_head(server, token, f"Content-Length: {SETTINGS.max_body_bytes + 1}\r\n")
    status, seconds = raw_exchange(server, declared)  # headers only: the body is never sent
    assert status == 413 and seconds < SETTINGS.body_timeout_seconds


def test_a_streamed_body_is_refused_once_it_passes_the_limit(server: BackgroundServer, token: str) -> None:
    chunk = b"x" * 65_536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(SETTINGS.max_body_bytes // len(chunk) + 1))
    status, _ = raw_exchange(server, post_head(server, token, "Transfer-Encoding: chunked\r\n") + chunks)
    assert status == 413


def test_a_slow_body_gets_408_and_holds_nothing_else(
    server: BackgroundServer, token: str, client: httpx.Client
) -> None:
    results: dict[str, tuple[int, float]] = {}
    slow = threading.Thread(
        target=lambda: results.update(
            slow=raw_exchange(server, post_head(server, token, "Content-Length: 100\r\n") + b'{"in')
        )
    )
    slow.start()
    answered = client.post(INFER, json=infer_body(["meanwhile"]))  # answered while the slow body waits
    slow.join(10)
    assert answered.status_code == 200
    status, seconds = results["slow"]
    assert status == 408 and SETTINGS.body_timeout_seconds <= seconds < SETTINGS.body_timeout_seconds + 3


def test_garbage_and_bad_headers_leave_the_server_answering(
    server: BackgroundServer, token: str, client: httpx.Client
) -> None:
    assert raw_exchange(server, post_head(server, token, "Content-Length: ten\r\n"))[0] == 400
    assert raw_exchange(server, b"\x00\x01 not http at all\r\n\r\n")[0] == 400
    before = client.get("/v2/models/reviews/stats").json()["model_stats"][0]
    assert client.get("/v2/health/ready").status_code == 200
    assert outputs(client.post(INFER, json=infer_body(["still fine"])))["label"]
    assert before["failure_count"] == 0


# Micro-batching


def test_concurrent_requests_are_answered_in_fewer_model_calls(
    client: httpx.Client, server: BackgroundServer, token: str
) -> None:
    clients, each = 16, 4
    stats = server.runtime.batcher.stats
    before = stats()
    start = threading.Barrier(clients, timeout=10)
    failures: list[str] = []

    def send(index: int) -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            start.wait()
            for n in range(each):
                response = http.post(INFER, json=infer_body([f"review {index}.{n}: it helped a lot"]))
                if response.status_code != 200:
                    failures.append(response.text)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    after = stats()
    requests = after.request_count - before.request_count
    calls = after.execution_count - before.execution_count
    assert failures == [] and requests == clients * each
    assert calls < requests / 2, f"{requests} requests in {calls} model calls"
    assert after.largest_batch_rows > 1
