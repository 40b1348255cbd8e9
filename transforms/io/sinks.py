"""The sink contract: what every sink module builds on.

A sink spec is ``SCHEME:TARGET`` (``jsonl:./out``, ``parquet:./out``,
``kafka://host:9092/topic``, ``postgresql://user@host:5432/db?table=t``).
A sink is a Beam PTransform writing records (EventRecord or DeadLetter, each
with a stable ``record_key``) that returns the Acknowledgements of what it
wrote durably. Which schemes exist is the CLI's business
(``pipelines/sinks.py``): this module imports no sink.

Record-at-a-time sinks (Kafka, PostgreSQL) implement ``RecordSink``:

* ``add(key, document)`` buffers one record;
* ``flush()`` returns only once everything added is durable in the
  destination, else raises: it is called at the end of every bundle, so a
  bundle is never reported done while its records are still in a buffer;
* writes are upserts by key, so a retried bundle or a replayed archive leaves
  each record once (at-least-once delivery, idempotent result).
"""

from __future__ import annotations

import abc
from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit
import enum
from dataclasses import dataclass
from typing import Callable, Optional

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from wirestream.schemas import Origin
from wirestream.transforms.stage import METRICS_NAMESPACE


class RecordKind(str, enum.Enum):
    EVENTS = "events"
    DEAD_LETTERS = "dead_letters"


# libpq parameters that hold a secret (a URL may carry them as ?password=...).
SECRET_URL_PARAMETERS = ("password", "sslpassword")


def _secret_parts(url: str) -> tuple[SplitResult, Optional[str], list[tuple[str, str, bool]]]:
    """The one reading of which parts of a URL are secret: the URL split, its user-info
    password, and its query's (key, value, secret?) pairs as written. ValueError when
    it cannot be taken apart."""
    parts = urlsplit(url)
    pairs = [pair.partition("=")[::2] for pair in parts.query.split("&")] if parts.query else []
    return parts, parts.password, [(k, v, unquote_plus(k) in SECRET_URL_PARAMETERS) for k, v in pairs]


def url_secrets(url: str) -> list[str]:
    """The passwords a URL holds, as written and as decoded (a mask must find either);
    none when it is no URL."""
    try:
        _, password, pairs = _secret_parts(url)
    except ValueError:
        return []
    found = [password] if password else []
    for _, value, secret in pairs:
        if secret and value:
            found += dict.fromkeys((value, unquote_plus(value)))
    return found


def redacted_url(url: str) -> str:
    """The URL with its passwords (user info and query) replaced, for messages and logs."""
    try:
        parts, password, pairs = _secret_parts(url)
    except ValueError:  # not a URL we can take apart: show none of it
        return "***"
    if password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{password}@", ":***@", 1))
    if any(secret for *_, secret in pairs):
        parts = parts._replace(query="&".join(f"{k}=***" if secret else f"{k}={v}" for k, v, secret in pairs))
    return urlunsplit(parts)


@dataclass(frozen=True)
class SinkSpec:
    scheme: str
    target: str  # the part after "scheme:" (a directory, or //host/... for URLs)
    text: str

    @classmethod
    def parse(cls, text: str) -> "SinkSpec":
        scheme, sep, target = text.partition(":")
        if not sep or not target:
            raise SinkError(f"bad sink {redacted_url(text)!r}: expected SCHEME:TARGET")
        return cls(scheme.lower(), target, text)


class SinkError(ValueError):
    """A sink spec or destination that cannot be used; shown to the user as is."""


class RecordSink(abc.ABC):
    @abc.abstractmethod
    def add(self, key: str, document: dict) -> None: ...

    @abc.abstractmethod
    def flush(self) -> None: ...

    def close(self) -> None:
        self.flush()


@dataclass(frozen=True)
class Acknowledgement:
    """Offsets of one partition that need nothing more: [start, end) finished,
    or one item of a multi-item payload at ``start`` written. ``begins`` marks
    where reading began (everything below ``start`` counts as finished)."""

    topic: str
    partition: int
    start: int
    end: int
    item: Optional[int] = None
    item_count: Optional[int] = None
    begins: bool = False

    @classmethod
    def of_origin(cls, origin: Origin) -> Optional["Acknowledgement"]:
        if origin.kind != "kafka" or origin.offset is None:
            return None
        return cls(origin.topic, origin.partition, origin.offset, origin.offset + 1,
                   origin.item, origin.item_count)


def Unbatch() -> beam.PTransform:  # noqa: N802 - named as the transform it is
    """Lists of records -> the records, for a sink that takes them one by one."""
    return beam.FlatMap(lambda batch: batch)


# The outputs of a source whose reads are committed (Kafka with a group): its
# records, and its PROGRESS (Acknowledgements of where reading began and of
# offsets that hold no record), which count as done beside what sinks wrote.
RECORDS, PROGRESS = "records", "read_progress"


class WriteToRecordSink(beam.DoFn):
    """Drives a RecordSink: add per element, flush at the end of every bundle.
    Once a flush has succeeded it emits an Acknowledgement for each record of
    the bundle that came from Kafka, so the source can commit what was written."""

    def __init__(self, make_sink: Callable[[], RecordSink], kind: RecordKind):
        self._make_sink = make_sink
        self._written = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"written_{kind.value}")
        self._sink: Optional[RecordSink] = None

    def setup(self):
        self._sink = self._make_sink()

    def start_bundle(self):
        self._acknowledgements: list[Acknowledgement] = []
        self._latest = MIN_TIMESTAMP

    def process(self, record, timestamp=beam.DoFn.TimestampParam):
        self._sink.add(record.record_key, record.to_dict())
        self._written.inc()
        ack = Acknowledgement.of_origin(record.origin)
        if ack is not None:
            self._acknowledgements.append(ack)
            self._latest = max(self._latest, timestamp)

    def finish_bundle(self):
        self._sink.flush()
        for ack in self._acknowledgements:
            # The commits run in the global window whatever the records' windows were.
            yield WindowedValue(ack, self._latest, [GlobalWindow()])
        self._acknowledgements = []

    def teardown(self):
        if self._sink is not None:
            self._sink.close()
