"""Parse stage: one raw payload -> canonical Story objects, or a DeadLetter.

The format is taken from the archive file's extension when there is one,
else sniffed from the payload (Kafka). A container (a JSON array already
split by the reader, a NewsML-G2 news message, an RSS or Atom feed) yields
one output per item, and each item is accounted for on its own: a story or
a dead letter, never nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Union

from wirestream.schemas import DeadLetter, RawRecord, Story
from wirestream.transforms.parse.errors import ParseError
from wirestream.transforms.parse.html_page import looks_like_html_page, parse_html_page
from wirestream.transforms.parse.json_formats import parse_json_story
from wirestream.transforms.parse.plaintext import parse_plain_text
from wirestream.transforms.parse.reuters import parse_reuters_sgml
from wirestream.transforms.parse.xml_formats import parse_xml_document

__all__ = ["ParseError", "ParseSettings", "parse_record", "sniff_format"]


@dataclass(frozen=True)
class ParseSettings:
    # Wire stories are a few KB; anything far larger is a feed dump or an attack.
    # The limit is per story: a feed or news message holding many stories may be
    # up to max_document_bytes (the archive reader's file bound), each story in
    # it held to max_payload_bytes.
    max_payload_bytes: int = 5 * 1024 * 1024
    max_document_bytes: int = 256 * 1024 * 1024


_BOM = b"\xef\xbb\xbf"


def sniff_format(payload: bytes, hint: str | None = None) -> str:
    """-> 'json', 'xml', 'sgm', 'html' or 'txt'; raises ParseError when nothing fits."""
    if hint in ("json", "jsonl"):
        return "json"
    if hint in ("xml", "sgm", "txt", "html"):
        return hint
    if looks_like_html_page(payload):
        return "html"
    head = payload[:512].lstrip(_BOM).lstrip()
    if head[:1] in (b"{", b"["):
        return "json"
    if head.startswith(b"<REUTERS"):
        return "sgm"
    if head[:1] == b"<":
        return "xml"
    if not head:
        raise ParseError("empty payload")
    if b"\x00" in payload[:4096]:
        raise ParseError("unknown format: binary payload")
    return "txt"


def decode_utf8(payload: bytes) -> str:
    try:
        return payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"invalid UTF-8 at byte {exc.start}") from None


def _parse_items(raw: RawRecord, fmt: str) -> Iterator[Story | tuple[int, bytes, str]]:
    if fmt == "json":
        yield from parse_json_story(decode_utf8(raw.payload), raw.origin)
    elif fmt == "xml":
        yield from parse_xml_document(raw.payload, raw.origin)
    elif fmt == "sgm":
        yield parse_reuters_sgml(raw.payload, raw.origin)
    elif fmt == "html":
        yield parse_html_page(raw.payload, raw.origin)
    else:
        yield parse_plain_text(decode_utf8(raw.payload), raw.origin)


def _may_hold_many(raw: RawRecord) -> bool:
    """Could the payload be a container of stories (a feed, a news message, a
    JSON array)? Only those are parsed beyond the per-story limit."""
    if raw.format_hint in ("xml", "json"):
        return True
    head = raw.payload[:512].lstrip(_BOM).lstrip()
    return raw.format_hint is None and head[:1] in (b"<", b"[")


def parse_record(raw: RawRecord, settings: ParseSettings = ParseSettings()
                 ) -> Iterator[Union[Story, DeadLetter]]:
    """Every item of the payload comes out as a Story or a DeadLetter.

    Format parsers yield a Story, or ``(item_index, item_raw, reason)`` for an
    item of a container that failed on its own; a ParseError fails the whole
    payload.
    """
    def dead(reason: str, payload: bytes = raw.payload, origin=raw.origin) -> DeadLetter:
        return DeadLetter(stage="parse", error=reason, raw=payload, origin=origin)

    if raw.damage:  # the reader could not read this record whole
        yield DeadLetter(stage="read", error=raw.damage, raw=raw.payload, origin=raw.origin)
        return
    size, limit = len(raw.payload), settings.max_payload_bytes
    if size > settings.max_document_bytes or (size > limit and not _may_hold_many(raw)):
        yield dead(f"payload too large: {size} bytes > limit "
                   f"{limit if size <= settings.max_document_bytes else settings.max_document_bytes}")
        return
    try:
        fmt = sniff_format(raw.payload, raw.format_hint)
        items = list(_parse_items(raw, fmt))
    except ParseError as exc:
        yield dead(str(exc))
        return
    count = len(items)
    if count == 1 and size > limit:  # one story after all: the limit is its own
        yield dead(f"payload too large: {size} bytes > limit {limit}")
        return
    for index, item in enumerate(items):
        if isinstance(item, Story):
            if not item.raw:
                item.raw = raw.payload
            if len(item.raw) > limit:
                yield dead(f"story too large: {len(item.raw)} bytes > limit {limit}", item.raw,
                           raw.origin.with_item(item.origin.item if item.origin.item is not None
                                                else index, count))
                continue
            if item.origin.item is not None:
                # A Kafka offset is fully written (and may be committed) once all its items are.
                item.origin = item.origin.with_item(item.origin.item, count)
            yield item
        else:
            index, item_raw, reason = item
            yield dead(reason, item_raw, raw.origin.with_item(index, count))
