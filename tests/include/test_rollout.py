"""The roll-out plan in the registry, the request log and the gate on live metrics,
without a model: versions are registered with stand-in files, and the request log is
written by the server's own writer from scores made here."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reviewops.data.safety import SafetyFlags
from reviewops.monitoring.online import (
    ONLINE_REPORT_FILE,
    OnlineWeekParams,
    partition,
    read_request_log,
    summarise_online_week,
)
from reviewops.registry.rollout import (
    RolloutError,
    Stage,
    active_plan,
    advance_stage,
    key_fraction,
    read_plan,
    roll_back,
    start_rollout,
)
from reviewops.registry.store import Registry
from reviewops.serving.requestlog import Call, RequestLog
from reviewops.serving.rollout import (
    ADVANCE,
    HOLD,
    IDLE,
    ROLL_BACK,
    RolloutParams,
    RolloutThresholds,
    apply_rollout,
    evaluate_rollout,
    feedback_dir,
)
from reviewops.serving.served import Scores
from tests.include.test_registry import registered

CHAMPION, CHALLENGER, OTHER = "m-aaaaaaaaaaaa", "m-bbbbbbbbbbbb", "m-cccccccccccc"
CLASSES = ("negative", "neutral", "positive")
QUICK = RolloutThresholds(min_rows=40, min_stage_minutes=0, min_breach_rows=20, min_feedback_rows=20)


@pytest.fixture
def root(tmp_path: Path) -> str:
    registry = Registry(str(tmp_path))
    for version in (CHAMPION, CHALLENGER, OTHER):
        registered(registry, version)
    registry.promote(CHAMPION, "first", "test")
    return str(tmp_path)


def test_a_roll_out_walks_shadow_canary_full_and_each_step_is_in_the_history(root: str) -> None:
    registry = Registry(root)
    plan = start_rollout(root, CHALLENGER, "new model", "test", canary_share=0.2)
    assert (plan.stage, plan.champion, plan.challenger, plan.canary_share) == (Stage.SHADOW, CHAMPION, CHALLENGER, 0.2)
    assert read_plan(root) == plan == active_plan(root)
    # A stage line names the champion as its version: the challenger is not blessed by it.
    assert not registry.is_blessed(CHALLENGER)
    assert advance_stage(root, "clean shadow", "test").stage == Stage.CANARY
    assert registry.champion() == CHAMPION
    assert advance_stage(root, "clean canary", "test").stage == Stage.FULL
    assert registry.champion() == CHALLENGER and active_plan(root) is None
    actions = [(e["action"], e["version"], e.get("challenger")) for e in registry.history()]
    assert actions == [
        ("promote", CHAMPION, None),
        ("rollout-shadow", CHAMPION, CHALLENGER),
        ("rollout-canary", CHAMPION, CHALLENGER),
        ("promote", CHALLENGER, None),
        ("rollout-full", CHALLENGER, CHALLENGER),
    ]
    # The registry's own rollback still walks back through the promotions.
    assert registry.rollback("bad after all", "test") == CHAMPION


def test_one_roll_out_at_a_time_and_never_of_the_champion(root: str) -> None:
    with pytest.raises(RolloutError, match="already the champion"):
        start_rollout(root, CHAMPION, "x", "test")
    first = start_rollout(root, CHALLENGER, "x", "test")
    assert start_rollout(root, CHALLENGER, "again", "test") == first  # a retried start starts nothing new
    assert [e["action"] for e in Registry(root).history()].count("rollout-shadow") == 1
    with pytest.raises(RolloutError, match=f"roll-out of {CHALLENGER} is in its shadow stage"):
        start_rollout(root, OTHER, "x", "test")
    assert roll_back(root, "stop", "test").stage == Stage.ROLLED_BACK
    assert active_plan(root) is None and Registry(root).champion() == CHAMPION
    with pytest.raises(RolloutError, match="no active roll-out"):
        advance_stage(root, "x", "test")
    assert start_rollout(root, OTHER, "next", "test").challenger == OTHER


def test_a_promotion_by_other_means_ends_the_plan(root: str) -> None:
    start_rollout(root, CHALLENGER, "x", "test")
    Registry(root).promote(OTHER, "by hand", "test")
    assert active_plan(root) is None
    overtaken = evaluate_rollout(RolloutParams(root, "test", QUICK))
    assert overtaken.metrics["decision"] == IDLE and overtaken.outputs == ()
    assert f"the champion is {OTHER}" in overtaken.subject
    with pytest.raises(RolloutError, match=f"champion is {OTHER} now"):
        advance_stage(root, "x", "test")


def test_a_damaged_plan_says_how_to_stop_the_roll_out(root: str) -> None:
    (Path(root) / "models" / "rollout.json").write_text("{not json")
    with pytest.raises(RolloutError, match="delete it to stop the roll-out"):
        read_plan(root)


def test_the_canary_is_sticky_by_key_and_takes_its_share(root: str) -> None:
    start_rollout(root, CHALLENGER, "x", "test", canary_share=0.1)
    shadow = read_plan(root)
    assert shadow is not None and not any(shadow.answers_with_challenger(f"user-{i}") for i in range(1000))
    canary = advance_stage(root, "x", "test")
    chosen = [canary.answers_with_challenger(f"user-{i}") for i in range(20_000)]
    assert 0.09 < sum(chosen) / len(chosen) < 0.11
    assert chosen == [canary.answers_with_challenger(f"user-{i}") for i in range(20_000)]
    assert key_fraction("user-1") == key_fraction("user-1") != key_fraction("user-2")


def scores(version: str, labels: list[str]) -> Scores:
    probabilities = np.full((len(labels), 3), 0.1, np.float32)
    for i, label in enumerate(labels):
        probabilities[i, CLASSES.index(label)] = 0.8
    flags = tuple(SafetyFlags((), 0.0) for _ in labels)
    return Scores(version, CLASSES, probabilities, flags)


def traffic(log: RequestLog, stage: str, requests: int, agree: bool, latency_ms: float = 12.0, first: int = 0) -> None:
    """``requests`` single-review requests: the champion answers, the challenger scores a
    shadow copy, agreeing or not."""
    for i in range(first, first + requests):
        label = CLASSES[i % 3]
        other = label if agree else CLASSES[(i + 1) % 3]
        base = Call(f"{stage}-{i}", f"key-{i}", stage, "answer", latency_ms, [f"text {i}"], CHAMPION)
        log.append(Call(**{**vars(base), "scores": scores(CHAMPION, [label])}))
        log.append(
            Call(**{**vars(base), "role": "shadow", "version": CHALLENGER, "scores": scores(CHALLENGER, [other])})
        )
    assert log.flush(30)


@pytest.fixture
def request_log(root: str) -> Iterator[RequestLog]:
    log = RequestLog(root, flush_seconds=0.05)
    log.start()
    yield log
    log.close()


def test_the_gate_holds_then_advances_on_agreeing_traffic(root: str, request_log: RequestLog) -> None:
    params = RolloutParams(root, "test", QUICK)
    assert evaluate_rollout(params).metrics["decision"] == IDLE
    start_rollout(root, CHALLENGER, "x", "test")
    nothing_yet = evaluate_rollout(params).metrics
    assert nothing_yet["decision"] == HOLD and nothing_yet["rows"] == 0 and nothing_yet["agreement"] is None
    traffic(request_log, "shadow", 10, agree=True)
    held = evaluate_rollout(params)
    assert held.metrics["decision"] == HOLD and "10 challenger rows" in held.metrics["why"]
    traffic(request_log, "shadow", 40, agree=True, first=10)
    ready = evaluate_rollout(params)
    assert ready.metrics["decision"] == ADVANCE, ready.metrics
    assert ready.metrics["agreement"] == 1.0 and ready.metrics["paired_rows"] == 50
    assert ready.metrics["error_rate"] == 0.0 and ready.metrics["p95_latency_ms"] == 12.0
    applied = apply_rollout(params, ready.outputs[0].path)
    assert (applied.metrics["from_stage"], applied.metrics["stage"]) == ("shadow", "canary")
    # The report evaluated the shadow stage: applying it again would skip a stage.
    with pytest.raises(RolloutError, match="the plan is now"):
        apply_rollout(params, ready.outputs[0].path)


def test_the_gate_rolls_back_a_challenger_that_disagrees(root: str, request_log: RequestLog) -> None:
    params = RolloutParams(root, "test", QUICK)
    start_rollout(root, CHALLENGER, "x", "test")
    traffic(request_log, "shadow", 30, agree=False)
    report = evaluate_rollout(params)
    assert report.metrics["decision"] == ROLL_BACK
    assert [b["metric"] for b in report.metrics["breaches"]] == ["agreement"]
    written = json.loads(report.outputs[0].path.read_text())
    assert written["decision"] == ROLL_BACK and written["metrics"]["agreement"] == 0.0
    assert apply_rollout(params, report.outputs[0].path).metrics["stage"] == "rolled_back"
    assert active_plan(root) is None and Registry(root).champion() == CHAMPION


def test_the_gate_rolls_back_on_latency_and_on_arrived_ratings(root: str, request_log: RequestLog) -> None:
    start_rollout(root, CHALLENGER, "x", "test")
    traffic(request_log, "shadow", 30, agree=True, latency_ms=400.0)
    slow = evaluate_rollout(RolloutParams(root, "test", QUICK))
    assert [b["metric"] for b in slow.metrics["breaches"]] == ["p95_latency_ms"]
    # Ratings that say the champion's (and the agreeing challenger's) labels are wrong
    # on every row hurt both alike: no accuracy breach.
    folder = feedback_dir(root)
    folder.mkdir(parents=True)
    ratings = pd.DataFrame({"request_id": [f"shadow-{i}" for i in range(30)], "rating": ["1"] * 30})
    ratings.to_csv(folder / "ratings.csv", index=False)
    rated = evaluate_rollout(
        RolloutParams(root, "test", RolloutThresholds(**{**vars(QUICK), "max_p95_latency_ms": 1000}))
    )
    assert rated.metrics["rated_rows"] == 30 and rated.metrics["accuracy"] == rated.metrics["champion_accuracy"]
    assert rated.metrics["breaches"] == []


def test_the_request_log_never_blocks_and_counts_what_it_drops(tmp_path: Path) -> None:
    log = RequestLog(str(tmp_path), max_queue_rows=5)  # not started: nothing drains the queue
    call = Call("r", "k", "none", "answer", 1.0, ["a", "b"], CHAMPION, scores(CHAMPION, ["positive", "neutral"]))
    accepted = [log.append(call) for _ in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert log.stats()["request_log_dropped_rows"] == 6


def test_the_request_log_writes_by_day_and_flushes_on_close(tmp_path: Path) -> None:
    log = RequestLog(str(tmp_path), flush_seconds=60)  # only close() writes
    log.start()
    writers = [
        threading.Thread(target=lambda n=n: traffic_rows(log, n))
        for n in range(4)  # from several threads at once
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    log.close()
    today = dt.datetime.now(dt.UTC)
    parts = list(partition(str(tmp_path), today.date()).glob("part-*.parquet"))
    assert parts and log.stats()["request_log_written_rows"] == 4 * 25 * 2
    frame = read_request_log(str(tmp_path), today - dt.timedelta(hours=1), today + dt.timedelta(hours=1))
    assert len(frame) == 200 and frame["text_sha256"].str.len().eq(64).all()
    assert set(frame["label"]) == {"positive", "neutral"} and "text" not in frame.columns
    assert frame["probabilities"].map(len).eq(3).all()


def traffic_rows(log: RequestLog, n: int) -> None:
    for i in range(25):
        labels = ["positive", "neutral"]
        log.append(Call(f"{n}-{i}", "k", "none", "answer", float(i), ["a", "b"], CHAMPION, scores(CHAMPION, labels)))


def test_the_online_week_summary_by_model_stage_and_role(root: str, request_log: RequestLog) -> None:
    start_rollout(root, CHALLENGER, "x", "test")
    traffic(request_log, "shadow", 12, agree=True)
    request_log.append(Call("bad", "k", "shadow", "answer", 30_000.0, ["x"], CHAMPION, None, "no answer within 30 s"))
    assert request_log.flush(30)
    today = dt.datetime.now(dt.UTC).date()
    monday = today - dt.timedelta(days=today.weekday())
    result = summarise_online_week(OnlineWeekParams(root, monday.isoformat()))
    report = json.loads(result.outputs[0].path.read_text())
    assert result.outputs[0].path.name == ONLINE_REPORT_FILE
    assert (report["requests"], report["answered_rows"], report["errors"]) == (13, 13, 1)
    groups = {(g["model_version"], g["role"]): g for g in report["by_model"]}
    assert groups[(CHAMPION, "answer")]["rows"] == 13 and groups[(CHAMPION, "answer")]["errors"] == 1
    assert groups[(CHALLENGER, "shadow")]["class_mix"] == {"negative": 0.3333, "neutral": 0.3333, "positive": 0.3333}
    empty = summarise_online_week(OnlineWeekParams(root, "2020-01-06"))
    assert empty.metrics["rows"] == 0 and empty.metrics["p95_ms"] is None
