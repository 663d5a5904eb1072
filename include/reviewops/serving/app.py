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
import datetime as dt
import hmac
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
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
    infer_response_json,
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
KEY_HEADER_BYTES = KEY_HEADER.encode()
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
BAD_LENGTH = -1  # a Content-Length that is not one whole number
JSON_HEADERS = [(b"content-type", b"application/json")]
RETRY_HEADERS = [(b"retry-after", b"1")]
MAX_KEY_CHARS = 256
NO_ROLLOUT = "none"


class _ClientGone(Exception):
    """The client disconnected before its body arrived."""


class RequestGuard:
    """Token check, body limit and body timeout, in front of ``app``."""

    def __init__(self, app: ASGIApp, token: str | None, settings: ServeSettings, routes: Routes | None = None) -> None:
        self.app = app
        self._token = token.encode() if token is not None else None
        self.settings = settings
        self.routes = routes  # answers POST infer itself when given

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (no websocket route exists)
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        wanted = _Headers(scope["headers"])
        if path not in OPEN_PATHS and not self._authorised(wanted.authorization):
            headers = [(b"www-authenticate", b'Bearer realm="reviewops"')]
            await respond(send, 401, "missing or wrong token: send 'Authorization: Bearer <token>'", headers)
            return
        try:
            body = await self._read_body(wanted.content_length, receive)
        except RequestError as exc:
            await respond(send, exc.status, exc.message)
            return
        except _ClientGone:
            return
        if self.routes is not None and path == INFER_PATH and scope["method"] == "POST":
            status, content, headers = await self.routes.answer(body, wanted.request_key)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})
            return
        await self.app(scope, _replay(body, receive), send)

    def _authorised(self, values: list[bytes]) -> bool:
        if self._token is None:
            return True
        if len(values) != 1:
            return False
        scheme, _, credential = values[0].partition(b" ")
        # compare_digest takes as long for any wrong token of a given length as for another.
        return scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), self._token)

    async def _read_body(self, declared: int | None, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        if declared == BAD_LENGTH:
            raise RequestError(400, "Content-Length must be one whole number")
        if declared is not None and declared > limit:
            raise RequestError(413, f"the body is {declared} bytes, more than the {limit} allowed: send fewer texts")
        chunks: list[bytes] = []
        size = 0
        try:
            # One timer for the whole body (not a task and a timer per message, as wait_for).
            async with asyncio.timeout(self.settings.body_timeout_seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise RequestError(413, f"the body is more than the {limit} bytes allowed: send fewer texts")
                    if not message.get("more_body", False):
                        if not chunks:
                            return bytes(chunk)
                        chunks.append(chunk)
                        return b"".join(chunks)
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestError(
                408, f"the body did not arrive within {self.settings.body_timeout_seconds:g} s"
            ) from None


class _Headers:
    """The request headers the guard and the infer route read, in one pass over them."""

    __slots__ = ("authorization", "content_length", "request_key")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.authorization: list[bytes] = []
        lengths: list[bytes] = []
        key = b""
        for name, value in headers:
            name = name.lower()  # uvicorn gives them lowercased already; other servers may not
            if name == b"authorization":
                self.authorization.append(value)
            elif name == b"content-length":
                lengths.append(value)
            elif name == KEY_HEADER_BYTES and not key:  # the first, as Starlette's headers.get
                key = value
        self.request_key = key[:MAX_KEY_CHARS].decode("latin-1") if key else ""  # as Starlette decodes it
        self.content_length: int | None = None
        if lengths:  # a bad one is refused (400) after the token check, as before the body
            ok = len(lengths) == 1 and lengths[0].strip().isdigit()
            self.content_length = int(lengths[0]) if ok else BAD_LENGTH


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


def _raw_error(
    status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = error_body(message)
    return status, body, [*JSON_HEADERS, (b"content-length", b"%d" % len(body)), *(headers or [])]


# Request ids the server makes up: 128 random bits as 32 hex digits, like uuid4().hex, from
# a generator seeded once from the OS (uuid4 reads os.urandom each time: a system call that
# lets the model thread take the GIL from the event loop, on every request).
_ids = random.Random(uuid.uuid4().int)


def _new_request_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


class _LoopResolver:
    """Hands the batcher's answers (concurrent futures, resolved on the model thread) to the
    event loop, one loop wake-up for all the requests of a model call: the first answer
    of a round schedules :meth:`_drain` (``call_soon_threadsafe``), the others only queue.
    ``asyncio.wrap_future`` schedules a wake-up for each, and each made the model thread and
    the loop trade the GIL. Relies on deque append/popleft and attribute writes being atomic."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._ready: deque[tuple[Future[Scores], asyncio.Future[Scores]]] = deque()
        self._scheduled = False

    def watch(self, future: Future[Scores]) -> asyncio.Future[Scores]:
        waiter: asyncio.Future[Scores] = self.loop.create_future()
        future.add_done_callback(lambda done: self._done(done, waiter))
        return waiter

    def _done(self, done: Future[Scores], waiter: asyncio.Future[Scores]) -> None:  # any thread
        self._ready.append((done, waiter))
        if not self._scheduled:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: nobody waits any more
                self._scheduled = False

    def _drain(self) -> None:  # the loop's thread
        self._scheduled = False  # before draining: an answer queued from now on schedules again
        while self._ready:
            done, waiter = self._ready.popleft()
            if waiter.done() or done.cancelled():
                continue
            failure = done.exception()
            if failure is not None:
                waiter.set_exception(failure)
            else:
                waiter.set_result(done.result())


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
        self._resolvers: _LoopResolver | None = None

    def _resolver(self) -> _LoopResolver:
        loop = asyncio.get_running_loop()
        if self._resolvers is None or self._resolvers.loop is not loop:
            self._resolvers = _LoopResolver(loop)
        return self._resolvers

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
        """The FastAPI route of infer; the guard answers POSTs itself (:meth:`answer`), so
        this is reached only by an app built without it."""
        key = request.headers.get(KEY_HEADER, "")[:MAX_KEY_CHARS]
        status, content, headers = await self.answer(await request.body(), key)
        return Response(content, status_code=status, headers={k.decode(): v.decode() for k, v in headers})

    async def answer(self, body: bytes, header_key: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """An inference request's status, JSON body and headers."""
        started = time.monotonic()
        try:
            parsed = await self._parse(body)
        except RequestError as exc:
            return _raw_error(exc.status, exc.message)
        request_id = parsed.request_id or _new_request_id()
        key = parsed.request_key or header_key or request_id
        plan = self.watcher.plan()
        answering, shadow, stage = self.batcher, None, NO_ROLLOUT
        if plan is not None and self.watcher.challenger is not None:
            stage, shadow = str(plan.stage), self.watcher.challenger
            if plan.answers_with_challenger(key):
                answering, shadow = shadow, answering
        try:
            future = answering.submit(parsed.texts)
        except NotReady as exc:
            return _raw_error(503, f"{exc}: /v2/health/ready answers 200 once one is", RETRY_HEADERS)
        except QueueFull as exc:
            return _raw_error(503, f"busy: {exc}; retry shortly", RETRY_HEADERS)
        at = dt.datetime.now(dt.UTC) if self.request_log is not None else None
        version = answering.model.version if answering.model else "unknown"
        if shadow is not None:
            self._shadow(shadow, request_id, key, stage, parsed.texts, at)
        try:
            # A timer, not wait_for's task; the answer reaches the loop through the resolver
            # (one loop wake-up a model call, not one a request).
            async with asyncio.timeout(self.settings.request_timeout_seconds):
                scores = await self._resolver().watch(future)
        except TimeoutError:
            future.cancel()  # the batcher drops rows it has not taken yet
            wait = self.settings.request_timeout_seconds
            self._log(
                request_id, key, stage, ANSWER, started, parsed.texts, version, at, None, f"no answer within {wait:g} s"
            )
            return _raw_error(503, f"the model did not answer within {wait:g} s; retry shortly", RETRY_HEADERS)
        except ScoringError as exc:
            self._log(request_id, key, stage, ANSWER, started, parsed.texts, version, at, None, str(exc))
            return _raw_error(500, str(exc))
        self._log(request_id, key, stage, ANSWER, started, parsed.texts, scores.version, at, scores)
        content = infer_response_json(parsed, scores, stage)
        return 200, content, [*JSON_HEADERS, (b"content-length", b"%d" % len(content))]

    def _log(
        self,
        request_id: str,
        key: str,
        stage: str,
        role: str,
        started: float,
        texts: list[str],
        version: str,
        at: dt.datetime | None,
        scores: Scores | None,
        error: str | None = None,
    ) -> None:
        if self.request_log is None or at is None:
            return
        latency = (time.monotonic() - started) * 1000.0
        self.request_log.append(Call(request_id, key, stage, role, latency, texts, version, scores, error, at))

    def _shadow(
        self, batcher: MicroBatcher, request_id: str, key: str, stage: str, texts: list[str], at: dt.datetime | None
    ) -> None:
        """Score a copy on the other model, for the gate to compare; never holds up or
        fails the request it copies."""
        started = time.monotonic()
        try:
            future = batcher.submit(list(texts))
        except (NotReady, QueueFull):
            self.shadow_dropped_rows += len(texts)
            return
        version = batcher.model.version if batcher.model else "unknown"

        def done(finished: Future[Scores]) -> None:
            if finished.cancelled():
                return
            failure = finished.exception()
            scores = None if failure else finished.result()
            self._log(
                request_id,
                key,
                stage,
                SHADOW,
                started,
                texts,
                scores.version if scores else version,
                at,
                scores,
                str(failure) if failure else None,
            )

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
    return RequestGuard(api, token, settings, routes)
