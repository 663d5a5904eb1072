"""Running the server: ``serve()`` in the foreground (the ``reviewops serve`` command) and
``BackgroundServer`` in a thread (tests, benchmarks).

One uvicorn worker process: the model lives in one thread of it (``MicroBatcher``), so
more workers would mean more copies of the model, not more answers per model call; more
replicas are more processes behind a load balancer, each following the same registry.

Access is decided before anything is bound: a token (``token``, else
``REVIEWOPS_SERVE_TOKEN``) of at least 16 characters, or ``allow_open`` on a loopback
address; nothing else starts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from reviewops.config import Settings
from reviewops.serving.app import ASGIApp, create_app
from reviewops.serving.batching import MicroBatcher
from reviewops.serving.champion import ChampionWatcher
from reviewops.serving.requestlog import RequestLog
from reviewops.serving.settings import ENV_SERVE_TOKEN, LOOPBACK_HOSTS, MIN_TOKEN_CHARS, ServeSettings

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
PLACEHOLDER_PREFIX = "change-me"
_NEW_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


class ServeError(RuntimeError):
    """The server refuses to start; the message says what to set."""


def check_access(host: str, token: str | None, allow_open: bool) -> str | None:
    """The token every route but health will require (``token``, else the environment's),
    or None for an open server, which only ``allow_open`` on a loopback host gives."""
    token = token if token is not None else os.environ.get(ENV_SERVE_TOKEN) or None
    if token is not None:
        if len(token) < MIN_TOKEN_CHARS:
            raise ServeError(
                f"the serving token has {len(token)} characters, fewer than {MIN_TOKEN_CHARS}: make one with {_NEW_TOKEN}"
            )
        if token.startswith(PLACEHOLDER_PREFIX):
            # .env.example's placeholder is public: a server that took it would answer anyone.
            raise ServeError(f"the serving token is still the .env.example placeholder: make one with {_NEW_TOKEN}")
        if allow_open:
            log.warning("a serving token is set, so the server is not open: every route but health requires it")
        return token
    if not allow_open:
        raise ServeError(
            f"no serving token: set {ENV_SERVE_TOKEN} (make one with {_NEW_TOKEN}), "
            "or run open on 127.0.0.1 by saying so (--open)"
        )
    if host not in LOOPBACK_HOSTS:
        raise ServeError(
            f"an open server on {host} answers anyone who can reach it: set {ENV_SERVE_TOKEN}, or bind 127.0.0.1"
        )
    log.warning("serving OPEN on %s: no token is checked", host)
    return None


class ServingRuntime:
    """The model threads (the champion's, and the challenger's during a roll-out), the
    watcher, the request log and the app over them, started and stopped together."""

    def __init__(self, data_root: str, token: str | None, settings: ServeSettings) -> None:
        self.settings = settings
        self.batcher = self._batcher()
        self.challenger = self._batcher()
        self.watcher = ChampionWatcher(data_root, self.batcher, settings.poll_seconds, challenger=self.challenger)
        self.request_log = RequestLog(
            data_root, max_queue_rows=settings.log_queue_calls, flush_seconds=settings.log_flush_seconds
        )
        self.app: ASGIApp = create_app(self.batcher, self.watcher, settings, token, self.request_log)

    def _batcher(self) -> MicroBatcher:
        settings = self.settings
        return MicroBatcher(settings.max_batch_rows, settings.max_wait_seconds, settings.max_queue_rows)

    def start(self) -> None:
        self.request_log.start()
        self.batcher.start()
        self.challenger.start()
        self.watcher.start()  # loads the champion in the background: ready answers 503 until then

    def stop(self) -> None:
        self.watcher.stop()
        self.batcher.stop()
        self.challenger.stop()
        self.request_log.close()  # after the batchers: the rows of the last answers are written too


def uvicorn_config(app: ASGIApp, host: str, port: int, settings: ServeSettings, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,
        # Both are locked in requirements.txt ("auto" would pick them too, silently falling
        # back to h11 and asyncio, which cost several times the CPU a request, if missing).
        http="httptools",
        loop="uvloop",
        lifespan="off",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        limit_concurrency=settings.limit_concurrency,
        timeout_keep_alive=5,
        **extra,
    )


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    data_root: str | None = None,
    token: str | None = None,
    allow_open: bool = False,
    settings: ServeSettings | None = None,
) -> None:
    """Serve the champion of ``data_root`` (default: ``REVIEWOPS_DATA_ROOT``) until
    interrupted (Ctrl-C, SIGTERM). A :class:`ServeError` before anything is bound when
    access is not settled (:func:`check_access`)."""
    token = check_access(host, token, allow_open)
    root = Settings.from_env(data_root=data_root).data_root
    runtime = ServingRuntime(root, token, settings or ServeSettings())
    server = uvicorn.Server(uvicorn_config(runtime.app, host, port, runtime.settings))
    log.info("serving the champion of %s on http://%s:%d", root, host, port)
    runtime.start()
    try:
        server.run()
    finally:
        runtime.stop()


class BackgroundServer:
    """``with BackgroundServer(data_root, token=...) as server:`` a server on a free port of
    127.0.0.1 (``server.url``) in a thread of this process, stopped on leaving."""

    def __init__(
        self,
        data_root: str,
        token: str | None = None,
        allow_open: bool = False,
        settings: ServeSettings | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
    ) -> None:
        self.host = host
        self.port = port  # the port bound once entered (a free one for 0)
        self.runtime = ServingRuntime(
            str(data_root), check_access(host, token, allow_open), settings or ServeSettings()
        )
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self._socket = socket.create_server((self.host, self.port))
        self.port = self._socket.getsockname()[1]
        config = uvicorn_config(self.runtime.app, self.host, self.port, self.runtime.settings, log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="reviewops-serving-http", daemon=True
        )
        self.runtime.start()
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise ServeError(f"the server on {self.url} did not start within 30 s")
            time.sleep(0.01)
        return self

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Whether a model is loaded within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.runtime.batcher.model is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.runtime.batcher.model is not None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(15)
        self.runtime.stop()
        if self._socket is not None:
            self._socket.close()
