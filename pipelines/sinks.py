"""The sinks the command line offers: scheme -> sink module, and their settings.

The registry lives here, above the sink modules, so that they import only the
sink contract (``transforms/io/sinks.py``) and never each other: adding a sink
is one entry below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

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
    # (spec, settings) -> how a bounded run may hand it records rendered ahead
    # (``files.RenderedShards``, for ``write(..., rendered=True)``), or None.
    rendering: Callable[..., Any] = lambda spec, settings: None


SINKS: dict[str, SinkType] = {
    "jsonl": SinkType(lambda spec, kind, s, batched=False, rendered=False: files.write_jsonl(
                          spec, kind, s.files, batched, rendered),
                      files.dead_letter_dir, takes_batches=True,
                      rendering=lambda spec, s: files.jsonl_rendering(s.files)),
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


def rendering(spec_text: str, settings: SinkSettings) -> Any:
    """How the sink takes records rendered ahead (``write_records(..., rendered=True)``), or None."""
    spec = sink_spec(spec_text)
    return SINKS[spec.scheme].rendering(spec, settings)


def write_records(spec_text: str, kind: RecordKind, settings: SinkSettings,
                  batched: bool = False, rendered: bool = False) -> beam.PTransform:
    """The sink for records, with ``batched`` for lists of records, with ``rendered``
    for the parts of its ``rendering``."""
    spec = sink_spec(spec_text)
    sink = SINKS[spec.scheme]
    if rendered:
        return sink.write(spec, kind, settings, rendered=True)
    if not batched:
        return sink.write(spec, kind, settings)
    if sink.takes_batches:
        return sink.write(spec, kind, settings, batched=True)
    return Unbatch() | sink.write(spec, kind, settings)


def default_dead_letter_spec(spec_text: str) -> str:
    spec = sink_spec(spec_text)
    return SINKS[spec.scheme].default_dead_letter(spec)
