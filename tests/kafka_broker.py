"""A real Apache Kafka broker (KRaft, fetched by ``make engines``) for tests.

Each use starts its own process on a free port in its own temporary log
directory and stops it by its pid, so tests never share a port, a topic or a
group, and never leave a broker behind. Without Java or the fetched engine the
Kafka tests skip with the reason; under CI (which runs ``make engines``) that
is a failure. Import the fixture:

    from tests.kafka_broker import kafka_broker  # noqa: F401
"""

from __future__ import annotations

import os

import pytest

from wirestream.pipelines.kafka_commands import KafkaBroker


def require_engine(reason):
    """Skip with REASON here; under CI, where every engine is installed, fail."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def kafka_broker():
    require_engine(KafkaBroker.missing())
    broker = KafkaBroker().start()
    try:
        yield broker
    finally:
        broker.stop()


def create_topic(bootstrap: str, topic: str, partitions: int, **topic_configs: str) -> None:
    """Create TOPIC with PARTITIONS (Kafka auto-creates topics with one)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=topic_configs)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
