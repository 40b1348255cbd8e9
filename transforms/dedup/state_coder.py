"""How streaming dedup state is encoded: ``transforms/state_encoding.py``'s explicit,
versioned format, not pickle. A release that changes a state's shape bumps
``VERSION`` and keeps a reader for every earlier version, so a savepoint taken by
one release restores in the next. Tests decode state written by versions 1 and 2.
"""

from __future__ import annotations

import dataclasses

from wirestream.schemas import EventRecord, Origin, Subject
from wirestream.transforms.dedup.decide import ClusterDecision
from wirestream.transforms.dedup.relate import Relation
from wirestream.transforms.dedup.sketch import StorySketch
from wirestream.transforms.dedup.streaming_state import ClusterMember, RootFlag, StoredSketch, StoryRelations
from wirestream.transforms.state_encoding import VersionedStateCoder

VERSION = 2  # every coder below writes this version (its newest reader)


def _relation(r: Relation) -> tuple:
    return r.kind, r.earlier_uid, r.earlier_event_id, tuple(r.earlier_order), r.later_uid, float(r.similarity)


def _relation_v1(t) -> Relation:
    kind, earlier_uid, earlier_event_id, order, later_uid, similarity = t
    return Relation(kind, earlier_uid, earlier_event_id, tuple(order), later_uid, similarity)


def _sketch(s: StorySketch) -> tuple:
    return tuple(s)


def _sketch_v1(t) -> StorySketch:
    t = list(t)
    t[5] = tuple(tuple(f) for f in t[5])  # facts
    t[6], t[7] = tuple(t[6]), tuple(t[7])  # names, tickers
    return StorySketch._make(t)


def _raw(b: bytes) -> bytes:
    return bytes(b)


def _stored_sketch(x: StoredSketch) -> tuple:
    return x.arrival, x.sketch


def _stored_sketch_v2(t) -> StoredSketch:
    return StoredSketch(*t)


def _story_relations(x: StoryRelations) -> tuple:
    return (x.expected, x.answered, sorted(x.waiting), sorted(x.compared),
            [_relation(r) for r in x.incoming.values()], sorted(x.asked), x.root, x.sent)


def _story_relations_v2(t) -> StoryRelations:
    expected, answered, waiting, compared, incoming, asked, root, sent = t
    relations = [_relation_v1(r) for r in incoming]
    return StoryRelations(expected=expected, answered=answered, waiting=set(waiting), compared=set(compared),
                          incoming={r.earlier_uid: r for r in relations}, asked=set(asked), root=root, sent=sent)


def _root_flag(x: RootFlag) -> tuple:
    return x.root, x.seq, list(x.askers)


def _root_flag_v2(t) -> RootFlag:
    root, seq, askers = t
    return RootFlag(root=root, seq=seq, askers=list(askers))


def _decision(d: ClusterDecision) -> tuple:
    return d.cluster_id, d.is_duplicate, d.duplicate_of, float(d.similarity), d.update_of


def _cluster_member(x: ClusterMember) -> tuple:
    return (x.event_id, x.seq, [_relation(r) for r in x.incoming],
            [(uid, root, seq) for uid, (root, seq) in x.answers.items()],
            None if x.emitted is None else _decision(x.emitted), x.revision)


def _cluster_member_v1(t) -> ClusterMember:
    return _cluster_member_v2(t[:6])  # version 1 also held a release flag, now the expiry timer's


def _cluster_member_v2(t) -> ClusterMember:
    event_id, seq, incoming, answers, emitted, revision = t
    return ClusterMember(event_id=event_id, seq=seq, incoming=[_relation_v1(r) for r in incoming],
                         answers={uid: (root, s) for uid, root, s in answers},
                         emitted=None if emitted is None else ClusterDecision(*emitted),
                         revision=revision)


_RECORD_FIELDS = {f.name for f in dataclasses.fields(EventRecord)}


def _record(r: EventRecord) -> dict:
    return dataclasses.asdict(r)


def _record_v1(d: dict) -> EventRecord:
    d = {k: v for k, v in d.items() if k in _RECORD_FIELDS}  # a field dropped since is ignored
    d["origin"] = Origin(**d["origin"])
    d["subjects"] = [Subject(**s) for s in d.get("subjects", [])]
    return EventRecord(**d)


# Version 2 replaced version 1's band-shard indexes and sharded root registry by
# bucket bags, stored sketches and per-story root flags: those version 1 states have no
# reader (their steps are gone), the cluster member and the record do.
SKETCH = VersionedStateCoder("sketch", _sketch, {1: _sketch_v1, 2: _sketch_v1})
BUCKET_RUN = VersionedStateCoder("bucket members", _raw, {2: _raw})  # packed ``MEMBER`` rows
PENDING_COMPARISON = VersionedStateCoder("pending comparison", _raw, {2: _raw})  # an encoded ``SKETCH``
STORED_SKETCH = VersionedStateCoder("stored sketch", _stored_sketch, {2: _stored_sketch_v2})
STORY_RELATIONS = VersionedStateCoder("story relations", _story_relations, {2: _story_relations_v2})
ROOT_FLAG = VersionedStateCoder("root flag", _root_flag, {2: _root_flag_v2})
CLUSTER_MEMBER = VersionedStateCoder("cluster member", _cluster_member, {1: _cluster_member_v1,
                                                                        2: _cluster_member_v2})
RECORD = VersionedStateCoder("record", _record, {1: _record_v1, 2: _record_v1})
