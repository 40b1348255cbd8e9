"""Offset commits for the kafka:// source's consumer group.

Resume contract (what a committed offset means)
-----------------------------------------------
Kafka's committed offset for a partition is the NEXT offset to read. The
source commits offset C for its consumer group only when every record it read
from that partition with an offset below C has reached a sink: its event
record or dead letter was flushed (``RecordSink.flush`` returned), or it was
deliberately left out (a dropped duplicate). A restart with
``start=committed`` therefore resumes at C and skips nothing; records at or
after C whose results were already written are written again, and sinks upsert
by key, so the end result holds each record once (at-least-once delivery,
idempotent result).

How C is computed (``PartitionProgress``): sinks report, after each flush, the
origins they wrote; the reader reports where it began reading (everything
below it counts as finished) and the offsets it skipped because no record
lives there (compaction, transaction markers). Acknowledgements may arrive in
any order and from parallel bundles; per partition C advances only over the
contiguous prefix of finished offsets. A payload that parses into several
items (an RSS feed, a NewsML-G2 message) finishes when all its items are
written, which needs ``origin.item_count``; without it the commit waits at
that offset (safe, never ahead).

Commits are made by a keyed stateful DoFn, so they are correct on any runner
and any parallelism; what survives a crash is runner-specific (see README).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import apache_beam as beam
from apache_beam.transforms import userstate
from apache_beam.transforms.window import GlobalWindows

from wirestream.transforms.io.kafka.positions import _tp
from wirestream.transforms.io.kafka.spec import KafkaSourceSpec
from wirestream.transforms.io.sinks import Acknowledgement
from wirestream.transforms.stage import METRICS_NAMESPACE
from wirestream.transforms.state_encoding import VersionedStateCoder

_LOG = logging.getLogger("wirestream.kafka")


def acknowledgement(element) -> Optional[Acknowledgement]:
    """An Acknowledgement as is, or one for a record (anything with an origin)."""
    if isinstance(element, Acknowledgement):
        return element
    return Acknowledgement.of_origin(element.origin)



@dataclass
class PartitionProgress:
    """What is finished in one partition, and so the offset to commit.

    ``committed`` is the next offset to read (Kafka's meaning); it is None
    until the reader's ``begins`` acknowledgement says where reading began.
    ``finished`` holds disjoint, sorted [start, end) ranges above it;
    ``items`` the written items of multi-item payloads not yet complete."""

    committed: Optional[int] = None
    began_at: Optional[int] = None
    finished: list = field(default_factory=list)
    items: dict = field(default_factory=dict)  # offset -> (set of items, item_count or None)

    def acknowledge(self, ack: Acknowledgement) -> None:
        if ack.begins:
            self.began_at = ack.start if self.began_at is None else self.began_at
            self.committed = ack.start if self.committed is None else max(self.committed, ack.start)
        elif ack.item is not None:
            written, count = self.items.get(ack.start, (frozenset(), None))
            written, count = written | {ack.item}, count or ack.item_count
            if count is not None and len(written) >= count:
                self.items.pop(ack.start, None)
                self._finish(ack.start, ack.start + 1)
            else:
                self.items[ack.start] = (written, count)
        elif ack.end > ack.start:
            self._finish(ack.start, ack.end)
        self._advance()

    @property
    def worth_committing(self) -> bool:
        """Beyond where reading began: the starting point alone is no news
        (the group already resumes there, or was told to start elsewhere)."""
        return self.committed is not None and self.committed > self.began_at

    def _finish(self, start: int, end: int) -> None:
        merged = []
        for lo, hi in self.finished:
            if hi < start or lo > end:  # disjoint and not touching
                merged.append((lo, hi))
            else:
                start, end = min(lo, start), max(hi, end)
        merged.append((start, end))
        self.finished = sorted(merged)

    def _advance(self) -> None:
        if self.committed is None:
            return
        while self.finished and self.finished[0][0] <= self.committed:
            self.committed = max(self.committed, self.finished.pop(0)[1])
        self.items = {o: v for o, v in self.items.items() if o >= self.committed}


def _partition_progress(x: PartitionProgress) -> tuple:
    return (x.committed, x.began_at, [tuple(r) for r in x.finished],
            [(offset, sorted(written), count) for offset, (written, count) in sorted(x.items.items())])


def _partition_progress_v1(t) -> PartitionProgress:
    committed, began_at, finished, items = t
    return PartitionProgress(committed, began_at, [tuple(r) for r in finished],
                             {offset: (frozenset(written), count) for offset, written, count in items})


# Kept by the runner across restarts: see transforms/state_encoding.py.
PARTITION_PROGRESS_CODER = VersionedStateCoder("kafka partition progress", _partition_progress,
                                               {1: _partition_progress_v1})


class CommitContiguousOffsets(beam.DoFn):
    """Per partition (the key), folds acknowledgements into PartitionProgress;
    at the end of the bundle commits every partition whose finished prefix
    grew, in one request."""

    PROGRESS = userstate.ReadModifyWriteStateSpec("progress", PARTITION_PROGRESS_CODER)

    def __init__(self, spec: KafkaSourceSpec):
        self._spec = spec
        self._commits = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "kafka_offset_commits")

    def setup(self):
        self._consumer = None

    def start_bundle(self):
        self._to_commit: dict = {}

    def process(self, keyed, progress_state=beam.DoFn.StateParam(PROGRESS)):
        topic_partition, ack = keyed
        progress = progress_state.read() or PartitionProgress()
        before = progress.committed
        progress.acknowledge(ack)
        progress_state.write(progress)
        if progress.worth_committing and progress.committed != before:
            self._to_commit[topic_partition] = progress.committed

    def finish_bundle(self):
        if not self._to_commit:
            return
        from kafka.structs import OffsetAndMetadata
        if self._consumer is None:
            self._consumer = self._spec.consumer(group=True)
        self._consumer.commit({_tp(*tp): OffsetAndMetadata(offset, "", -1)
                               for tp, offset in self._to_commit.items()})
        self._commits.inc(len(self._to_commit))
        _LOG.debug("committed %s for group %s", self._to_commit, self._spec.group)
        self._to_commit = {}

    def teardown(self):
        if self._consumer is not None:
            self._consumer.close(autocommit=False)


class CommitWrittenOffsets(beam.PTransform):
    """Acknowledgements (or records with a Kafka origin) -> group commits."""

    def __init__(self, spec: KafkaSourceSpec):
        super().__init__()
        self._spec = spec

    def expand(self, acknowledgements):
        return (acknowledgements
                | "AsAcknowledgements" >> beam.FlatMap(
                    lambda e: [a] if (a := acknowledgement(e)) is not None else [])
                | "GlobalWindow" >> beam.WindowInto(GlobalWindows())
                | "ByPartition" >> beam.Map(lambda a: ((a.topic, a.partition), a))
                | "Commit" >> beam.ParDo(CommitContiguousOffsets(self._spec)))
