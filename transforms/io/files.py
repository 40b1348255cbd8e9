"""File sinks: ``jsonl:DIR`` and ``parquet:DIR``, one writer with a pluggable format.

Bounded run: ``DIR/<kind>-SSSSS-of-NNNNN.<ext>``. Records are spread over a
fixed number of shards by a hash of their key and sorted within a shard, so
the same input gives the same files byte for byte on any runner. Each shard
is written to a hidden temporary name and renamed into place, so no
half-written file is ever visible under its final name; shards (and stray
temporaries) left by an earlier run that this run did not write are removed,
so a second run into the same directory replaces rather than appends.

Streaming run: ``DIR/<kind>-<UTC start>-<writer>-<seq>.<ext>``, rolled by
time, size or record count. Each writer (one per DoFn instance) appends
records to a hidden JSON-lines journal and fsyncs it at the end of every
bundle, so a bundle is durable before the runner commits it even though the
file stays open across bundles; a background thread rolls the journal on time
even when no record arrives. Rolling publishes the journal under its final
name (renamed as is for JSON lines, converted for Parquet). The live writer
holds an exclusive ``flock`` on its journal from creation until it has been
published; the kernel releases it when the process dies, however it dies. A
journal whose lock can be taken is therefore orphaned, and is published by
the next writer to start or roll in that directory; one whose lock is held is
never touched, whatever the clocks say or however long its writer has been
paused. Names sort by time and carry a random writer id, so they never
collide across workers or restarts. Delivery is at least once: a bundle
retried after a crash can appear in two files (readers keep one row per
``event_id``). Streaming needs a POSIX directory whose file system honours
``flock`` between the writers: a local disk, or a mount shared by processes of
one host. (Linux NFS clients emulate ``flock`` with POSIX locks, which hold
between hosts but not between two writers of one process.)
"""

from __future__ import annotations

import array
import datetime as dt
import fcntl
import hashlib
import itertools
import json
import operator
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterable, NamedTuple, Optional

import apache_beam as beam
import orjson
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems

from wirestream.transforms.io.sinks import Acknowledgement, RecordKind, RecordSink, SinkSpec, Unbatch, WriteToRecordSink
from wirestream.transforms.stage import METRICS_NAMESPACE
from wirestream.transforms.spill import read_spilled, spilled


# --- formats -------------------------------------------------------------------------------

# A format says what a bounded run carries for each document through its shuffle
# by shard (``carried``), and writes a shard from those (``write_carried``).


class JsonLinesFormat:
    suffix = ".jsonl"
    journal_is_final = True  # a complete journal is already a valid output file

    @staticmethod
    def line(document: dict) -> bytes:
        """One compact line (no spaces after separators), UTF-8 as is. orjson
        writes it in a fifth of json's time; a value it refuses (an integer
        beyond 64 bits) is written by json in the same style."""
        try:
            return orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"

    @classmethod
    def encode(cls, documents: Iterable[dict]) -> bytes:
        return b"".join(map(cls.line, documents))

    @classmethod
    def write(cls, handle: IO[bytes], documents: list[dict], kind: RecordKind) -> None:
        handle.write(cls.encode(documents))

    # Lines, encoded before the shuffle: bytes cost Beam nothing to carry, a record
    # a coder pass each way.
    carried = line

    @staticmethod
    def write_carried(handle: IO[bytes], lines: list[bytes], kind: RecordKind) -> None:
        handle.write(b"".join(lines))

    @classmethod
    def amended(cls, line: bytes, fields: dict) -> bytes:
        """``line`` with some of its document's top-level fields set anew, each in its
        place: the line ``line`` writes for the document as amended. Read back by json,
        whose integers and floats are exact (orjson reads a 65-bit integer as a float)."""
        document = json.loads(line)
        document.update(fields)
        return cls.line(document)


