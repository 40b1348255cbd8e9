"""Reading Kafka topics: a splittable DoFn over partitions.

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

A runner may checkpoint the reader in the middle of a polled batch (Flink and
Dataflow split on their own schedule: ``try_claim`` is refused). The residual
then starts at the refused record while the consumer has already returned the
whole batch, so the reader forgets that partition's position and the residual
seeks back; otherwise its unread offsets would be taken for offsets where no
record lives, acknowledged, and committed past.

What the reader's progress output means for the offset commits is written
down in ``commits``.
"""

from __future__ import annotations

import logging
import threading
import time

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from wirestream.transforms.io.kafka.positions import UNBOUNDED, _tp, resolve_offsets
from wirestream.transforms.io.kafka.records import raw_record_from_kafka, record_time_ms
from wirestream.transforms.io.kafka.restriction import TOPIC_OFFSETS_CODER, TopicOffsets, TopicOffsetsTracker
from wirestream.transforms.io.kafka.spec import KafkaSourceSpec
from wirestream.transforms.io.sinks import PROGRESS, RECORDS, Acknowledgement
from wirestream.transforms.stage import METRICS_NAMESPACE

_LOG = logging.getLogger("wirestream.kafka")

POLL_TIMEOUT_MS = 200  # also what throttles a local runner that ignores defer delays
MAX_RECORDS_PER_POLL = 500
IDLE_SKEW = Duration(seconds=1)  # how far behind wall-clock a caught-up partition's watermark sits

_STOP_READING = threading.Event()


def request_stop_reading() -> None:
    """Ask every reader in this process to finish its restriction (Ctrl-C on a
    local runner): the pipeline then drains, flushing sinks and committing."""
    _STOP_READING.set()


def reset_stop_reading() -> None:
    _STOP_READING.clear()


def stop_reading_requested() -> bool:
    return _STOP_READING.is_set()



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
        return TOPIC_OFFSETS_CODER

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
