"""The lineage graph around one artifact, laid out for drawing.

Lineage is bipartite: artifacts (files, by URI and content hash) and the task runs
(lineage records) that read and wrote them. :func:`lineage_graph` takes the records that
produced a target, walks up to the source files and down to everything built from the
target's outputs (:class:`~reviewops.lineage.store.LineageIndex`), and returns both kinds
of node in layers, top (sources) to bottom (what was built last), with each artifact
checked against its recorded sha256. The geometry is computed here, so a page only draws
it and a JSON client gets the same graph.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import LineageIndex, LineageNotFound
from reviewops.storage.io import sha256_file
from reviewops.storage.paths import from_uri

log = logging.getLogger(__name__)

# A week's predictions feed every later monitoring run and a dataset feeds every model
# trained on it: past this many nodes the graph stops growing (and says so) rather than
# drawing a page nobody can read.
MAX_NODES = 120
COLUMN_WIDTH = 210  # a slot within a layer
ROW_HEIGHT = 74  # a layer
NODE_WIDTH = 190
NODE_HEIGHT = 46
MARGIN = 12

VERIFIED = "verified"
CHANGED = "changed"
MISSING = "missing"
UNREADABLE = "unreadable"


@dataclass
class Node:
    id: str
    type: str  # "artifact" or "task"
    label: str
    kind: str  # an artifact's kind (curated, model, ...), or "task"
    version: str | None = None  # ds-…, m-…, week=… or the batch an artifact belongs to
    uri: str | None = None
    sha256: str | None = None
    rows: int | None = None
    status: str | None = None  # an artifact's hash check: verified, changed, missing, unreadable
    dag_id: str | None = None  # the task run that produced an artifact, or the task run itself
    run_id: str | None = None
    task_id: str | None = None
    ended_at: str | None = None
    focus: bool = False  # the target the graph was asked for
    column: int = 0  # the layer
    x: int = 0
    y: int = 0


@dataclass
class Graph:
    nodes: list[Node]
    edges: list[tuple[str, str]]
    truncated: bool = False
    width: int = 0
    height: int = 0
    by_id: dict[str, Node] = field(init=False, repr=False)
    node_width: ClassVar[int] = NODE_WIDTH
    node_height: ClassVar[int] = NODE_HEIGHT

    def __post_init__(self) -> None:
        self.by_id = {node.id: node for node in self.nodes}

    def to_dict(self) -> dict[str, Any]:
        nodes = [{k: v for k, v in vars(n).items() if k not in ("column", "x", "y")} for n in self.nodes]
        return {"nodes": nodes, "edges": [list(e) for e in self.edges], "truncated": self.truncated}


def task_records(index: LineageIndex, dag_id: str, run_id: str, task_id: str) -> list[LineageRecord]:
    """The record a task instance wrote (its latest try); :class:`LineageNotFound` when it
    wrote none (it has not succeeded, or it is not a reviewops task)."""
    found = [r for r in index.records if (r.dag_id, r.run_id, r.task_id) == (dag_id, run_id, task_id)]
    if not found:
        raise LineageNotFound(
            f"task {task_id} of run {run_id} ({dag_id}) wrote no lineage record: it has not succeeded yet, "
            "or it is not a reviewops task"
        )
    return [max(found, key=lambda r: (r.try_number, r.ended_at))]


def lineage_graph(index: LineageIndex, start: list[LineageRecord], focus_uris: Iterable[str] = ()) -> Graph:
    """The records upstream of ``start`` and downstream of their outputs, as a graph."""
    records = _dedupe([*index.upstream(start), *index.downstream([a.uri for r in start for a in r.outputs])])
    focus = set(focus_uris) or {a.uri for r in start for a in r.outputs}
    nodes: dict[str, Node] = {}
    edges: list[tuple[str, str]] = []
    truncated = False
    for record in records:
        new = 1 + sum(_artifact_id(a) not in nodes for a in (*record.inputs, *record.outputs))
        if len(nodes) + new > MAX_NODES:
            truncated = True
            break
        task = _task_node(record, focus=record in start)
        nodes[task.id] = task
        for artifact in record.inputs:
            node = nodes.setdefault(_artifact_id(artifact), _artifact_node(artifact, focus))
            edges.append((node.id, task.id))
        for artifact in record.outputs:
            node = nodes.setdefault(_artifact_id(artifact), _artifact_node(artifact, focus))
            if node.task_id is None:
                node.dag_id, node.run_id, node.task_id = record.dag_id, record.run_id, record.task_id
            edges.append((task.id, node.id))
    graph = Graph(list(nodes.values()), list(dict.fromkeys(edges)), truncated)
    _layout(graph)
    return graph


def _dedupe(records: list[LineageRecord]) -> list[LineageRecord]:
    seen: dict[str, LineageRecord] = {}
    for record in records:
        seen.setdefault(record.record_id, record)
    return sorted(seen.values(), key=lambda r: (r.ended_at, r.record_id))


def _artifact_id(artifact: Artifact) -> str:
    return f"a:{artifact.uri}@{artifact.sha256}"


def _task_node(record: LineageRecord, focus: bool) -> Node:
    return Node(
        id=f"t:{record.record_id}",
        type="task",
        label=record.task_id,
        kind="task",
        version=record.subject,
        dag_id=record.dag_id,
        run_id=record.run_id,
        task_id=record.task_id,
        ended_at=record.ended_at,
        focus=focus,
    )


def _artifact_node(artifact: Artifact, focus: set[str]) -> Node:
    path = from_uri(artifact.uri)
    return Node(
        id=_artifact_id(artifact),
        type="artifact",
        label=path.name,
        kind=artifact.kind,
        version=path.parent.name,
        uri=artifact.uri,
        sha256=artifact.sha256,
        rows=artifact.rows,
        status=verify_status(artifact),
        focus=artifact.uri in focus,
    )


def verify_status(artifact: Artifact) -> str:
    """Whether the bytes at the artifact's URI are still the ones recorded."""
    path = from_uri(artifact.uri)
    try:
        if not path.exists():
            return MISSING
        return VERIFIED if sha256_file(path) == artifact.sha256 else CHANGED
    except OSError as exc:
        log.warning("lineage graph: %s cannot be read (%s)", artifact.uri, exc)
        return UNREADABLE