class ParquetFormat:
    """Arrow schema derived from the record's JSON Schema (see ``arrow_schema``)."""

    suffix = ".parquet"
    journal_is_final = False

    @staticmethod
    def write(handle: IO[bytes], documents: list[dict], kind: RecordKind) -> None:
        import pyarrow.parquet as pq
        pq.write_table(documents_to_table(documents, kind), handle, compression="zstd")

    @staticmethod
    def carried(document: dict) -> dict:
        return document

    write_carried = write


# --- Arrow schema from JSON Schema ---------------------------------------------------------

SCHEMA_OF_KIND = {RecordKind.EVENTS: "event_record", RecordKind.DEAD_LETTERS: "dead_letter"}


def _arrow_type(node: dict):
    """JSON Schema -> Arrow: objects with properties are structs (so queries
    say ``tags.countries``), free-form string maps are maps, arrays are lists,
    and strings of ``format`` date-time or date become timestamps or dates (so
    time filters need no parsing)."""
    import pyarrow as pa
    from wirestream.schemas import load_schema

    if "$ref" in node:
        node = load_schema(node["$ref"].split(".v1.")[0])
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    (kind,) = [t for t in types if t != "null"]
    if kind == "object":
        if "properties" in node:
            return pa.struct([pa.field(name, _arrow_type(sub))
                              for name, sub in node["properties"].items()])
        return pa.map_(pa.string(), _arrow_type(node["additionalProperties"]))
    if kind == "array":
        return pa.list_(_arrow_type(node["items"]))
    if kind == "string":
        return {"date-time": pa.timestamp("ms", tz="UTC"),
                "date": pa.date32()}.get(node.get("format"), pa.string())
    return {"integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}[kind]


_ARROW_SCHEMAS: dict = {}


def arrow_schema(kind: RecordKind):
    if kind not in _ARROW_SCHEMAS:
        import pyarrow as pa
        from wirestream.schemas import load_schema
        _ARROW_SCHEMAS[kind] = pa.schema(list(_arrow_type(load_schema(SCHEMA_OF_KIND[kind]))))
    return _ARROW_SCHEMAS[kind]


def _as_text_type(arrow_type):
    """The same shape with timestamps/dates as strings: documents hold ISO
    text, which Arrow parses when casting to the final type."""
    import pyarrow as pa
    if pa.types.is_struct(arrow_type):
        return pa.struct([pa.field(f.name, _as_text_type(f.type)) for f in arrow_type])
    if pa.types.is_map(arrow_type):
        return pa.map_(arrow_type.key_type, _as_text_type(arrow_type.item_type))
    if pa.types.is_list(arrow_type):
        return pa.list_(_as_text_type(arrow_type.value_type))
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return pa.string()
    return arrow_type


def _unknown_fields_check(arrow_type) -> Optional[Callable[[Any, str], Optional[str]]]:
    """A function naming the first field of a value that ``arrow_type`` does not
    declare (None if there is none), or None where no value of the type can hold
    fields (strings, numbers, maps, lists of them): those are never walked, and a
    struct's names are a set made once, so a record costs a few set look-ups."""
    import pyarrow as pa
    if pa.types.is_struct(arrow_type):
        names = frozenset(field.name for field in arrow_type)
        nested = [(field.name, check) for field in arrow_type
                  if (check := _unknown_fields_check(field.type)) is not None]

        def check_struct(value, path: str) -> Optional[str]:
            if value is None:
                return None
            if not names.issuperset(value):
                return f"{path}.{next(key for key in value if key not in names)}"
            for name, check in nested:
                if (found := check(value.get(name), f"{path}.{name}")) is not None:
                    return found
            return None
        return check_struct
    if pa.types.is_list(arrow_type):
        item_check = _unknown_fields_check(arrow_type.value_type)
        if item_check is None:
            return None

        def check_list(value, path: str) -> Optional[str]:
            for item in value or ():
                if (found := item_check(item, f"{path}[]")) is not None:
                    return found
            return None
        return check_list
    return None


_UNKNOWN_FIELDS_CHECKS: dict = {}


def documents_to_table(documents: list[dict], kind: RecordKind):
    """Records -> an Arrow table of the fixed schema. A field the JSON Schema
    does not declare is an error, not silently dropped."""
    import pyarrow as pa
    schema = arrow_schema(kind)
    if kind not in _UNKNOWN_FIELDS_CHECKS:
        _UNKNOWN_FIELDS_CHECKS[kind] = _unknown_fields_check(pa.struct(list(schema)))
    unknown = _UNKNOWN_FIELDS_CHECKS[kind]
    for document in documents:
        found = unknown(document, "")
        if found:
            raise ValueError(f"{kind.value} field {found.lstrip('.')} is not in the "
                             f"{SCHEMA_OF_KIND[kind]} JSON Schema; add it there first")
    text_schema = pa.schema([pa.field(f.name, _as_text_type(f.type)) for f in schema])
    return pa.Table.from_pylist(documents, schema=text_schema).cast(schema)


# --- bounded writer ------------------------------------------------------------------------

WRITTEN = "written"  # the output of acknowledgements
# Records of one element of the shuffle by shard, where the input is not batched already.
SHARD_BATCH = 256


def shard_of(key: str, num_shards: int) -> int:
    # A stable hash: Python's hash() of str differs between processes.
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % num_shards


def shard_name(directory: str, kind: RecordKind, shard: int, num_shards: int, suffix: str) -> str:
    return FileSystems.join(directory, f"{kind.value}-{shard:05d}-of-{num_shards:05d}{suffix}")


def write_atomically(path: str, write: Callable[[IO[bytes]], None]) -> None:
    directory, name = path.rsplit("/", 1)
    temporary = FileSystems.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    with FileSystems.create(temporary) as handle:
        write(handle)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


class _WriteShard(beam.DoFn):
    def __init__(self, directory, kind, num_shards, file_format, rendered=False):
        self._directory, self._kind = directory, kind
        self._num_shards, self._format = num_shards, file_format
        self._rendered = rendered  # parts are RenderedPart tuples, not lists of entries
        self._written = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"written_{kind.value}")

    def process(self, shard_records):
        shard, parts = shard_records
        entries = (RenderedPart._make(part).entries() for part in parts) if self._rendered else parts
        records = sorted(itertools.chain.from_iterable(entries), key=operator.itemgetter(0))
        carried = [document for _, document, _ in records]
        path = shard_name(self._directory, self._kind, shard, self._num_shards, self._format.suffix)
        write_atomically(path, lambda handle: self._format.write_carried(handle, carried, self._kind))
        self._written.inc(len(carried))
        yield path
        for _, _, ack in records:
            if ack is not None:
                yield pvalue.TaggedOutput(WRITTEN, ack)


