"""IPTC ninjs 1.x/2.x and agency JSON with the usual field aliases."""

from __future__ import annotations

import json
from typing import Any, Iterator

from wirestream.schemas import Origin, Story, Subject
from wirestream.transforms.normalise.text import clean_text, html_to_text, looks_like_html
from wirestream.transforms.parse.errors import MAX_NESTING_DEPTH, ParseError, int_version, require_content

# First alias present wins; the order is the most specific name first.
HEADLINE_KEYS = ("headline", "title", "hl")
BODY_KEYS = ("body", "text", "content", "body_text", "body_html", "articleBody", "description",
             "summary")
# How each body field holds its text. Plain text keeps every character (Reuters
# marks companies "<Shell U.K. Ltd's>" and tickers "<RD.AS>"); only fields named
# HTML are read as markup; the others are markup only if they use HTML's tags.
PLAIN_TEXT_KEYS = frozenset({"body", "text", "body_text", "articleBody"})
HTML_KEYS = frozenset({"body_html"})
PUBLISHED_KEYS = ("published", "pubDate", "published_at", "date", "firstcreated", "datePublished",
                  "versioncreated", "date_raw")
UPDATED_KEYS = ("updated", "modified", "dateModified", "versioncreated")
LANGUAGE_KEYS = ("lang", "language", "inLanguage")
SOURCE_KEYS = ("source", "agency", "provider", "publisher", "copyrightholder")
URL_KEYS = ("url", "link", "href")
ID_KEYS = ("id", "guid", "uri")
SECTION_KEYS = ("section", "category", "department")


