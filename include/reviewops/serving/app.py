"""The HTTP application: a guard in front of a FastAPI app of the v2 routes.

The guard is a plain ASGI wrapper, so it acts before any route reads anything: a request
without the token gets 401 before its body is read; a body whose Content-Length is over
the limit gets 413 before it is read, and one sent in chunks gets 413 as soon as it
passes the limit; a body that has not arrived whole in ``body_timeout_seconds`` gets 408.
Only ``/v2/health/live`` and ``/v2/health/ready`` are open (a load balancer probes them
without a token); they say nothing about the model.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from reviewops import __version__
from reviewops.monitoring.online import ANSWER, SHADOW
from reviewops.serving.batching import MicroBatcher, NotReady, QueueFull, ScoringError
from reviewops.serving.champion import ChampionWatcher
from reviewops.serving.protocol import (
    InferRequest,
    RequestError,
    error_body,
    infer_response,
    model_metadata,
    parse_infer_request,
    read_json,
)
from reviewops.serving.requestlog import Call, RequestLog
from reviewops.serving.served import Scores, ServedModel
from reviewops.serving.settings import MODEL_NAME, ServeSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
# Bodies larger than this are parsed and checked on a worker thread, so a few megabytes of
# JSON do not hold the event loop (and every other request) while they are parsed.
INLINE_PARSE_BYTES = 64 * 1024
KEY_HEADER = "x-request-key"
MAX_KEY_CHARS = 256
NO_ROLLOUT = "none"


class _ClientGone(Exception):
    """The client disconnected before its body arrived."""


class RequestGuard:
    """Token check, body limit and body timeout, in front of ``app``."""

    def __init__(self, app: ASGIApp, token: str | None, settings: ServeSettings) -> None:
        self.app = app
        self._token = token.encode() if token is not None else None
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (no websocket route exists)
            await self.app(scope, receive, send)
            return
        if scope["path"] not in OPEN_PATHS and not self._authorised(scope):
            headers = [(b"www-authenticate", b'Bearer realm="reviewops"')]
            await respond(send, 401, "missing or wrong token: send 'Authorization: Bearer <token>'", headers)
            return
        try:
            body = await self._read_body(scope, receive)
        except RequestError as exc:
            await respond(send, exc.status, exc.message)
            return
        except _ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)

    def _authorised(self, scope: Scope) -> bool:
        if self._token is None:
            return True
        values = _headers(scope, b"authorization")
        if len(values) != 1:
            return False
        scheme, _, credential = values[0].partition(b" ")
        # compare_digest takes as long for any wrong token of a given length as for another.
        return scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), self._token)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            raise RequestError(413, f"the body is {declared} bytes, more than the {limit} allowed: send fewer texts")
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.settings.body_timeout_seconds
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise RequestError(
                    408, f"the body did not arrive within {self.settings.body_timeout_seconds:g} s"
                ) from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the body is more than the {limit} bytes allowed: send fewer texts")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _headers(scope: Scope, name: bytes) -> list[bytes]:
    return [value for key, value in scope.get("headers", []) if key.lower() == name]


def _content_length(scope: Scope) -> int | None:
    values = _headers(scope, b"content-length")
    if not values:
        return None
    if len(values) > 1 or not values[0].strip().isdigit():
        raise RequestError(400, "Content-Length must be one whole number")
    return int(values[0])


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the app the body already read, then the client's own messages."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def respond(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(message)
    start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start_headers + (headers or [])})
    await send({"type": "http.response.body", "body": body})


def _json(content: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(content, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status, headers)


class Routes:
    """The v2 routes over the champion's batcher, the challenger's (during a roll-out), the
    watcher that loads both, and the request log."""

    def __init__(
        self, batcher: MicroBatcher, watcher: ChampionWatcher, settings: ServeSettings, request_log: RequestLog | None
    ) -> None:
        self.batcher = batcher
        self.watcher = watcher
        self.settings = settings
        self.request_log = request_log
        self.shadow_dropped_rows = 0  # shadow copies the challenger's queue had no room for

    def _served(self) -> ServedModel | None:
        model = self.batcher.model
        return model if isinstance(model, ServedModel) else None

    async def live(self) -> Response:
        return _json({"live": True})

    async def ready(self) -> Response:
        ready = self.batcher.model is not None
        return _json({"ready": ready}, 200 if ready else 503)

    async def server_metadata(self) -> Response:
        return _json({"name": "reviewops", "version": __version__, "extensions": ["statistics"]})

    async def metadata(self) -> Response:
        model = self._served()
        if model is None:
            return _error(503, f"no model loaded yet: {self.watcher.status().last_error or 'loading'}")
        return _json(model_metadata(model, self.settings))

    async def stats(self) -> Response:
        status = self.watcher.status()
        counts = vars(self.batcher.stats())
        entry = {"name": MODEL_NAME, "version": status.serving, **counts, **vars(status)}
        entry["shadow_dropped_rows"] = self.shadow_dropped_rows
        if self.watcher.challenger is not None:
            entry["challenger_stats"] = vars(self.watcher.challenger.stats())
        if self.request_log is not None:
            entry.update(self.request_log.stats())
        return _json({"model_stats": [entry]})

    async def unknown_model(self, name: str) -> Response:
        if name == MODEL_NAME:
            routes = "GET /v2/models/{0}, GET /v2/models/{0}/ready, GET /v2/models/{0}/stats, POST /v2/models/{0}/infer"
            return _error(404, f"no such route: the model's routes are {routes.format(MODEL_NAME)}")
        return _error(404, f"model {name[:80]!r} is not served here: this server serves {MODEL_NAME!r}")

    async def infer(self, request: Request) -> Response:
        started = time.monotonic()
        try:
            parsed = await self._parse(await request.body())
        except RequestError as exc:
            return _error(exc.status, exc.message)
        request_id = parsed.request_id or uuid.uuid4().hex
        key = parsed.request_key or request.headers.get(KEY_HEADER, "")[:MAX_KEY_CHARS] or request_id
        plan = self.watcher.plan()
        answering, shadow, stage = self.batcher, None, NO_ROLLOUT
        if plan is not None and self.watcher.challenger is not None:
            stage, shadow = str(plan.stage), self.watcher.challenger
            if plan.answers_with_challenger(key):
                answering, shadow = shadow, answering
        try:
            future = answering.submit(parsed.texts)
        except NotReady as exc:
            return _error(503, f"{exc}: /v2/health/ready answers 200 once one is", {"retry-after": "1"})
        except QueueFull as exc:
            return _error(503, f"busy: {exc}; retry shortly", {"retry-after": "1"})
        version = answering.model.version if answering.model else "unknown"
        call = Call(request_id, key, stage, ANSWER, 0.0, parsed.texts, version)
        if shadow is not None:
            self._shadow(shadow, call)
        try:
            scores = await asyncio.wait_for(asyncio.wrap_future(future), self.settings.request_timeout_seconds)
        except TimeoutError:
            wait = self.settings.request_timeout_seconds
            self._log(call, started, None, f"no answer within {wait:g} s")
            return _error(503, f"the model did not answer within {wait:g} s; retry shortly", {"retry-after": "1"})
        except ScoringError as exc:
            self._log(call, started, None, str(exc))
            return _error(500, str(exc))
        self._log(call, started, scores)
        return _json(infer_response(parsed, scores, stage))

    def _log(self, call: Call, started: float, scores: Scores | None, error: str | None = None) -> None:
        if self.request_log is None:
            return
        latency = (time.monotonic() - started) * 1000.0
        version = scores.version if scores is not None else call.version
        self.request_log.append(replace(call, latency_ms=latency, version=version, scores=scores, error=error))

    def _shadow(self, batcher: MicroBatcher, answered: Call) -> None:
        """Score a copy on the other model, for the gate to compare; never holds up or
        fails the request it copies."""
        started = time.monotonic()
        try:
            future = batcher.submit(list(answered.texts))
        except (NotReady, QueueFull):
            self.shadow_dropped_rows += len(answered.texts)
            return
        version = batcher.model.version if batcher.model else "unknown"
        call = replace(answered, role=SHADOW, version=version)

        def done(finished: Future[Scores]) -> None:
            if finished.cancelled():
                return
            failure = finished.exception()
            self._log(call, started, None if failure else finished.result(), str(failure) if failure else None)

        future.add_done_callback(done)

    async def _parse(self, body: bytes) -> InferRequest:
        if len(body) > INLINE_PARSE_BYTES:
            return await run_in_threadpool(self._parse_now, body)
        return self._parse_now(body)

    def _parse_now(self, body: bytes) -> InferRequest:
        return parse_infer_request(read_json(body), self.settings)


def create_app(
    batcher: MicroBatcher,
    watcher: ChampionWatcher,
    settings: ServeSettings,
    token: str | None,
    request_log: RequestLog | None = None,
) -> ASGIApp:
    """The ASGI application uvicorn runs: the guard around the v2 routes. Without a token
    (``token=None``) every route is open; :func:`reviewops.serving.server.serve` decides that."""
    routes = Routes(batcher, watcher, settings, request_log)
    api = FastAPI(title="reviewops", docs_url=None, redoc_url=None, openapi_url=None)
    api.add_api_route("/v2/health/live", routes.live, methods=["GET"])
    api.add_api_route("/v2/health/ready", routes.ready, methods=["GET"])
    api.add_api_route("/v2", routes.server_metadata, methods=["GET"])
    model = f"/v2/models/{MODEL_NAME}"
    api.add_api_route(model, routes.metadata, methods=["GET"])
    api.add_api_route(f"{model}/ready", routes.ready, methods=["GET"])
    api.add_api_route(f"{model}/stats", routes.stats, methods=["GET"])
    api.add_api_route(f"{model}/infer", routes.infer, methods=["POST"])
    api.add_api_route("/v2/models/{name}", routes.unknown_model, methods=["GET", "POST"])
    api.add_api_route("/v2/models/{name}/{rest:path}", routes.unknown_model, methods=["GET", "POST"])
    return RequestGuard(api, token, settings)
