"""`reviewops serve` as a person runs it: its own process on a free port, the champion of
the data root, the token from the environment; stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import TwoModels, infer_body, outputs

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_serve_command_answers_with_the_champion_and_stops_on_sigterm(two_models: TwoModels, token: str) -> None:
    port = _free_port()
    command = Path(sys.executable).parent / "reviewops"
    env = {**os.environ, "REVIEWOPS_SERVE_TOKEN": token, "REVIEWOPS_DATA_ROOT": str(two_models.root)}
    process = subprocess.Popen(
        [str(command), "serve", "--port", str(port), "--poll-seconds", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # TensorFlow's import and the model load
        ready = False
        while time.monotonic() < deadline and process.poll() is None and not ready:
            with contextlib.suppress(httpx.TransportError):
                ready = httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200
            if not ready:
                time.sleep(0.5)
        assert ready, f"not ready in 120 s; exit code {process.poll()}"
        body = infer_body(["Worked well for my migraines, no side effects."])
        assert httpx.post(f"{base}/v2/models/reviews/infer", json=body, timeout=30).status_code == 401
        answer = outputs(
            httpx.post(
                f"{base}/v2/models/reviews/infer",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        )
        assert answer["model_version"] == [two_models.champion]
        assert answer["label"][0] in ("negative", "neutral", "positive")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    # A graceful stop: uvicorn finishes its requests, then re-raises the signal it caught.
    assert "Finished server process" in output, output[-3000:]
    assert process.returncode in (0, -signal.SIGTERM), output[-3000:]
