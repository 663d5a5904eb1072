"""The request log: every row the server scores, appended to Parquet by a background writer.

Nothing here runs on the request path but :meth:`RequestLog.append`, which puts a
request's call on a bounded queue without waiting and without a lock (a ``deque``: its
``append`` and ``popleft`` are atomic, O(1)): when the queue is full (the disk or the
object store slower than the traffic) its rows are dropped and counted
(``dropped_rows``, shown in ``/v2/models/reviews/stats``) rather than slowing an answer.
One thread drains the queue every ``flush_seconds`` (sooner once ``flush_calls`` wait) and
writes the rows, built a column at a time, as one Parquet part file into the partition of
each UTC day (``monitoring.online.partition``); :meth:`close` writes what is left.
A part file is written whole (``storage.io.write_parquet``: atomic locally, one object on
GCS), so a reader never sees half of one. The schema is
``monitoring.online.REQUEST_LOG_SCHEMA``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from reviewops.monitoring.online import ERROR, OK, REQUEST_LOG_SCHEMA, partition
from reviewops.serving.served import Scores
from reviewops.storage.io import write_parquet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    """One request scored by one model: what the log records of it. Its rows are built on
    the writer thread (hashes included, :func:`log_table`), not on the request path."""

    request_id: str
    request_key: str
    stage: str
    role: str
    latency_ms: float
    texts: Sequence[str]
    version: str
    scores: Scores | None = None  # None: the call failed
    error: str | None = None
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __len__(self) -> int:
        return len(self.texts)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def log_table(calls: Sequence[Call]) -> pa.Table:
    """The log rows of some calls, built a column at a time: a value a call is spread over
    its rows by Arrow (``take``), so the Python work is per call, not per row and field
    (per-row dicts cost the writer several times the CPU, on a thread that shares the
    interpreter with the requests)."""
    scored = [c for c in calls if c.scores is not None]
    failed = [c for c in calls if c.scores is None]
    tables = [_table(scored)] if scored else []
    tables += [_table(failed)] if failed else []
    return pa.concat_tables(tables) if tables else REQUEST_LOG_SCHEMA.empty_table()


def _table(calls: Sequence[Call]) -> pa.Table:
    """The rows of calls that all succeeded, or all failed."""
    counts = np.array([len(c.texts) for c in calls], dtype=np.int64)
    owner = pa.array(np.repeat(np.arange(len(calls)), counts))  # the call of each row
    rows = int(counts.sum())
    texts = [text for call in calls for text in call.texts]

    def per_call(name: str, values: list[Any]) -> pa.Array:
        return pa.array(values, REQUEST_LOG_SCHEMA.field(name).type).take(owner)

    columns: dict[str, pa.Array] = {
        "at": per_call("at", [c.at for c in calls]),
        "request_id": per_call("request_id", [c.request_id for c in calls]),
        "row": pa.array(np.arange(rows) - np.repeat(np.cumsum(counts) - counts, counts), pa.int32()),
        "request_key_sha256": per_call("request_key_sha256", [_sha256(c.request_key)[:16] for c in calls]),
        "model_version": per_call("model_version", [c.version for c in calls]),
        "stage": per_call("stage", [c.stage for c in calls]),
        "role": per_call("role", [c.role for c in calls]),
        "status": per_call("status", [OK if c.scores is not None else ERROR for c in calls]),
        "error": per_call("error", [None if c.error is None else c.error[:500] for c in calls]),
        "latency_ms": per_call("latency_ms", [c.latency_ms for c in calls]),
        "text_sha256": pa.array([_sha256(text) for text in texts], pa.string()),
        "text_chars": pa.array([len(text) for text in texts], pa.int32()),
    }
    scores = [c.scores for c in calls if c.scores is not None]
    if scores:
        columns.update(_scored_columns(scores, per_call))
    # A failed call has no scores: its label, probabilities and flags are null.
    arrays = [columns[f.name] if f.name in columns else pa.nulls(rows, f.type) for f in REQUEST_LOG_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=REQUEST_LOG_SCHEMA)


def _scored_columns(scores: list[Scores], per_call: Callable[[str, list[Any]], pa.Array]) -> dict[str, pa.Array]:
    flags = [flag for s in scores for flag in s.safety]
    probabilities = np.concatenate([s.probabilities for s in scores]).astype(np.float32)
    classes = {s.classes for s in scores}
    if len(classes) == 1:  # the usual case: one class order, one vectorised lookup
        labels = np.array(next(iter(classes)), dtype=object)[probabilities.argmax(axis=1)].tolist()
    else:
        labels = [label for s in scores for label in s.labels()]
    flat = pa.array(probabilities.ravel(), pa.float32())
    return {
        "label": pa.array(labels, pa.string()),
        "classes": per_call("classes", [",".join(s.classes) for s in scores]),
        "probabilities": pa.FixedSizeListArray.from_arrays(flat, probabilities.shape[1]).cast(
            REQUEST_LOG_SCHEMA.field("probabilities").type
        ),
        "safety_flagged": pa.array([f.flagged for f in flags], pa.bool_()),
        "safety_categories": pa.array([",".join(f.categories) for f in flags], pa.string()),
        "safety_score": pa.array([f.score for f in flags], pa.float32()),
    }


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


class RequestLog:
    """``append(call)`` from any thread; one writer thread; ``close()`` flushes.

    The writer sleeps ``flush_seconds`` between writes and then drains the queue at once,
    rather than waking for every call: a thread woken a thousand times a second would take
    the interpreter from the event loop as often. It is woken early by :meth:`flush`,
    :meth:`close`, or a queue holding ``flush_calls`` calls."""

    def __init__(
        self, data_root: str, max_queue_rows: int = 100_000, flush_calls: int = 20_000, flush_seconds: float = 2.0
    ) -> None:
        self.data_root = data_root
        self.flush_calls = flush_calls
        self.flush_seconds = flush_seconds
        # Items are whole calls; the bound counts calls, so it is the rows bound for
        # single-review requests and a looser one for batches (256 rows at most each).
        # A deque, not a queue.Queue: append and popleft need no lock (the GIL makes them
        # atomic), so the request path never waits on the writer. The bound is checked
        # before the append, so with several appending threads it may be passed by a few.
        self.max_queue_calls = max_queue_rows
        self._queue: deque[Call | _Flush | None] = deque()
        self._wake = threading.Event()
        self._writer_id = uuid.uuid4().hex[:8]
        self._parts = 0
        self._lock = threading.Lock()
        self.dropped_rows = 0
        self.written_rows = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="reviewops-request-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def append(self, call: Call) -> bool:
        """Queue a call's rows for writing without waiting; False (and counted) when the
        queue is full."""
        queued = len(self._queue)
        if queued >= self.max_queue_calls:
            with self._lock:  # only when dropping: the usual append takes no lock
                self.dropped_rows += len(call.texts)
            return False
        self._queue.append(call)
        if queued + 1 >= self.flush_calls:
            self._wake.set()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued before this call; whether it was done in ``timeout``."""
        if not self._thread.is_alive():
            return False
        marker = _Flush()
        self._queue.append(marker)  # markers pass the bound: they hold no rows
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._queue.append(None)
            self._wake.set()
            self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "request_log_written_rows": self.written_rows,
                "request_log_dropped_rows": self.dropped_rows,
                "request_log_write_errors": self.write_errors,
                "request_log_last_error": self.last_error,
                "request_log_queued": len(self._queue),
            }

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            calls: list[Call] = []
            markers: list[_Flush] = []
            stopping = False
            for _ in range(len(self._queue)):  # what is queued now; what comes later waits for the next round
                item = self._queue.popleft()
                if isinstance(item, Call):
                    calls.append(item)
                elif isinstance(item, _Flush):
                    markers.append(item)
                else:
                    stopping = True
            self._write(calls)
            for marker in markers:
                marker.done.set()
            if stopping:
                return

    def _write(self, calls: list[Call]) -> None:
        by_day: dict[dt.date, list[Call]] = {}
        for call in calls:
            by_day.setdefault(call.at.date(), []).append(call)
        for day, day_calls in by_day.items():
            rows = sum(map(len, day_calls))
            self._parts += 1
            stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S")
            name = f"part-{stamp}-{self._writer_id}-{self._parts:06d}.parquet"
            try:
                write_parquet(log_table(day_calls), partition(self.data_root, day) / name)
            except Exception as exc:
                # The log must not take the server down: the rows are lost, counted and shown.
                log.exception("request log: %d rows could not be written", rows)
                with self._lock:
                    self.write_errors += 1
                    self.dropped_rows += rows
                    self.last_error = f"{type(exc).__name__}: {exc}"
                continue
            with self._lock:
                self.written_rows += rows
