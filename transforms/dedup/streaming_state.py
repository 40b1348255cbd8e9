"""The streaming path's state machines, as plain classes (the DoFns in ``streaming`` wrap them)."""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from wirestream.transforms.dedup.buckets import compared_members
from wirestream.transforms.dedup.decide import ClusterDecision, copies_of, decide
from wirestream.transforms.dedup.relate import Relation, relate
from wirestream.transforms.dedup.settings import DedupSettings
from wirestream.transforms.dedup.sketch import StorySketch

EXPIRY_STEP = 3_600  # state is swept once per hour of event time, not per story


CLOCK_QUORUM = 8  # stories that must be ahead of a time before a key's clock reaches it


@dataclass
class EventClock:
    """A key's clock for expiry, from the publication times it has seen, so no
    timer is needed. It is the ``CLOCK_QUORUM``-th newest time, not the newest:
    one story far ahead (a date that fell back to the ingest time on a replay of
    old stories, an old feed's one new item) cannot expire the state of the
    stories around it."""

    clock: int = 0
    swept: int = 0  # clock at the last expiry sweep
    newest: list[int] = field(default_factory=list)  # min-heap of the newest CLOCK_QUORUM times

    def advance(self, time: int) -> bool:
        """Moves the clock on; True when a sweep is due (once per hour of event time,
        not per story)."""
        if len(self.newest) < CLOCK_QUORUM:
            heapq.heappush(self.newest, time)
        elif time > self.newest[0]:
            heapq.heapreplace(self.newest, time)
        if len(self.newest) == CLOCK_QUORUM:
            self.clock = max(self.clock, self.newest[0])
        if self.clock - self.swept < EXPIRY_STEP:
            return False
        self.swept = self.clock
        return True


@dataclass
class BandShardIndex(EventClock):
    """Recent sketches of one (band, shard) key, by bucket."""

    buckets: dict[int, list[StorySketch]] = field(default_factory=dict)
    stored: int = 0  # sketches in all buckets: len() is read per story, so it is kept, not counted
    held: list[tuple[int, str]] = field(default_factory=list)  # heap (time, uid) not yet released

    def probe(self, bucket: int, sketch: StorySketch, settings: DedupSettings) -> "BandAnswer":
        """Relations of ``sketch`` to the stories stored in its bucket that the bucket
        policy compares it with, as batch does (``compared_members``); then stores it."""
        if self.advance(sketch.time):
            self._expire(settings)
        on_time = sketch.time >= self.clock - settings.lateness_seconds
        found, corrections, too_late = [], [], []
        members = self.buckets.setdefault(bucket, [])  # in bucket order (time, uid)
        position = bisect.bisect_right(members, (sketch.time, sketch.uid), key=_bucket_order)
        members.insert(position, sketch)
        times = _MemberTimes(members)
        earlier, dropped = compared_members(times, position, settings)
        for other in map(members.__getitem__, earlier + self._compared_later(times, position, settings)):
            relation = relate(other, sketch, settings)
            if relation is None:
                continue
            if relation.later_uid == sketch.uid:
                found.append(relation)
            elif on_time:
                corrections.append(relation)  # ``other`` was decided without this earlier story
            else:
                too_late.append(other.uid)
        self.stored += 1
        heapq.heappush(self.held, (sketch.time, sketch.uid))
        released = []
        horizon = self.clock - settings.lateness_seconds
        while self.held and self.held[0][0] < horizon:
            released.append(heapq.heappop(self.held)[1])
        return BandAnswer(found, corrections, too_late, released, dropped)

    @staticmethod
    def _compared_later(times: "_MemberTimes", position: int, settings: DedupSettings) -> list[int]:
        """Later members whose compared members (``compared_members``) now include
        the one at ``position``: the next ``compare_latest``, and those with fewer
        than ``compare_earliest`` members in their window before it."""
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

    def _expire(self, settings: DedupSettings) -> None:
        horizon = self.clock - settings.retention_seconds
        for bucket in list(self.buckets):
            kept = [s for s in self.buckets[bucket] if s.time >= horizon]
            if kept:
                self.buckets[bucket] = kept
            else:
                del self.buckets[bucket]
        self.stored = sum(len(v) for v in self.buckets.values())

    def __len__(self) -> int:
        return self.stored


