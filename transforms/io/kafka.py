"""Kafka in and out, in pure Python (kafka-python): no Java expansion service.

    --source kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]?group=G&start=S&stop=T
    --sink   kafka://HOST:PORT[,HOST:PORT]/TOPIC

This module is the entry point: spec parsing, client settings, the source
factory the CLI calls and the registered ``kafka`` sink. The reading lives in
``kafka_source`` (a splittable DoFn over partitions, and the offset commits,
whose resume contract is written down there), the writing in ``kafka_sink``.

Client settings (``--kafka-config KEY=VALUE``, ``--kafka-config-file``) are
kafka-python settings; Java-style dotted keys (``security.protocol``) are
accepted too. Values of secret settings never appear in logs or reprs.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Iterable, Optional
from urllib.parse import parse_qs, urlsplit

from schemas import RawRecord
from transforms.io.archive import SourceError
from transforms.io.sinks import SinkError, SinkSpec, register_sink

START_POSITIONS = ("earliest", "latest", "committed")
STOP_POSITIONS = ("never", "end")
# A client setting whose name contains one of these is a secret.
_SECRET_WORDS = ("password", "secret", "token", "jaas", "credential", "sasl_oauth")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class KafkaSpecError(SourceError):
    """A kafka:// spec or client setting that cannot be used (one line for the user)."""


class ClientConfig(dict):
    """kafka-python settings; secret values are masked in repr and str."""

    def __repr__(self) -> str:
        return repr({k: ("***" if is_secret(k) else v) for k, v in self.items()})

    __str__ = __repr__

    def for_client(self, defaults: dict) -> dict:
        """The settings a client class (its DEFAULT_CONFIG) understands."""
        return {k: v for k, v in self.items() if k in defaults}


def is_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def _known_settings() -> dict:
    from kafka import KafkaConsumer, KafkaProducer
    return {**KafkaProducer.DEFAULT_CONFIG, **KafkaConsumer.DEFAULT_CONFIG}


def _typed(key: str, text: str, default):
    """A properties-file string as the type kafka-python expects for KEY."""
    text = text.strip()
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        shown = "***" if is_secret(key) else repr(text)
        raise KafkaSpecError(f"Kafka setting {key}: expected {type(default).__name__}, got {shown}"
                             ) from None
    return text


def client_config(pairs: Optional[Iterable[str]] = None,
                  properties_file: Optional[str] = None) -> ClientConfig:
    """Settings from a properties file, then KEY=VALUE pairs (which win)."""
    known = _known_settings()
    lines: list[tuple[str, str]] = []
    if properties_file:
        try:
            with open(properties_file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise KafkaSpecError(f"cannot read Kafka config file {properties_file}: "
                                 f"{exc.strerror}") from None
        lines += [(f"{properties_file}:{n}", line) for n, line in enumerate(text.splitlines(), 1)
                  if line.strip() and not line.lstrip().startswith(("#", "!"))]
    lines += [("--kafka-config", pair) for pair in pairs or ()]
    config = ClientConfig()
    for where, line in lines:
        key, sep, value = line.partition("=")
        key = key.strip().replace(".", "_").replace("-", "_")
        if not sep or not key:
            raise KafkaSpecError(f"{where}: expected KEY=VALUE, got a line without '='")
        if key not in known or key in ("bootstrap_servers", "group_id"):
            raise KafkaSpecError(f"{where}: unknown Kafka client setting {key!r}"
                                 + (" (set it in the kafka:// spec)"
                                    if key in ("bootstrap_servers", "group_id") else ""))
        config[key] = _typed(key, value, known[key])
    return config


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


def kafka_source(spec: str, config: ClientConfig, discovery_interval: float):
    """The CLI's factory: (PTransform producing RawRecords, bounded)."""
    from transforms.io.kafka_source import KafkaSourceSpec, ReadFromKafka
    source = KafkaSourceSpec.parse(spec, config, discovery_interval)
    return ReadFromKafka(source), source.bounded


def raw_record_headers(raw: RawRecord) -> list[tuple[str, bytes]]:
    """Headers for an archive record produced to Kafka: where it came from."""
    headers = [("wirestream-path", (raw.origin.path or "").encode())]
    if raw.origin.line is not None:
        headers.append(("wirestream-line", str(raw.origin.line).encode()))
    if raw.origin.item is not None:
        headers.append(("wirestream-item", str(raw.origin.item).encode()))
    return headers


def _dead_letter_topic(spec: SinkSpec) -> str:
    brokers, topic = parse_topic_spec(spec.text)
    return f"kafka://{','.join(brokers)}/{topic}.dlq"


@register_sink("kafka", default_dead_letter=_dead_letter_topic)
def kafka_sink(spec: SinkSpec, kind, settings):
    from transforms.io.kafka_sink import WriteToKafka
    try:
        brokers, topic = parse_topic_spec(spec.text)
    except KafkaSpecError as exc:
        raise SinkError(str(exc)) from None
    return WriteToKafka(brokers, topic, kind,
                        ClientConfig(settings.extra.get("kafka_config", {})))


def source_query(spec: str) -> dict[str, str]:
    parts = urlsplit(spec)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"group", "start", "stop"})
    if unknown:
        raise KafkaSpecError(f"bad Kafka spec {spec!r}: unknown parameter {unknown[0]!r} "
                             "(expected group, start, stop)")
    return {k: v[-1] for k, v in query.items()}
