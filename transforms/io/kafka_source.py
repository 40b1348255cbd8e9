"""Reading Kafka topics: a splittable DoFn over partitions, and offset commits.

The graph: Create(topics) -> ReadTopic, a splittable DoFn whose restriction
is the topic's partitions with their offset ranges (``TopicOffsets``), split
one piece per partition; the first piece also watches for new partitions
every discovery interval and takes them on. (Discovery is not a separate
upstream SDF because Beam's local FnApiRunner drops the checkpoints of an SDF
fused behind another unbounded one.) Outputs: RawRecords, and a side output
of read progress for the offset commits.

Each RawRecord keeps its Kafka metadata in ``origin`` and the record's
timestamp as its element timestamp; the watermark follows record timestamps
and moves to wall-clock time (less ``IDLE_SKEW``) while a partition is caught
up, so an idle partition does not hold it back.

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

A runner may checkpoint the reader in the middle of a polled batch (Flink and
Dataflow split on their own schedule: ``try_claim`` is refused). The residual
then starts at the refused record while the consumer has already returned the
whole batch, so the reader forgets that partition's position and the residual
seeks back; otherwise its unread offsets would be taken for offsets where no
record lives, acknowledged, and committed past.

Commits are made by a keyed stateful DoFn, so they are correct on any runner
and any parallelism; what survives a crash is runner-specific (see README).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional, Union

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import PickleCoder
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms import userstate
from apache_beam.io.iobase import RestrictionTracker
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import GlobalWindows, TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from schemas import Origin, RawRecord
from transforms.io.kafka import (START_POSITIONS, STOP_POSITIONS, ClientConfig, KafkaSpecError,
                                 parse_position, source_query, _brokers, _topics)
from transforms.io.sinks import PROGRESS, RECORDS, Acknowledgement
from transforms.stage import METRICS_NAMESPACE

_LOG = logging.getLogger("wirestream.kafka")

UNBOUNDED = sys.maxsize
POLL_TIMEOUT_MS = 200  # also what throttles a local runner that ignores defer delays
MAX_RECORDS_PER_POLL = 500
IDLE_SKEW = Duration(seconds=1)  # how far behind wall-clock a caught-up partition's watermark sits
_CLIENT_TIMEOUT_MS = 10_000

_STOP_READING = threading.Event()


def request_stop_reading() -> None:
    """Ask every reader in this process to finish its restriction (Ctrl-C on a
    local runner): the pipeline then drains, flushing sinks and committing."""
    _STOP_READING.set()


def reset_stop_reading() -> None:
    _STOP_READING.clear()


def stop_reading_requested() -> bool:
    return _STOP_READING.is_set()


@dataclass(frozen=True)
class KafkaSourceSpec:
    brokers: tuple[str, ...]
    topics: tuple[str, ...]
    group: Optional[str] = None
    start: Union[str, int] = "committed"  # a START_POSITIONS name or epoch milliseconds
    stop: Union[str, int] = "never"  # a STOP_POSITIONS name or epoch milliseconds
    config: ClientConfig = field(default_factory=ClientConfig, compare=False)
    discovery_interval: float = 30.0

    @classmethod
    def parse(cls, spec: str, config: Optional[ClientConfig] = None,
              discovery_interval: float = 30.0) -> "KafkaSourceSpec":
        from urllib.parse import urlsplit
        parts = urlsplit(spec)
        if parts.scheme != "kafka" or parts.fragment:
            raise KafkaSpecError(f"bad Kafka spec {spec!r}: expected "
                                 "kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]?group=G&start=S&stop=T")
        query = source_query(spec)
        group = query.get("group") or None
        start = parse_position(query.get("start", "committed" if group else "earliest"),
                               START_POSITIONS, "start", spec)
        if start == "committed" and not group:
            raise KafkaSpecError(f"bad Kafka spec {spec!r}: start=committed needs group=G")
        if discovery_interval <= 0:
            raise KafkaSpecError("--kafka-discovery-interval must be positive")
        return cls(_brokers(parts.netloc, spec), _topics(parts.path, spec), group, start,
                   parse_position(query.get("stop", "never"), STOP_POSITIONS, "stop", spec),
                   config or ClientConfig(), discovery_interval)

    @property
    def bounded(self) -> bool:
        return self.stop != "never"

    def consumer(self, group: bool = False):
        from kafka import KafkaConsumer
        return KafkaConsumer(
            bootstrap_servers=list(self.brokers), group_id=self.group if group else None,
            enable_auto_commit=False, auto_offset_reset="earliest",
            **{"request_timeout_ms": _CLIENT_TIMEOUT_MS + 5000,
               **self.config.for_client(KafkaConsumer.DEFAULT_CONFIG)})


def utc_iso(epoch_ms: int, with_millis: bool = True) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)
    if with_millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Optional[bytes]) -> Optional[str]:
    if value is None:
        return None
    return value.decode("utf-8", errors="backslashreplace")


def record_time_ms(record, read_at_ms: int) -> int:
    """The record's Kafka timestamp. A record without one (None, or -1 from the
    pre-0.10 message format) is stamped with ``read_at_ms``, when the reader
    polled it: the same value for its origin, its event time, the watermark and
    the stop time, so no line of the reader sees a different time."""
    timestamp = record.timestamp
    return timestamp if timestamp is not None and timestamp >= 0 else read_at_ms


def raw_record_from_kafka(record, timestamp_ms: int) -> RawRecord:
    """A kafka-python ConsumerRecord stamped ``timestamp_ms`` (``record_time_ms``)
    -> RawRecord (format sniffed by the parse stage)."""
    headers = {name: _text(value) or "" for name, value in (record.headers or [])}
    return RawRecord(
        payload=record.value if record.value is not None else b"",
        origin=Origin(kind="kafka", topic=record.topic, partition=record.partition,
                      offset=record.offset, key=_text(record.key), headers=headers or None,
                      timestamp=utc_iso(timestamp_ms), ingested_at=utc_iso(timestamp_ms, False)))


def _tp(topic: str, partition: int):
    from kafka import TopicPartition
    return TopicPartition(topic, partition)


def end_offset(consumer, tp) -> int:
    """The offset after the last record now in the partition (ListOffsets latest)."""
    return consumer.end_offsets([tp], timeout_ms=_CLIENT_TIMEOUT_MS)[tp]


def offset_for_time(consumer, tp, epoch_ms: int) -> Optional[int]:
    """The first offset whose record timestamp is >= ``epoch_ms`` (ListOffsets by
    timestamp); None: no such record yet."""
    found = consumer.offsets_for_times({tp: epoch_ms}, timeout_ms=_CLIENT_TIMEOUT_MS).get(tp)
    return found.offset if found is not None else None


def resume_offset(tp, committed: Optional[int], beginning: int, end: int) -> int:
    """Where ``start=committed`` begins: the group's committed offset, or the
    log start when the group has none. A committed offset the broker no longer
    has is reset to the log start, loudly:
    - below it (retention or DeleteRecords removed records the group never
      read): those are gone; the oldest record kept is the next to read;
    - above the end (a log truncated by an unclean leader election, or a
      commit made against an older topic of the same name): every record now
      there is newer than the commit, so all are read.
    """
    if committed is None:
        return beginning
    if committed < beginning:
        _LOG.error("%s/%s: the committed offset %s is no longer on the broker (the log starts "
                   "at %s): offsets %s to %s were removed unread; resetting to %s",
                   tp.topic, tp.partition, committed, beginning, committed, beginning - 1,
                   beginning)
        return beginning
    if committed > end:
        _LOG.error("%s/%s: the committed offset %s is past the end of the log (%s): the log "
                   "was truncated, or the commit was made against an older topic; resetting "
                   "to the log start %s, so every record now in the partition is read",
                   tp.topic, tp.partition, committed, end, beginning)
        return beginning
    return committed


def resolve_offsets(consumer, spec: KafkaSourceSpec, tp) -> tuple[int, int]:
    """(first offset to read, offset to stop before) for one partition, now."""
    beginning = consumer.beginning_offsets([tp], timeout_ms=_CLIENT_TIMEOUT_MS)[tp]
    if spec.start == "earliest":
        start = beginning
    elif spec.start == "latest":
        start = end_offset(consumer, tp)
    elif spec.start == "committed":
        start = resume_offset(tp, consumer.committed(tp, timeout_ms=_CLIENT_TIMEOUT_MS),
                              beginning, end_offset(consumer, tp))
    else:
        found = offset_for_time(consumer, tp, spec.start)
        start = found if found is not None else end_offset(consumer, tp)
    if spec.stop == "never":
        stop = UNBOUNDED
    elif spec.stop == "end":
        stop = end_offset(consumer, tp)
    else:
        found = offset_for_time(consumer, tp, spec.stop)
        stop = found if found is not None else UNBOUNDED  # the time is still ahead: read until it
    return start, max(start, stop)


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


def acknowledgement(element) -> Optional[Acknowledgement]:
    """An Acknowledgement as is, or one for a record (anything with an origin)."""
    if isinstance(element, Acknowledgement):
        return element
    return Acknowledgement.of_origin(element.origin)


class ReadTopic(beam.DoFn, RestrictionProvider):
    """Reads one topic; the restriction splits it by partition. One poll per
    call, then a checkpoint, so a local runner interleaves partitions and
    stages, and Ctrl-C is seen within a poll."""

    def __init__(self, spec: KafkaSourceSpec):
        self._spec = spec
        self._read = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "kafka_records_read")
        self._metadata = None

    # -- restriction provider -------------------------------------------------
    def _lookups(self):
        if self._metadata is None:
            self._metadata = self._spec.consumer(group=True)  # committed offsets need the group
        return self._metadata

    def _partitions(self, topic: str) -> list[int]:
        consumer = self._lookups()
        consumer.topics()  # refreshes metadata, so new partitions show up
        return sorted(consumer.partitions_for_topic(topic))

    def _range(self, topic: str, partition: int) -> tuple[int, int]:
        start, stop = resolve_offsets(self._lookups(), self._spec, _tp(topic, partition))
        _LOG.info("reading %s/%s from offset %s to %s", topic, partition, start,
                  "the end of time" if stop == UNBOUNDED else stop)
        return start, stop

    def initial_restriction(self, topic):
        ranges = {}
        for partition in self._partitions(topic):
            start, stop = self._range(topic, partition)
            ranges[partition] = (start, stop, start)
        return TopicOffsets(ranges, watch=not self._spec.bounded, known=frozenset(ranges))

    def split(self, topic, restriction):
        """One piece per partition, so runners can spread them; the first
        piece also watches for new partitions."""
        pieces = sorted(restriction.ranges.items())
        if len(pieces) <= 1:
            yield restriction
            return
        for index, (partition, offsets) in enumerate(pieces):
            watch = restriction.watch and index == 0
            yield TopicOffsets({partition: offsets}, watch,
                               restriction.known if watch else frozenset({partition}))

    def create_tracker(self, restriction):
        return TopicOffsetsTracker(restriction)

    def restriction_size(self, topic, restriction):
        return max(1, restriction.remaining())

    def restriction_coder(self):
        return PickleCoder()

    # -- reading --------------------------------------------------------------
    def setup(self):
        self._consumers: dict = {}  # (topic, piece) -> (consumer, {partition: next offset it returns})
        self._watermarks: dict = {}  # (topic, partition) -> latest record time
        self._discovered_at: dict = {}  # topic -> time.monotonic() of the last discovery

    def teardown(self):
        for consumer, _ in self._consumers.values():
            consumer.close()
        self._consumers.clear()
        if self._metadata is not None:
            self._metadata.close()
            self._metadata = None

    def _consumer_for(self, topic: str, ranges: dict):
        # One consumer per piece (pieces never share a partition; a piece keeps
        # its lowest one): a local runner reads all pieces in one DoFn instance,
        # and re-assigning a shared consumer per piece dropped its pending
        # fetch, so a partition's records waited for many polls.
        piece = (topic, min(ranges))
        consumer, positions = self._consumers.get(piece, (None, {}))
        if consumer is None:
            consumer = self._spec.consumer()
        wanted = {p: start for p, (start, _, _) in ranges.items()}
        if set(positions) != set(wanted):
            consumer.assign([_tp(topic, p) for p in sorted(wanted)])
        for partition, start in wanted.items():
            if positions.get(partition) != start:
                consumer.seek(_tp(topic, partition), start)
        self._consumers[piece] = (consumer, wanted)
        return consumer

    def _discover(self, topic: str, tracker):
        due = self._discovered_at.get(topic, 0.0) + self._spec.discovery_interval
        if time.monotonic() < due:
            return
        self._discovered_at[topic] = time.monotonic()
        restriction = tracker.current_restriction()
        known = restriction.known | set(restriction.ranges)
        for partition in self._partitions(topic):
            if partition not in known:
                start, stop = self._range(topic, partition)
                if tracker.try_claim(("add", partition, start, stop)):
                    _LOG.info("new partition %s/%s", topic, partition)

    def read(self, topic, tracker, watermark):
        restriction = tracker.current_restriction()
        if stop_reading_requested():
            tracker.try_claim(("stop",))
            return
        if restriction.watch:
            self._discover(topic, tracker)
        ranges = restriction.ranges
        for partition, (start, _, first) in ranges.items():
            if start == first:  # idempotent: repeated if this piece is retried
                yield pvalue.TaggedOutput(PROGRESS, Acknowledgement(
                    topic, partition, start, start, begins=True))
        if not ranges:  # nothing to read yet: only watching (the topic may not exist)
            time.sleep(POLL_TIMEOUT_MS / 1000)
            tracker.defer_remainder(Duration(seconds=min(1.0, self._spec.discovery_interval)))
            return
        consumer = self._consumer_for(topic, ranges)
        batches = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_RECORDS_PER_POLL)
        read_at_ms = int(time.time() * 1000)
        stop_ms = self._spec.stop if isinstance(self._spec.stop, int) else None
        _, positions = self._consumers[(topic, min(ranges))]
        reading = set(ranges)
        for partition, (start, stop, _) in sorted(ranges.items()):
            tp = _tp(topic, partition)
            expected = positions[partition]
            records = batches.get(tp, [])
            checkpointed = False
            for record in records:
                timestamp_ms = record_time_ms(record, read_at_ms)
                if stop_ms is not None and timestamp_ms >= stop_ms:
                    expected = stop = record.offset  # past the stop time: nothing more here
                    break
                if not tracker.try_claim(("offset", partition, record.offset)):
                    if record.offset >= stop:
                        expected = stop = record.offset  # past the range: nothing more here
                    else:
                        checkpointed = True  # the runner split the restriction mid-batch
                    break
                if record.offset > expected:  # no records live there
                    yield pvalue.TaggedOutput(PROGRESS, Acknowledgement(
                        topic, partition, expected, record.offset))
                expected = record.offset + 1
                self._read.inc()
                event_time = Timestamp(micros=timestamp_ms * 1000)
                self._watermarks[(topic, partition)] = event_time
                yield TimestampedValue(raw_record_from_kafka(record, timestamp_ms), event_time)
            if checkpointed:
                # The residual starts at the refused record, but the consumer has
                # already returned the whole batch: forget its position, so the
                # residual seeks back instead of taking the unread offsets for
                # "no records live there" (and committing past them).
                positions[partition] = None
                continue
            position = consumer.position(tp)
            # Caught up only once a fetch has told the high watermark: before the
            # first answer an empty poll says nothing about what is there.
            highwater = consumer.highwater(tp)
            caught_up = not records and highwater is not None and position >= highwater
            if caught_up:
                self._watermarks[(topic, partition)] = Timestamp.now() - IDLE_SKEW
            past_stop_time = caught_up and stop_ms is not None and time.time() * 1000 >= stop_ms
            if expected >= stop or (caught_up and position >= stop) or past_stop_time:
                if stop != UNBOUNDED and stop > expected:
                    yield pvalue.TaggedOutput(PROGRESS, Acknowledgement(
                        topic, partition, expected, stop))
                tracker.try_claim(("end", partition))
                reading.discard(partition)
            positions[partition] = expected
        self._advance_watermark(topic, ranges, watermark)
        if reading or restriction.watch:
            tracker.defer_remainder()

    def _advance_watermark(self, topic, ranges, watermark):
        """The slowest partition's time; a caught-up partition counts as now."""
        times = [self._watermarks.get((topic, p)) for p in ranges]
        if not times or None in times:
            return
        candidate = min(times)
        if watermark.current_watermark() is None or candidate > watermark.current_watermark():
            watermark.set_watermark(candidate)


