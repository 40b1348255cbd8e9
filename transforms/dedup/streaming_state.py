"""The streaming path's state machines, as plain classes (the DoFns in ``streaming`` wrap them).

Four keyed steps, each holding only what it needs:

* ``BucketMembers``, keyed by the full bucket (band, bucket value): the compact
  members (uid, publication time, arrival time) of the stories in that bucket,
  as an append-only bag of packed bytes. A new member is compared, under the
  bucket policy (``compared_members``), with the members batch would compare it
  with; the bucket names them, it never holds a sketch.
* ``StoryRelations``, keyed by story: which buckets have answered, which
  candidates have been compared, and the story's relations to earlier stories.
* ``RootFlag``, keyed by the story asked about: its root flag, and who asked.
* ``ClusterMember``, keyed by story: what its decision needs, and the last one emitted.

Each story's sketch is stored once, keyed by story, where candidates are
related to it (``relate_with_stored``). Expiry is by the runner's watermark
(the arrival time of the data), not by publication times: see ``streaming``.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np

from wirestream.transforms.dedup.buckets import compared_members
from wirestream.transforms.dedup.decide import ClusterDecision, copies_of, decide
from wirestream.transforms.dedup.relate import Relation, relate
from wirestream.transforms.dedup.settings import DedupSettings
from wirestream.transforms.dedup.sketch import StorySketch

# A bucket member packed: uid (20 hex digits as 10 bytes), publication time and
# arrival time (epoch seconds), big-endian so that the bytes sort by uid.
MEMBER = np.dtype([("uid", "S10"), ("time", ">i8"), ("arrival", ">i8")])
COMPACT_AFTER = 64  # bag elements after which a bucket is rewritten as one (bounds a read)
_NO_MEMBERS = np.zeros(0, dtype=MEMBER)


def pack_member(uid: str, time: int, arrival: int) -> bytes:
    return struct.pack(">10sqq", bytes.fromhex(uid), time, arrival)


class BucketAnswer(NamedTuple):
    candidates: list[str]  # uids of the stored members the new one is to be related with
    dropped: int  # comparisons left out by the bucket policy
    stored: bool  # False: the member was there already (a record read again)


class BucketMembers:
    """The members of one bucket, as read from its bag (a list of packed runs)."""

    def __init__(self, runs: Iterable[bytes]):
        self.runs = list(runs)
        self._oldest = None
        if not self.runs:  # most buckets: a story's first (NumPy costs more than the rest here)
            self.members = _NO_MEMBERS
            return
        members = np.frombuffer(b"".join(self.runs), dtype=MEMBER)
        if len(members) > 1:  # most buckets hold one story or none
            # Bucket order is (time, uid), as batch's (``candidate_pairs``).
            members = members[np.lexsort((members["uid"], members["time"]))]
        self.members = members

    def live(self, now: int, settings: DedupSettings) -> np.ndarray:
        """Members that arrived within the retention before ``now`` (an arrival time)."""
        if self.oldest_arrival >= now - settings.retention_seconds:  # the common case: all of them
            return self.members
        return self.members[self.members["arrival"] >= now - settings.retention_seconds]

    @property
    def oldest_arrival(self) -> int:
        if self._oldest is None:
            self._oldest = int(self.members["arrival"].min()) if len(self.members) else 0
        return self._oldest

    def add(self, uid: str, time: int, arrival: int, settings: DedupSettings) -> BucketAnswer:
        """The stored members a new one is compared with, as batch compares them:
        the earlier ones of its ``compared_members`` and the later ones whose
        compared members now include it."""
        if not self.runs:
            return BucketAnswer([], 0, True)
        members = self.live(arrival, settings)
        if not len(members):
            return BucketAnswer([], 0, True)
        key = bytes.fromhex(uid)
        if np.any(members["uid"] == key):
            return BucketAnswer([], 0, False)
        times = members["time"]
        position = _place(members, time, key)
        with_new = _Inserted(times, position, time)
        earlier, dropped = compared_members(with_new, position, settings)
        later = compared_later(with_new, position, settings)
        chosen = earlier + [i - 1 for i in later]  # indexes into ``members`` (without the new one)
        # NumPy drops a bytes field's trailing zero bytes: pad them back.
        return BucketAnswer([members["uid"][i].ljust(10, b"\0").hex() for i in chosen], dropped, True)

    def stored(self, member: bytes, compacted: Optional[bytes]) -> None:
        """Takes in a member just appended to the bag (``compacted``: the run the
        bag was rewritten as, before it), so that this object stays what a read would give."""
        new = np.frombuffer(member, dtype=MEMBER)
        self._oldest = None
        if compacted is None and not len(self.members):  # most buckets: nothing to merge with
            self.runs, self.members = [member], new
            return
        if compacted is not None:
            self.runs, members = [compacted + member], np.frombuffer(compacted, dtype=MEMBER)
        else:
            self.runs, members = self.runs + [member], self.members
        at = _place(members, int(new["time"][0]), new["uid"][0])
        # Not np.concatenate: it gives the fields native byte order, and the packed bytes would change.
        merged = np.empty(len(members) + 1, dtype=MEMBER)
        merged[:at], merged[at], merged[at + 1:] = members[:at], new[0], members[at:]
        self.members = merged

    def compacted(self, now: int, settings: DedupSettings) -> Optional[bytes]:
        """One run of the live members, when the bag has grown long enough to rewrite; else None."""
        if len(self.runs) <= COMPACT_AFTER:
            return None
        return self.live(now, settings).tobytes()

    def newest_arrival(self) -> int:
        return int(self.members["arrival"].max()) if len(self.members) else 0


def _place(members: np.ndarray, time: int, key: bytes) -> int:
    """Where a member goes in (time, uid) order: after equal times with smaller uids."""
    times = members["time"]
    start, end = np.searchsorted(times, time, "left"), np.searchsorted(times, time, "right")
    return int(start + np.searchsorted(members["uid"][start:end], key))


class _Inserted(Sequence):
    """Sorted ``times`` with ``time`` inserted at ``position``, for ``bisect`` without a copy."""

    def __init__(self, times: np.ndarray, position: int, time: int):
        self._times, self._position, self._time = times, position, time

    def __getitem__(self, i):
        if i < self._position:
            return int(self._times[i])
        return self._time if i == self._position else int(self._times[i - 1])

    def __len__(self):
        return len(self._times) + 1


def compared_later(times: Sequence[int], position: int, settings: DedupSettings) -> list[int]:
    """Later members whose compared members (``compared_members``) include the one
    at ``position``: the next ``compare_latest``, and those with fewer than
    ``compare_earliest`` members in their window before it."""
    time = times[position]
    end = bisect.bisect_right(times, time + settings.window_seconds, position + 1)
    later = set(range(position + 1, min(end, position + 1 + settings.compare_latest)))
    if position >= settings.compare_earliest:
        start = bisect.bisect_right(times, times[position - settings.compare_earliest]
                                    + settings.window_seconds, position + 1, end)
    else:
        start = position + 1
    later.update(range(start, end))
    return sorted(later)


class StoredSketch(NamedTuple):
    """A story's sketch as stored by its key, its uid (encoded, ``state_coder.SKETCH``, without
    the uid), and when it arrived."""

    arrival: int
    sketch: bytes


class Related(NamedTuple):
    reply: Optional[Relation]  # the asking story duplicates or updates the stored one
    late: Optional[Relation]  # the stored story duplicates or updates the asking one, which came later


def relate_with_stored(stored: StorySketch, asking: StorySketch, settings: DedupSettings) -> Related:
    """A candidate pair, related where the stored story's sketch is."""
    relation = relate(stored, asking, settings)
    if relation is None:
        return Related(None, None)
    if relation.later_uid == asking.uid:
        return Related(relation, None)
    return Related(None, relation)


