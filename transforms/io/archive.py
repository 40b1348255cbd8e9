"""Archive files (backfill): a file, directory or glob -> RawRecords.

Files are listed when the pipeline is built, so a wrong path fails at once
with a clear message. Each file is split into records by its syntax only
(JSONL lines, JSON array elements, Reuters <REUTERS> elements); a record
that cannot become a story is the parse stage's business, so the reader
never drops anything. Paths go through Beam's FileSystems, so gs:// and
s3:// work when Beam's gcp/aws extras are installed.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from schemas import Origin, RawRecord

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


def _utc_seconds(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_archive_files(spec: str) -> list[ArchiveFile]:
    """A file, a directory (searched recursively) or a glob -> the archive files, sorted."""
    pattern = spec
    explicit = not any(c in spec for c in "*?[")
    if explicit and _is_directory(spec):
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
        files.append(ArchiveFile(meta.path, fmt, _utc_seconds(meta.last_updated_in_seconds or 0),
                                 meta.size_in_bytes or 0))
    if not files:
        raise SourceError(f"no archive files found at {spec!r}")
    return sorted(files)


def _is_directory(path: str) -> bool:
    if "://" in path:
        return path.endswith("/")
    return os.path.isdir(path)


_REUTERS_ELEMENT = re.compile(rb"<REUTERS\b.*?</REUTERS>", re.S)


def split_reuters(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(1-based line of the element, element bytes) for every <REUTERS> element."""
    line, last = 1, 0
    for match in _REUTERS_ELEMENT.finditer(data):
        line += data.count(b"\n", last, match.start())
        last = match.start()
        yield line, match.group(0)


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
    except (ValueError, IndexError):
        return None
    return items if text[pos + 1:].strip() == "" else None


def read_archive_file(archive: ArchiveFile) -> Iterator[RawRecord]:
    origin = Origin(kind="file", path=archive.path, ingested_at=archive.ingested_at)
    with FileSystems.open(archive.path, compression_type=CompressionTypes.AUTO) as handle:
        if archive.format_hint == "jsonl":
            for number, line in enumerate(iter(handle.readline, b""), start=1):
                if line.strip():
                    yield RawRecord(line.rstrip(b"\r\n"), replace(origin, line=number), "json")
            return
        data = handle.read()
    if archive.format_hint == "sgm":
        for index, (line, element) in enumerate(split_reuters(data)):
            yield RawRecord(element, replace(origin, line=line, item=index), "sgm")
    elif archive.format_hint == "json" and (items := split_json_array(data)) is not None:
        for index, item in enumerate(items):
            yield RawRecord(item, replace(origin, item=index), "json")
    else:
        yield RawRecord(data, origin, archive.format_hint)


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
    def __init__(self, total_files: int, total_bytes: int, progress: bool):
        self._totals, self._show = (total_files, total_bytes), progress
        self._progress: ArchiveProgress | None = None

    def setup(self):
        if self._show:
            self._progress = _process_progress(*self._totals)

    def process(self, archive: ArchiveFile):
        for record in read_archive_file(archive):
            if self._progress:
                self._progress.record_done()
            yield record
        if self._progress:
            self._progress.file_done(archive.size)


class ReadArchiveFiles(beam.PTransform):
    """Archive files -> PCollection[RawRecord]; a bounded source."""

    def __init__(self, files: list[ArchiveFile], progress: bool = False):
        super().__init__()
        self._files, self._progress = files, progress

    def expand(self, pbegin):
        total_bytes = sum(f.size for f in self._files)
        return (pbegin
                | "ListFiles" >> beam.Create(self._files)
                # Spread files over workers before the (fused) read.
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadRecords" >> beam.ParDo(
                    _ReadArchiveFile(len(self._files), total_bytes, self._progress)))
