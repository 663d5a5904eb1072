"""Dynamic micro-batching: one thread owns the model and answers queued requests in
shared model calls.

A model call takes the first waiting request, then whatever else arrives within
``max_wait_seconds`` of its arrival, up to ``max_batch_rows`` rows (TF Serving's
``batch_timeout_micros`` and ``max_batch_size``): a request that already waited that long
while the model was busy is taken at once with the others waiting, not held another window. A request is never split across calls,
so every row of a request is answered by the same version. The model a call uses is
read once, as the call starts: a swap (:meth:`MicroBatcher.swap`) takes effect from the
next call, and the call under way finishes on the version it started with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from reviewops.serving.served import Scores

log = logging.getLogger(__name__)


class Scorer(Protocol):
    """What the batcher calls: a loaded version (:class:`ServedModel`) or a test's stand-in."""

    @property
    def version(self) -> str: ...

    def score(self, texts: list[str]) -> Scores: ...


class NotReady(RuntimeError):
    """No model is loaded yet."""


class QueueFull(RuntimeError):
    """More rows wait for the model than the server queues; the client should retry later."""


class ScoringError(RuntimeError):
    """The model call that held a request failed; every request of that call gets it."""


@dataclass
class BatchStats:
    """Counts since start, named as Triton's statistics extension names them."""

    inference_count: int = 0  # rows answered
    request_count: int = 0  # requests answered
    execution_count: int = 0  # model calls
    failure_count: int = 0  # model calls that raised
    largest_batch_rows: int = 0


@dataclass
class _Pending:
    texts: list[str]
    future: Future[Scores]
    queued_at: float  # time.monotonic()


class MicroBatcher:
    def __init__(self, max_batch_rows: int, max_wait_seconds: float, max_queue_rows: int) -> None:
        self.max_batch_rows = max_batch_rows
        self.max_wait_seconds = max_wait_seconds
        self.max_queue_rows = max_queue_rows
        self._condition = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._model: Scorer | None = None
        self._stopping = False
        self._stats = BatchStats()
        self._thread = threading.Thread(target=self._run, name="reviewops-serving-model", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Answer what is queued, then end the thread (waiting ``timeout`` at the most)."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def model(self) -> Scorer | None:
        return self._model

    def swap(self, model: Scorer) -> Scorer | None:
        """Make ``model`` answer from the next model call on; returns the one it replaces."""
        with self._condition:
            previous, self._model = self._model, model
        return previous

    def stats(self) -> BatchStats:
        with self._condition:
            return BatchStats(**vars(self._stats))

    def submit(self, texts: list[str]) -> Future[Scores]:
        """Queue a request's texts; the future holds their :class:`Scores`, or a
        :class:`ScoringError`. :class:`NotReady` or :class:`QueueFull` at once otherwise."""
        future: Future[Scores] = Future()
        with self._condition:
            if self._model is None:
                raise NotReady("no model is loaded yet")
            if self._stopping:
                raise NotReady("the server is stopping")
            if self._queued_rows + len(texts) > self.max_queue_rows:
                raise QueueFull(f"{self._queued_rows} rows are waiting for the model (at most {self.max_queue_rows})")
            self._queue.append(_Pending(texts, future, time.monotonic()))
            self._queued_rows += len(texts)
            # Wake the model thread only when it has something new to do: the first request
            # of a call (it waits for one), or a call's worth of rows (it stops gathering).
            # Waking it for every request made it take the GIL from the event loop as often.
            if len(self._queue) == 1 or self._queued_rows >= self.max_batch_rows:
                self._condition.notify_all()
        return future

    def _run(self) -> None:
        while True:
            taken = self._next_batch()
            if taken is None:
                return
            self._answer(*taken)

    def _next_batch(self) -> tuple[list[_Pending], Scorer] | None:
        """The requests of the next model call and the model to call, or None to stop."""
        with self._condition:
            while not self._queue and not self._stopping:
                self._condition.wait()
            if not self._queue:
                return None
            # Gather: sleep until max_wait after the first request arrived, or until a call's
            # worth of rows waits (submit wakes it then), then take what fits in one call.
            deadline = self._queue[0].queued_at + self.max_wait_seconds
            while self._queued_rows < self.max_batch_rows and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch = [self._queue.popleft()]
            rows = len(batch[0].texts)
            while self._queue and rows + len(self._queue[0].texts) <= self.max_batch_rows:
                batch.append(self._queue.popleft())
                rows += len(batch[-1].texts)
            self._queued_rows -= rows
            model = self._model
        assert model is not None  # submit() queues nothing before a model is loaded
        return batch, model

    def _answer(self, batch: list[_Pending], model: Scorer) -> None:
        live = [p for p in batch if p.future.set_running_or_notify_cancel()]  # timed-out requests drop out
        if not live:
            return
        texts = [text for pending in live for text in pending.texts]
        try:
            scores = model.score(texts)
        except Exception as exc:
            # The thread must outlive a failed call; each request it held gets the error as a 500.
            log.exception("model %s failed on a batch of %d rows", model.version, len(texts))
            error = ScoringError(f"model {model.version} failed to score the batch: {type(exc).__name__}: {exc}")
            for pending in live:
                pending.future.set_exception(error)
            with self._condition:
                self._stats.failure_count += 1
            return
        start = 0
        for pending in live:
            pending.future.set_result(scores.take(start, start + len(pending.texts)))
            start += len(pending.texts)
        with self._condition:
            self._stats.execution_count += 1
            self._stats.request_count += len(live)
            self._stats.inference_count += len(texts)
            self._stats.largest_batch_rows = max(self._stats.largest_batch_rows, len(texts))
