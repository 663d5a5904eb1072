"""The request log: every row the server scores, appended to Parquet by a background writer.

Nothing here runs on the request path but :meth:`RequestLog.append`, which puts a
request's rows on a bounded queue without waiting: when the queue is full (the disk or the
object store slower than the traffic) the rows are dropped and counted
(``dropped_rows``, shown in ``/v2/models/reviews/stats``) rather than slowing an answer.
One thread takes the rows off the queue and writes one Parquet part file per
``flush_rows`` rows or ``flush_seconds``, whichever comes first, into the partition of
each row's UTC day (``monitoring.online.partition``); :meth:`close` writes what is left.
A part file is written whole (``storage.io.write_parquet``: atomic locally, one object on
GCS), so a reader never sees half of one. The schema is
``monitoring.online.REQUEST_LOG_SCHEMA``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from reviewops.monitoring.online import ERROR, OK, REQUEST_LOG_SCHEMA, partition
from reviewops.serving.served import Scores
from reviewops.storage.io import write_parquet

log = logging.getLogger(__name__)

Row = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One request scored by one model: what the log records of it. The rows are built
    from it on the writer thread (hashes included), not on the request path."""

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

    def rows(self) -> list[Row]:
        key = hashlib.sha256(self.request_key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        base = [
            {
                "at": self.at,
                "request_id": self.request_id,
                "row": i,
                "request_key_sha256": key,
                "model_version": self.version,
                "stage": self.stage,
                "role": self.role,
                "status": OK if self.scores is not None else ERROR,
                "error": None if self.error is None else self.error[:500],
                "latency_ms": self.latency_ms,
                "text_sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
                "text_chars": len(text),
            }
            for i, text in enumerate(self.texts)
        ]
        scores = self.scores
        if scores is None:
            return base
        labels = scores.labels()
        classes = ",".join(scores.classes)
        for i, row in enumerate(base):
            flags = scores.safety[i]
            row["label"], row["classes"] = labels[i], classes
            row["probabilities"] = scores.probabilities[i].tolist()
            row["safety_flagged"], row["safety_score"] = flags.flagged, flags.score
            row["safety_categories"] = ",".join(flags.categories)
        return base


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


class RequestLog:
    """``append(rows)`` from any thread; one writer thread; ``close()`` flushes."""

    def __init__(
        self, data_root: str, max_queue_rows: int = 100_000, flush_rows: int = 20_000, flush_seconds: float = 2.0
    ) -> None:
        self.data_root = data_root
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        # Items are whole calls; the bound counts calls, so it is the rows bound for
        # single-review requests and a looser one for batches (256 rows at most each).
        self._queue: queue.Queue[Call | _Flush | None] = queue.Queue(maxsize=max_queue_rows)
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
        try:
            self._queue.put_nowait(call)
            return True
        except queue.Full:
            with self._lock:
                self.dropped_rows += len(call.texts)
            return False

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued before this call; whether it was done in ``timeout``."""
        if not self._thread.is_alive():
            return False
        marker = _Flush()
        self._queue.put(marker, timeout=timeout)
        return marker.done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None, timeout=timeout)
            self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "request_log_written_rows": self.written_rows,
                "request_log_dropped_rows": self.dropped_rows,
                "request_log_write_errors": self.write_errors,
                "request_log_last_error": self.last_error,
                "request_log_queued": self._queue.qsize(),
            }

    def _run(self) -> None:
        pending: list[Row] = []
        oldest = 0.0
        while True:
            wait = max(0.0, oldest + self.flush_seconds - time.monotonic()) if pending else None
            item: Call | _Flush | bool | None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = False  # the oldest row has waited flush_seconds: write
            if isinstance(item, Call):
                if not pending:
                    oldest = time.monotonic()
                pending.extend(item.rows())
                if len(pending) < self.flush_rows:
                    continue
            self._write(pending)
            pending = []
            if isinstance(item, _Flush):
                item.done.set()
            elif item is None:
                return

    def _write(self, rows: list[Row]) -> None:
        if not rows:
            return
        by_day: dict[dt.date, list[Row]] = {}
        for row in rows:
            by_day.setdefault(row["at"].date(), []).append(row)
        for day, day_rows in by_day.items():
            self._parts += 1
            stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S")
            name = f"part-{stamp}-{self._writer_id}-{self._parts:06d}.parquet"
            try:
                write_parquet(
                    pa.Table.from_pylist(day_rows, schema=REQUEST_LOG_SCHEMA), partition(self.data_root, day) / name
                )
            except Exception as exc:
                # The log must not take the server down: the rows are lost, counted and shown.
                log.exception("request log: %d rows could not be written", len(day_rows))
                with self._lock:
                    self.write_errors += 1
                    self.dropped_rows += len(day_rows)
                    self.last_error = f"{type(exc).__name__}: {exc}"
                continue
            with self._lock:
                self.written_rows += len(day_rows)
