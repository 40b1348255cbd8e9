"""How streaming dedup state is encoded: ``transforms/state_encoding.py``'s explicit,
versioned format, not pickle. A release that changes a state's shape bumps
``VERSION`` and keeps a reader for every earlier version, so a savepoint taken by
one release restores in the next. Tests decode state written by versions 1, 2 and 3.

Version 3 writes the same states in fewer bytes (each story writes them to ~34
keys): ids as bytes rather than hex or UUID text, a sketch's figure and name
hashes packed as uint32, a relation's order without the uid and event id it
repeats, bucket members as fixed-width rows, and the record deflated against a
dictionary of its own layout.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import uuid
import zlib
from typing import Optional

import numpy as np

from wirestream.schemas import EventRecord, Origin, Subject
from wirestream.transforms.dedup.decide import ClusterDecision, cluster_id_for
from wirestream.transforms.dedup.relate import Relation
from wirestream.transforms.dedup.sketch import StorySketch
from wirestream.transforms.dedup.streaming_state import MEMBER, ClusterMember, RootFlag, StoredSketch, StoryRelations
from wirestream.transforms.state_encoding import _PRIMITIVES, Packed, VersionedStateCoder

VERSION = 3  # every coder below writes this version (its newest reader)

_HEX = re.compile(r"(?:[0-9a-f]{2})+")


def _hex_id(s: Optional[str]):
    """A uid or cluster id (lowercase hex) as its bytes; any other string (or None) as is."""
    return bytes.fromhex(s) if s is not None and _HEX.fullmatch(s) else s


def _event_id(s: Optional[str]):
    """An event id (a UUID in canonical form) as its 16 bytes; any other string (or None) as is."""
    if s is None or len(s) != 36:
        return s
    try:
        u = uuid.UUID(s)
    except ValueError:
        return s
    return u.bytes if str(u) == s else s


def _similarity(x: float):
    """A similarity of 4 decimals (``relate`` rounds them so) as that many ten-thousandths."""
    k = round(x * 10_000)
    return k if k / 10_000 == x else float(x)


def _similarity_v3(x) -> float:
    return x / 10_000 if isinstance(x, int) else x


def _hex_id_v3(x):
    return x.hex() if isinstance(x, bytes) else x


def _event_id_v3(x):
    return str(uuid.UUID(bytes=x)) if isinstance(x, bytes) else x


def _relation_v1(t) -> Relation:
    kind, earlier_uid, earlier_event_id, order, later_uid, similarity = t
    return Relation(kind, earlier_uid, earlier_event_id, tuple(order), later_uid, similarity)


def _relation(r: Relation) -> tuple:
    # The order is the earlier story's (time, event_id, uid): only its time is new.
    order = r.earlier_order[0] if tuple(r.earlier_order[1:]) == (r.earlier_event_id, r.earlier_uid) \
        else tuple(r.earlier_order)
    return (r.kind, _hex_id(r.earlier_uid), _event_id(r.earlier_event_id), order, _hex_id(r.later_uid),
            _similarity(r.similarity))


def _relation_v3(t) -> Relation:
    kind, earlier_uid, earlier_event_id, order, later_uid, similarity = t
    earlier_uid, earlier_event_id = _hex_id_v3(earlier_uid), _event_id_v3(earlier_event_id)
    order = tuple(order) if isinstance(order, (tuple, list)) else (order, earlier_event_id, earlier_uid)
    return Relation(kind, earlier_uid, earlier_event_id, order, _hex_id_v3(later_uid), _similarity_v3(similarity))


def _uint32s(values) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def _sketch(s: StorySketch) -> tuple:
    facts = _uint32s([h for fact in s.facts for h in fact])
    return (_hex_id(s.uid), _event_id(s.event_id), s.time, s.signature, s.shingles, facts, _uint32s(s.names),
            tuple(s.tickers), s.headline_lead, s.short, s.story_key, s.version, s.correction)


def _sketch_v3(t) -> StorySketch:
    uid, event_id, time, signature, shingles, facts, names, *rest = t
    hashes = struct.unpack(f"<{len(facts) // 4}I", facts)
    rest[0] = tuple(rest[0])  # tickers
    return StorySketch(_hex_id_v3(uid), _event_id_v3(event_id), time, signature, shingles,
                       tuple(zip(hashes[::2], hashes[1::2])), struct.unpack(f"<{len(names) // 4}I", names),
                       *rest)


def _sketch_v1(t) -> StorySketch:
    t = list(t)
    t[5] = tuple(tuple(f) for f in t[5])  # facts
    t[6], t[7] = tuple(t[6]), tuple(t[7])  # names, tickers
    return StorySketch._make(t)


def _raw(b: bytes) -> bytes:
    return bytes(b)


# A bucket member in version 3: the packed ``MEMBER`` row (uid, publication time,
# arrival time; big-endian) less the high bytes of its times that only repeat their
# sign: 5 bytes of publication time and 6 of arrival time hold the range of a
# datetime (years 1-9999) and of a Beam timestamp (the start of time included).
_TIME_BYTES, _ARRIVAL_BYTES = 5, 6
_ROW_V3 = 10 + _TIME_BYTES + _ARRIVAL_BYTES
_KEPT = np.r_[0:10, 18 - _TIME_BYTES:18, 26 - _ARRIVAL_BYTES:26]  # the bytes of a row kept
_ROWS_BY_NUMPY = 32  # runs this long are converted by NumPy; shorter ones (most: one member) by struct
_SIGN = {False: b"\0" * 8, True: b"\xff" * 8}


_TIME_LIMIT, _ARRIVAL_LIMIT = 1 << 8 * _TIME_BYTES - 1, 1 << 8 * _ARRIVAL_BYTES - 1
_TIMES = struct.Struct(">qq")


def _in_range(time: int, arrival: int) -> bool:
    return -_TIME_LIMIT <= time < _TIME_LIMIT and -_ARRIVAL_LIMIT <= arrival < _ARRIVAL_LIMIT


def _bucket_run(rows: bytes) -> bytes:
    """Packed ``MEMBER`` rows -> version 3 rows."""
    if len(rows) == MEMBER.itemsize:  # most: a member appended to its bucket
        if not _in_range(*_TIMES.unpack_from(rows, 10)):
            raise ValueError("a bucket member's time is out of the range of version 3")
        return rows[:10] + rows[18 - _TIME_BYTES:18] + rows[26 - _ARRIVAL_BYTES:]
    if len(rows) < _ROWS_BY_NUMPY * MEMBER.itemsize:
        if not all(_in_range(*_TIMES.unpack_from(rows, i)) for i in range(10, len(rows), MEMBER.itemsize)):
            raise ValueError("a bucket member's time is out of the range of version 3")
        return b"".join(rows[i:i + 10] + rows[i + 18 - _TIME_BYTES:i + 18] + rows[i + 26 - _ARRIVAL_BYTES:i + 26]
                        for i in range(0, len(rows), MEMBER.itemsize))
    members = np.frombuffer(rows, dtype=MEMBER)
    if not _in_range(int(members["time"].min()), int(members["arrival"].min())) \
            or not _in_range(int(members["time"].max()), int(members["arrival"].max())):
        raise ValueError("a bucket member's time is out of the range of version 3")
    return np.frombuffer(rows, dtype=np.uint8).reshape(len(members), MEMBER.itemsize)[:, _KEPT].tobytes()


def _bucket_run_v3(packed: bytes) -> bytes:
    """Version 3 rows -> packed ``MEMBER`` rows (the times' high bytes are their sign's)."""
    t, a = 10, 10 + _TIME_BYTES
    if len(packed) == _ROW_V3:  # most: a member appended to its bucket
        return (packed[:t] + _SIGN[packed[t] > 127][_TIME_BYTES:] + packed[t:a]
                + _SIGN[packed[a] > 127][_ARRIVAL_BYTES:] + packed[a:])
    if len(packed) < _ROWS_BY_NUMPY * _ROW_V3:
        return b"".join(_bucket_run_v3(packed[i:i + _ROW_V3]) for i in range(0, len(packed), _ROW_V3))
    rows = np.frombuffer(packed, dtype=np.uint8).reshape(-1, _ROW_V3)
    wide = np.empty((len(rows), MEMBER.itemsize), dtype=np.uint8)
    wide[:, _KEPT] = rows
    wide[:, 10:18 - _TIME_BYTES] = np.where(rows[:, t:t + 1] > 127, 255, 0)
    wide[:, 18:26 - _ARRIVAL_BYTES] = np.where(rows[:, a:a + 1] > 127, 255, 0)
    return wide.tobytes()


def _stored_sketch(x: StoredSketch) -> bytes:
    return x.arrival.to_bytes(6, "big", signed=True) + x.sketch  # 6 bytes: any Beam timestamp, in seconds


def _stored_sketch_v2(t) -> StoredSketch:
    return StoredSketch(*t)


def _stored_sketch_v3(b: bytes) -> StoredSketch:
    return StoredSketch(int.from_bytes(b[:6], "big", signed=True), b[6:])


def _hex_ids(uids) -> list:
    return [_hex_id(uid) for uid in uids]


def _story_relations(x: StoryRelations) -> tuple:
    return (x.expected, x.answered, _hex_ids(sorted(x.waiting)), _hex_ids(sorted(x.compared)),
            [_relation(r) for r in x.incoming.values()], _hex_ids(sorted(x.asked)), x.root, x.sent)


def _story_relations_v2(t) -> StoryRelations:
    expected, answered, waiting, compared, incoming, asked, root, sent = t
    relations = [_relation_v1(r) for r in incoming]
    return StoryRelations(expected=expected, answered=answered, waiting=set(waiting), compared=set(compared),
                          incoming={r.earlier_uid: r for r in relations}, asked=set(asked), root=root, sent=sent)


def _story_relations_v3(t) -> StoryRelations:
    expected, answered, waiting, compared, incoming, asked, root, sent = t
    relations = [_relation_v3(r) for r in incoming]
    return StoryRelations(expected=expected, answered=answered, waiting={_hex_id_v3(u) for u in waiting},
                          compared={_hex_id_v3(u) for u in compared},
                          incoming={r.earlier_uid: r for r in relations}, asked={_hex_id_v3(u) for u in asked},
                          root=root, sent=sent)


def _root_flag(x: RootFlag) -> tuple:
    return x.root, x.seq, _hex_ids(x.askers)


def _root_flag_v2(t) -> RootFlag:
    root, seq, askers = t
    return RootFlag(root=root, seq=seq, askers=list(askers))


def _root_flag_v3(t) -> RootFlag:
    root, seq, askers = t
    return RootFlag(root=root, seq=seq, askers=[_hex_id_v3(u) for u in askers])


def _cluster_of(event_id: Optional[str], is_duplicate: bool, duplicate_of: Optional[str]) -> Optional[str]:
    """The cluster id ``decide`` gives: that of the story, or of the one it duplicates."""
    leader = duplicate_of if is_duplicate else event_id
    return None if leader is None else cluster_id_for(leader)


def _decision(d: ClusterDecision, event_id: Optional[str]) -> tuple:
    # The cluster id is left out when it is the one its story's decision gives.
    cluster_id = None if d.cluster_id == _cluster_of(event_id, d.is_duplicate, d.duplicate_of) else d.cluster_id
    return (cluster_id and _hex_id(cluster_id), d.is_duplicate, _event_id(d.duplicate_of),
            _similarity(d.similarity), _event_id(d.update_of))


def _decision_v3(t, event_id: Optional[str]) -> ClusterDecision:
    cluster_id, is_duplicate, duplicate_of, similarity, update_of = t
    duplicate_of = _event_id_v3(duplicate_of)
    cluster_id = _cluster_of(event_id, is_duplicate, duplicate_of) if cluster_id is None else _hex_id_v3(cluster_id)
    return ClusterDecision(cluster_id, is_duplicate, duplicate_of, _similarity_v3(similarity), _event_id_v3(update_of))


def _cluster_member(x: ClusterMember) -> tuple:
    return (_event_id(x.event_id), x.seq, [_relation(r) for r in x.incoming],
            [(_hex_id(uid), root, seq) for uid, (root, seq) in x.answers.items()],
            None if x.emitted is None else _decision(x.emitted, x.event_id), x.revision)


def _cluster_member_v1(t) -> ClusterMember:
    return _cluster_member_v2(t[:6])  # version 1 also held a release flag, now the expiry timer's


def _cluster_member_v2(t) -> ClusterMember:
    event_id, seq, incoming, answers, emitted, revision = t
    return ClusterMember(event_id=event_id, seq=seq, incoming=[_relation_v1(r) for r in incoming],
                         answers={uid: (root, s) for uid, root, s in answers},
                         emitted=None if emitted is None else ClusterDecision(*emitted),
                         revision=revision)


def _cluster_member_v3(t) -> ClusterMember:
    event_id, seq, incoming, answers, emitted, revision = t
    event_id = _event_id_v3(event_id)
    return ClusterMember(event_id=event_id, seq=seq, incoming=[_relation_v3(r) for r in incoming],
                         answers={_hex_id_v3(uid): (root, s) for uid, root, s in answers},
                         emitted=None if emitted is None else _decision_v3(emitted, event_id),
                         revision=revision)


_RECORD_FIELDS = {f.name for f in dataclasses.fields(EventRecord)}

# What a record's encoding shares with every other (field names, their order,
# common values), as a preset deflate dictionary. Fixed for version 3 (a test pins
# it): records written with it are read with it, whatever fields records gain later.
_RECORD_DICTIONARY = _PRIMITIVES.encode({
    "event_id": "", "story_id": "", "version": None, "source": "", "headline": "", "body": "", "url": None,
    "section": None, "related_headlines": [], "published_at": "T00:00:00Z", "published_raw": None,
    "updated_at": None, "language": "en", "language_confidence": 1.0, "language_declared": None,
    "dates_mentioned": [], "origin": {"kind": "file", "ingested_at": "T00:00:00Z", "path": None, "line": None,
                                      "item": None, "topic": None, "partition": None, "offset": None,
                                      "key": None, "headers": None, "timestamp": None},
    "format": "", "dateline": None, "cluster_id": None, "is_duplicate": False, "duplicate_of": None,
    "similarity": 1.0, "update_of": None, "cluster_revision": 0,
    "tags": {"countries": [], "places": [], "people": [], "organisations": [], "topics": [], "event_types": []},
    "quality": [], "language_region": None, "subjects": [], "place_labels": [], "schema_version": "1.0"})


# Copied per record: setting up a compressor costs more than compressing a record.
_DEFLATE = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, _RECORD_DICTIONARY)


def _record(r: EventRecord) -> bytes:
    deflate = _DEFLATE.copy()
    return deflate.compress(_PRIMITIVES.encode(r.primitives())) + deflate.flush()


def _record_v1(d: dict) -> EventRecord:
    d = {k: v for k, v in d.items() if k in _RECORD_FIELDS}  # a field dropped since is ignored
    d["origin"] = Origin(**d["origin"])
    d["subjects"] = [Subject(**s) for s in d.get("subjects", [])]
    return EventRecord(**d)


def _record_v3(b: bytes) -> EventRecord:
    inflate = zlib.decompressobj(-15, _RECORD_DICTIONARY)
    return _record_v1(_PRIMITIVES.decode(inflate.decompress(b) + inflate.flush()))


# Version 2 replaced version 1's band-shard indexes and sharded root registry by
# bucket bags, stored sketches and per-story root flags: those version 1 states have no
# reader (their steps are gone), the cluster member and the record do.
SKETCH = VersionedStateCoder("sketch", _sketch, {1: _sketch_v1, 2: _sketch_v1, 3: _sketch_v3})
BUCKET_RUN = VersionedStateCoder("bucket members", _bucket_run,  # packed ``MEMBER`` rows
                                 {2: _raw, 3: Packed(_bucket_run_v3)})
PENDING_COMPARISON = VersionedStateCoder("pending comparison", _raw,  # an encoded ``SKETCH``
                                         {2: _raw, 3: Packed(_raw)})
STORED_SKETCH = VersionedStateCoder("stored sketch", _stored_sketch, {2: _stored_sketch_v2,
                                                                      3: Packed(_stored_sketch_v3)})
STORY_RELATIONS = VersionedStateCoder("story relations", _story_relations, {2: _story_relations_v2,
                                                                            3: _story_relations_v3})
ROOT_FLAG = VersionedStateCoder("root flag", _root_flag, {2: _root_flag_v2, 3: _root_flag_v3})
CLUSTER_MEMBER = VersionedStateCoder("cluster member", _cluster_member, {1: _cluster_member_v1,
                                                                        2: _cluster_member_v2,
                                                                        3: _cluster_member_v3})
RECORD = VersionedStateCoder("record", _record, {1: _record_v1, 2: _record_v1, 3: Packed(_record_v3)})