def _shard_entries(records: Iterable, num_shards: int, file_format) -> list[tuple[int, list[tuple]]]:
    """Some records as (shard, [(sort key, the document as the format carries it,
    acknowledgement or None), ...]), one list per shard they fall in: a batch of
    records costs the shuffle by shard a few elements, not one per record."""
    by_shard: dict[int, list[tuple]] = {}
    for record in records:
        shard, *entry = _placed(record, num_shards, file_format)
        by_shard.setdefault(shard, []).append(tuple(entry))
    return sorted(by_shard.items())


def _placed(record, num_shards: int, file_format) -> tuple:
    """(shard, sort key, the document as the format carries it, acknowledgement or None)."""
    key = record.record_key
    return (shard_of(key, num_shards), key, file_format.carried(record.to_dict()),
            Acknowledgement.of_origin(record.origin))


# --- records rendered before their clusters are known ---------------------------------------

class RenderedPart(NamedTuple):
    """The records of one batch that fall in one shard, as the format's lines. A
    bounded run's records wait for their clusters as these: one bytes object per
    part for Beam to carry (or, spilled, where a file holds it), and only the few
    records whose cluster differs from the default are rendered again
    (``RenderedShards.amend``). ``rows``: each line's position in its batch;
    ``ends``: each line's end in the lines (uint32). It travels as a plain tuple,
    which Beam encodes without pickling: ``RenderedPart._make`` reads one."""

    shard: int
    rows: list[int]
    keys: list[str]
    ends: bytes
    lines: bytes  # b"" when spilled
    acks: list
    spill: str  # the file holding the lines from ``offset`` on, or "" when they are in ``lines``
    offset: int

    def split_lines(self) -> list[bytes]:
        ends = memoryview(self.ends).cast("I")
        lines = self.lines if not self.spill else read_spilled(self.spill, self.offset, ends[-1] if ends else 0,
                                                                   "rendered lines")
        return [lines[start:end] for start, end in zip(itertools.chain((0,), ends), ends)]

    def entries(self) -> list[tuple]:
        """(sort key, line, acknowledgement or None) per record, as ``_shard_entries`` gives them."""
        return list(zip(self.keys, self.split_lines(), self.acks))