class ReadBoundedTopic(ReadTopic):
    def process(self, topic, tracker=beam.DoFn.RestrictionParam(),
                watermark=beam.DoFn.WatermarkEstimatorParam(
                    ManualWatermarkEstimator.default_provider())):
        yield from self.read(topic, tracker, watermark)


class ReadUnboundedTopic(ReadTopic):
    @beam.DoFn.unbounded_per_element()
    def process(self, topic, tracker=beam.DoFn.RestrictionParam(),
                watermark=beam.DoFn.WatermarkEstimatorParam(
                    ManualWatermarkEstimator.default_provider())):
        yield from self.read(topic, tracker, watermark)


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


class CommitContiguousOffsets(beam.DoFn):
    """Per partition (the key), folds acknowledgements into PartitionProgress;
    at the end of the bundle commits every partition whose finished prefix
    grew, in one request."""

    PROGRESS = userstate.ReadModifyWriteStateSpec("progress", PickleCoder())

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


class ReadKafkaTopics(beam.PTransform):
    """The kafka:// source: PBegin -> {RECORDS: RawRecords, PROGRESS: Acknowledgements}.

    PROGRESS says where reading began and which offsets hold no record; flattened
    with what the sinks acknowledge, it is the input of ``CommitWrittenOffsets``."""

    def __init__(self, spec: KafkaSourceSpec):
        super().__init__()
        self.spec = spec

    def expand(self, pbegin):
        reader = ReadBoundedTopic(self.spec) if self.spec.bounded else ReadUnboundedTopic(self.spec)
        outputs = (pbegin
                   | "Topics" >> beam.Create(self.spec.topics)
                   | "ReadTopics" >> beam.ParDo(reader).with_outputs(PROGRESS, main=RECORDS))
        return {RECORDS: outputs[RECORDS], PROGRESS: outputs[PROGRESS]}


class ReadFromKafka(ReadKafkaTopics):
    """PBegin -> RawRecords, for a reader that commits nothing (same step labels)."""

    def expand(self, pbegin):
        return super().expand(pbegin)[RECORDS]
