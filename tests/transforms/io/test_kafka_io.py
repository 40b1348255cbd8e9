"""The Kafka source and sink against a real Apache Kafka broker."""

import json
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pvalue import TaggedOutput
from apache_beam.testing.util import assert_that, equal_to

from wirestream.transforms.io.kafka import (ClientConfig, CommitWrittenOffsets, KafkaDeliveryError,
                                 KafkaRecordSink, KafkaSourceSpec, PartitionProgress,
                                 ReadBoundedTopic, ReadFromKafka, ReadKafkaTopics,
                                 TopicOffsetsTracker, WriteToKafka)
from wirestream.transforms.io.sinks import PROGRESS, RECORDS, RecordKind
from tests.kafka_broker import create_topic

pytestmark = pytest.mark.integration
def produce(bootstrap, topic, values, partitions=None, timestamps_ms=None):
    from kafka import KafkaProducer
    if partitions is not None:
        create_topic(bootstrap, topic, partitions)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)  # batched produces
    for index, value in enumerate(values):
        producer.send(topic, value=value, key=f"k{index}".encode(),
                      partition=None if partitions is None else index % partitions,
                      timestamp_ms=None if timestamps_ms is None else timestamps_ms[index])
    producer.flush()
    producer.close()


def committed(bootstrap, group, topic):
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p))
                for p in consumer.partitions_for_topic(topic)}
    finally:
        consumer.close()


def read_topic(bootstrap, topic, seconds=1.5):
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        records, deadline = [], time.time() + seconds
        while partitions and time.time() < deadline:
            for batch in consumer.poll(200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


class _Written:
    """A stand-in record: what the sinks need (record_key, to_dict, origin)."""

    def __init__(self, raw):
        self.origin = raw.origin
        self.record_key = f"{raw.origin.partition}-{raw.origin.offset}"

    def to_dict(self):
        return {"partition": self.origin.partition, "offset": self.origin.offset}


def test_stop_end_reads_every_record_produced_before_the_run(kafka_broker):
    # Batched produces: stop=end still sees every record produced before the run.
    produce(kafka_broker.bootstrap, "stories", [b"story %d" % i for i in range(200)], partitions=4)
    spec = KafkaSourceSpec.parse(f"kafka://{kafka_broker.bootstrap}/stories?stop=end")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        records = pipeline | ReadFromKafka(spec)
        assert_that(records | beam.Map(lambda raw: raw.payload),
                    equal_to([b"story %d" % i for i in range(200)]), label="payloads")
        assert_that(records | beam.Map(lambda raw: (raw.origin.partition, raw.origin.offset)),
                    equal_to([(p, o) for p in range(4) for o in range(50)]), label="offsets")


def test_offsets_are_committed_for_what_the_sink_wrote(kafka_broker):
    create_topic(kafka_broker.bootstrap, "in", 4)
    produce(kafka_broker.bootstrap, "in", [b"x%d" % i for i in range(60)], partitions=3)
    spec = KafkaSourceSpec.parse(f"kafka://{kafka_broker.bootstrap}/in?group=g&start=earliest&stop=end")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        read = pipeline | ReadKafkaTopics(spec)
        written = (read[RECORDS] | beam.Map(_Written)
                   | WriteToKafka((kafka_broker.bootstrap,), "out", RecordKind.EVENTS))
        (read[PROGRESS], written) | beam.Flatten() | CommitWrittenOffsets(spec)
    # The empty fourth partition has nothing to commit.
    assert committed(kafka_broker.bootstrap, "g", "in") == {0: 20, 1: 20, 2: 20, 3: None}
    out = read_topic(kafka_broker.bootstrap, "out")
    assert sorted(r.key for r in out) == sorted(f"{p}-{o}".encode() for p in range(3) for o in range(20))
    assert {json.loads(r.value)["offset"] for r in out} == set(range(20))


def test_start_and_stop_times_bound_a_replay(kafka_broker):
    """start=T1&stop=T2 reads the records with T1 <= timestamp < T2: a backfill by time."""
    base = 1_719_180_000_000  # 2024-06-23T22:00:00Z
    produce(kafka_broker.bootstrap, "timed", [b"t%d" % i for i in range(20)], partitions=2,
            timestamps_ms=[base + i * 60_000 for i in range(20)])  # one a minute
    spec = KafkaSourceSpec.parse(f"kafka://{kafka_broker.bootstrap}/timed"
                                 "?start=2024-06-23T22:05:00Z&stop=2024-06-23T22:12:00Z")
    assert spec.bounded
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        payloads = pipeline | ReadFromKafka(spec) | beam.Map(lambda raw: raw.payload)
        assert_that(payloads, equal_to([b"t%d" % i for i in range(5, 12)]))


def test_start_committed_resumes_where_the_group_left_off(kafka_broker):
    produce(kafka_broker.bootstrap, "in", [b"x%d" % i for i in range(10)], partitions=1)
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id="g")
    consumer.commit({TopicPartition("in", 0): OffsetAndMetadata(7, "", -1)})
    consumer.close()
    spec = KafkaSourceSpec.parse(f"kafka://{kafka_broker.bootstrap}/in?group=g&stop=end")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        offsets = pipeline | ReadFromKafka(spec) | beam.Map(lambda raw: raw.origin.offset)
        assert_that(offsets, equal_to([7, 8, 9]))  # 7 is the NEXT offset to read