@dataclass
class StoryRelations:
    """Per story: bucket answers and comparisons until all are in, then its relations to earlier stories."""

    expected: Optional[int] = None  # buckets the story is in
    answered: int = 0
    waiting: set[str] = field(default_factory=set)  # candidates named by a bucket, not compared yet
    compared: set[str] = field(default_factory=set)  # candidates compared so far (until complete)
    incoming: dict[str, Relation] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)
    root: Optional[bool] = None  # as last registered
    sent: int = -1  # len(incoming) last sent to DecideCluster

    def bucket_answered(self, buckets: int, candidates: Iterable[str], answered: int) -> None:
        self.expected = buckets
        self.answered += answered
        self.waiting.update(uid for uid in candidates if uid not in self.compared)

    def compared_with(self, uid: str, relation: Optional[Relation]) -> None:
        self.waiting.discard(uid)
        if not self.complete:  # a bucket may name it again (several buckets share the pair)
            self.compared.add(uid)
        if relation is not None:
            self.incoming[relation.earlier_uid] = relation
        if self.complete:
            self.compared.clear()

    def late_relation(self, relation: Relation) -> None:
        self.incoming[relation.earlier_uid] = relation

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.answered >= self.expected and not self.waiting


@dataclass
class RootFlag:
    """The root flag of one story, and who asked about it (so that a flag that
    flips reaches them). A flag's ``seq`` (its story's number of relations,
    which only grows) orders flags that travel by different paths."""

    root: Optional[bool] = None
    seq: int = -1
    askers: list[str] = field(default_factory=list)

    def register(self, root: bool, seq: int) -> list[str]:
        """Askers to tell the new flag."""
        if seq <= self.seq:  # an older flag overtaken by a newer one
            return []
        before, self.root, self.seq = self.root, root, seq
        return list(self.askers) if before != root else []

    def ask(self, asker: str) -> bool:
        """True if the flag is known (answer now); either way the asker hears of any flip."""
        if asker not in self.askers:
            self.askers.append(asker)
        return self.root is not None


@dataclass
class ClusterMember:
    """Per story: what its decision needs, and the decision last emitted."""

    event_id: Optional[str] = None  # set once the record is here
    seq: int = -1
    incoming: list[Relation] = field(default_factory=list)
    answers: dict[str, tuple[bool, int]] = field(default_factory=dict)  # predecessor -> (root, seq)
    emitted: Optional[ClusterDecision] = None
    revision: int = -1

    def decision(self) -> Optional[ClusterDecision]:
        if self.event_id is None or self.seq < 0:
            return None
        asked = [r.earlier_uid for r in copies_of(self.incoming)]
        if any(uid not in self.answers for uid in asked):
            return None
        return decide(self.event_id, self.incoming, [uid for uid in asked if self.answers[uid][0]])

    def final_decision(self) -> Optional[ClusterDecision]:
        """At expiry: the decision from what is known (a predecessor whose flag never
        came counts as no root), so that a record is never lost."""
        if self.event_id is None:
            return None
        asked = [r.earlier_uid for r in copies_of(self.incoming)]
        return decide(self.event_id, self.incoming, [uid for uid in asked if self.answers.get(uid, (False,))[0]])
