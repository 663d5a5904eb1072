"""The upstream lineage of an artifact as a tree, one hop per level of indentation.

Each line is an artifact and the record that wrote it; below it, indented, the artifacts
that record read, each with its own producer, down to the source files. A record reached
a second time (the curated weeks a dataset and a week's predictions both descend from)
is shown once in full; later mentions say ``(see above)`` and stop there. Several inputs
from one producer (a dataset built from 300 curated weeks of one initial load) are one
line: the first of them and how many more.
"""

from __future__ import annotations

from dataclasses import dataclass

from reviewops.contracts import ArtifactKind
from reviewops.lineage.record import Artifact, LineageRecord
from reviewops.lineage.store import LineageIndex

SEE_ABOVE = "see above"
SOURCE = "source"
NO_RECORD = "no record"
PARENT = "parent"  # a parent record none of whose outputs the child read


@dataclass(frozen=True)
class Hop:
    depth: int
    artifact: Artifact  # what the line shows: the artifact by which the record was reached
    record: LineageRecord | None  # its producer; None for a source file or an unknown one
    more: int = 0  # further inputs with the same producer
    note: str = ""  # SEE_ABOVE, SOURCE, NO_RECORD or PARENT

    def line(self) -> str:
        artifact = self.artifact
        parts = [f"{'  ' * self.depth}{artifact.kind:<16}", artifact.uri, artifact.sha256[:12]]
        if artifact.rows is not None:
            parts.append(f"rows={artifact.rows}")
        if self.more:
            parts.append(f"(+{self.more} more {artifact.kind})")
        if self.record is not None:
            parts.append(f"<- {self.record.dag_id}.{self.record.task_id} ({self.record.subject})")
        if self.note:
            parts.append(f"({self.note})")
        return "  ".join(parts)


def lineage_tree(index: LineageIndex, start: list[LineageRecord]) -> list[Hop]:
    """The hops from ``start`` (each reached through its first output) up to the sources,
    depth first, each record expanded once."""
    hops: list[Hop] = []
    expanded: set[str] = set()
    for record in start:
        via = record.outputs[0] if record.outputs else Artifact("-", "-", "-")
        _walk(index, Hop(0, via, record), hops, expanded)
    return hops


def _walk(index: LineageIndex, hop: Hop, hops: list[Hop], expanded: set[str]) -> None:
    record = hop.record
    if record is None:
        hops.append(hop)
        return
    if record.record_id in expanded:
        hops.append(Hop(hop.depth, hop.artifact, record, hop.more, SEE_ABOVE))
        return
    expanded.add(record.record_id)
    hops.append(hop)
    for child in _children(index, record, hop.depth + 1):
        _walk(index, child, hops, expanded)


def _children(index: LineageIndex, record: LineageRecord, depth: int) -> list[Hop]:
    """One hop per producer of the record's inputs (in the order it read them), one per
    input nobody recorded writing, then the parents not met that way."""
    by_producer: dict[str, list[Artifact]] = {}
    producers: dict[str, LineageRecord] = {}
    orphans: dict[str, Artifact] = {}
    for artifact in record.inputs:
        producer = index.producer(artifact, before=record.started_at)
        if producer is None:
            orphans.setdefault(artifact.uri, artifact)
            continue
        producers[producer.record_id] = producer
        by_producer.setdefault(producer.record_id, []).append(artifact)
    hops = [Hop(depth, read[0], producers[rid], len(read) - 1) for rid, read in by_producer.items()]
    for artifact in orphans.values():
        hops.append(Hop(depth, artifact, None, 0, SOURCE if artifact.kind == ArtifactKind.SOURCE else NO_RECORD))
    for parent_id in record.parents:
        parent = index.by_id.get(parent_id)
        if parent is not None and parent_id not in producers:
            via = parent.outputs[0] if parent.outputs else Artifact("-", "-", "-")
            hops.append(Hop(depth, via, parent, 0, PARENT))
    return hops


def render(hops: list[Hop]) -> list[str]:
    """The tree's lines, then the source files it starts from (each once)."""
    lines = [hop.line() for hop in hops]
    sources = {h.artifact.uri: h.artifact for h in hops if h.note == SOURCE}
    if sources:
        lines.append("")
        lines.append("sources:")
        lines += [Hop(1, artifact, None, 0, SOURCE).line() for artifact in sources.values()]
    return lines
