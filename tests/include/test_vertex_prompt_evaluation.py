"""Prompt evaluation's own metrics and choice, on hand-built predictions whose figures
are worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from reviewops.data.schema import CURATED_SCHEMA
from reviewops.gcp.prompt_evaluation import (
    PlanParams,
    PromptEvaluationError,
    evaluate_predictions,
    plan_prompts,
    rank_key,
    select_prompt,
)
from reviewops.gcp.prompts import PromptError, load_template
from reviewops.storage.io import write_parquet
from reviewops.storage.paths import Layout


def predictions(rows: list[tuple[str, str | None, str]]) -> pa.Table:
    """(label, predicted_label, response_status) per review."""
    return pa.table(
        {
            "label": [r[0] for r in rows],
            "predicted_label": pa.array([r[1] for r in rows], pa.string()),
            "response_status": [r[2] for r in rows],
        }
    )


def test_a_review_without_an_answer_counts_as_wrong() -> None:
    table = predictions(
        [
            ("positive", "positive", "ok"),
            ("positive", "positive", "ok"),
            ("positive", None, "blocked"),
            ("negative", "negative", "ok"),
            ("negative", "positive", "ok"),
            ("neutral", None, "unparseable"),
        ]
    )
    m = evaluate_predictions(table)
    assert m["rows"] == 6 and m["answered"] == 4 and m["coverage"] == round(4 / 6, 4)
    assert m["accuracy"] == 0.5  # 3 right of 6
    # positive: precision 2/3, recall 2/3; negative: precision 1, recall 1/2; neutral: 0.
    assert m["per_class_recall"] == {"negative": 0.5, "neutral": 0.0, "positive": 0.6667}
    f1_pos, f1_neg = 2 / 3, 2 * 1 * 0.5 / 1.5
    assert m["macro_f1"] == round((round(f1_pos, 4) + round(f1_neg, 4)) / 3, 4)
    assert m["answered_accuracy"] == 0.75
    assert (m["blocked"], m["unparseable"], m["errors"], m["missing"]) == (1, 1, 0, 0)
    assert m["by_status"] == {"ok": 4, "blocked": 1, "unparseable": 1}


def result(
    prompt: str, macro_f1: float, blocked: int, dataset: str = "ds-1", model: str = "vertex:g"
) -> dict[str, Any]:
    return {
        "prompt_template": prompt,
        "prompt_sha256": f"sha-{prompt}",
        "dataset_version": dataset,
        "model_version": f"{model}+{prompt}",
        "vertex_model": "publishers/google/models/g",
        "macro_f1": macro_f1,
        "accuracy": 0.5,
        "per_class_recall": {},
        "coverage": 1.0,
        "blocked": blocked,
        "unparseable": 0,
        "errors": 0,
        "missing": 0,
    }


def test_the_best_has_the_highest_macro_f1_then_fewer_blocked_then_the_newer_version(tmp_path: Path) -> None:
    results = [result("p@v1", 0.5, 0), result("p@v2", 0.6, 3), result("p@v3", 0.6, 1), result("p@v4", 0.6, 1)]
    assert [r["prompt_template"] for r in sorted(results, key=rank_key, reverse=True)] == [
        "p@v4",
        "p@v3",
        "p@v2",
        "p@v1",
    ]
    chosen = select_prompt(str(tmp_path), results)
    assert chosen.metrics["best"] == "p@v4" and chosen.subject == "ds-1"
    report = json.loads((tmp_path / "prompt_evaluation" / "ds-1" / "vertex-g" / "report.json").read_text())
    assert report["best"] == "p@v4" and [r["prompt_template"] for r in report["ranking"]][:2] == ["p@v4", "p@v3"]
    assert chosen.outputs[0].kind == "prompt_evaluation"


def test_results_of_several_datasets_or_models_are_not_compared(tmp_path: Path) -> None:
    with pytest.raises(PromptEvaluationError, match="several"):
        select_prompt(str(tmp_path), [result("p@v1", 0.5, 0), result("p@v2", 0.5, 0, dataset="ds-2")])
    with pytest.raises(PromptEvaluationError, match="several"):
        select_prompt(str(tmp_path), [result("p@v1", 0.5, 0), result("p@v2", 0.5, 0, model="m-1")])
    with pytest.raises(PromptEvaluationError, match="no template"):
        select_prompt(str(tmp_path), [])


def _dataset(root: Path, version: str, last: str) -> None:
    folder = Layout(str(root)).datasets() / version
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"version": version, "rows": 3, "weeks": {"last": last}}))
    write_parquet(pa.Table.from_pylist([], schema=CURATED_SCHEMA), folder / "eval.parquet")


def test_plan_defaults_to_every_version_of_the_default_prompt_and_the_newest_dataset(tmp_path: Path) -> None:
    _dataset(tmp_path, "ds-a", "2017-01-02")
    _dataset(tmp_path, "ds-b", "2017-06-05")
    planned, inputs = plan_prompts(PlanParams(data_root=str(tmp_path)))
    assert planned.subject == planned.metrics["dataset_version"] == "ds-b"
    assert planned.metrics["prompts"] == ["review_sentiment@v1", "review_sentiment@v2"]
    assert planned.metrics["prompt_sha256"]["review_sentiment@v2"] == load_template("review_sentiment@v2").sha256
    assert inputs[0].uri.endswith("ds-b/eval.parquet")
    chosen, _ = plan_prompts(
        PlanParams(data_root=str(tmp_path), dataset="ds-a", prompts=("review_sentiment", "review_sentiment@v2"))
    )
    assert chosen.metrics["prompts"] == ["review_sentiment@v2"] and chosen.subject == "ds-a"
    with pytest.raises(PromptError, match="no version 7"):
        plan_prompts(PlanParams(data_root=str(tmp_path), prompts=("review_sentiment@v7",)))