def _text_of(value: Any) -> str | None:
    """Strings pass; {"name"|"value"|"text": ...} objects and lists give their first text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        for key in ("value", "name", "text", "#text", "href", "url"):
            if key in value:
                return _text_of(value[key])
        return None
    if isinstance(value, list):
        for item in value:
            text = _text_of(item)
            if text:
                return text
    return None


def _first(obj: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        text = _text_of(obj.get(key))
        if text not in (None, ""):
            return text
    return None


def _clean_body(text: str | None, kind: str) -> str:
    """`kind`: "text", "html", or "unknown" (a field whose format does not say)."""
    if not text:
        return ""
    if kind == "html" or (kind == "unknown" and looks_like_html(text)):
        return html_to_text(text)
    return clean_text(text)


def _first_body(obj: dict) -> tuple[str | None, str]:
    for key in BODY_KEYS:
        text = _text_of(obj.get(key))
        if text not in (None, ""):
            kind = "text" if key in PLAIN_TEXT_KEYS else "html" if key in HTML_KEYS else "unknown"
            return text, kind
    return None, "text"


def _content_kind(contenttype: str | None) -> str:
    return "html" if contenttype and "html" in contenttype.lower() else "text"


def is_ninjs(obj: dict) -> bool:
    if "ninjs" in str(obj.get("$schema", "")):
        return True
    return "uri" in obj and any(k in obj for k in (
        "headlines", "bodies", "body_text", "body_html", "descriptions", "versioncreated",
        "firstcreated"))


def _by_role(entries: Any, preferred: tuple[str, ...]) -> tuple[str | None, str]:
    """ninjs 2.x lists ({role, value, contenttype}): the preferred role, else
    the first; with "html" or "text" as its contenttype says."""
    if not isinstance(entries, list) or not entries:
        return None, "text"
    for role in preferred:
        for entry in entries:
            if isinstance(entry, dict) and entry.get("role") == role and entry.get("value"):
                return entry["value"], _content_kind(entry.get("contenttype"))
    for entry in entries:
        text = _text_of(entry)
        if text:
            return text, _content_kind(entry.get("contenttype") if isinstance(entry, dict) else None)
    return None, "text"


def _ninjs_story(obj: dict, origin: Origin) -> Story:
    headline = obj.get("headline") or _by_role(obj.get("headlines"), ("main", "default"))[0]
    body, kind = next(((value, kind) for value, kind in (
        (obj.get("body_html"), "html"), (obj.get("body_text"), "text"),
        _by_role(obj.get("bodies"), ("main", "text", "html", "default")),
        (obj.get("description_text"), "text"), (obj.get("description_html"), "html"),
        _by_role(obj.get("descriptions"), ("text", "summary", "main", "default"))) if value),
        (None, "text"))
    subjects = []
    for entry in obj.get("subjects") or obj.get("subject") or []:
        if isinstance(entry, dict):
            code = entry.get("uri") or entry.get("code") or entry.get("literal") or entry.get("qcode")
            if code:
                subjects.append(Subject(code=str(code), name=entry.get("name")))
    places = [_text_of(p) for p in (obj.get("places") or obj.get("place") or [])]
    infosource = _text_of(obj.get("infosources") or obj.get("infosource"))
    return Story(
        format="ninjs", headline=clean_text(headline or ""), body=_clean_body(body, kind),
        origin=origin, story_id=str(obj["uri"]), version=int_version(obj.get("version")),
        source=infosource or _text_of(obj.get("copyrightholder")) or _text_of(obj.get("by")),
        url=_first(obj, ("url", "link")),
        published_raw=_first(obj, ("firstcreated", "versioncreated", "contentcreated")),
        updated_raw=_text_of(obj.get("versioncreated")),
        language_raw=_text_of(obj.get("language")), subjects=subjects,
        place_labels=[p for p in places if p])


def _reuters21578_story(obj: dict, origin: Origin) -> Story:
    """The JSONL form of Reuters-21578 (one story per line with `newid`): the
    same story id and text as the SGML form, so both give the same event_id."""
    from wirestream.transforms.parse.reuters import reuters_story
    return reuters_story(newid=str(obj["newid"]), date_raw=obj.get("date_raw"),
                         title=obj.get("title") or "", dateline=obj.get("dateline") or "",
                         body=obj.get("body") or "", topics=obj.get("topics") or [],
                         places=obj.get("places") or [], origin=origin)


def _agency_story(obj: dict, origin: Origin) -> Story:
    related = obj.get("related_headlines") or obj.get("related") or []
    return Story(
        format="json", headline=clean_text(_first(obj, HEADLINE_KEYS) or ""),
        body=_clean_body(*_first_body(obj)), origin=origin,
        story_id=_first(obj, ID_KEYS), version=int_version(obj.get("version")),
        source=_first(obj, SOURCE_KEYS), url=_first(obj, URL_KEYS),
        section=_first(obj, SECTION_KEYS),
        related_headlines=[t for t in (_text_of(r) for r in related) if t] if isinstance(
            related, list) else [],
        published_raw=_first(obj, PUBLISHED_KEYS),
        updated_raw=_first(obj, UPDATED_KEYS), language_raw=_first(obj, LANGUAGE_KEYS))


def story_from_json_object(obj: Any, origin: Origin) -> Story:
    if not isinstance(obj, dict):
        raise ParseError(f"JSON story must be an object, got {type(obj).__name__}")
    if is_ninjs(obj):
        story = _ninjs_story(obj, origin)
    elif "newid" in obj and "date_raw" in obj:
        story = _reuters21578_story(obj, origin)
    else:
        story = _agency_story(obj, origin)
    return require_content(story)


def _nesting_depth(doc: Any) -> int:
    depth, level = 0, [(doc, 1)]
    while level:  # iterative: the point is to never recurse on hostile input
        value, at = level.pop()
        if isinstance(value, (dict, list)):
            depth = max(depth, at)
            level.extend((v, at + 1) for v in (value.values() if isinstance(value, dict) else value))
    return depth


def _too_deep() -> ParseError:
    return ParseError(f"JSON nested deeper than {MAX_NESTING_DEPTH} levels")


def parse_json_story(text: str, origin: Origin) -> Iterator[Story | tuple[int, bytes, str]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                         ) from None
    except RecursionError:  # deeper than the interpreter's stack
        raise _too_deep() from None
    # Counting brackets is C-fast; only a document with enough of them to be too
    # deep is walked.
    if (text.count("[") + text.count("{") > MAX_NESTING_DEPTH
            and _nesting_depth(doc) > MAX_NESTING_DEPTH):
        raise _too_deep()
    if not isinstance(doc, list):
        yield story_from_json_object(doc, origin)
        return
    if not doc:
        raise ParseError("empty JSON array: no stories")
    for index, obj in enumerate(doc):
        item_raw = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        try:
            story = story_from_json_object(obj, origin.with_item(index))
        except ParseError as exc:
            yield index, item_raw, str(exc)
            continue
        story.raw = item_raw  # the item's own bytes: the size limit is per story
        yield story
