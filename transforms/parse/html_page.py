"""Article pages as their publishers serve them (full HTML), through trafilatura.

trafilatura finds the article's main text (no navigation, comments or
boilerplate) and the page's title, site name and address. The publication time
and the language are read from the page's own metadata, as the page states
them (JSON-LD `datePublished`, `article:published_time`, `<html lang>`...),
so the normaliser reads the time with its zone; trafilatura's own date, which
keeps only the day, is the fallback. A page with no article on it, or that is
not HTML at all, is a ParseError: a dead letter with the reason.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator, Optional

import trafilatura
from ftfy.fixes import fix_c1_controls
from trafilatura.utils import decode_file

from wirestream.schemas import Origin, Story
from wirestream.transforms.normalise.text import clean_text
from wirestream.transforms.parse.errors import ParseError, require_content

# Less main text than this is a caption, a teaser or a paywall stub, not an article.
MIN_ARTICLE_CHARS = 300
# Text still holding template placeholders was meant to be filled in by JavaScript.
_TEMPLATE_PLACEHOLDER = re.compile(r"\{\{.{1,200}?\}\}")
_PUBLISHED_META = (
    "article:published_time", "og:article:published_time", "datePublished", "pubdate",
    "publishdate", "publish-date", "date", "dc.date.issued", "dcterms.created", "dc.date",
    "sailthru.date")
_LANGUAGE_META = ("content-language", "language", "dc.language", "og:locale")
_TITLE_SEPARATOR = re.compile(r"(\s+[|\u2013\u2014-]\s+)")
_DATE_LABEL = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_HTML_START = re.compile(rb"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html)",
                         re.IGNORECASE | re.DOTALL)


def looks_like_html_page(payload: bytes) -> bool:
    """A whole HTML document: a doctype or an <html> element first."""
    return bool(_HTML_START.match(payload[:2048].lstrip(b"\xef\xbb\xbf")))


def _meta(tree, names: tuple[str, ...]) -> Optional[str]:
    """The first of `names` (in that order) among <meta name|property|itemprop|http-equiv>."""
    found: dict[str, str] = {}
    for meta in tree.iter("meta"):
        content = (meta.get("content") or "").strip()
        if not content:
            continue
        for attr in ("property", "name", "itemprop", "http-equiv"):
            key = (meta.get(attr) or "").strip().lower()
            if key:
                found.setdefault(key, content)
    return next((found[n.lower()] for n in names if n.lower() in found), None)


def _json_ld_values(node: Any, key: str) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get(key), str):
            yield node[key]
        for value in node.values():
            yield from _json_ld_values(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _json_ld_values(value, key)


def _json_ld(tree, key: str) -> Optional[str]:
    for script in tree.iter("script"):
        if (script.get("type") or "").lower() != "application/ld+json" or not script.text:
            continue
        try:
            value = next(_json_ld_values(json.loads(script.text), key), None)
        except ValueError:  # a broken JSON-LD block says nothing
            continue
        if value and value.strip():
            return value.strip()
    return None


def published_raw(tree, title_date: Optional[str], extracted_date: Optional[str]) -> Optional[str]:
    """The publication time as the page states it, zone included: its
    metadata, a <time> marked as the publication, a date closing the title
    ("... | DW | 10.06.2013"), the first <time datetime>; else trafilatura's date."""
    for value in (_json_ld(tree, "datePublished"), _meta(tree, _PUBLISHED_META)):
        if value:
            return value
    times = [t for t in tree.iter("time") if (t.get("datetime") or "").strip()]
    for time_el in times:
        if time_el.get("pubdate") is not None or time_el.get("itemprop") == "datePublished":
            return time_el.get("datetime").strip()
    if title_date:
        return title_date
    if times:
        return times[0].get("datetime").strip()
    return extracted_date  # trafilatura's (htmldate), the day only


def page_language(tree) -> Optional[str]:
    root = tree.getroottree().getroot()
    return ((root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang") or "").strip()
            or _meta(tree, _LANGUAGE_META))


def _headline(title: str, sitename: Optional[str], url: Optional[str]) -> tuple[str, Optional[str]]:
    """The page title without the site's trailing labels ("... | DW | 19.01.2020"),
    and the date among those labels, if any."""
    pieces = _TITLE_SEPARATOR.split(title.strip())  # [text, separator, text, ...]
    site = f"{sitename or ''} {url or ''}".lower()
    date_label = None
    while len(pieces) > 1 and (pieces[-1].strip().lower() in site
                               or not re.search(r"[^\W\d_]", pieces[-1])):
        if _DATE_LABEL.fullmatch(pieces[-1].strip()):
            date_label = pieces[-1].strip()
        pieces = pieces[:-2]
    return "".join(pieces).strip(), date_label


def parse_html_page(payload: bytes, origin: Origin) -> Story:
    if not looks_like_html_page(payload):
        raise ParseError("malformed HTML: no <html> document (expected a doctype or <html> first)")
    # Decoded by trafilatura's own charset detection; C1 controls repaired as
    # clean_text repairs them (libxml2 would drop them: "s\x92engager").
    page = _XML_DECLARATION.sub("", fix_c1_controls(decode_file(payload)), count=1)
    tree = trafilatura.load_html(page)
    if tree is None or next(tree.iter("body"), None) is None:
        raise ParseError("malformed HTML: no document body could be read")
    document = trafilatura.bare_extraction(tree, with_metadata=True, include_comments=False,
                                           include_tables=False)
    text = (document.text or "").strip() if document is not None else ""
    if not text:
        raise ParseError("not an article: the page has no main text")
    if _TEMPLATE_PLACEHOLDER.search(text):
        raise ParseError("not an article: the page is an unrendered template (its text is filled "
                         "in by JavaScript)")
    if len(text) < MIN_ARTICLE_CHARS:
        raise ParseError(f"not an article: {len(text)} characters of main text "
                         f"(an article has at least {MIN_ARTICLE_CHARS})")
    title, title_date = _headline(document.title or "", document.sitename, document.url)
    headline = clean_text(title)
    if not headline:
        raise ParseError("not an article: the page has no title")
    paragraphs = [clean_text(line) for line in text.split("\n")]
    paragraphs = [p for p in paragraphs if p]
    links = {clean_text(a.text_content()) for a in tree.iter("a")}
    if sum(p in links for p in paragraphs) * 2 > len(paragraphs):
        raise ParseError("not an article: the main text is a list of links (an index page)")
    if paragraphs and paragraphs[0] == headline:  # trafilatura keeps the article's <h1>
        paragraphs = paragraphs[1:]
    return require_content(Story(
        format="html", headline=headline, body="\n\n".join(paragraphs), origin=origin,
        story_id=document.url, source=document.sitename, url=document.url,
        section=(document.categories or [None])[0],
        published_raw=published_raw(tree, title_date, document.date),
        language_raw=page_language(tree)))

