"""Reuters-21578 SGML: one <REUTERS ...>...</REUTERS> block per record."""

from __future__ import annotations

import html
import re

from wirestream.schemas import Origin, Story, Subject
from wirestream.transforms.normalise.text import clean_text
from wirestream.transforms.parse.errors import ParseError, require_content

_ATTR = re.compile(r'(\w+)="([^"]*)"')
_OPEN = re.compile(r"<REUTERS\b([^>]*)>", re.S)
_CONTROL_ENTITY = re.compile(r"&#(?:[0-9]|[12][0-9]|3[01]|127);")
_D = re.compile(r"<D>(.*?)</D>", re.S)
_TEXT_OPEN = re.compile(r"<TEXT\b([^>]*)>")
# Wire copy marks a new paragraph by indenting its first line.
_PARAGRAPH_INDENT = re.compile(r"\n[ \t]{2,}(?=\S)")


def _between(block: str, start: int, close: str) -> str | None:
    """block[start:] up to the first ``close``, as a lazy ``(.*?)close`` matches it
    (str.find: the regex tries ``close`` at every character of a long body)."""
    end = block.find(close, start)
    return block[start:end] if end >= 0 else None


def _element(block: str, tag: str) -> str | None:
    """The text of the first <tag>...</tag>: after the first <tag>, or none (a
    later <tag> has no </tag> after it either)."""
    start = block.find(f"<{tag}>")
    return None if start < 0 else _between(block, start + len(tag) + 2, f"</{tag}>")


def _decode(sgml_text: str) -> str:
    # The corpus escapes <, > and & and sprinkles control-character entities
    # (&#2; &#3; &#5; ...) from the wire protocol; drop those, decode the rest.
    if "&" not in sgml_text:
        return sgml_text
    return html.unescape(_CONTROL_ENTITY.sub("", sgml_text))


def reuters_story(*, newid: str, date_raw: str | None, title: str, dateline: str, body: str,
                  topics: list[str], places: list[str], origin: Origin) -> Story:
    headline = clean_text(title)
    text = clean_text(_PARAGRAPH_INDENT.sub("\n\n", body))
    return require_content(Story(
        format="reuters-sgml", headline=headline, body=text, origin=origin,
        story_id=f"reuters21578:{newid}", source="Reuters", section=None,
        # The corpus is the Reuters English-language wire; its number tables
        # ("Shr 45 cts vs 58 cts") would otherwise be detected as sv or ca.
        published_raw=date_raw, language_raw="en",
        subjects=[Subject(code=f"reuters-topic:{t}") for t in topics],
        place_labels=list(places), dateline=clean_text(dateline) or None))


def parse_reuters_sgml(payload: bytes, origin: Origin) -> Story:
    # The corpus is ASCII but for one Latin-1 byte (0xFC in reut2-017); Latin-1
    # is the historical encoding of this format, so it is decoded as such.
    try:
        block = payload.decode("utf-8")
    except UnicodeDecodeError:
        block = payload.decode("latin-1")
    opening = _OPEN.search(block)
    if not opening or "</REUTERS>" not in block:
        raise ParseError("not a Reuters-21578 <REUTERS> element")
    attrs = dict(_ATTR.findall(opening.group(1)))
    if "NEWID" not in attrs:
        raise ParseError("Reuters-21578 element without NEWID")
    text_open = _TEXT_OPEN.search(block)
    inner = _between(block, text_open.end(), "</TEXT>") if text_open else None
    if inner is None:
        raise ParseError("Reuters-21578 element without <TEXT>")
    text_type = dict(_ATTR.findall(text_open.group(1))).get("TYPE", "NORM")
    title = _element(inner, "TITLE") or ""
    dateline = _element(inner, "DATELINE") or ""
    if text_type == "UNPROC":
        body = inner  # no markup inside: the whole text is the story
    elif text_type == "BRIEF":
        body = ""  # headline-only flash; the corpus pads it with "Blah blah blah."
    else:
        body = _element(inner, "BODY") or ""

    def labels(tag: str) -> list[str]:
        return [d.strip() for d in _D.findall(_element(block, tag) or "")]

    return reuters_story(newid=attrs["NEWID"], date_raw=_element(block, "DATE"),
                         title=_decode(title), dateline=_decode(dateline), body=_decode(body),
                         topics=labels("TOPICS"), places=labels("PLACES"), origin=origin)
