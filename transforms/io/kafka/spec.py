"""kafka:// specs: the sink's topic spec and the source spec.

    --source kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]?group=G&start=S&stop=T
    --sink   kafka://HOST:PORT[,HOST:PORT]/TOPIC
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional, Union
from urllib.parse import parse_qs, urlsplit

from wirestream.transforms.io.kafka.settings import ClientConfig, KafkaSpecError

START_POSITIONS = ("earliest", "latest", "committed")
STOP_POSITIONS = ("never", "end")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_CLIENT_TIMEOUT_MS = 10_000


def _brokers(netloc: str, spec: str) -> tuple[str, ...]:
    brokers = tuple(b.strip() for b in netloc.split(",") if b.strip())
    if not brokers or any(not re.fullmatch(r"[^:/\s]+:\d{1,5}", b) for b in brokers):
        raise KafkaSpecError(f"bad Kafka spec {spec!r}: expected kafka://HOST:PORT[,HOST:PORT]/TOPIC")
    return brokers


def _topics(path: str, spec: str) -> tuple[str, ...]:
    topics = tuple(t for t in path.strip("/").split(",") if t)
    if not topics or any(not _TOPIC.match(t) for t in topics):
        raise KafkaSpecError(f"bad Kafka spec {spec!r}: expected topic names after the address "
                             "(letters, digits, '.', '_', '-')")
    return topics


def parse_topic_spec(spec: str) -> tuple[tuple[str, ...], str]:
    """``kafka://HOST:PORT[,...]/TOPIC`` -> (brokers, topic)."""
    parts = urlsplit(spec)
    if parts.scheme != "kafka" or parts.query or parts.fragment:
        raise KafkaSpecError(f"bad Kafka spec {spec!r}: expected kafka://HOST:PORT/TOPIC")
    topics = _topics(parts.path, spec)
    if len(topics) != 1:
        raise KafkaSpecError(f"bad Kafka spec {spec!r}: exactly one topic expected")
    return _brokers(parts.netloc, spec), topics[0]


def parse_position(text: str, named: tuple[str, ...], what: str, spec: str):
    """A named position, or an ISO 8601 time as epoch milliseconds."""
    if text in named:
        return text
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise KafkaSpecError(f"bad Kafka spec {spec!r}: {what} must be one of "
                             f"{', '.join(named)} or an ISO 8601 time, got {text!r}") from None
    if moment.tzinfo is None:  # a time without zone is UTC, as everywhere in wirestream
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)



def source_query(spec: str) -> dict[str, str]:
    parts = urlsplit(spec)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"group", "start", "stop"})
    if unknown:
        raise KafkaSpecError(f"bad Kafka spec {spec!r}: unknown parameter {unknown[0]!r} "
                             "(expected group, start, stop)")
    return {k: v[-1] for k, v in query.items()}


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
