"""Prompt evaluation operators against real files (the runtime context is a stand-in)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from airflow.sdk.exceptions import AirflowFailException

from reviewops.data.schema import CURATED_SCHEMA
from reviewops.storage.io import write_parquet
from reviewops.storage.paths import Layout
from reviewops_airflow.prompt_evaluation import PlanPromptsOperator, _as_list
from tests.plugins.stubs import StubTaskInstance


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("['review_sentiment@v1', 'review_sentiment@v2']", ["review_sentiment@v1", "review_sentiment@v2"]),
        ('["review_sentiment@v2"]', ["review_sentiment@v2"]),
        ("[]", []),
        ("", []),
        (None, []),
        ("review_sentiment@v1, review_sentiment", ["review_sentiment@v1", "review_sentiment"]),
        (["a@v1"], ["a@v1"]),
    ],
)
def test_the_rendered_prompts_param_reads_as_a_list(rendered: Any, expected: list[str]) -> None:
    assert _as_list(rendered) == expected


def _dataset(root: Path) -> None:
    folder = Layout(str(root)).datasets() / "ds-abc"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"version": "ds-abc", "rows": 0, "weeks": {"last": "2017-01-02"}}))
    write_parquet(pa.Table.from_pylist([], schema=CURATED_SCHEMA), folder / "eval.parquet")


def test_plan_returns_the_templates_to_map_over_and_pushes_its_record(data_root: Path) -> None:
    _dataset(data_root)
    op = PlanPromptsOperator(task_id="plan_prompts", data_root=str(data_root), prompts="[]")
    ti = StubTaskInstance(task_id="plan_prompts")
    mapped = op.execute({"ti": ti})
    assert mapped == ["review_sentiment@v1", "review_sentiment@v2"]
    assert ti.pushed["lineage"]["subject"] == "ds-abc"
    assert ti.pushed["lineage"]["inputs"][0]["uri"].endswith("ds-abc/eval.parquet")


def test_plan_fails_without_retry_on_an_unknown_template_or_no_dataset(data_root: Path) -> None:
    op = PlanPromptsOperator(task_id="plan_prompts", data_root=str(data_root), prompts="['review_sentiment@v1']")
    with pytest.raises(AirflowFailException, match="no dataset version"):
        op.execute({"ti": StubTaskInstance(task_id="plan_prompts")})
    _dataset(data_root)
    op = PlanPromptsOperator(task_id="plan_prompts", data_root=str(data_root), prompts="['nope@v1']")
    with pytest.raises(AirflowFailException, match="no prompt template named 'nope'"):
        op.execute({"ti": StubTaskInstance(task_id="plan_prompts")})