def _part(shard: int, rows: list[int], keys: list[str], lines: list[bytes], acks: list,
          spill_dir: Optional[str] = None) -> tuple:
    ends = array.array("I", itertools.accumulate(map(len, lines))).tobytes()
    if spill_dir is None:
        return shard, rows, keys, ends, b"".join(lines), acks, "", 0
    return shard, rows, keys, ends, b"", acks, *spilled(spill_dir, b"".join(lines))


@dataclass(frozen=True)
class RenderedShards:
    """Records rendered as lines where they are made (a bounded run's workers, with the
    cluster every record has unless de-duplication says otherwise) and amended after:
    the run's last step then writes bytes, and re-renders only the amended records.
    For formats whose documents are lines (JSON lines). With a ``spill_dir``, which
    every process of the run must share (a run on one machine), the lines wait in
    files there, and the parts Beam carries only say where."""

    num_shards: int
    file_format: type = JsonLinesFormat
    spill_dir: Optional[str] = None

    def render(self, records: Iterable) -> list[tuple]:
        """A batch of records -> its parts (``RenderedPart`` tuples), one per shard it has records in."""
        by_shard: dict[int, tuple[list, list, list, list]] = {}
        for row, record in enumerate(records):
            shard, key, line, ack = _placed(record, self.num_shards, self.file_format)
            rows, keys, lines, acks = by_shard.setdefault(shard, ([], [], [], []))
            rows.append(row)
            keys.append(key)
            lines.append(line)
            acks.append(ack)
        return [_part(shard, *by_shard[shard], spill_dir=self.spill_dir) for shard in sorted(by_shard)]

    def amend(self, part: tuple, fields_by_row: dict[int, dict]) -> tuple:
        """The part with the records at these batch positions amended (their lines as
        ``file_format.amended`` writes them, in the part itself); a part without such a
        record as it is."""
        part = RenderedPart._make(part)
        if not any(row in fields_by_row for row in part.rows):
            return tuple(part)
        amend = self.file_format.amended
        lines = [line if row not in fields_by_row else amend(line, fields_by_row[row])
                 for row, line in zip(part.rows, part.split_lines())]
        return _part(part.shard, part.rows, part.keys, lines, part.acks)


def remove_stale_shards(directory: str, kind: RecordKind, suffix: str, keep: list[str]) -> list[str]:
    """Shards of this kind and format not written by this run, and temporaries
    left by failed attempts (all of this run's shards are in place by now)."""
    patterns = [FileSystems.join(directory, f"{kind.value}-*-of-*{suffix}"),
                FileSystems.join(directory, f".{kind.value}-*-of-*{suffix}.*.tmp")]
    existing = [m.path for result in FileSystems.match(patterns) for m in result.metadata_list]
    stale = sorted(set(existing) - set(keep))
    if stale:
        FileSystems.delete(stale)
    return stale


