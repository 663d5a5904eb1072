"""The roll-out gate: live metrics of the challenger from the request log, and the
decision to advance a stage, hold, or roll back.

The ``reviews_rollout`` DAG runs, each hour, :func:`start_rollout_step` (a new challenger
named by the run, if any), :func:`evaluate_rollout` (metrics since the stage began, the
decision, a report file) and :func:`apply_rollout` (the plan moved as decided). The
metrics are the challenger's rows of the current stage, from the request log:

- ``error_rate``: its calls that failed, of all its calls' rows;
- ``p95_latency_ms``: of its calls (one value a request; a shadow copy's latency is its
  own, from queued to scored);
- ``agreement``: the share of rows both models scored (every request during a roll-out is
  scored by both: one answers, the other scores a copy) where their labels agree;
- ``accuracy`` against ratings that arrived later: the feedback files
  (``<data_root>/serving/feedback/*.csv`` or ``*.parquet``, columns ``request_id``,
  ``row`` (default 0) and ``rating``, 1-10 stars or a label word, mapped to a class as the
  pipeline maps ratings), joined on request id and row, for each model.

A breach rolls back at once, whatever the row count; advancing needs ``min_rows`` of the
challenger's rows in the stage and ``min_stage_minutes`` of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd

from reviewops.contracts import ArtifactKind
from reviewops.data.parsing import parse_label
from reviewops.lineage.record import Artifact, StepResult
from reviewops.monitoring.online import ERROR, OK, read_request_log, requests_dir
from reviewops.registry.rollout import (
    DEFAULT_CANARY_SHARE,
    NEXT_STAGE,
    RolloutError,
    RolloutPlan,
    Stage,
    advance_stage,
    read_plan,
    roll_back,
    start_rollout,
)
from reviewops.registry.store import Registry
from reviewops.storage.io import read_json, read_table, write_json
from reviewops.storage.paths import Layout, StoragePath, glob

ADVANCE, HOLD, ROLL_BACK, IDLE = "advance", "hold", "roll_back", "idle"
REPORT_FILE_PREFIX = "gate-"


@dataclass(frozen=True)
class RolloutThresholds:
    """What a challenger must keep to stay in its roll-out, and what it must show to move on.

    - ``max_error_rate``: the champion's failure rate in the serving tests is 0; 1% leaves
      room for a transient fault and none for a broken model.
    - ``max_p95_latency_ms``: the champion measured p95 44 ms at 32 clients and 81 ms at
      64 (docs/serving.md); 250 ms is three times the worst of those.
    - ``min_agreement``: two models of the default settings trained on the same data with
      other seeds agree on about 95% of the shipped reviews; one trained on shuffled
      labels on about a third. 0.85 tells the two apart.
    - ``max_accuracy_drop``: against arriving ratings, the challenger may be at most this
      much below the champion on the same rows, once ``min_feedback_rows`` are rated.
    - ``min_breach_rows``: rows before an error rate, latency or agreement can breach (a
      single slow first call proves nothing).
    - ``min_rows`` and ``min_stage_minutes``: the evidence a stage needs before the next.
    """

    max_error_rate: float = 0.01
    max_p95_latency_ms: float = 250.0
    min_agreement: float = 0.85
    max_accuracy_drop: float = 0.05
    min_feedback_rows: int = 50
    min_breach_rows: int = 20
    min_rows: int = 200
    min_stage_minutes: float = 60.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"roll-out threshold {item.name}={value!r}: it must be a number >= 0")
        if self.max_error_rate > 1 or self.min_agreement > 1:
            raise ValueError("max_error_rate and min_agreement are shares: at most 1")

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None) -> RolloutThresholds:
        unknown = sorted(set(overrides or {}) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown roll-out thresholds {unknown}: known are {[f.name for f in fields(cls)]}")
        return cls(**dict(overrides or {}))


@dataclass(frozen=True)
class RolloutParams:
    data_root: str
    actor: str = "reviews_rollout"
    thresholds: RolloutThresholds = RolloutThresholds()


def feedback_dir(data_root: str) -> StoragePath:
    return Layout(data_root).root / "serving" / "feedback"


def read_feedback(data_root: str) -> pd.DataFrame:
    """Ratings that arrived for served requests: ``request_id``, ``row``, ``label``."""
    folder = feedback_dir(data_root)
    frames = [read_table(p).to_pandas() for p in glob(folder, "*.parquet")]
    frames += [pd.read_csv(p.open("rb"), dtype=str) for p in glob(folder, "*.csv")]
    if not frames:
        return pd.DataFrame(
            {"request_id": pd.Series(dtype=str), "row": pd.Series(dtype=int), "label": pd.Series(dtype=str)}
        )
    feedback = pd.concat(frames, ignore_index=True)
    missing = {"request_id", "rating"} - set(feedback.columns)
    if missing:
        raise RolloutError(f"feedback under {folder} lacks the columns {sorted(missing)}: request_id, row, rating")
    rows = feedback["row"] if "row" in feedback.columns else pd.Series(0, index=feedback.index)
    labels = [parse_label(None if pd.isna(v) else str(v)) for v in feedback["rating"]]
    out = pd.DataFrame({"request_id": feedback["request_id"].astype(str), "row": rows.fillna(0).astype(int)})
    out["label"] = labels
    return out.dropna(subset=["label"]).drop_duplicates(["request_id", "row"], keep="last")


def live_metrics(frame: pd.DataFrame, plan: RolloutPlan, feedback: pd.DataFrame) -> dict[str, Any]:
    """The challenger's metrics (and the champion's beside them) from a stage's log rows."""
    challenger = frame[frame["model_version"] == plan.challenger]
    champion = frame[frame["model_version"] == plan.champion]
    calls = challenger.drop_duplicates(["request_id", "role"])
    pairs = challenger[challenger["status"] == OK].merge(
        champion[champion["status"] == OK], on=["request_id", "row"], suffixes=("", "_champion")
    )
    metrics: dict[str, Any] = {
        "rows": len(challenger),
        "answered_rows": int((challenger["role"] == "answer").sum()),
        "champion_rows": len(champion),
        "errors": int((challenger["status"] == ERROR).sum()),
        "error_rate": _share((challenger["status"] == ERROR).sum(), len(challenger)),
        "p95_latency_ms": _p95(calls["latency_ms"]),
        "champion_p95_latency_ms": _p95(champion.drop_duplicates(["request_id", "role"])["latency_ms"]),
        "paired_rows": len(pairs),
        "agreement": _share((pairs["label"] == pairs["label_champion"]).sum(), len(pairs)),
    }
    rated = pairs.merge(feedback, on=["request_id", "row"], suffixes=("", "_rated"))
    metrics["rated_rows"] = len(rated)
    metrics["accuracy"] = _share((rated["label"] == rated["label_rated"]).sum(), len(rated))
    metrics["champion_accuracy"] = _share((rated["label_champion"] == rated["label_rated"]).sum(), len(rated))
    return metrics


