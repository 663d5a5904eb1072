"""The lineage graph around an artifact: both kinds of node, hash checks, and a layout in
which every edge points down."""

from __future__ import annotations

from pathlib import Path

from reviewops.lineage.graph import CHANGED, MAX_PER_SIDE, MAX_RECORDS, MISSING, VERIFIED, lineage_graph, task_records
from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import LineageStore
from tests.include.lineage_samples import lineage_record


def _record(record_id: str, task_id: str, inputs: list[Artifact], outputs: list[Artifact], at: int) -> LineageRecord:
    return lineage_record(record_id, task_id, inputs, outputs, f"2026-01-01T00:00:{at:02d}+00:00")


def _file(root: Path, name: str, kind: str) -> Artifact:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{name}\n")
    return Artifact.of_file(path, kind)


def test_a_chain_is_laid_out_top_down_with_a_model_just_above_its_reader(tmp_path: Path) -> None:
    source = _file(tmp_path, "reviews.tsv", "source")
    curated = _file(tmp_path, "curated/week=2017-11-27/reviews.jsonl", "curated")
    model = _file(tmp_path, "models/m-aaaa/model.keras", "model")  # registered outside these records
    predictions = _file(tmp_path, "predictions/week=2017-11-27/predictions.jsonl", "predictions")
    store = LineageStore(tmp_path)
    store.write(_record("1" * 32, "transform", [source], [curated], 1))
    store.write(_record("2" * 32, "score", [curated, model], [predictions], 2))
    index = store.index()

    graph = lineage_graph(index, task_records(index, "reviews_weekly", "manual__1", "score"))

    nodes = {n.label: n for n in graph.nodes}
    assert set(nodes) == {"reviews.tsv", "transform", "reviews.jsonl", "model.keras", "score", "predictions.jsonl"}
    assert all(graph.by_id[a].y < graph.by_id[b].y for a, b in graph.edges), "every edge points down"
    assert nodes["model.keras"].column == nodes["score"].column - 1 == nodes["reviews.jsonl"].column
    assert nodes["model.keras"].version == "m-aaaa" and nodes["model.keras"].task_id is None
    assert nodes["predictions.jsonl"].task_id == "score" and nodes["predictions.jsonl"].focus
    assert {n.status for n in graph.nodes if n.type == "artifact"} == {VERIFIED}

    (tmp_path / "reviews.tsv").write_text("rewritten\n")
    (tmp_path / "models/m-aaaa/model.keras").unlink()
    statuses = {n.label: n.status for n in lineage_graph(index, [index.by_id["2" * 32]]).nodes}
    assert statuses["reviews.tsv"] == CHANGED and statuses["model.keras"] == MISSING


def test_a_huge_history_keeps_the_nearest_records_and_the_files_that_link_them(tmp_path: Path) -> None:
    """An initial load's transform wrote every week; every later run read one of them."""
    store = LineageStore(tmp_path)
    weeks = [_file(tmp_path, f"curated/week={i:04d}/reviews.jsonl", "curated") for i in range(50)]
    store.write(_record("f" * 32, "transform", [_file(tmp_path, "reviews.tsv", "source")], weeks, 0))
    for i in range(2 * MAX_RECORDS):
        report = _file(tmp_path, f"out/{i}.json", "report")
        store.write(_record(f"{i:032x}", f"monitor_{i}", [weeks[0]], [report], 1 + i % 58))
    index = store.index()

    graph = lineage_graph(
        index, index.resolve(str(tmp_path / "curated" / "week=0000" / "reviews.jsonl")), [weeks[0].uri]
    )

    tasks = [n for n in graph.nodes if n.type == "task"]
    assert graph.truncated and len(tasks) == MAX_RECORDS
    (transform,) = [n for n in tasks if n.label == "transform"]
    assert transform.hidden_outputs == 49, "only the week asked for, of the 50 the transform wrote"
    assert {n.label for n in graph.nodes if n.type == "artifact" and n.kind != "report"} == {
        "reviews.tsv",
        "reviews.jsonl",
    }
    assert all(n.hidden_inputs == 0 for n in tasks) and MAX_PER_SIDE >= 1