class WriteBoundedFiles(beam.PTransform):
    """Returns the acknowledgements of what was written (for Kafka offset
    commits, see ``kafka.commits``). ``batched``: each element is a list of records;
    ``rendered``: each is (shard, all that shard's ``RenderedPart`` tuples), parts of
    ``RenderedShards(num_shards, file_format)`` grouped where they were amended."""

    def __init__(self, directory: str, kind: RecordKind, num_shards: int, file_format, batched: bool = False,
                 rendered: bool = False):
        super().__init__()
        self._directory, self._kind = directory, kind
        self._num_shards, self._format = num_shards, file_format
        self._batched = batched
        self._rendered = rendered

    def expand(self, records):
        directory, kind, n, fmt = self._directory, self._kind, self._num_shards, self._format
        if not FileSystems.exists(directory):
            FileSystems.mkdirs(directory)
        if self._rendered:
            by_shard = records  # grouped by shard where they were amended
        else:
            batches = records if self._batched else records | "Batch" >> beam.BatchElements(
                min_batch_size=SHARD_BATCH, max_batch_size=SHARD_BATCH)
            by_shard = (batches
                        | "KeyByShard" >> beam.FlatMap(_shard_entries, n, fmt)
                        | "GroupByShard" >> beam.GroupByKey())
        written = (by_shard
                   | "WriteShards" >> beam.ParDo(_WriteShard(directory, kind, n, fmt, self._rendered)).with_outputs(
                       WRITTEN, main="paths"))
        _ = (written.paths
             | "CollectWritten" >> beam.combiners.ToList()
             | "RemoveStaleShards" >> beam.Map(
                 lambda paths: remove_stale_shards(directory, kind, fmt.suffix, paths)))
        return written[WRITTEN]


# --- streaming writer ----------------------------------------------------------------------

@dataclass(frozen=True)
class RollPolicy:
    """When a streaming file is closed: whichever limit is reached first.
    ``max_bytes`` counts the JSON-lines journal (Parquet files are smaller)."""

    seconds: float = 60.0
    max_bytes: int = 64 * 1024 * 1024
    max_records: int = 100_000


@dataclass(frozen=True)
class FileSinkSettings:
    streaming: bool = False  # rolled files; else a fixed number of shards, replaced per run
    num_shards: int = 4
    roll: RollPolicy = RollPolicy()
    # A bounded run whose processes share this directory: the jsonl sink's lines wait
    # there for their clusters (``RenderedShards``). None: they travel through Beam.
    spill_dir: Optional[str] = None


_JOURNAL = re.compile(r"^\.(?P<final>(?P<kind>[a-z_]+)-(?P<start>\d{8}T\d{6}\.\d{6}Z)-"
                      r"(?P<writer>[0-9a-f]{12})-\d{6}\.[a-z]+)\.journal$")


