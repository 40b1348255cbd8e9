"""Archive files (backfill): a file, directory or glob -> RawRecords.

Files are listed when the pipeline is built, so a wrong path fails at once
with a clear message; a special file (FIFO, socket, device, dangling
symlink, a directory named like an archive) is skipped with a warning that
names it. Each file is split into records by its syntax only (JSONL lines,
JSON array elements, Reuters <REUTERS> elements); a record that cannot
become a story is the parse stage's business, so the reader never drops
anything. Where the file itself is damaged (a truncated or corrupt gzip
stream, an unclosed <REUTERS> element, a file or line over the file bound)
the reader emits what it could read as a RawRecord with ``damage`` set, which
the parse stage turns into a dead letter of stage ``read``; the records
before the damage go on as usual. Files are read in chunks, never more than
the file bound at once. Paths go through Beam's FileSystems, so gs:// and
s3:// work when Beam's gcp/aws extras are installed.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import stat
import sys
import threading
import time
import zlib
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from wirestream.schemas import Origin, RawRecord
from wirestream.schemas.times import utc_iso_of_epoch

# Extension -> format hint given to the parse stage.
ARCHIVE_FORMATS = {".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".ndjson": "jsonl", ".json": "json",
                   ".json.gz": "json", ".xml": "xml", ".xml.gz": "xml", ".sgm": "sgm",
                   ".sgm.gz": "sgm", ".txt": "txt", ".txt.gz": "txt", ".html": "html",
                   ".html.gz": "html", ".htm": "html", ".htm.gz": "html"}


class SourceError(ValueError):
    """A source that cannot be read; the message is shown to the user as is."""


@dataclass(frozen=True, order=True)
class ArchiveFile:
    path: str
    format_hint: str
    ingested_at: str  # the file's modification time: a stable reference for replays
    size: int = 0


def archive_format(path: str) -> str | None:
    lower = path.lower()
    for ext in sorted(ARCHIVE_FORMATS, key=len, reverse=True):
        if lower.endswith(ext):
            return ARCHIVE_FORMATS[ext]
    return None


def warn_on_stderr(message: str) -> None:
    # Printed, not logged: the default log level (ERROR) would hide it.
    print(f"wirestream: warning: {message}", file=sys.stderr, flush=True)


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISDIR, "a directory"))


def _not_a_regular_file(path: str) -> tuple[str | None, os.stat_result | None]:
    """(why PATH cannot be read as an archive file, or None; its stat)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return ("a dangling symlink" if os.path.islink(path) else "gone"), None
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})", None
    for test, what in _SPECIAL_KINDS:
        if test(info.st_mode):
            return what, info
    return None, info


def _local_candidates(spec: str, explicit: bool) -> list[str]:
    if explicit:
        return [spec] if os.path.lexists(spec) else []
    if os.path.isdir(spec):
        # Like Beam's local listing (os.walk, links to directories not followed),
        # but directories named like archives are reported, not silently passed.
        found = []
        for dirpath, dirnames, filenames in os.walk(spec):
            found += [os.path.join(dirpath, n) for n in filenames]
            found += [os.path.join(dirpath, n) for n in dirnames if archive_format(n)]
        return found
    return glob.glob(spec, recursive=True, include_hidden=True)


def _list_local(spec: str, explicit: bool, warn: Callable[[str], None]) -> list[ArchiveFile]:
    files = []
    for path in _local_candidates(spec, explicit):
        fmt = archive_format(path)
        if fmt is None:
            if explicit:
                raise SourceError(f"unsupported archive file type: {path} (expected one of "
                                  f"{', '.join(sorted(ARCHIVE_FORMATS))})")
            continue
        problem, info = _not_a_regular_file(path)
        if problem:
            if explicit:
                raise SourceError(f"cannot read {path}: it is {problem}, not a regular file")
            warn(f"{path}: skipped, it is {problem}, not a regular file")
            continue
        files.append(ArchiveFile(path, fmt, utc_iso_of_epoch(info.st_mtime), info.st_size))
    return files