def _share(count: Any, total: int) -> float | None:
    return round(float(count) / total, 4) if total else None


def _p95(values: pd.Series) -> float | None:
    return round(float(values.astype(float).quantile(0.95)), 2) if len(values) else None


def breaches(metrics: Mapping[str, Any], limits: RolloutThresholds) -> list[dict[str, Any]]:
    """Each limit the challenger broke, with a message that says what happened."""
    found = []
    enough = metrics["rows"] >= limits.min_breach_rows

    def breach(metric: str, value: Any, limit: float, message: str) -> None:
        found.append({"metric": metric, "value": value, "limit": limit, "message": message})

    if enough and metrics["error_rate"] > limits.max_error_rate:
        rate = metrics["error_rate"]
        breach("error_rate", rate, limits.max_error_rate, f"the challenger failed {rate:.1%} of its rows")
    if enough and metrics["p95_latency_ms"] > limits.max_p95_latency_ms:
        p95 = metrics["p95_latency_ms"]
        breach("p95_latency_ms", p95, limits.max_p95_latency_ms, f"the challenger's p95 latency is {p95:g} ms")
    agreement = metrics["agreement"]
    if metrics["paired_rows"] >= limits.min_breach_rows and agreement < limits.min_agreement:
        breach(
            "agreement", agreement, limits.min_agreement, f"the challenger agrees with the champion on {agreement:.1%}"
        )
    if metrics["rated_rows"] >= limits.min_feedback_rows:
        drop = metrics["champion_accuracy"] - metrics["accuracy"]
        if drop > limits.max_accuracy_drop:
            breach(
                "accuracy",
                metrics["accuracy"],
                metrics["champion_accuracy"] - limits.max_accuracy_drop,
                f"against arrived ratings the challenger is {drop:.1%} less accurate than the champion",
            )
    return found


