"""The promotion gate's decisions, on evaluation reports shaped like evaluate_candidate's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reviewops.contracts import DECISION_FILE, EVALUATION_FILE, ArtifactKind
from reviewops.lineage.record import Artifact
from reviewops.modeling.promotion import GatePolicy, decide, gate_candidate
from reviewops.storage.io import read_json, write_json


def per_class(neg: float, neu: float, pos: float) -> dict[str, dict[str, float]]:
    return {
        name: {"recall": r, "precision": 0.5, "f1": 0.5, "support": 10}
        for name, r in (("negative", neg), ("neutral", neu), ("positive", pos))
    }


def report(
    macro_f1: float,
    accuracy: float,
    champion: dict[str, Any] | None = None,
    recalls: tuple[float, ...] = (0.6, 0.3, 0.8),
) -> dict[str, Any]:
    return {
        "model_version": "m-challenger0",
        "macro_f1": macro_f1,
        "accuracy": accuracy,
        "per_class": per_class(*recalls),
        "baselines": {
            "majority": {"macro_f1": 0.25, "accuracy": 0.60},
            "tfidf_logreg": {"macro_f1": 0.41, "accuracy": 0.66},
        },
        "champion": champion,
    }


def champion(macro_f1: float, recalls: tuple[float, ...] = (0.6, 0.3, 0.8)) -> dict[str, Any]:
    return {"model_version": "m-champion00", "macro_f1": macro_f1, "accuracy": 0.7, "per_class": per_class(*recalls)}


def test_first_model_must_beat_both_baselines_in_both_metrics() -> None:
    assert decide(report(0.50, 0.67), GatePolicy()).verdict == "promote"
    rejected = decide(report(0.50, 0.65), GatePolicy())
    assert not rejected.promote and rejected.verdict == "reject"
    assert rejected.reasons == ("accuracy 0.6500 vs tfidf_logreg baseline 0.6600",)
    assert decide(report(0.41, 0.70), GatePolicy()).reasons == ("macro_f1 0.4100 vs tfidf_logreg baseline 0.4100",)


def test_challenger_needs_the_margin_over_the_champion() -> None:
    policy = GatePolicy(min_macro_f1_gain=0.02, max_recall_drop=0.05)
    assert decide(report(0.53, 0.7, champion(0.50)), policy).promote
    small = decide(report(0.51, 0.7, champion(0.50)), policy)
    assert not small.promote and "gain +0.0100, needs >= +0.0200" in small.reasons[0]
    assert small.champion == "m-champion00"


def test_a_class_losing_too_much_recall_blocks_promotion_despite_a_better_macro_f1() -> None:
    decision = decide(report(0.60, 0.7, champion(0.50, (0.6, 0.30, 0.8)), (0.6, 0.20, 0.9)), GatePolicy())
    assert not decision.promote
    assert decision.reasons == ("recall of neutral drops 0.1000 (0.3000 -> 0.2000), more than the 0.0500 allowed",)


def test_the_champion_evaluated_against_itself_is_not_a_rejection() -> None:
    same = report(0.5, 0.7, {**champion(0.5), "model_version": "m-challenger0"})
    decision = decide(same, GatePolicy())
    assert (decision.promote, decision.verdict) == (False, "already_champion")
    assert "already champion" in decision.summary


def test_the_gate_step_writes_its_decision_beside_the_evaluation(tmp_path: Path) -> None:
    # One gate function for the Airflow operator and for pipeline.py: it reads
    # evaluation.json and writes decision.json next to it.
    evaluation = write_json(report(0.50, 0.70), tmp_path / "cand" / EVALUATION_FILE)
    result = gate_candidate(Artifact.of_file(evaluation, ArtifactKind.EVALUATION), GatePolicy())
    decision = result.output(ArtifactKind.DECISION)
    assert decision.path == tmp_path / "cand" / DECISION_FILE
    assert read_json(decision.path) == result.metrics
    assert result.metrics["verdict"] == "promote" and result.subject == "m-challenger0"
    worse = write_json(report(0.30, 0.61), tmp_path / "worse" / EVALUATION_FILE)
    rejected = gate_candidate(Artifact.of_file(worse, ArtifactKind.EVALUATION), GatePolicy())
    assert rejected.metrics["verdict"] == "reject"
    assert read_json(rejected.output(ArtifactKind.DECISION).path)["promote"] is False


@pytest.mark.parametrize(
    "margins",
    [
        {"min_macro_f1_gain": -1.0},
        {"min_macro_f1_gain": -0.001},
        {"min_macro_f1_gain": float("nan")},
        {"min_macro_f1_gain": 1.5},
        {"max_recall_drop": -0.1},
        {"max_recall_drop": 2.0},
        {"max_recall_drop": True},
    ],
)
def test_margins_outside_zero_to_one_are_refused_so_no_run_can_wave_a_worse_model_through(
    margins: dict[str, float],
) -> None:
    (name,) = margins
    with pytest.raises(ValueError, match=rf"gate {name} must be a number from 0 to 1, got"):
        GatePolicy(**margins)


def test_a_zero_margin_is_the_loosest_gate_and_still_rejects_a_worse_challenger() -> None:
    decision = decide(report(0.49, 0.7, champion(0.50)), GatePolicy(min_macro_f1_gain=0.0, max_recall_drop=1.0))
    assert not decision.promote and "needs >= +0.0000" in decision.reasons[0]
