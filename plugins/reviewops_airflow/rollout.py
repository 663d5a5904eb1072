"""Operators of online serving: the controlled roll-out (the ``reviews_rollout`` DAG),
each calling one function of ``reviewops.serving.rollout`` (the stage changes themselves
are in the registry's promotion history), and the week's online traffic beside the batch
monitoring (``reviews_weekly``). Each returns a lineage record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from reviewops_airflow.base import ReviewOpsOperator, verified

if TYPE_CHECKING:
    from airflow.sdk import Context

    from reviewops.lineage.record import Artifact, LineageRecord, StepResult
    from reviewops.serving.rollout import RolloutParams

StepOutput = tuple["StepResult", list["Artifact"]]

# The trigger form's range of each RolloutThresholds field (the domain checks them again).
ROLLOUT_THRESHOLD_RANGES: dict[str, tuple[str, float]] = {
    "max_error_rate": ("number", 1.0),
    "max_p95_latency_ms": ("number", 60_000.0),
    "min_agreement": ("number", 1.0),
    "max_accuracy_drop": ("number", 1.0),
    "min_feedback_rows": ("integer", 1_000_000),
    "min_breach_rows": ("integer", 1_000_000),
    "min_rows": ("integer", 10_000_000),
    "min_stage_minutes": ("number", 10_080.0),  # a week
}


def rollout_thresholds_param() -> Param:
    """Overrides of the roll-out limits, each in its range."""
    properties = {
        name: {"type": kind, "minimum": 0, "maximum": high} for name, (kind, high) in ROLLOUT_THRESHOLD_RANGES.items()
    }
    return Param(
        {},
        type="object",
        properties=properties,
        additionalProperties=False,
        title="Roll-out limits",
        description='Overrides of reviewops.serving.rollout.RolloutThresholds, e.g. {"min_rows": 500}.',
    )


def canary_share_param() -> Param:
    return Param(0.1, type="number", minimum=0.01, maximum=0.5, title="Canary share of traffic (a new roll-out)")


class _RolloutOperator(ReviewOpsOperator):
    template_fields = (*ReviewOpsOperator.template_fields, "thresholds")

    def __init__(self, *, thresholds: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.thresholds = thresholds

    def params_for_run(self, context: Context) -> RolloutParams:
        from reviewops.serving.rollout import RolloutParams, RolloutThresholds

        try:
            limits = RolloutThresholds.from_overrides(self.thresholds or None)
        except (ValueError, TypeError) as exc:
            raise AirflowFailException(f"thresholds: {exc}") from exc
        actor = f"{context['ti'].dag_id}/{context['ti'].run_id}"
        return RolloutParams(data_root=self.settings().data_root, actor=actor, thresholds=limits)


class StartRolloutOperator(_RolloutOperator):
    """Put ``challenger`` (a registered Keras version) in shadow beside the champion; with
    no challenger, nothing to start (the run goes on to evaluate the active roll-out)."""

    template_fields = (*_RolloutOperator.template_fields, "challenger", "canary_share")

    def __init__(self, *, challenger: str | None = None, canary_share: float | str = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.challenger = challenger
        self.canary_share = canary_share

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.lineage.record import StepResult
        from reviewops.registry.store import RegistryError
        from reviewops.serving.rollout import start_rollout_step

        if not self.challenger:
            return StepResult(subject="no new roll-out", outputs=(), metrics={"started": False}), []
        reason = f"started by {context['ti'].dag_id} run {context['ti'].run_id}"
        try:
            result = start_rollout_step(
                self.params_for_run(context), str(self.challenger), reason, float(self.canary_share)
            )
        except RegistryError as exc:  # RolloutError included: a version or a state, not a transient fault
            raise AirflowFailException(str(exc)) from exc
        return result, []


class EvaluateRolloutOperator(_RolloutOperator):
    """The active roll-out's live metrics from the request log, and the gate's decision
    (advance, hold or roll back) in a report."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.registry.rollout import RolloutError
        from reviewops.serving.rollout import evaluate_rollout

        try:
            return evaluate_rollout(self.params_for_run(context)), []
        except RolloutError as exc:
            raise AirflowFailException(str(exc)) from exc


class ApplyRolloutOperator(_RolloutOperator):
    """Carry out the evaluated decision: the next stage (``full`` promotes the challenger)
    or the roll-back. Each change is a line in the promotion history and this record."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.lineage.record import StepResult
        from reviewops.registry.rollout import RolloutError
        from reviewops.serving.rollout import apply_rollout

        evaluation = upstream["evaluation"]
        if not evaluation.outputs:
            return StepResult(subject=evaluation.subject, outputs=(), metrics=dict(evaluation.metrics)), []
        report = verified(evaluation.outputs[0])
        try:
            return apply_rollout(self.params_for_run(context), report.path), [report]
        except RolloutError as exc:
            raise AirflowFailException(str(exc)) from exc


class RolloutRolledBack(AirflowFailException):
    """The challenger breached a limit and was rolled back; carries the breaches for alerting."""

    def __init__(self, message: str, breaches: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.breaches = breaches


class CheckRolloutOperator(ReviewOpsOperator):
    """Fail, without retry, when the run rolled a challenger back, so the run shows red and
    the alert goes out; the roll-back itself is already done."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.lineage.record import StepResult

        applied = upstream["applied"]
        breaches = applied.metrics.get("breaches") or []
        if applied.metrics.get("decision") == "roll_back":
            raise RolloutRolledBack(f"{applied.subject}: rolled back: {applied.metrics.get('why')}", breaches)
        return StepResult(subject=applied.subject, outputs=(), metrics={"breaches": 0}), []


class SummariseOnlineTrafficOperator(ReviewOpsOperator):
    """The week's online traffic from the request log (volume, latency p50/p95, class mix,
    errors, by model version, stage and role), written as ``online.json`` beside the
    week's monitoring report. The week is the one the upstream monitoring task covered."""

    def run_step(self, context: Context, upstream: dict[str, LineageRecord]) -> StepOutput:
        from reviewops.monitoring.online import OnlineWeekParams, summarise_online_week

        week = upstream["monitoring"].metrics["week"]
        return summarise_online_week(OnlineWeekParams(data_root=self.settings().data_root, week=str(week))), []
