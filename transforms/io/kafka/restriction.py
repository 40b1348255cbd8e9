"""The topic reader's restriction (partitions and their offset ranges) and its tracker."""

from __future__ import annotations

from dataclasses import dataclass

from apache_beam.io.iobase import RestrictionTracker

from wirestream.transforms.io.kafka.positions import UNBOUNDED
from wirestream.transforms.state_encoding import VersionedStateCoder


@dataclass
class TopicOffsets:
    """The restriction of one topic's reader: per partition the offsets
    [start, stop) still to read and ``first``, where this run began reading
    it; ``watch`` when this piece also looks for new partitions, which are
    those not in ``known`` (every partition some piece is reading)."""

    ranges: dict  # partition -> (start, stop, first)
    watch: bool = False
    known: frozenset = frozenset()

    def remaining(self) -> int:
        return sum(min(stop, start + 10**9) - start for start, stop, _ in self.ranges.values())


def _topic_offsets(x: TopicOffsets) -> tuple:
    return ([(p, start, stop, first) for p, (start, stop, first) in sorted(x.ranges.items())],
            x.watch, sorted(x.known))


def _topic_offsets_v1(t) -> TopicOffsets:
    ranges, watch, known = t
    return TopicOffsets({p: (start, stop, first) for p, start, stop, first in ranges}, watch, frozenset(known))


# The restriction as runners checkpoint it (Flink, Dataflow): see transforms/state_encoding.py.
TOPIC_OFFSETS_CODER = VersionedStateCoder("kafka topic offsets", _topic_offsets, {1: _topic_offsets_v1})


class TopicOffsetsTracker(RestrictionTracker):
    """Claims are ``("offset", partition, offset)`` for a record,
    ``("end", partition)`` when a partition is finished, ``("add", partition,
    start, stop)`` to take on a newly found partition, and ``("stop",)`` to
    finish everything (Ctrl-C). Splits happen only at the current position
    (checkpoints): offsets of an open-ended range are not evenly spread work."""

    def __init__(self, restriction: TopicOffsets):
        self._restriction = restriction
        self._next = {p: start for p, (start, _, _) in restriction.ranges.items()}
        self._finished: set = set()
        self._checkpointed = False

    def current_restriction(self):
        return self._restriction

    def try_claim(self, position) -> bool:
        if self._checkpointed:
            return False
        kind, *args = position
        ranges = self._restriction.ranges
        if kind == "offset":
            partition, offset = args
            if partition in self._finished or offset < self._next[partition]:
                raise ValueError(f"claim {position} is behind partition {partition}'s position")
            if offset >= ranges[partition][1]:
                self._finished.add(partition)
                return False
            self._next[partition] = offset + 1
            return True
        if kind == "end":
            self._finished.add(args[0])
            return True
        if kind == "add":
            partition, start, stop = args
            if partition in ranges:
                return False
            ranges[partition] = (start, stop, start)
            self._next[partition] = start
            self._restriction.known = self._restriction.known | {partition}
            return True
        if kind == "stop":
            self._finished.update(ranges)
            self._restriction.watch = False
            return True
        raise ValueError(f"unknown claim {position!r}")

    def unfinished(self) -> list[int]:
        return [p for p, (_, stop, _) in self._restriction.ranges.items()
                if p not in self._finished and self._next[p] < stop]

    def try_split(self, fraction_of_remainder):
        if fraction_of_remainder != 0 or self._checkpointed:
            return None
        self._checkpointed = True
        ranges = self._restriction.ranges
        primary = TopicOffsets({p: (start, self._next[p], first)
                                for p, (start, _, first) in ranges.items()})
        residual = TopicOffsets({p: (self._next[p], ranges[p][1], ranges[p][2])
                                 for p in self.unfinished()}, self._restriction.watch,
                                self._restriction.known)
        self._restriction = primary
        return primary, residual

    def check_done(self):
        if not self._checkpointed and (self.unfinished() or self._restriction.watch):
            raise ValueError(f"topic reader stopped with partitions {self.unfinished()} unread")

    def current_progress(self):
        from apache_beam.io.iobase import RestrictionProgress
        done = sum(self._next[p] - start for p, (start, _, _) in self._restriction.ranges.items())
        return RestrictionProgress(completed=done, remaining=self._restriction.remaining())

    def is_bounded(self):
        return not self._restriction.watch and all(
            stop != UNBOUNDED for _, stop, _ in self._restriction.ranges.values())
