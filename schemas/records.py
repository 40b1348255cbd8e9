"""The record types that flow through wirestream.

    RawRecord  --parse-->  Story  --normalise/dedup/tag-->  EventRecord
                    \\-->  DeadLetter (any stage)

Every type is a plain dataclass so stage logic can be tested without Beam.
`EventRecord.to_dict()` and `DeadLetter.to_dict()` produce exactly the
documents described by the JSON Schema files next to this module.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

SCHEMA_VERSION = "1.0"

# Fixed namespace so that event ids are stable across runs, runners and machines.
EVENT_NAMESPACE = uuid.UUID("6f1d5c3e-8b7a-5e2f-9c41-77a0e2b3d915")


@dataclass(frozen=True)
class Origin:
    """Where a record came from. File records carry path/line/item; Kafka
    records carry topic/partition/offset/key/headers/timestamp."""

    kind: str  # "file" or "kafka"
    ingested_at: str  # UTC, YYYY-MM-DDTHH:MM:SSZ: the reference time for relative dates
    path: Optional[str] = None
    line: Optional[int] = None  # 1-based line (jsonl) or line of the item start (sgm)
    item: Optional[int] = None  # 0-based index of the item inside its container
    topic: Optional[str] = None
    partition: Optional[int] = None
    offset: Optional[int] = None
    key: Optional[str] = None
    headers: Optional[dict[str, str]] = None
    timestamp: Optional[str] = None  # Kafka record timestamp, UTC ISO
    # How many items the payload held, with `item`: a Kafka offset is fully
    # written (and may be committed) once all its items are.
    item_count: Optional[int] = None

    def with_item(self, item: Optional[int], item_count: Optional[int] = None) -> "Origin":
        # A copy of the fields, not dataclasses.replace, which reads the class's fields
        # and runs the frozen __init__: a fifth of the time, once per story parsed.
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__, item=item, item_count=item_count)
        return copy

    def to_dict(self) -> dict[str, Any]:
        # As dataclasses.asdict without its deep copy of every value: the only
        # mutable field is the headers dict, copied here.
        d = {name: value for name in _ORIGIN_FIELDS if (value := getattr(self, name)) is not None}
        if self.headers is not None:
            d["headers"] = dict(self.headers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Origin":
        return cls(**d)


@dataclass(frozen=True)
class RawRecord:
    """One payload as read, before parsing. `format_hint` is the archive
    file's format (``jsonl``, ``json``, ``xml``, ``sgm``, ``txt``, ``html``) or None
    when the format must be sniffed (Kafka)."""

    payload: bytes
    origin: Origin
    format_hint: Optional[str] = None
    # Set by the reader when the input broke here (a truncated gzip stream, an
    # unclosed element): the payload is what could be read, and this says why.
    damage: Optional[str] = None


@dataclass(frozen=True)
class Subject:
    """A structured subject code given by the source (ninjs/NewsML-G2)."""

    code: str
    name: Optional[str] = None


@dataclass
class Story:
    """The canonical story every input format is mapped onto."""

    format: str  # ninjs, json, newsml-g2, rss, atom, reuters-sgml, text, html
    headline: str
    body: str
    origin: Origin
    story_id: Optional[str] = None
    version: Optional[int] = None
    source: Optional[str] = None
    url: Optional[str] = None
    section: Optional[str] = None
    dateline: Optional[str] = None
    related_headlines: list[str] = field(default_factory=list)
    published_raw: Optional[str] = None
    updated_raw: Optional[str] = None
    language_raw: Optional[str] = None
    subjects: list[Subject] = field(default_factory=list)
    place_labels: list[str] = field(default_factory=list)  # e.g. Reuters PLACES
    raw: bytes = b""  # the payload it came from, for a dead letter at the normalise stage


def content_digest(headline: str, body: str) -> str:
    return hashlib.sha256(f"{headline}\n\x1e{body}".encode("utf-8")).hexdigest()


def derive_event_id(source: Optional[str], story_id: Optional[str], version: Optional[int],
                    headline: str, body: str) -> str:
    """Deterministic id: the same story (same source, id, version and text)
    gets the same id whichever file, topic, runner or machine it came from,
    so replays upsert instead of duplicating."""
    key = "|".join([source or "", story_id or "", "" if version is None else str(version),
                    content_digest(headline, body)])
    return _uuid5_text(key)


_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def _uuid5_text(name: str) -> str:
    """str(uuid.uuid5(EVENT_NAMESPACE, name)) without building a UUID object
    (a third of the id's cost): SHA-1's first 16 bytes, version 5, RFC 4122 variant."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()
    h = digest[:16].hex()
    variant = (digest[8] & 0x3F) | 0x80
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant:02x}{h[18:20]}-{h[20:32]}"