def _layout(graph: Graph) -> None:
    """Layers top (sources) to bottom, by longest path from a source (edges only go forward
    in time, so the graph has no cycle); a node nothing wrote (a source file, a model
    registered outside these records) sits just above its first reader rather than at the
    top, so its edge stays short. Within a layer, nodes keep their order of appearance,
    which follows the records' order."""
    incoming: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    outgoing: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for source, target in graph.edges:
        incoming[target].append(source)
        outgoing[source].append(target)
    depth: dict[str, int] = {}

    def layer(node_id: str) -> int:
        if node_id not in depth:
            depth[node_id] = 0  # guards a malformed cycle
            depth[node_id] = 1 + max((layer(p) for p in incoming[node_id]), default=-1)
        return depth[node_id]

    for node in graph.nodes:
        node.column = layer(node.id)
    for node in graph.nodes:
        readers = [depth[t] for t in outgoing[node.id]]
        if not incoming[node.id] and readers:
            node.column = max(0, min(readers) - 1)
    slots: dict[int, int] = {}
    for node in graph.nodes:
        slot = slots.get(node.column, 0)
        slots[node.column] = slot + 1
        node.x = MARGIN + slot * COLUMN_WIDTH
        node.y = MARGIN + node.column * ROW_HEIGHT
    graph.width = 2 * MARGIN + max(slots.values(), default=0) * COLUMN_WIDTH
    graph.height = 2 * MARGIN + (max(slots, default=0) + 1) * ROW_HEIGHT