def _utc_stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_journal(journal: str, handle: IO[bytes], file_format, kind: RecordKind
                    ) -> Optional[str]:
    """Journal -> its final file, by the holder of its lock (``handle``, opened
    read-write on it). The final name and content depend only on the journal.
    A torn last line (a write cut by a crash) belongs to an uncommitted bundle
    that the runner replays, so it is dropped."""
    directory, name = os.path.split(journal)
    final = os.path.join(directory, _JOURNAL.match(name).group("final"))
    handle.seek(0)
    data = handle.read()
    complete = data[:data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        handle.truncate(len(complete))
    if not complete:
        _remove_quietly(journal)
        return None
    if file_format.journal_is_final:
        os.replace(journal, final)
    else:
        documents = [json.loads(line) for line in complete.splitlines()]
        temporary = os.path.join(directory, f".{os.path.basename(final)}.{uuid.uuid4().hex}.tmp")
        with open(temporary, "wb") as out:
            file_format.write(out, documents, kind)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
        _remove_quietly(journal)
    _fsync_directory(directory)
    return final


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _take_orphan(journal: str) -> Optional[IO[bytes]]:
    """The journal opened and locked, if no live writer holds it; else None."""
    try:
        handle = open(journal, "rb+")
    except FileNotFoundError:
        return None  # published meanwhile
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The lock was free: its writer is gone. The path must still be the file we
        # locked (its writer, or another successor, may have published it between
        # our open and our lock).
        if os.fstat(handle.fileno()).st_ino != os.stat(journal).st_ino:
            raise FileNotFoundError(journal)
        return handle
    except (BlockingIOError, FileNotFoundError):
        handle.close()
        return None
    except BaseException:
        handle.close()
        raise


def publish_orphan_journals(directory: str, kind: RecordKind, file_format,
                            own_writer: str = "") -> list[str]:
    """Publish every journal of this kind and format whose writer is gone (its
    lock is free); a journal whose writer lives, even paused, is left alone."""
    published = []
    for name in sorted(os.listdir(directory)):
        match = _JOURNAL.match(name)
        if not (match and match.group("kind") == kind.value
                and match.group("final").endswith(file_format.suffix)
                and match.group("writer") != own_writer):
            continue
        journal = os.path.join(directory, name)
        handle = _take_orphan(journal)
        if handle is None:
            continue
        with handle:  # closing releases the lock, after the journal is gone
            final = publish_journal(journal, handle, file_format, kind)
        if final:
            published.append(final)
    return published


class RollingFileWriter:
    """The streaming writer of one worker, as a plain object (the DoFn below
    only forwards to it): ``add`` appends, ``sync`` makes everything added
    durable, ``roll_if_due`` closes the current file when a limit is reached."""

    def __init__(self, directory: str, kind: RecordKind, file_format, policy: RollPolicy,
                 clock: Callable[[], float] = time.time):
        self.directory, self.kind, self.format, self.policy = directory, kind, file_format, policy
        self._clock = clock
        self.writer_id = uuid.uuid4().hex[:12]
        self._sequence = 0
        self._journal: Optional[IO[bytes]] = None
        self._journal_path = ""
        self._opened_at = 0.0
        self._bytes = self._records = 0
        self._lock = threading.Lock()
        os.makedirs(directory, exist_ok=True)

    def add(self, document: dict) -> list[str]:
        line = JsonLinesFormat.line(document)  # the journal is JSON lines whatever the format
        with self._lock:
            if self._journal is None:
                self._open()
            self._journal.write(line)
            self._bytes += len(line)
            self._records += 1
            if self._bytes >= self.policy.max_bytes or self._records >= self.policy.max_records:
                return self._roll()
        return []

    def sync(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.flush()
                os.fsync(self._journal.fileno())

    def roll_if_due(self) -> list[str]:
        with self._lock:
            if self._journal is not None and self._clock() - self._opened_at >= self.policy.seconds:
                return self._roll()
        return []

    def close(self) -> list[str]:
        with self._lock:
            return self._roll() if self._journal is not None else []

    def publish_orphans(self) -> list[str]:
        return publish_orphan_journals(self.directory, self.kind, self.format, self.writer_id)

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._sequence += 1
        final = (f"{self.kind.value}-{_utc_stamp(self._opened_at)}-{self.writer_id}-"
                 f"{self._sequence:06d}{self.format.suffix}")
        self._journal_path = os.path.join(self.directory, f".{final}.journal")
        # Read-write, exclusive: held locked until published (see the module docstring).
        self._journal = open(self._journal_path, "xb+")
        fcntl.flock(self._journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._bytes = self._records = 0

    def _roll(self) -> list[str]:
        journal, self._journal = self._journal, None
        with journal:  # the lock goes with the file, once it is published
            journal.flush()
            os.fsync(journal.fileno())
            final = publish_journal(self._journal_path, journal, self.format, self.kind)
        return [final] if final else []


class RollingFileSink(RecordSink):
    """A RecordSink over one RollingFileWriter; a daemon thread rolls on
    processing time, so files close on time on any runner (the local
    FnApiRunner ignores watermarks, and per-bundle files would be tiny)."""

    def __init__(self, directory: str, kind: RecordKind, file_format, policy: RollPolicy):
        self._kind, self._directory, self._policy = kind, directory, policy
        self._writer = RollingFileWriter(directory, kind, file_format, policy)
        self._writer.publish_orphans()
        self._failure: Optional[BaseException] = None
        self._stop = threading.Event()
        threading.Thread(target=self._roll_on_time, daemon=True,
                         name=f"roll-{kind.value}").start()

    def _roll_on_time(self):
        last_orphan_check = time.time()
        while not self._stop.wait(min(1.0, self._policy.seconds / 4)):
            try:
                self._writer.roll_if_due()
                if time.time() - last_orphan_check >= self._policy.seconds:
                    last_orphan_check = time.time()
                    self._writer.publish_orphans()
            except BaseException as exc:  # surfaced by the next bundle, never swallowed
                self._failure = exc
                return

    def add(self, key: str, document: dict) -> None:
        self._raise_background_failure()
        self._writer.add(document)

    def flush(self) -> None:
        self._raise_background_failure()
        self._writer.sync()  # durable now: the bundle's Kafka offsets may be committed

    def close(self) -> None:
        self._stop.set()
        self._writer.close()

    def _raise_background_failure(self):
        if self._failure is not None:
            raise RuntimeError(f"rolling {self._kind.value} files in {self._directory} "
                               f"failed: {self._failure}") from self._failure


# --- the jsonl: and parquet: sinks --------------------------------------------------------

class WriteRecordFiles(beam.PTransform):
    """The file writer shared by the file formats: sharded and replaced in a
    bounded run, rolled in a streaming run. Returns the acknowledgements of
    what was written."""

    def __init__(self, directory: str, kind: RecordKind, settings: FileSinkSettings, file_format,
                 batched: bool = False, rendered: bool = False):
        super().__init__()
        self._directory, self._kind = directory.rstrip("/") or "/", kind
        self._settings, self._format = settings, file_format
        self._batched = batched
        self._rendered = rendered  # elements are RenderedParts (``rendering``); bounded runs only

    def expand(self, records):
        if self._settings.streaming:
            if self._batched:
                records = records | "Unbatch" >> Unbatch()
            directory, kind, file_format = self._directory, self._kind, self._format
            policy = self._settings.roll
            return records | "WriteRollingFiles" >> beam.ParDo(WriteToRecordSink(
                lambda: RollingFileSink(directory, kind, file_format, policy), kind))
        return records | "WriteBoundedFiles" >> WriteBoundedFiles(
            self._directory, self._kind, self._settings.num_shards, self._format, self._batched,
            self._rendered)


def dead_letter_dir(spec: SinkSpec) -> str:
    return f"{spec.scheme}:{FileSystems.join(spec.target.rstrip('/'), 'dead-letter')}"


def write_jsonl(spec: SinkSpec, kind: RecordKind, settings: FileSinkSettings, batched: bool = False,
                rendered: bool = False) -> beam.PTransform:
    return WriteRecordFiles(spec.target, kind, settings, JsonLinesFormat, batched, rendered)


def jsonl_rendering(settings: FileSinkSettings) -> Optional[RenderedShards]:
    """How a bounded run may render its records for ``write_jsonl(..., rendered=True)``;
    None for a streaming run (its files roll by time, not by shard)."""
    return None if settings.streaming else RenderedShards(settings.num_shards, JsonLinesFormat, settings.spill_dir)


def write_parquet(spec: SinkSpec, kind: RecordKind, settings: FileSinkSettings, batched: bool = False) -> beam.PTransform:
    return WriteRecordFiles(spec.target, kind, settings, ParquetFormat, batched)
