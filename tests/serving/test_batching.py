"""The micro-batcher with a stand-in model: coalescing, limits, failures, cancellation and
swaps, each bounded in time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future

import numpy as np
import pytest

from reviewops.data.safety import SafetyFlags
from reviewops.serving.batching import MicroBatcher, NotReady, QueueFull, ScoringError
from reviewops.serving.served import Scores

CLASSES = ("negative", "neutral", "positive")
WAIT = 10.0  # seconds a test waits for any one answer, at the most


class CountingModel:
    """Answers each text with its length in the first column; records every call. With
    ``gate`` set, a call waits for it (bounded), so a test can hold the model busy."""

    def __init__(self, version: str = "m-one", gate: threading.Event | None = None) -> None:
        self.version = version
        self.calls: list[list[str]] = []
        self.gate = gate
        self.started = threading.Event()

    def score(self, texts: list[str]) -> Scores:
        self.calls.append(list(texts))
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        if any(text == "boom" for text in texts):
            raise ValueError("cannot score boom")
        probabilities = np.array([[len(t), 0, 0] for t in texts], np.float32)
        return Scores(self.version, CLASSES, probabilities, tuple(SafetyFlags((), 0.0) for _ in texts))


@pytest.fixture
def batcher() -> Iterator[MicroBatcher]:
    running = MicroBatcher(max_batch_rows=4, max_wait_seconds=0.2, max_queue_rows=10)
    running.start()
    yield running
    running.stop(WAIT)


def lengths(future: Future[Scores]) -> list[int]:
    return [int(v) for v in future.result(WAIT).probabilities[:, 0]]


def test_nothing_is_queued_before_a_model_is_loaded(batcher: MicroBatcher) -> None:
    with pytest.raises(NotReady):
        batcher.submit(["a"])


def test_requests_arriving_together_share_model_calls_of_at_most_max_batch_rows(batcher: MicroBatcher) -> None:
    model = CountingModel()
    batcher.swap(model)
    futures = [batcher.submit(["x" * i]) for i in range(1, 11)]
    assert [lengths(f) for f in futures] == [[i] for i in range(1, 11)]
    assert [len(call) for call in model.calls] == [4, 4, 2]
    stats = batcher.stats()
    assert (stats.execution_count, stats.request_count, stats.inference_count, stats.largest_batch_rows) == (
        3,
        10,
        10,
        4,
    )


def test_a_request_is_never_split_and_a_large_one_is_a_call_of_its_own(batcher: MicroBatcher) -> None:
    model = CountingModel()
    batcher.swap(model)
    small, large, after = batcher.submit(["a"]), batcher.submit(["bb"] * 6), batcher.submit(["ccc"])
    assert lengths(small) == [1] and lengths(large) == [2] * 6 and lengths(after) == [3]
    assert [len(call) for call in model.calls] == [1, 6, 1]


def test_a_failed_call_fails_its_requests_only_and_the_thread_goes_on(batcher: MicroBatcher) -> None:
    model = CountingModel()
    batcher.swap(model)
    failed, neighbour = batcher.submit(["boom"]), batcher.submit(["ok"])
    for future in (failed, neighbour):  # one call: both fail, with the cause
        with pytest.raises(ScoringError, match="m-one failed to score the batch: ValueError: cannot score boom"):
            future.result(WAIT)
    assert lengths(batcher.submit(["fine"])) == [4]
    assert batcher.stats().failure_count == 1


def test_a_full_queue_refuses_at_once_and_a_cancelled_request_is_dropped(batcher: MicroBatcher) -> None:
    gate = threading.Event()
    model = CountingModel(gate=gate)
    batcher.swap(model)
    busy = batcher.submit(["held"])
    assert model.started.wait(WAIT)  # the model is busy with it
    queued = [batcher.submit(["q"] * 4), batcher.submit(["r"] * 4)]
    with pytest.raises(QueueFull):
        batcher.submit(["s"] * 3)  # 8 queued + 3 > 10
    assert queued[0].cancel()  # as a request that timed out cancels its rows
    gate.set()
    assert lengths(busy) == [4] and lengths(queued[1]) == [1] * 4
    assert model.calls == [["held"], ["r"] * 4]


def test_a_swap_takes_effect_from_the_next_call_and_never_splits_one(batcher: MicroBatcher) -> None:
    gate = threading.Event()
    old, new = CountingModel("m-old", gate=gate), CountingModel("m-new")
    batcher.swap(old)
    during = batcher.submit(["a", "b"])
    assert old.started.wait(WAIT)
    assert batcher.swap(new) is old
    after = batcher.submit(["c"])
    gate.set()
    assert during.result(WAIT).version == "m-old" and after.result(WAIT).version == "m-new"
    assert old.calls == [["a", "b"]] and new.calls == [["c"]]


def test_stop_answers_what_is_queued_then_refuses() -> None:
    running = MicroBatcher(max_batch_rows=4, max_wait_seconds=0.0, max_queue_rows=10)
    running.swap(CountingModel())
    queued = running.submit(["before start"])
    running.start()
    running.stop(WAIT)
    assert lengths(queued) == [12]
    with pytest.raises(NotReady, match="stopping"):
        running.submit(["late"])
