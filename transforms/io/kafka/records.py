"""Kafka records and RawRecords: the Kafka origin of a record read, the
headers of an archive record produced."""

from __future__ import annotations

from typing import Optional

from wirestream.schemas import Origin, RawRecord
from wirestream.schemas.times import utc_iso_ms, utc_iso_of_epoch


def _text(value: Optional[bytes]) -> Optional[str]:
    if value is None:
        return None
    return value.decode("utf-8", errors="backslashreplace")


def record_time_ms(record, read_at_ms: int) -> int:
    """The record's Kafka timestamp. A record without one (None, or -1 from the
    pre-0.10 message format) is stamped with ``read_at_ms``, when the reader
    polled it: the same value for its origin, its event time, the watermark and
    the stop time, so no line of the reader sees a different time."""
    timestamp = record.timestamp
    return timestamp if timestamp is not None and timestamp >= 0 else read_at_ms


def raw_record_from_kafka(record, timestamp_ms: int) -> RawRecord:
    """A kafka-python ConsumerRecord stamped ``timestamp_ms`` (``record_time_ms``)
    -> RawRecord (format sniffed by the parse stage)."""
    headers = {name: _text(value) or "" for name, value in (record.headers or [])}
    return RawRecord(
        payload=record.value if record.value is not None else b"",
        origin=Origin(kind="kafka", topic=record.topic, partition=record.partition,
                      offset=record.offset, key=_text(record.key), headers=headers or None,
                      timestamp=utc_iso_ms(timestamp_ms), ingested_at=utc_iso_of_epoch(timestamp_ms // 1000)))


def raw_record_headers(raw: RawRecord) -> list[tuple[str, bytes]]:
    """Headers for an archive record produced to Kafka: where it came from."""
    headers = [("wirestream-path", (raw.origin.path or "").encode())]
    if raw.origin.line is not None:
        headers.append(("wirestream-line", str(raw.origin.line).encode()))
    if raw.origin.item is not None:
        headers.append(("wirestream-item", str(raw.origin.item).encode()))
    return headers
