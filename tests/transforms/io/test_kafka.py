"""Kafka source/sink logic without a broker: specs, settings, the offset-commit arithmetic."""

import time
from collections import namedtuple

import pytest
from apache_beam.transforms.window import TimestampedValue

from wirestream.schemas import Origin
from wirestream.transforms.io.kafka import (UNBOUNDED, ClientConfig, KafkaSourceSpec, KafkaSpecError,
                                 PartitionProgress, ReadBoundedTopic, TopicOffsets,
                                 TopicOffsetsTracker, client_config, parse_topic_spec,
                                 raw_record_from_kafka, record_time_ms)
from wirestream.transforms.io.sinks import Acknowledgement
from wirestream.pipelines.sinks import default_dead_letter_spec
from wirestream.schemas.times import utc_iso_ms


def test_source_spec_reads_every_part():
    spec = KafkaSourceSpec.parse(
        "kafka://a:9092,b:9093/wire.en,wire.fr?group=ingest&start=2024-03-01T12:00:00Z&stop=end")
    assert spec.brokers == ("a:9092", "b:9093")
    assert spec.topics == ("wire.en", "wire.fr")
    assert spec.group == "ingest"
    assert spec.start == 1709294400000  # epoch milliseconds
    assert spec.stop == "end" and spec.bounded


def test_source_spec_defaults():
    with_group = KafkaSourceSpec.parse("kafka://h:1/t?group=g")
    assert (with_group.start, with_group.stop, with_group.bounded) == ("committed", "never", False)
    assert KafkaSourceSpec.parse("kafka://h:1/t").start == "earliest"


@pytest.mark.parametrize("spec, message", [
    ("kafka://h:1/t?start=committed", "needs group"),
    ("kafka://h:1/t?start=yesterday", "start must be"),
    ("kafka://h:1/t?stop=soon", "stop must be"),
    ("kafka://h/t", "HOST:PORT"),
    ("kafka://h:1/", "topic"),
    ("kafka://h:1/t?grup=g", "unknown parameter 'grup'"),
])
def test_bad_source_specs_say_why(spec, message):
    with pytest.raises(KafkaSpecError, match=message):
        KafkaSourceSpec.parse(spec)


def test_sink_spec_and_default_dead_letters():
    assert parse_topic_spec("kafka://h:1,g:2/events") == (("h:1", "g:2"), "events")
    with pytest.raises(KafkaSpecError):
        parse_topic_spec("kafka://h:1/a,b")
    assert default_dead_letter_spec("kafka://h:1/events") == "kafka://h:1/events.dlq"


def test_client_config_types_dotted_keys_and_files(tmp_path):
    props = tmp_path / "client.properties"
    props.write_text("# comment\nsecurity.protocol=SASL_SSL\nsasl.plain.password=hunter2\n"
                     "request.timeout.ms=1000\n")
    config = client_config(["request_timeout_ms=2500", "check_crcs=false"], str(props))
    assert config == {"security_protocol": "SASL_SSL", "sasl_plain_password": "hunter2",
                      "request_timeout_ms": 2500, "check_crcs": False}


def test_secrets_never_show():
    config = ClientConfig(sasl_plain_password="hunter2", sasl_plain_username="wire")
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)
    assert "wire" in repr(config)
    with pytest.raises(KafkaSpecError) as err:
        client_config(["ssl_password=x", "request_timeout_ms=notanumber"])
    assert "notanumber" in str(err.value)
    with pytest.raises(KafkaSpecError, match="unknown Kafka client setting 'no_such'"):
        client_config(["no_such=1"])


def ack(offset, **kw):
    return Acknowledgement("t", 0, offset, offset + 1, **kw)


def test_commit_is_the_next_offset_after_a_contiguous_prefix():
    progress = PartitionProgress()
    progress.acknowledge(Acknowledgement("t", 0, 10, 10, begins=True))
    for offset in (12, 10, 13):  # 11 not written yet: a later bundle flushed first
        progress.acknowledge(ack(offset))
    assert progress.committed == 11  # next to read is 11: nothing unwritten is skipped
    progress.acknowledge(ack(11))
    assert progress.committed == 14 and progress.finished == []
    assert progress.worth_committing


def test_acknowledgements_before_the_start_mark_wait_for_it():
    progress = PartitionProgress()
    progress.acknowledge(ack(5))
    assert progress.committed is None
    progress.acknowledge(Acknowledgement("t", 0, 5, 5, begins=True))
    assert progress.committed == 6


def test_skipped_offsets_and_the_start_count_as_finished():
    progress = PartitionProgress()
    progress.acknowledge(Acknowledgement("t", 0, 0, 0, begins=True))
    progress.acknowledge(ack(0))
    progress.acknowledge(Acknowledgement("t", 0, 1, 4))  # compaction / transaction markers
    progress.acknowledge(ack(4))
    assert progress.committed == 5