def decide(
    plan: RolloutPlan,
    metrics: Mapping[str, Any],
    found: list[dict[str, Any]],
    limits: RolloutThresholds,
    now: dt.datetime,
) -> tuple[str, str]:
    """The decision and why."""
    if found:
        return ROLL_BACK, "; ".join(b["message"] for b in found)
    minutes = (now - dt.datetime.fromisoformat(plan.stage_since)).total_seconds() / 60
    if metrics["rows"] < limits.min_rows:
        return HOLD, f"{metrics['rows']} challenger rows in the {plan.stage} stage, {limits.min_rows} needed"
    if minutes < limits.min_stage_minutes:
        return HOLD, f"{minutes:.0f} minutes in the {plan.stage} stage, {limits.min_stage_minutes:g} needed"
    return (
        ADVANCE,
        f"{metrics['rows']} rows over {minutes:.0f} minutes within every limit: on to {NEXT_STAGE[plan.stage]}",
    )


def evaluate_rollout(params: RolloutParams, now: dt.datetime | None = None) -> StepResult:
    """Read the active roll-out's stage from the request log and decide; the report
    (``serving/rollout/<rollout id>/gate-<time>.json``) is the step's output. No active
    roll-out, or one whose champion is no longer champion: an ``idle`` result and no report."""
    plan = read_plan(params.data_root)
    if plan is None or not plan.active:
        stage = plan.stage if plan else "none"
        return StepResult(subject="no active roll-out", outputs=(), metrics={"decision": IDLE, "stage": str(stage)})
    champion = Registry(params.data_root).champion()
    if champion != plan.champion:  # promoted or rolled back by other means: the servers ignore the plan
        subject = f"roll-out of {plan.challenger} overtaken: the champion is {champion}, not {plan.champion}"
        return StepResult(subject=subject, outputs=(), metrics={"decision": IDLE, "stage": str(plan.stage)})
    now = now or dt.datetime.now(dt.UTC)
    frame = read_request_log(params.data_root, dt.datetime.fromisoformat(plan.stage_since), now)
    metrics = live_metrics(frame, plan, read_feedback(params.data_root))
    found = breaches(metrics, params.thresholds)
    decision, why = decide(plan, metrics, found, params.thresholds, now)
    report = {
        "plan": plan.to_dict(),
        "rollout": plan.rollout_id,
        "evaluated_at": now.isoformat(timespec="seconds"),
        "request_log": str(requests_dir(params.data_root)),
        "metrics": metrics,
        "thresholds": asdict(params.thresholds),
        "breaches": found,
        "decision": decision,
        "why": why,
    }
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    target = (
        Layout(params.data_root).root / "serving" / "rollout" / plan.rollout_id / f"{REPORT_FILE_PREFIX}{stamp}.json"
    )
    write_json(report, target)
    return StepResult(
        subject=f"roll-out of {plan.challenger} ({plan.stage})",
        outputs=(Artifact.of_file(target, ArtifactKind.REPORT),),
        metrics={"decision": decision, "why": why, "stage": str(plan.stage), "breaches": found, **metrics},
    )


def apply_rollout(params: RolloutParams, report_file: StoragePath) -> StepResult:
    """Carry out a gate report's decision on the plan it evaluated: advance the stage (to
    ``full``: the challenger promoted) or roll back. A plan that moved since the report
    was written is left alone (a RolloutError says so)."""
    report = read_json(report_file)
    plan = read_plan(params.data_root)
    if plan is None or plan.rollout_id != report["rollout"] or str(plan.stage) != report["plan"]["stage"]:
        now = "none" if plan is None else f"{plan.rollout_id} in {plan.stage}"
        raise RolloutError(
            f"the report evaluated {report['rollout']} in {report['plan']['stage']}, but the plan is now {now}: "
            "the next run evaluates it afresh"
        )
    decision, why = report["decision"], report["why"]
    if decision == ADVANCE:
        moved = advance_stage(params.data_root, why, params.actor)
    elif decision == ROLL_BACK:
        moved = roll_back(params.data_root, why, params.actor)
    else:
        moved = plan
    return StepResult(
        subject=f"roll-out of {plan.challenger}: {plan.stage} -> {moved.stage}",
        outputs=(),
        metrics={
            "decision": decision,
            "why": why,
            "from_stage": str(plan.stage),
            "stage": str(moved.stage),
            "champion": moved.champion if moved.stage != Stage.FULL else moved.challenger,
            "challenger": moved.challenger,
            "breaches": report["breaches"],
        },
    )


def start_rollout_step(
    params: RolloutParams, challenger: str, reason: str, canary_share: float = DEFAULT_CANARY_SHARE
) -> StepResult:
    """Put a challenger in shadow (``registry.rollout.start_rollout``) and say so."""
    plan = start_rollout(params.data_root, challenger, reason, params.actor, canary_share)
    return StepResult(
        subject=f"roll-out of {challenger} started in shadow",
        outputs=(),
        metrics={
            "stage": str(plan.stage),
            "champion": plan.champion,
            "challenger": plan.challenger,
            **{"canary_share": plan.canary_share},
        },
    )
