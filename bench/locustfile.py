"""The load of ``bench/bench_serving.py``: closed-loop clients posting reviews to
``reviewops serve`` over the Open Inference Protocol v2.

Run by the bench as its own process (locust patches the standard library with gevent, so
it is never imported by the bench, the tests or ``include/``)::

    BENCH_TOKEN=... BENCH_ROWS=1 BENCH_MAX_REQUESTS=20000 BENCH_TEXTS=texts.json \\
      .venv/bin/locust -f bench/locustfile.py --headless -u 32 -r 32 -t 10s \\
      --host http://127.0.0.1:8081 --csv out/u32 --only-summary

- ``BENCH_ROWS``: reviews a request (1 or 32);
- ``BENCH_TEXTS``: a JSON list of review texts, sent in turn;
- ``BENCH_MAX_REQUESTS``: the run stops after this many requests, whatever ``-t`` says;
- ``BENCH_TOKEN``: the serving token.

A response counts as a failure unless it is 200 and answers every row with a
``model_version``; the versions seen are counted (``BENCH_VERSIONS_FILE``, written at the
end), so a hot swap under load shows both versions answering and no failure.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser

ROWS = int(os.environ.get("BENCH_ROWS", "1"))
MAX_REQUESTS = int(os.environ.get("BENCH_MAX_REQUESTS", "100000"))
TOKEN = os.environ.get("BENCH_TOKEN", "")
with open(os.environ["BENCH_TEXTS"], encoding="utf-8") as handle:
    TEXTS: list[str] = json.load(handle)

# Every body the run sends, encoded once: a request costs the client a slice and a post,
# not a JSON encoding (locust shares the cores with the server it measures).
BODIES: list[bytes] = [
    json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [ROWS],
                    "data": [TEXTS[(start + i) % len(TEXTS)] for i in range(ROWS)],
                }
            ]
        }
    ).encode()
    for start in range(0, len(TEXTS) * ROWS, ROWS)
][: len(TEXTS)]

sent = 0
versions: Counter[str] = Counter()


class ReviewClient(FastHttpUser):
    wait_time = constant(0)  # closed loop: the next request as soon as the answer is in

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    @task
    def infer(self) -> None:
        global sent
        if sent >= MAX_REQUESTS:
            raise StopUser()
        body = BODIES[sent % len(BODIES)]
        sent += 1
        with self.client.post(
            "/v2/models/reviews/infer",
            data=body,
            headers=self.headers,
            name=f"infer x{ROWS}",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {str(response.text)[:200]}")
                return
            answered = _versions(response.json())
            if len(answered) != ROWS:
                response.failure(f"{len(answered)} rows answered of {ROWS}")
                return
            versions.update(answered)


def _versions(payload: Any) -> list[str]:
    for tensor in payload.get("outputs", []):
        if tensor.get("name") == "model_version":
            return [str(v) for v in tensor.get("data", [])]
    return []


@events.quitting.add_listener
def _write_versions(environment: Any, **kwargs: Any) -> None:
    target = os.environ.get("BENCH_VERSIONS_FILE")
    if target:
        with open(target, "w", encoding="utf-8") as out:
            json.dump(dict(versions), out)