def test_delivery_errors_fail_the_flush(kafka_broker):
    sink = KafkaRecordSink((kafka_broker.bootstrap,), "events",
                           ClientConfig(delivery_timeout_ms=1500, request_timeout_ms=1000,
                                        max_block_ms=1000))
    sink.add("a", {"x": 1})
    sink.flush()  # delivered
    kafka_broker.stop()
    with pytest.raises(Exception) as err:
        sink.add("b", {"x": 2})
        sink.flush()
    assert isinstance(err.value, KafkaDeliveryError) or "Timeout" in type(err.value).__name__


class _RunnerDrivenTracker:
    """What a runner hands the reader: a view over our tracker that can split
    it while the reader is in the middle of a poll (as Flink and Dataflow do
    on their own schedule), after which ``try_claim`` is refused."""

    def __init__(self, restriction, split_before_claim=None):
        self._tracker = TopicOffsetsTracker(restriction)
        self._split_before_claim = split_before_claim
        self._claims = 0
        self.residual = None
        self.split_mid_poll = False

    def current_restriction(self):
        return self._tracker.current_restriction()

    def try_claim(self, position):
        if position[0] == "offset":
            self._claims += 1
            if self._claims == self._split_before_claim and self.residual is None:
                self.residual = self._tracker.try_split(0)[1]
                self.split_mid_poll = True
        return self._tracker.try_claim(position)

    def defer_remainder(self, delay=None):
        if self.residual is None:
            self.residual = self._tracker.try_split(0)[1]


class _Watermark:
    def __init__(self):
        self.value = None

    def current_watermark(self):
        return self.value

    def set_watermark(self, value):
        self.value = value


def _read_until_done(reader, restriction, split_before_claim, max_calls=200):
    """Run one reader instance like a runner: each call's residual is the next
    call's restriction (same DoFn instance, so the same consumer)."""
    records, acknowledgements, watermark = [], [], _Watermark()
    for _ in range(max_calls):
        tracker = _RunnerDrivenTracker(restriction, split_before_claim)
        for output in reader.read("mid", tracker, watermark):
            if isinstance(output, TaggedOutput):
                acknowledgements.append(output.value)
            else:
                records.append(output.value)
        if tracker.split_mid_poll:
            split_before_claim = None  # once: the first poll that returns records
        if tracker.residual is None or not tracker.residual.ranges:
            break
        restriction = tracker.residual
    assert split_before_claim is None, "no poll returned enough records to split in"
    return records, acknowledgements


def test_a_checkpoint_in_the_middle_of_a_poll_loses_no_record(kafka_broker):
    """The runner splits the restriction while the reader walks a polled batch:
    the claim of the 10th record is refused. The residual must read it and
    everything after it; none of those offsets may be acknowledged as 'no
    record lives here' (that would commit past records never read)."""
    produce(kafka_broker.bootstrap, "mid", [b"m%d" % i for i in range(60)], partitions=1)
    spec = KafkaSourceSpec.parse(f"kafka://{kafka_broker.bootstrap}/mid?start=earliest&stop=end")
    reader = ReadBoundedTopic(spec)
    reader.setup()
    try:
        restriction = reader.initial_restriction("mid")
        records, acknowledgements = _read_until_done(reader, restriction, split_before_claim=10)
    finally:
        reader.teardown()
    assert [r.origin.offset for r in records] == list(range(60))
    progress = PartitionProgress()
    for ack in acknowledgements:
        progress.acknowledge(ack)
    # Only what the reader skipped itself is finished without a sink: nothing here.
    assert progress.committed == 0 and not [a for a in acknowledgements if a.end > a.start]


def _commit(bootstrap, group, topic, offset):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)})
    consumer.close()


def test_a_committed_offset_the_log_no_longer_has_resets_to_its_start_loudly(kafka_broker, caplog):
    """Retention (here DeleteRecords) removed offsets 0-4 while the group's commit
    is 2: reading resumes at 5, the oldest record kept, and says what was lost."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    produce(kafka_broker.bootstrap, "kept", [b"k%d" % i for i in range(10)], partitions=1)
    _commit(kafka_broker.bootstrap, "g", "kept", 2)
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    admin.delete_records({TopicPartition("kept", 0): 5})
    admin.close()
    spec = KafkaSourceSpec.parse(f"kafka://{kafka_broker.bootstrap}/kept?group=g&stop=end")
    with caplog.at_level("ERROR", logger="wirestream.kafka"):
        with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
            offsets = pipeline | ReadFromKafka(spec) | beam.Map(lambda raw: raw.origin.offset)
            assert_that(offsets, equal_to([5, 6, 7, 8, 9]))
    assert any("committed offset 2 is no longer on the broker" in r.getMessage()
               and "offsets 2 to 4 were removed unread" in r.getMessage() for r in caplog.records)


def test_a_committed_offset_past_the_end_of_the_log_reads_every_record_there(kafka_broker, caplog):
    """The group committed 50, but the partition now ends at 3 (a log truncated
    by an unclean leader election, or a commit made against an older topic of
    the same name): its records are read, not skipped until offset 50. (Deleting
    the topic itself is not the case: Kafka drops the group's offsets with it.)"""
    produce(kafka_broker.bootstrap, "short", [b"new%d" % i for i in range(3)], partitions=1)
    _commit(kafka_broker.bootstrap, "g", "short", 50)
    spec = KafkaSourceSpec.parse(f"kafka://{kafka_broker.bootstrap}/short?group=g&stop=end")
    with caplog.at_level("ERROR", logger="wirestream.kafka"):
        with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
            payloads = pipeline | ReadFromKafka(spec) | beam.Map(lambda raw: raw.payload)
            assert_that(payloads, equal_to([b"new0", b"new1", b"new2"]))
    assert any("committed offset 50 is past the end of the log (3)" in r.getMessage()
               for r in caplog.records)