def test_a_multi_item_payload_is_finished_when_all_its_items_are():
    progress = PartitionProgress()
    progress.acknowledge(Acknowledgement("t", 0, 0, 0, begins=True))
    progress.acknowledge(ack(0, item=1, item_count=3))
    progress.acknowledge(ack(0, item=0, item_count=3))
    assert progress.committed == 0
    progress.acknowledge(ack(0, item=1, item_count=3))  # a retried bundle repeats an item
    assert progress.committed == 0
    progress.acknowledge(ack(0, item=2, item_count=3))
    assert progress.committed == 1


def test_items_of_unknown_count_hold_the_commit_back():
    progress = PartitionProgress()
    progress.acknowledge(Acknowledgement("t", 0, 0, 0, begins=True))
    progress.acknowledge(ack(0, item=0))
    progress.acknowledge(ack(1))
    assert progress.committed == 0 and not progress.worth_committing


def test_origin_acknowledgement():
    origin = Origin(kind="kafka", ingested_at="2024-01-01T00:00:00Z", topic="t", partition=2,
                    offset=7, item=1, item_count=2)
    assert Acknowledgement.of_origin(origin) == Acknowledgement("t", 2, 7, 8, 1, 2)
    assert Acknowledgement.of_origin(Origin(kind="file", ingested_at="x", path="p")) is None


def test_tracker_checkpoints_keep_unread_offsets_and_new_partitions():
    tracker = TopicOffsetsTracker(TopicOffsets({0: (5, UNBOUNDED, 5)}, watch=True,
                                               known=frozenset({0, 1})))
    assert tracker.try_claim(("offset", 0, 5)) and tracker.try_claim(("offset", 0, 8))
    with pytest.raises(ValueError):
        tracker.try_claim(("offset", 0, 7))
    assert tracker.try_claim(("add", 2, 0, UNBOUNDED))
    assert tracker.try_split(0.5) is None  # no fraction splits of an open-ended range
    primary, residual = tracker.try_split(0)
    assert primary.ranges == {0: (5, 9, 5), 2: (0, 0, 0)} and not primary.watch
    assert residual.ranges == {0: (9, UNBOUNDED, 5), 2: (0, UNBOUNDED, 0)} and residual.watch
    assert residual.known == {0, 1, 2}
    tracker.check_done()


def test_bounded_tracker_is_done_only_when_every_partition_is():
    tracker = TopicOffsetsTracker(TopicOffsets({0: (0, 2, 0), 1: (0, 1, 0)}))
    assert tracker.try_claim(("offset", 0, 0)) and tracker.try_claim(("offset", 0, 1))
    assert not tracker.try_claim(("offset", 0, 2))  # the stop offset is not ours
    with pytest.raises(ValueError):
        tracker.check_done()
    tracker.try_claim(("end", 1))
    tracker.check_done()


Record = namedtuple("Record", "topic partition offset timestamp key value headers")


def test_kafka_record_keeps_its_metadata():
    record = Record("wire", 3, 42, 1709294400123, b"k1", b"{}", [("agency", b"AFP"), ("bad", b"\xff")])
    raw = raw_record_from_kafka(record, record_time_ms(record, read_at_ms=1))
    assert raw.payload == b"{}" and raw.format_hint is None
    assert raw.origin == Origin(kind="kafka", topic="wire", partition=3, offset=42, key="k1",
                                headers={"agency": "AFP", "bad": "\\xff"},
                                timestamp="2024-03-01T12:00:00.123Z",
                                ingested_at="2024-03-01T12:00:00Z")
    tombstone = raw_record_from_kafka(Record("wire", 0, 1, 0, None, None, []), 0)
    assert tombstone.payload == b"" and tombstone.origin.key is None


