"""The promotion gate: a challenger replaces the champion only when it is better on the
same held-out split; with no champion yet, it must beat the baselines."""

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


def decide(report: EvaluationReport, policy: GatePolicy) -> GateDecision:
    """Decide from an evaluation report (see ``evaluation.evaluate_candidate``)."""
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
    else:
        for name, baseline in report["baselines"].items():
            for metric in ("macro_f1", "accuracy"):
                ours, theirs = report[metric], baseline[metric]
                line = f"{metric} {ours:.4f} vs {name} baseline {theirs:.4f}"
                (reasons if ours > theirs else failures).append(line)
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
