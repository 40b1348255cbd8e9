"""The Kafka source and sink against a real broker process (Tansu)."""

import json
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from transforms.io.kafka import ClientConfig
from transforms.io.kafka_sink import KafkaDeliveryError, KafkaRecordSink, WriteToKafka
from transforms.io.kafka_source import KafkaSourceSpec, ReadFromKafka
from transforms.io.sinks import RecordKind

pytestmark = pytest.mark.integration
def produce(bootstrap, topic, values, partitions=None, timestamps_ms=None):
    from kafka import KafkaProducer
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
    # Batched produces are where this broker's ListOffsets understates the end.
    produce(kafka_broker.bootstrap, "stories", [b"story %d" % i for i in range(200)], partitions=4)
    spec = KafkaSourceSpec.parse(f"kafka://{kafka_broker.bootstrap}/stories?stop=end")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        records = pipeline | ReadFromKafka(spec)
        assert_that(records | beam.Map(lambda raw: raw.payload),
                    equal_to([b"story %d" % i for i in range(200)]), label="payloads")
        assert_that(records | beam.Map(lambda raw: (raw.origin.partition, raw.origin.offset)),
                    equal_to([(p, o) for p in range(4) for o in range(50)]), label="offsets")


def test_offsets_are_committed_for_what_the_sink_wrote(kafka_broker):
    produce(kafka_broker.bootstrap, "in", [b"x%d" % i for i in range(60)], partitions=3)
    spec = KafkaSourceSpec.parse(f"kafka://{kafka_broker.bootstrap}/in?group=g&start=earliest&stop=end")
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        source = ReadFromKafka(spec)
        written = (pipeline | source | beam.Map(_Written)
                   | WriteToKafka((kafka_broker.bootstrap,), "out", RecordKind.EVENTS))
        source.commit_written([written])
    # The broker makes 4 partitions; the empty one has nothing to commit.
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
