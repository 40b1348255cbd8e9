"""File sinks: ``jsonl:DIR`` (and the shared machinery for other file formats).

A bounded run writes ``DIR/<kind>-SSSSS-of-NNNNN.<ext>``: records are spread
over a fixed number of shards by a hash of their key and sorted within a
shard, so the same input gives the same files byte for byte on any runner.
Each shard is written to a hidden temporary name and renamed into place, so
no half-written file is ever visible under its final name; shards left by an
earlier run that this run did not write are removed, so a second run into
the same directory replaces rather than appends.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms.io.sinks import (RecordKind, SinkError, SinkSettings, SinkSpec, register_sink)
from transforms.stage import METRICS_NAMESPACE


class JsonLinesFormat:
    suffix = ".jsonl"

    @staticmethod
    def encode(documents: Iterable[dict]) -> bytes:
        return b"".join(json.dumps(d, ensure_ascii=False).encode("utf-8") + b"\n"
                        for d in documents)


def shard_of(key: str, num_shards: int) -> int:
    # A stable hash: Python's hash() of str differs between processes.
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % num_shards


def shard_name(directory: str, kind: RecordKind, shard: int, num_shards: int, suffix: str) -> str:
    return FileSystems.join(directory, f"{kind.value}-{shard:05d}-of-{num_shards:05d}{suffix}")


def write_atomically(path: str, data: bytes) -> None:
    directory, name = path.rsplit("/", 1)
    temporary = FileSystems.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    with FileSystems.create(temporary) as handle:
        handle.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


class _WriteShard(beam.DoFn):
    def __init__(self, directory, kind, num_shards, file_format):
        self._directory, self._kind = directory, kind
        self._num_shards, self._format = num_shards, file_format
        self._written = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"written_{kind.value}")

    def process(self, shard_records):
        shard, records = shard_records
        records = sorted(records, key=lambda r: r.record_key)
        path = shard_name(self._directory, self._kind, shard, self._num_shards, self._format.suffix)
        write_atomically(path, self._format.encode(r.to_dict() for r in records))
        self._written.inc(len(records))
        yield path


def remove_stale_shards(directory: str, kind: RecordKind, suffix: str, keep: list[str]) -> list[str]:
    pattern = FileSystems.join(directory, f"{kind.value}-*-of-*{suffix}")
    existing = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    stale = sorted(set(existing) - set(keep))
    if stale:
        FileSystems.delete(stale)
    return stale


class WriteRecordFiles(beam.PTransform):
    """Bounded file writer shared by the file formats."""

    def __init__(self, directory: str, kind: RecordKind, settings: SinkSettings, file_format):
        super().__init__()
        if settings.streaming:
            raise SinkError("file sinks do not support streaming runs yet; use a kafka:// or "
                            "postgresql:// sink, or a bounded source")
        self._directory, self._kind = directory.rstrip("/") or "/", kind
        self._num_shards, self._format = settings.num_shards, file_format

    def expand(self, records):
        directory, kind, n, fmt = self._directory, self._kind, self._num_shards, self._format
        if not FileSystems.exists(directory):
            FileSystems.mkdirs(directory)
        written = (records
                   | "KeyByShard" >> beam.Map(lambda r: (shard_of(r.record_key, n), r))
                   | "GroupByShard" >> beam.GroupByKey()
                   | "WriteShards" >> beam.ParDo(_WriteShard(directory, kind, n, fmt)))
        return (written
                | "CollectWritten" >> beam.combiners.ToList()
                | "RemoveStaleShards" >> beam.Map(
                    lambda paths: remove_stale_shards(directory, kind, fmt.suffix, paths)))


def _dead_letter_dir(spec: SinkSpec) -> str:
    return f"{spec.scheme}:{FileSystems.join(spec.target.rstrip('/'), 'dead-letter')}"


@register_sink("jsonl", default_dead_letter=_dead_letter_dir)
def write_jsonl(spec: SinkSpec, kind: RecordKind, settings: SinkSettings) -> beam.PTransform:
    return WriteRecordFiles(spec.target, kind, settings, JsonLinesFormat)
