"""Our own UTC timestamps: how record fields and origin times are written, and read back."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_iso(instant: datetime) -> str:
    """An aware instant as "YYYY-MM-DDTHH:MM:SSZ", the records' date-time form."""
    u = instant.astimezone(timezone.utc)
    # As strftime("%Y-%m-%dT%H:%M:%SZ") writes it (glibc's %Y is not zero-padded), at a
    # third of the cost.
    return f"{u.year}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}Z"


def utc_iso_of_epoch(seconds: float) -> str:
    """Epoch seconds (a file's modification time) in the records' form."""
    return utc_iso(datetime.fromtimestamp(seconds, timezone.utc))


def utc_iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds (a Kafka record's timestamp), kept to the millisecond exactly."""
    return f"{utc_iso_of_epoch(epoch_ms // 1000)[:-1]}.{epoch_ms % 1000:03d}Z"


def parse_utc_iso(value: str) -> datetime:
    """Our own UTC timestamps (origin.ingested_at, Kafka timestamps), back to an aware instant."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed
