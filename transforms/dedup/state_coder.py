"""How streaming state is encoded: an explicit, versioned format, not pickle.

Each value is one version byte, then a tuple of primitives (ints, strings,
bytes, floats, None, lists, tuples, dicts) in Beam's ``FastPrimitivesCoder``
format, which never pickles here: anything else is an error, not a silent
fallback. A release that changes a state's shape bumps ``VERSION`` and keeps
a reader for every earlier version, so a savepoint taken by one release
restores in the next. A test decodes state written by version 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from apache_beam import coders

from wirestream.schemas import EventRecord, Origin, Subject
from wirestream.transforms.dedup.decide import ClusterDecision
from wirestream.transforms.dedup.relate import Relation
from wirestream.transforms.dedup.sketch import StorySketch
from wirestream.transforms.dedup.streaming_state import BandShardIndex, ClusterMember, RootRegistry, StoryRelations

VERSION = 1


class _NoPickle(coders.Coder):
    def encode(self, value):
        raise TypeError(f"dedup state holds a {type(value).__name__}, which has no explicit encoding")

    def decode(self, encoded):
        raise TypeError("dedup state was written with a fallback encoding")

    def is_deterministic(self):
        return True


_PRIMITIVES = coders.FastPrimitivesCoder(fallback_coder=_NoPickle())


class VersionedStateCoder(coders.Coder):
    """``to_wire(value) -> primitives``; ``readers[version](primitives) -> value``."""

    def __init__(self, name: str, to_wire: Callable[[Any], Any], readers: dict[int, Callable[[Any], Any]]):
        self._name, self._to_wire, self._readers = name, to_wire, readers

    def encode(self, value) -> bytes:
        return bytes([VERSION]) + _PRIMITIVES.encode(self._to_wire(value))

    def decode(self, encoded: bytes):
        reader = self._readers.get(encoded[0])
        if reader is None:
            raise ValueError(f"{self._name} state of version {encoded[0]}: this release reads "
                             f"versions {sorted(self._readers)}")
        return reader(_PRIMITIVES.decode(encoded[1:]))

    def is_deterministic(self) -> bool:
        return True

    def __eq__(self, other):
        return type(self) is type(other) and self._name == other._name

    def __hash__(self):
        return hash((type(self), self._name))


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


def _band_shard_index(x: BandShardIndex) -> tuple:
    return (x.clock, x.swept, list(x.newest), x.stored, [tuple(h) for h in x.held],
            [(bucket, [_sketch(s) for s in members]) for bucket, members in x.buckets.items()])


def _band_shard_index_v1(t) -> BandShardIndex:
    clock, swept, newest, stored, held, buckets = t
    return BandShardIndex(clock=clock, swept=swept, newest=list(newest), stored=stored,
                          held=[tuple(h) for h in held],
                          buckets={bucket: [_sketch_v1(s) for s in members] for bucket, members in buckets})


def _story_relations(x: StoryRelations) -> tuple:
    return (x.expected, x.answered, x.time, [_relation(r) for r in x.incoming.values()], sorted(x.asked),
            x.root, x.sent, sorted(x.uncorrected), x.releases)


def _story_relations_v1(t) -> StoryRelations:
    expected, answered, time, incoming, asked, root, sent, uncorrected, releases = t
    relations = [_relation_v1(r) for r in incoming]
    return StoryRelations(expected=expected, answered=answered, time=time,
                          incoming={r.earlier_uid: r for r in relations}, asked=set(asked), root=root,
                          sent=sent, uncorrected=set(uncorrected), releases=releases)


def _root_registry(x: RootRegistry) -> tuple:
    return (x.clock, x.swept, list(x.newest), [(uid, *flag) for uid, flag in x.roots.items()],
            [(uid, list(askers)) for uid, askers in x.askers.items()])


def _root_registry_v1(t) -> RootRegistry:
    clock, swept, newest, roots, askers = t
    return RootRegistry(clock=clock, swept=swept, newest=list(newest),
                        roots={uid: (root, time, seq) for uid, root, time, seq in roots},
                        askers={uid: list(a) for uid, a in askers})


def _decision(d: ClusterDecision) -> tuple:
    return d.cluster_id, d.is_duplicate, d.duplicate_of, float(d.similarity), d.update_of


def _cluster_member(x: ClusterMember) -> tuple:
    return (x.event_id, x.seq, [_relation(r) for r in x.incoming],
            [(uid, root, seq) for uid, (root, seq) in x.answers.items()],
            None if x.emitted is None else _decision(x.emitted), x.revision, x.release)


def _cluster_member_v1(t) -> ClusterMember:
    event_id, seq, incoming, answers, emitted, revision, release = t
    return ClusterMember(event_id=event_id, seq=seq, incoming=[_relation_v1(r) for r in incoming],
                         answers={uid: (root, s) for uid, root, s in answers},
                         emitted=None if emitted is None else ClusterDecision(*emitted),
                         revision=revision, release=release)


_RECORD_FIELDS = {f.name for f in dataclasses.fields(EventRecord)}


def _record(r: EventRecord) -> dict:
    return dataclasses.asdict(r)


def _record_v1(d: dict) -> EventRecord:
    d = {k: v for k, v in d.items() if k in _RECORD_FIELDS}  # a field dropped since is ignored
    d["origin"] = Origin(**d["origin"])
    d["subjects"] = [Subject(**s) for s in d.get("subjects", [])]
    return EventRecord(**d)


BAND_SHARD_INDEX = VersionedStateCoder("band shard index", _band_shard_index, {1: _band_shard_index_v1})
STORY_RELATIONS = VersionedStateCoder("story relations", _story_relations, {1: _story_relations_v1})
ROOT_REGISTRY = VersionedStateCoder("root registry", _root_registry, {1: _root_registry_v1})
CLUSTER_MEMBER = VersionedStateCoder("cluster member", _cluster_member, {1: _cluster_member_v1})
RECORD = VersionedStateCoder("record", _record, {1: _record_v1})