@dataclass
class EventRecord:
    event_id: str
    story_id: str
    version: Optional[int]
    source: Optional[str]
    headline: str
    body: str
    url: Optional[str]
    section: Optional[str]
    related_headlines: list[str]
    published_at: Optional[str]
    published_raw: Optional[str]
    updated_at: Optional[str]
    language: str
    language_confidence: float
    language_declared: Optional[str]
    dates_mentioned: list[dict[str, str]]
    origin: Origin
    format: str
    dateline: Optional[str] = None
    cluster_id: Optional[str] = None
    is_duplicate: bool = False
    duplicate_of: Optional[str] = None
    similarity: float = 1.0
    update_of: Optional[str] = None
    cluster_revision: int = 0  # streaming re-emits a record with +1 when a late arrival changes its cluster
    tags: dict[str, list] = field(default_factory=lambda: {
        "countries": [], "places": [], "people": [], "organisations": [], "topics": [],
        "event_types": []})
    quality: list[str] = field(default_factory=list)
    language_region: Optional[str] = None
    subjects: list[Subject] = field(default_factory=list)
    place_labels: list[str] = field(default_factory=list)
    schema_version: str = SCHEMA_VERSION

    @property
    def record_key(self) -> str:
        return self.event_id

    # Carried between stages but not part of the published record.
    _INTERNAL = ("origin", "subjects", "place_labels")

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _PUBLISHED_FIELDS}
        d["origin"] = self.origin.to_dict()
        return d

    def primitives(self) -> dict[str, Any]:
        """Every field, internal ones too, as ``dataclasses.asdict`` gives them but
        without its deep copy of every value (three quarters of its time): for an
        encoder that reads the dict at once and keeps nothing (dedup's state coder)."""
        d = {name: getattr(self, name) for name in _RECORD_FIELDS}
        d["origin"] = {name: getattr(self.origin, name) for name in _ORIGIN_FIELDS}
        d["subjects"] = [dataclasses.asdict(s) for s in self.subjects]
        return d


_ORIGIN_FIELDS = tuple(f.name for f in dataclasses.fields(Origin))
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(EventRecord))
_PUBLISHED_FIELDS = tuple(f.name for f in dataclasses.fields(EventRecord)
                          if f.name not in EventRecord._INTERNAL)


class DataError(ValueError):
    """Bad input: the record cannot become an event record, and that is the
    input's fault. Any other exception in a stage is a code error (our bug)."""


@dataclass
class DeadLetter:
    stage: str  # read, parse, normalise, dedup, tag, write
    error: str
    raw: bytes
    origin: Origin
    schema_version: str = SCHEMA_VERSION
    error_kind: str = "data"  # "data": bad input; "code": an unexpected exception (our bug)
    traceback: Optional[str] = None  # of a code error

    @property
    def record_key(self) -> str:
        return self.dead_letter_id

    @property
    def dead_letter_id(self) -> str:
        # Stable across replays so that idempotent sinks keep one copy.
        ident = {k: v for k, v in self.origin.to_dict().items() if k != "ingested_at"}
        h = hashlib.sha256(self.stage.encode())
        h.update(json.dumps(ident, sort_keys=True).encode())
        h.update(self.raw)
        return h.hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        try:
            raw, encoding = self.raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            raw, encoding = base64.b64encode(self.raw).decode("ascii"), "base64"
        return {
            "dead_letter_id": self.dead_letter_id,
            "stage": self.stage,
            "error": self.error,
            "raw": raw,
            "raw_encoding": encoding,
            "origin": self.origin.to_dict(),
            "schema_version": self.schema_version,
            "error_kind": self.error_kind,
            "traceback": self.traceback,
        }
