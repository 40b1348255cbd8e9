"""Writing records to a Kafka topic: keyed by ``record_key``, JSON values.

The producer is idempotent where the broker supports it (kafka-python turns
idempotence on by default for brokers >= 0.11 and acks=all). ``flush()`` waits
for every record sent since the last flush and raises if any delivery failed,
so a bundle is never reported done while one of its records was lost; a
retried bundle sends its records again, and consumers keep the last value per
key (compacted topics, upserting readers).

After each flush the sink emits an Acknowledgement per Kafka-sourced record
it wrote: the source commits a partition's offsets once all its records are
acknowledged (see ``commits``).
"""

from __future__ import annotations

import json
from typing import Optional

import apache_beam as beam

from wirestream.transforms.io.kafka.settings import ClientConfig, KafkaSpecError
from wirestream.transforms.io.kafka.spec import parse_topic_spec
from wirestream.transforms.io.sinks import RecordKind, RecordSink, SinkError, SinkSpec, WriteToRecordSink

_FLUSH_TIMEOUT_S = 120.0


class KafkaDeliveryError(RuntimeError):
    """A record the broker did not accept; the bundle fails and is retried."""


class KafkaRecordSink(RecordSink):
    def __init__(self, brokers: tuple[str, ...], topic: str, config: ClientConfig):
        from kafka import KafkaProducer
        self._topic = topic
        self._producer = KafkaProducer(bootstrap_servers=list(brokers),
                                       **config.for_client(KafkaProducer.DEFAULT_CONFIG))
        self._pending: list = []

    def add(self, key: str, document: dict) -> None:
        self._pending.append(self._producer.send(
            self._topic, key=key.encode("utf-8"),
            value=json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")))

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._producer.flush(timeout=_FLUSH_TIMEOUT_S)
        failed = [f for f in pending if not f.is_done or f.failed()]
        if failed:
            first = failed[0].exception if failed[0].is_done else "not delivered in time"
            raise KafkaDeliveryError(f"{len(failed)} of {len(pending)} records not delivered to "
                                     f"topic {self._topic}: {first}")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close(timeout=5)


class WriteToKafka(beam.PTransform):
    """Records -> topic; returns the acknowledgements of what was written."""

    def __init__(self, brokers: tuple[str, ...], topic: str, kind: RecordKind,
                 config: Optional[ClientConfig] = None):
        super().__init__()
        self._brokers, self._topic, self._kind = brokers, topic, kind
        self._config = config or ClientConfig()

    def expand(self, records):
        brokers, topic, config = self._brokers, self._topic, self._config
        return records | "WriteToKafka" >> beam.ParDo(WriteToRecordSink(
            lambda: KafkaRecordSink(brokers, topic, config), self._kind))


def dead_letter_topic(spec: SinkSpec) -> str:
    brokers, topic = parse_topic_spec(spec.text)
    return f"kafka://{','.join(brokers)}/{topic}.dlq"


def write_kafka(spec: SinkSpec, kind: RecordKind, config: ClientConfig) -> beam.PTransform:
    try:
        brokers, topic = parse_topic_spec(spec.text)
    except KafkaSpecError as exc:
        raise SinkError(str(exc)) from None
    return WriteToKafka(brokers, topic, kind, config)
