"""The promotion gate: a challenger replaces the champion only when it beats the
champion's macro-F1 by the margin and is not worse than any baseline beyond the noise of
the eval rows.

"Beyond the noise" is read from the paired bootstrap of ``evaluation.json``
(:mod:`reviewops.modeling.bootstrap`): the challenger and a baseline are scored on the
same resampled rows, and the challenger is worse beyond the noise when the whole 95 %
interval of its difference lies below zero. On 117 eval rows one model's accuracy is
uncertain by about +-0.09, so a rule that asks the challenger to beat a baseline's point
estimate passes or fails on which rows happened to land in the eval split; the paired
interval asks the question the rows can answer (a Vertex AI model's unanswered reviews
count as misses in it). An evaluation written before the bootstrap existed keeps the
point rule: the first model must beat every baseline in both metrics."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from reviewops.contracts import DECISION_FILE, ArtifactKind, EvaluationReport, GateRecord
from reviewops.lineage.record import Artifact, StepResult
from reviewops.storage.io import read_json, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatePolicy:
    """``min_macro_f1_gain``: how much the challenger's eval macro-F1 must exceed the
    champion's. ``max_recall_drop``: how much recall any one class may lose.

    Both are shares in [0, 1]: a negative gain would promote a challenger worse than the
    champion (``-1`` promotes any), and a recall drop above 1 cannot happen."""

    min_macro_f1_gain: float = 0.01
    max_recall_drop: float = 0.05

    def __post_init__(self) -> None:
        for name in ("min_macro_f1_gain", "max_recall_drop"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and 0.0 <= value <= 1.0):  # NaN fails too
                raise ValueError(f"gate {name} must be a number from 0 to 1, got {value!r}")


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    verdict: str  # "promote", "reject" or "already_champion"
    reasons: tuple[str, ...]
    challenger: str
    champion: str | None
    policy: dict[str, float]

    def to_dict(self) -> GateRecord:
        return {
            "promote": self.promote,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "challenger": self.challenger,
            "champion": self.champion,
            "policy": dict(self.policy),
        }

    @property
    def summary(self) -> str:
        head = {"promote": "promoted", "reject": "not promoted", "already_champion": "already champion"}[self.verdict]
        return f"{self.challenger} {head}: " + "; ".join(self.reasons)


def _against_baselines(report: EvaluationReport, reasons: list[str], failures: list[str]) -> None:
    comparison = report.get("comparison")
    if not comparison:
        if report.get("champion"):
            return  # the point rule judged the first model only: the champion beat them then
        for name, baseline in report["baselines"].items():
            for metric in ("macro_f1", "accuracy"):
                ours, theirs = report[metric], baseline[metric]
                line = f"{metric} {ours:.4f} vs {name} baseline {theirs:.4f}"
                (reasons if ours > theirs else failures).append(line)
        return
    level = round(100 * comparison["level"])
    for name in report["baselines"]:
        for metric in ("macro_f1", "accuracy"):
            scores = comparison["scores"]
            difference = comparison["differences"][name][metric]
            low, high = difference["interval"]
            worse = high < 0
            verdict = "worse beyond the noise" if worse else "not worse beyond the noise"
            line = (
                f"{metric} {scores['challenger'][metric]:.4f} vs {name} baseline {scores[name][metric]:.4f}: "
                f"paired difference {difference['estimate']:+.4f}, {level}% interval [{low:+.4f}, {high:+.4f}], {verdict}"
            )
            (failures if worse else reasons).append(line)


def decide(report: EvaluationReport, policy: GatePolicy) -> GateDecision:
    """Decide from an evaluation report (see ``evaluation.evaluate_candidate``): not worse
    than any baseline beyond the paired interval (or, in an evaluation written without
    one, better than each baseline), and with a champion, its macro-F1 gain and no class's recall drop."""
    challenger = report["model_version"]
    champion = report.get("champion")
    policy_dict = asdict(policy)
    if champion and champion["model_version"] == challenger:
        reason = "the challenger is the current champion (same dataset, parameters and code)"
        return GateDecision(False, "already_champion", (reason,), challenger, challenger, policy_dict)
    reasons: list[str] = []
    failures: list[str] = []
    if champion:
        gain = report["macro_f1"] - champion["macro_f1"]
        line = (
            f"macro-F1 {report['macro_f1']:.4f} vs champion {champion['model_version']} "
            f"{champion['macro_f1']:.4f} (gain {gain:+.4f}, needs >= {policy.min_macro_f1_gain:+.4f})"
        )
        (reasons if gain >= policy.min_macro_f1_gain else failures).append(line)
        for name, stats in report["per_class"].items():
            drop = champion["per_class"][name]["recall"] - stats["recall"]
            if drop > policy.max_recall_drop:
                failures.append(
                    f"recall of {name} drops {drop:.4f} ({champion['per_class'][name]['recall']:.4f} -> "
                    f"{stats['recall']:.4f}), more than the {policy.max_recall_drop:.4f} allowed"
                )
    _against_baselines(report, reasons, failures)
    verdict = "reject" if failures else "promote"
    return GateDecision(
        verdict == "promote",
        verdict,
        tuple(failures or reasons),
        challenger,
        champion["model_version"] if champion else None,
        policy_dict,
    )


def gate_candidate(evaluation: Artifact, policy: GatePolicy) -> StepResult:
    """The gate step: decide from the challenger's ``evaluation.json`` and write the
    decision beside it as ``decision.json``. A rejection is a decision, not an error."""
    decision = decide(read_json(evaluation.path), policy)
    path = write_json(decision.to_dict(), evaluation.path.parent / DECISION_FILE)
    (log.warning if decision.verdict == "reject" else log.info)("gate: %s", decision.summary)
    return StepResult(
        subject=decision.challenger,
        outputs=(Artifact.of_file(path, ArtifactKind.DECISION),),
        metrics=dict(decision.to_dict()),
    )