def list_archive_files(spec: str, warn: Callable[[str], None] = warn_on_stderr
                       ) -> list[ArchiveFile]:
    """A file, a directory (searched recursively) or a glob -> the archive files, sorted.
    Special files are skipped, each named through ``warn``."""
    explicit = not any(c in spec for c in "*?[")
    if "://" not in spec:
        files = _list_local(spec, explicit and not os.path.isdir(spec), warn)
    else:
        files = _list_remote(spec, explicit)
    if not files:
        raise SourceError(f"no archive files found at {spec!r}")
    return sorted(files)


def _list_remote(spec: str, explicit: bool) -> list[ArchiveFile]:
    pattern = spec
    if explicit and spec.endswith("/"):
        pattern, explicit = FileSystems.join(spec.rstrip("/"), "**"), False
    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except Exception as exc:  # Beam raises several types for bad schemes/paths
        raise SourceError(f"cannot read source {spec!r}: {exc}") from None
    files = []
    for meta in matches:
        fmt = archive_format(meta.path)
        if fmt is None:
            if explicit:
                raise SourceError(f"unsupported archive file type: {meta.path} (expected one of "
                                  f"{', '.join(sorted(ARCHIVE_FORMATS))})")
            continue
        files.append(ArchiveFile(meta.path, fmt, utc_iso_of_epoch(meta.last_updated_in_seconds or 0),
                                 meta.size_in_bytes or 0))
    return files


_REUTERS_OPEN = re.compile(rb"<REUTERS\b")
_REUTERS_CLOSE = b"</REUTERS>"


