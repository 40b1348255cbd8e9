"""The sinks the command line offers: scheme -> sink module, and their settings.

The registry lives here, above the sink modules, so that they import only the
sink contract (``transforms/io/sinks.py``) and never each other: adding a sink
is one entry below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import apache_beam as beam

from wirestream.transforms.io import files, postgres
from wirestream.transforms.io.kafka import ClientConfig
from wirestream.transforms.io.kafka import sink as kafka_sink
from wirestream.transforms.io.sinks import RecordKind, SinkError, SinkSpec, Unbatch, redacted_url


@dataclass(frozen=True)
class SinkSettings:
    """The settings of each sink type, typed; a sink reads only its own."""

    files: files.FileSinkSettings = files.FileSinkSettings()
    kafka: ClientConfig = field(default_factory=ClientConfig)


@dataclass(frozen=True)
class SinkType:
    write: Callable[..., beam.PTransform]  # (spec, kind, settings), and batched=True where takes_batches
    default_dead_letter: Callable[[SinkSpec], str]
    # Whether ``write`` also takes a PCollection of lists of records (batched=True);
    # otherwise lists are taken apart for it.
    takes_batches: bool = False


SINKS: dict[str, SinkType] = {
    "jsonl": SinkType(lambda spec, kind, s, batched=False: files.write_jsonl(spec, kind, s.files, batched),
                      files.dead_letter_dir, takes_batches=True),
    "parquet": SinkType(lambda spec, kind, s, batched=False: files.write_parquet(spec, kind, s.files, batched),
                        files.dead_letter_dir, takes_batches=True),
    "kafka": SinkType(lambda spec, kind, s: kafka_sink.write_kafka(spec, kind, s.kafka),
                      kafka_sink.dead_letter_topic),
    "postgresql": SinkType(lambda spec, kind, s: postgres.write_postgres(spec, kind),
                           postgres.dead_letter_table),
}


def sink_spec(text: str) -> SinkSpec:
    """A spec whose scheme is one of SINKS, else a SinkError naming them."""
    try:
        spec = SinkSpec.parse(text)
    except SinkError:
        spec = None
    if spec is None or spec.scheme not in SINKS:
        raise SinkError(f"unknown sink {redacted_url(text)!r}: expected one of "
                        f"{', '.join(f'{s}:...' for s in sorted(SINKS))}")
    return spec


def write_records(spec_text: str, kind: RecordKind, settings: SinkSettings,
                  batched: bool = False) -> beam.PTransform:
    """The sink for records, or with ``batched`` for lists of records."""
    spec = sink_spec(spec_text)
    sink = SINKS[spec.scheme]
    if not batched:
        return sink.write(spec, kind, settings)
    if sink.takes_batches:
        return sink.write(spec, kind, settings, batched=True)
    return Unbatch() | sink.write(spec, kind, settings)


def default_dead_letter_spec(spec_text: str) -> str:
    spec = sink_spec(spec_text)
    return SINKS[spec.scheme].default_dead_letter(spec)