class BandAnswer(NamedTuple):
    found: list[Relation]  # the probing story duplicates or updates these earlier ones
    corrections: list[Relation]  # stored later stories the probing story precedes and matches
    too_late: list[str]  # such stories left uncorrected: the probing story is beyond the lateness
    released: list[str]  # uids this key will make no more late relations for
    dropped: int = 0  # comparisons left out by the bucket policy


def _bucket_order(sketch: StorySketch) -> tuple[int, str]:
    return sketch.time, sketch.uid


class _MemberTimes(Sequence):
    """The publication times of a bucket's members, for ``bisect`` without a copy."""

    def __init__(self, members: list[StorySketch]):
        self._members = members

    def __getitem__(self, i):
        return self._members[i].time

    def __len__(self):
        return len(self._members)


@dataclass
class StoryRelations:
    """Per story: band answers until all are in, then its relations to earlier stories."""

    expected: Optional[int] = None
    answered: int = 0
    time: int = 0
    incoming: dict[str, Relation] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)
    root: Optional[bool] = None  # as last registered
    sent: int = -1  # len(incoming) last sent to DecideCluster
    uncorrected: set[str] = field(default_factory=set)  # later matches it came too late to correct
    releases: int = 0  # band shards done with the story; its state goes when all are

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.answered >= self.expected

    @property
    def released(self) -> bool:
        return self.complete and self.releases >= self.expected


@dataclass
class RootRegistry(EventClock):
    """Root flags of recent stories, and who asked about each (so that a
    flag that flips reaches them). A flag's ``seq`` (its story's number of
    relations, which only grows) orders flags that travel by different paths."""

    roots: dict[str, tuple[bool, int, int]] = field(default_factory=dict)  # uid -> (root, time, seq)
    askers: dict[str, list[str]] = field(default_factory=dict)

    def register(self, uid: str, root: bool, time: int, seq: int,
                 settings: DedupSettings) -> list[tuple[str, tuple[str, bool, int]]]:
        sweep = self.advance(time)
        before = self.roots.get(uid)
        answers = []
        if before is None or before[2] < seq:  # else an older flag overtaken by a newer one
            self.roots[uid] = (root, time, seq)
            if before is None or before[0] != root:
                answers = [(asker, (uid, root, seq)) for asker in self.askers.get(uid, ())]
        if sweep:
            horizon = self.clock - settings.retention_seconds
            expired = [k for k, v in self.roots.items() if v[1] < horizon]
            for k in expired:  # askers of a story not registered yet stay: it will register
                del self.roots[k]
                self.askers.pop(k, None)
        return answers

    def ask(self, asker: str, uid: str, time: int,
            settings: DedupSettings) -> Optional[tuple[str, tuple[str, bool, int]]]:
        if uid in self.roots:
            self.askers.setdefault(uid, []).append(asker)
            root, _, seq = self.roots[uid]
            return asker, (uid, root, seq)
        if time < self.clock - settings.retention_seconds:
            # Already forgotten (its keys' clocks lag this one's): it would
            # never register again, so answer now. It led when last known of.
            return asker, (uid, True, 0)
        self.askers.setdefault(uid, []).append(asker)  # answered when it registers
        return None


@dataclass
class ClusterMember:
    """Per story: what its decision needs, and the decision last emitted."""

    event_id: Optional[str] = None  # set once the record is here
    seq: int = -1
    incoming: list[Relation] = field(default_factory=list)
    answers: dict[str, tuple[bool, int]] = field(default_factory=dict)  # predecessor -> (root, seq)
    emitted: Optional[ClusterDecision] = None
    revision: int = -1
    release: bool = False

    def decision(self) -> Optional[ClusterDecision]:
        if self.event_id is None or self.seq < 0:
            return None
        asked = [r.earlier_uid for r in copies_of(self.incoming)]
        if any(uid not in self.answers for uid in asked):
            return None
        return decide(self.event_id, self.incoming, [uid for uid in asked if self.answers[uid][0]])