def split_reuters(data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """(1-based line of the element, element bytes, closed) for every <REUTERS>
    element. An element left unclosed (a truncated download) runs to the next
    opening tag or the end of the file and comes out with closed=False."""
    openings = [m.start() for m in _REUTERS_OPEN.finditer(data)] + [len(data)]
    line, last = 1, 0
    for start, next_start in zip(openings, openings[1:]):
        line += data.count(b"\n", last, start)
        last = start
        close = data.find(_REUTERS_CLOSE, start, next_start)
        if close < 0:
            yield line, data[start:next_start], False
        else:
            yield line, data[start:close + len(_REUTERS_CLOSE)], True


def split_json_array(data: bytes) -> list[bytes] | None:
    """Elements of a top-level JSON array as their exact original bytes, or
    None when the document is not a well-formed array (the parse stage then
    reports it as one record)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    if not text.startswith("[", pos):
        return None
    pos += 1
    items = []
    try:
        while True:
            while text[pos].isspace():
                pos += 1
            if text[pos] == "]":
                break
            _, end = decoder.raw_decode(text, pos)
            items.append(text[pos:end].encode("utf-8"))
            pos = end
            while text[pos].isspace():
                pos += 1
            if text[pos] == ",":
                pos += 1
            elif text[pos] != "]":
                return None
    except (ValueError, IndexError, RecursionError):
        # RecursionError: nested deeper than Python's stack; the parse stage
        # gives that document its own dead letter.
        return None
    return items if text[pos + 1:].strip() == "" else None


# A file of a whole-file format (or one JSONL line) is read up to this bound;
# beyond it the file is a dead letter holding its first bytes.
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
_CHUNK = 1024 * 1024
# What a damaged compressed stream raises: truncation (EOFError), a bad header
# or CRC (gzip.BadGzipFile, an OSError), corrupt deflate data (zlib.error); and
# what an unreadable local file raises (OSError).
_STREAM_DAMAGE = (EOFError, OSError, zlib.error)


def _is_damage(exc: BaseException, archive: ArchiveFile) -> bool:
    """A remote read error (gs://, s3://) may heal: it fails the bundle, which the
    runner retries, rather than become a dead letter."""
    return isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)) or "://" not in archive.path


def _damage(exc: BaseException, archive: ArchiveFile, at_byte: int, line: int | None = None) -> str:
    gzipped = archive.path.lower().endswith(".gz")
    if isinstance(exc, EOFError) and gzipped:
        what = "truncated gzip stream (it ends before its end-of-stream marker)"
    elif isinstance(exc, (gzip.BadGzipFile, zlib.error)):
        what = f"corrupt gzip stream ({exc})"
    else:
        what = f"read failed ({type(exc).__name__}: {exc})"
    where = f"line {line}, " if line is not None else ""
    return f"{what} at {where}byte {at_byte} of the {'decompressed ' if gzipped else ''}file"


class _Decompressed:
    """The file's bytes, gunzipped by Python's gzip module for ``.gz`` (which,
    unlike Beam's reader, reports a truncated stream instead of ending early)."""

    def __init__(self, path: str):
        self._raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        self._stream = gzip.GzipFile(fileobj=self._raw, mode="rb") if path.lower().endswith(
            ".gz") else self._raw

    def __enter__(self):
        return self

    def read(self, size: int) -> bytes:
        # read1: one decompression step, so that the bytes before a damage are
        # returned before the error rather than lost inside a buffered read.
        if self._stream is self._raw:
            return self._raw.read(size)
        return self._stream.read1(size)

    def __exit__(self, *exc):
        try:
            if self._stream is not self._raw:
                self._stream.close()
        finally:
            self._raw.close()


def _jsonl_records(archive: ArchiveFile, origin: Origin, max_line_bytes: int
                   ) -> Iterator[RawRecord]:
    line, offset = 1, 0  # the current line, and the byte where it starts
    pending: list[bytes] = []  # the current line's bytes so far (a list: lines may be long)
    held = 0  # their length
    overlong = False  # the current line passed the bound and was dead-lettered

    def record(data: bytes, damage: str | None = None) -> RawRecord:
        return RawRecord(data.rstrip(b"\r"), replace(origin, line=line), "json", damage)

    def too_long(data: bytes) -> RawRecord:
        return record(data[:max_line_bytes], f"line {line} is longer than the file bound of "
                      f"{max_line_bytes} bytes; its first {max_line_bytes} bytes are kept")

    try:
        with _Decompressed(archive.path) as stream:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                *ends, rest = chunk.split(b"\n")
                for piece in ends:
                    if not overlong:
                        data = b"".join(pending) + piece
                        if len(data) > max_line_bytes:
                            yield too_long(data)
                        elif data.strip():
                            yield record(data)
                    offset += held + len(piece) + 1
                    pending, held, overlong, line = [], 0, False, line + 1
                held += len(rest)
                if not overlong:
                    pending.append(rest)
                    if held > max_line_bytes:
                        yield too_long(b"".join(pending))
                        pending, overlong = [], True
    except _STREAM_DAMAGE as exc:
        if not _is_damage(exc, archive):
            raise
        yield record(b"".join(pending), _damage(exc, archive, offset + held, line))
        return
    if not overlong and (data := b"".join(pending)).strip():
        yield record(data)


def _read_bounded(archive: ArchiveFile, limit: int) -> tuple[bytes, str | None]:
    """(the file's bytes, damage): at most ``limit`` bytes are held."""
    chunks, size = [], 0
    try:
        with _Decompressed(archive.path) as stream:
            while chunk := stream.read(min(_CHUNK, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    data = b"".join(chunks)[:limit]
                    return data, (f"file is larger than the file bound of {limit} bytes "
                                  f"(--max-file-bytes); its first {limit} bytes are kept")
    except _STREAM_DAMAGE as exc:
        if not _is_damage(exc, archive):
            raise
        return b"".join(chunks), _damage(exc, archive, size)
    return b"".join(chunks), None


def read_archive_file(archive: ArchiveFile, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
                      ) -> Iterator[RawRecord]:
    origin = Origin(kind="file", path=archive.path, ingested_at=archive.ingested_at)
    if archive.format_hint == "jsonl":
        yield from _jsonl_records(archive, origin, max_file_bytes)
        return
    data, damage = _read_bounded(archive, max_file_bytes)
    if archive.format_hint == "sgm":
        closed, end = True, 0
        for index, (line, element, closed) in enumerate(split_reuters(data)):
            end = data.index(element, end) + len(element)
            yield RawRecord(element, replace(origin, line=line, item=index), "sgm",
                            None if closed else damage or (
                                f"unclosed <REUTERS> element starting at line {line} "
                                "(truncated file?)"))
        if damage and closed:  # the damage fell between elements: it still gets its record
            yield RawRecord(data[end:], origin, "sgm", damage)
    elif not damage and archive.format_hint == "json" and (
            items := split_json_array(data)) is not None:
        for index, item in enumerate(items):
            yield RawRecord(item, replace(origin, item=index), "json")
    else:
        yield RawRecord(data, origin, archive.format_hint, damage)


class ArchiveProgress:
    """Files and records done, rate and ETA, redrawn on one stderr line at most
    once a second. It lives in the worker process: on the local runner that is
    the process the user watches; on a cluster it only reaches worker logs."""

    def __init__(self, total_files: int, total_bytes: int, stream=None):
        self.total_files, self.total_bytes = total_files, max(total_bytes, 1)
        self.files = self.records = self.bytes = 0
        self._stream = stream or sys.stderr
        self._started = self._drawn = time.monotonic()

    def record_done(self) -> None:
        self.records += 1
        if self.records % 500 == 0:
            self.draw()

    def file_done(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        self.draw(force=self.files == self.total_files)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self.records / elapsed
        done = self.bytes / self.total_bytes
        eta = f"{elapsed * (1 - done) / done:,.0f} s" if done > 0 else "?"
        return (f"files {self.files}/{self.total_files}  records {self.records:,}  "
                f"{rate:,.0f} records/s  ETA {eta}")

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._drawn >= 1.0:
            self._drawn = now
            end = "\n" if self.files == self.total_files else ""
            print(f"\r{self.line()}\x1b[K", end=end, file=self._stream, flush=True)


_PROGRESS_LOCK = threading.Lock()
_PROGRESS: dict[tuple[int, int], ArchiveProgress] = {}


def _process_progress(total_files: int, total_bytes: int) -> ArchiveProgress:
    # One display per process, shared by the DoFn instances of all its threads.
    with _PROGRESS_LOCK:
        return _PROGRESS.setdefault((total_files, total_bytes),
                                    ArchiveProgress(total_files, total_bytes))


class _ReadArchiveFile(beam.DoFn):
    def __init__(self, total_files: int, total_bytes: int, progress: bool, max_file_bytes: int):
        self._totals, self._show = (total_files, total_bytes), progress
        self._max_file_bytes = max_file_bytes
        self._progress: ArchiveProgress | None = None

    def setup(self):
        if self._show:
            self._progress = _process_progress(*self._totals)

    def process(self, archive: ArchiveFile):
        for record in read_archive_file(archive, self._max_file_bytes):
            if self._progress:
                self._progress.record_done()
            yield record
        if self._progress:
            self._progress.file_done(archive.size)


class ReadArchiveFiles(beam.PTransform):
    """Archive files -> PCollection[RawRecord]; a bounded source."""

    def __init__(self, files: list[ArchiveFile], progress: bool = False,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES):
        super().__init__()
        self._files, self._progress = files, progress
        self._max_file_bytes = max_file_bytes

    def expand(self, pbegin):
        total_bytes = sum(f.size for f in self._files)
        return (pbegin
                | "ListFiles" >> beam.Create(self._files)
                # Spread files over workers before the (fused) read.
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadRecords" >> beam.ParDo(
                    _ReadArchiveFile(len(self._files), total_bytes, self._progress,
                                     self._max_file_bytes)))
