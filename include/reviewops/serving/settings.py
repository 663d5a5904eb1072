"""What the online server accepts and how it batches: one frozen dataclass, validated."""

from __future__ import annotations

from dataclasses import dataclass, fields

from reviewops.config import Settings

ENV_SERVE_TOKEN = "REVIEWOPS_SERVE_TOKEN"
MODEL_NAME = "reviews"
# Shorter tokens can be guessed over the network; token_urlsafe(24) gives 32 characters.
MIN_TOKEN_CHARS = 16
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class ServeSettings:
    """Limits of a request, the micro-batching window and the champion poll.

    - ``max_text_chars``: the pipeline's own limit (``Settings.max_text_chars``): a text
      validation would quarantine as ``text_too_long`` is refused online too.
    - ``max_rows``: reviews in one request; 256 is eight times the batches of 32 the load
      test sends.
    - ``max_body_bytes``: 4 MiB holds ``max_rows`` reviews of the longest text the pipeline
      accepts (10,000 characters, mostly ASCII, as JSON: about 2.6 MB); the shipped
      reviews' longest is 2,064. A larger body is refused before it is read.
    - ``max_batch_rows`` and ``max_wait_ms``: a model call takes the requests that arrive
      within ``max_wait_ms`` of the first, up to ``max_batch_rows`` rows (a request is never
      split, so one larger than that is a call of its own). 5 ms is what a lone request
      pays at the most for the chance of sharing a call.
    - ``max_queue_rows``: rows waiting for the model; beyond it a request gets 503 with
      Retry-After at once rather than a growing delay.
    - ``poll_seconds``: how often the champion pointer is read.
    - ``request_timeout_seconds``: a request whose rows the model has not answered by then
      gets 503 (its rows are dropped if not yet taken).
    - ``body_timeout_seconds``: a body that has not arrived whole by then gets 408, so a
      slow sender holds nothing but its own connection.
    - ``limit_concurrency``: connections and tasks uvicorn serves at once (503 beyond).
    - ``log_queue_calls``: scored calls waiting for the request log's writer; beyond it
      their rows are dropped and counted, never waited for.
    - ``log_flush_seconds``: the longest a logged row waits before it is written.
    """

    max_text_chars: int = Settings.max_text_chars
    max_rows: int = 256
    max_body_bytes: int = 4 * 1024 * 1024
    max_batch_rows: int = 64
    max_wait_ms: float = 5.0
    max_queue_rows: int = 8192
    poll_seconds: float = 5.0
    request_timeout_seconds: float = 30.0
    body_timeout_seconds: float = 10.0
    limit_concurrency: int = 256
    log_queue_calls: int = 100_000
    log_flush_seconds: float = 2.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not value > 0 and not (item.name == "max_wait_ms" and value == 0):
                raise ValueError(f"serving setting {item.name}={value!r}: it must be a positive number")
        if self.max_rows > self.max_queue_rows:
            raise ValueError(
                f"max_rows {self.max_rows} > max_queue_rows {self.max_queue_rows}: a request that size could "
                "never be queued; raise max_queue_rows or lower max_rows"
            )

    @property
    def max_wait_seconds(self) -> float:
        return self.max_wait_ms / 1000.0