@pytest.mark.parametrize("missing", [None, -1])
def test_a_record_without_a_timestamp_is_stamped_with_its_read_time_everywhere(missing):
    """Without a Kafka timestamp (None; -1 from the old message format) the read
    time stands in for the origin, the event time, the watermark and the stop
    time alike; nothing compares None."""
    assert record_time_ms(Record("t", 0, 0, missing, None, b"", []), read_at_ms=5) == 5
    assert record_time_ms(Record("t", 0, 0, 0, None, b"", []), read_at_ms=5) == 0

    class Consumer:  # kafka-python's surface the reader uses, with untimed records
        def __init__(self):
            self.next = 0

        def assign(self, partitions):
            pass

        def seek(self, tp, offset):
            self.next = offset

        def poll(self, timeout_ms, max_records):
            from kafka import TopicPartition
            batch = [Record("t", 0, o, missing, None, b"x", []) for o in range(self.next, 3)]
            self.next = 3
            return {TopicPartition("t", 0): batch} if batch else {}

        def position(self, tp):
            return self.next

        def highwater(self, tp):
            return 3

    class Tracker:
        def __init__(self, restriction):
            self.tracker = TopicOffsetsTracker(restriction)
            self.current_restriction = self.tracker.current_restriction
            self.try_claim = self.tracker.try_claim

        def defer_remainder(self, delay=None):
            pass

    class Watermark:
        value = None

        def current_watermark(self):
            return self.value

        def set_watermark(self, value):
            self.value = value

    # stop is a time: every record's time is compared with it
    spec = KafkaSourceSpec.parse("kafka://b:9092/t?start=earliest&stop=2999-01-01T00:00:00Z")
    reader = ReadBoundedTopic(spec)
    reader.setup()
    reader._consumers[("t", 0)] = (Consumer(), {0: 0})
    watermark = Watermark()
    before = int(time.time() * 1000)
    outputs = list(reader.read("t", Tracker(TopicOffsets({0: (0, UNBOUNDED, 0)})), watermark))
    after = int(time.time() * 1000)
    records = [o for o in outputs if isinstance(o, TimestampedValue)]
    assert [r.value.origin.offset for r in records] == [0, 1, 2]
    stamps = {r.timestamp.micros // 1000 for r in records}
    assert len(stamps) == 1 and before <= stamps.pop() <= after
    assert {r.value.origin.timestamp for r in records} == {utc_iso_ms(records[0].timestamp.micros // 1000)}
    assert watermark.value == records[-1].timestamp


# --- Java and librdkafka setting names, secrets from files and the environment -----------------

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="wire" password="s3cr=t;pw";')


def test_sasl_jaas_config_plain_becomes_kafka_python_settings():
    config = client_config([f"sasl.jaas.config={PLAIN_JAAS}", "security.protocol=SASL_SSL"])
    assert config == {"sasl_mechanism": "PLAIN", "sasl_plain_username": "wire",
                      "sasl_plain_password": "s3cr=t;pw", "security_protocol": "SASL_SSL"}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_jaas_config_scram_takes_the_mechanism_given(tmp_path, mechanism):
    props = tmp_path / "client.properties"
    props.write_text(f"sasl.mechanism={mechanism}\nsasl.jaas.config=org.apache.kafka.common."
                     "security.scram.ScramLoginModule required \\\n    username='wire' "
                     "password='pw';\n")
    config = client_config(None, str(props))
    assert config == {"sasl_mechanism": mechanism, "sasl_plain_username": "wire",
                      "sasl_plain_password": "pw"}


def test_sasl_jaas_config_errors_name_the_problem_never_the_secret():
    with pytest.raises(KafkaSpecError, match="ScramLoginModule needs sasl.mechanism set to SCRAM-SHA-256"):
        client_config(["sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
                       'required username="u" password="hunter2";'])
    with pytest.raises(KafkaSpecError, match="OAuthBearerLoginModule") as err:
        client_config(["sasl.jaas.config=org.apache.kafka.common.security.oauthbearer."
                       'OAuthBearerLoginModule required clientSecret="hunter2";'])
    assert "hunter2" not in str(err.value)
    with pytest.raises(KafkaSpecError, match="username") as err:
        client_config(['sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule '
                       'required password="hunter2";'])
    assert "hunter2" not in str(err.value)


def test_librdkafka_names_are_accepted():
    config = client_config(["sasl.mechanisms=PLAIN", "sasl.username=wire", "sasl.password=pw",
                            "ssl.ca.location=/etc/ca.pem"])
    assert config == {"sasl_mechanism": "PLAIN", "sasl_plain_username": "wire",
                      "sasl_plain_password": "pw", "ssl_cafile": "/etc/ca.pem"}


def test_an_unknown_setting_names_the_closest_known_one():
    with pytest.raises(KafkaSpecError, match="did you mean request_timeout_ms"):
        client_config(["request.timout.ms=100"])
    with pytest.raises(KafkaSpecError, match="did you mean sasl_plain_password") as err:
        client_config(["sasl_plain_pasword=hunter2"])
    assert "hunter2" not in str(err.value)


def test_secrets_from_environment_variables_named_in_the_file(tmp_path, monkeypatch):
    props = tmp_path / "client.properties"
    props.write_text("config.providers=env\nconfig.providers.env.class=org.apache.kafka.common."
                     "config.provider.EnvVarConfigProvider\nsasl.mechanism=PLAIN\n"
                     "sasl.plain.username=wire\nsasl.plain.password=${env:WIRE_KAFKA_PASSWORD}\n")
    monkeypatch.setenv("WIRE_KAFKA_PASSWORD", "from-the-env")
    config = client_config(None, str(props))
    assert config["sasl_plain_password"] == "from-the-env"
    assert "from-the-env" not in repr(config)
    monkeypatch.delenv("WIRE_KAFKA_PASSWORD")
    with pytest.raises(KafkaSpecError, match="WIRE_KAFKA_PASSWORD.*not set"):
        client_config(None, str(props))


def test_secret_values_of_a_config_are_listed_for_masking():
    config = client_config([f"sasl.jaas.config={PLAIN_JAAS}"])
    assert config.secret_values() == {"s3cr=t;pw"}


def test_kafka_python_checksums_record_batches_with_the_compiled_crc32c():
    """Every batch produced or fetched is checksummed (CRC-32C): in pure Python that
    was 2% of a streaming run's CPU."""
    from kafka.record import _crc32c, util
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert util._crc32c is not _crc32c.crc
