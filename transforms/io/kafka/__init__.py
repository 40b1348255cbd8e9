"""Kafka in and out, in pure Python (kafka-python): no Java expansion service.

    --source kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]?group=G&start=S&stop=T
    --sink   kafka://HOST:PORT[,HOST:PORT]/TOPIC

One module per part: ``settings`` (client settings), ``spec`` (kafka:// specs
and the source spec), ``records`` (Kafka records <-> RawRecords),
``positions`` (where a partition's reading starts and stops), ``restriction``
(the reader's restriction and its tracker), ``reader`` (the splittable DoFn
over partitions), ``commits`` (the offset commits, whose resume contract is
written down there) and ``sink`` (the ``kafka`` sink).
"""

from wirestream.transforms.io.kafka.commits import CommitWrittenOffsets, PartitionProgress
from wirestream.transforms.io.kafka.positions import UNBOUNDED
from wirestream.transforms.io.kafka.reader import (ReadBoundedTopic, ReadFromKafka, ReadKafkaTopics,
                                        ReadUnboundedTopic, request_stop_reading,
                                        reset_stop_reading)
from wirestream.transforms.io.kafka.records import raw_record_from_kafka, raw_record_headers, record_time_ms
from wirestream.transforms.io.kafka.restriction import TopicOffsets, TopicOffsetsTracker
from wirestream.transforms.io.kafka.settings import ClientConfig, KafkaSpecError, client_config, is_secret
from wirestream.transforms.io.kafka.sink import KafkaDeliveryError, KafkaRecordSink, WriteToKafka
from wirestream.transforms.io.kafka.spec import KafkaSourceSpec, parse_topic_spec

__all__ = [
    "UNBOUNDED", "ClientConfig", "CommitWrittenOffsets", "KafkaDeliveryError", "KafkaRecordSink",
    "KafkaSourceSpec", "KafkaSpecError", "PartitionProgress", "ReadBoundedTopic", "ReadFromKafka",
    "ReadKafkaTopics", "ReadUnboundedTopic", "TopicOffsets", "TopicOffsetsTracker", "WriteToKafka",
    "client_config", "is_secret", "parse_topic_spec", "raw_record_from_kafka",
    "raw_record_headers", "record_time_ms", "request_stop_reading", "reset_stop_reading",
]
