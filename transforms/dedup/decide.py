"""Deciding a story's cluster from its relations to earlier stories and their root flags."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Optional

from wirestream.schemas import EventRecord
from wirestream.transforms.dedup.relate import CORRECTION, DUPLICATE, UPDATE, Relation


@dataclass(frozen=True, slots=True)
class ClusterDecision:
    cluster_id: str
    is_duplicate: bool = False
    duplicate_of: Optional[str] = None
    similarity: float = 1.0
    update_of: Optional[str] = None


def cluster_id_for(event_id: str) -> str:
    return hashlib.sha256(f"cluster|{event_id}".encode()).hexdigest()[:32]


def own_cluster(event_id: str) -> ClusterDecision:
    """The decision for a story nothing earlier relates to: it leads a cluster of its own."""
    return ClusterDecision(cluster_id_for(event_id))


def is_root(incoming: Iterable[Relation]) -> bool:
    """A story leads a cluster if it duplicates nothing earlier, or is an update."""
    kinds = {r.kind for r in incoming}
    return UPDATE in kinds or CORRECTION in kinds or DUPLICATE not in kinds


def copies_of(relations: Iterable[Relation]) -> list[Relation]:
    """The duplicate relations among ``relations``: only for these does the earlier
    story's root flag matter (a story joins its earliest *root* predecessor)."""
    return [r for r in relations if r.kind == DUPLICATE]


def decide(event_id: str, incoming: Iterable[Relation], root_predecessors: Iterable[str]) -> ClusterDecision:
    """``incoming``: the story's relations to earlier stories; ``root_predecessors``:
    uids of those earlier stories that are roots."""
    incoming = list(incoming)
    versions = [r for r in incoming if r.kind == UPDATE]
    corrected = [r for r in incoming if r.kind == CORRECTION]
    if versions or corrected:
        # The latest earlier version, else the first report the correction reissues.
        updated = max(versions, key=lambda r: r.earlier_order) if versions else \
            min(corrected, key=lambda r: r.earlier_order)
        return ClusterDecision(cluster_id_for(event_id), update_of=updated.earlier_event_id)
    roots = set(root_predecessors)
    leaders = [r for r in copies_of(incoming) if r.earlier_uid in roots]
    if not leaders:
        return own_cluster(event_id)
    leader = min(leaders, key=lambda r: r.earlier_order)
    return ClusterDecision(cluster_id_for(leader.earlier_event_id), True, leader.earlier_event_id,
                           leader.similarity)


# The record's fields a decision sets (each named as the record's field).
DECIDED_FIELDS = tuple(ClusterDecision.__dataclass_fields__)


def decided_fields(decision: ClusterDecision) -> dict:
    """What a decision sets in a record, by field: a record rendered before its cluster
    was known is amended with these."""
    return {name: getattr(decision, name) for name in DECIDED_FIELDS}


def apply_decision(record: EventRecord, decision: ClusterDecision) -> EventRecord:
    for name in DECIDED_FIELDS:
        setattr(record, name, getattr(decision, name))
    return record
