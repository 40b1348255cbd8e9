"""NewsML-G2 (news items, news messages, NITF or XHTML bodies), NITF, RSS 2.0 and Atom.

XML is parsed with defusedxml: no entity expansion (billion laughs), no
external entities or DTDs fetched, no network.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Iterator, Optional

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from wirestream.schemas import Origin, Story, Subject
from wirestream.transforms.normalise.text import clean_text, html_to_text
from wirestream.transforms.parse.errors import MAX_NESTING_DEPTH, ParseError, int_version, require_content

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_BLOCK = {"p", "hl1", "hl2", "li", "h1", "h2", "h3", "h4", "div", "br", "pre", "blockquote",
          "block", "td", "title"}


def local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def child(el: Optional[ET.Element], *path: str) -> Optional[ET.Element]:
    """Namespace-agnostic descent: child(item, "contentMeta", "headline")."""
    for name in path:
        if el is None:
            return None
        el = next((c for c in el if local(c.tag) == name), None)
    return el


def children(el: Optional[ET.Element], name: str) -> list[ET.Element]:
    return [] if el is None else [c for c in el if local(c.tag) == name]


def descendant(el: ET.Element, name: str) -> Optional[ET.Element]:
    return next((d for d in el.iter() if local(d.tag) == name), None)


def text_of(el: Optional[ET.Element]) -> Optional[str]:
    if el is None:
        return None
    text = "".join(el.itertext()).strip()
    return text or None


def block_text(el: Optional[ET.Element]) -> str:
    """Element content as text, with block elements (p, hl2, li...) as paragraphs."""
    if el is None:
        return ""
    parts: list[str] = []

    def walk(node: ET.Element) -> None:
        block = local(node.tag) in _BLOCK
        if block:
            parts.append("\n\n")
        if node.text:
            parts.append(node.text)
        for sub in node:
            walk(sub)
            if sub.tail:
                parts.append(sub.tail)
        if block:
            parts.append("\n\n")

    walk(el)
    return clean_text("".join(parts))


def _html_text(value: Optional[str]) -> str:
    """A field the format declares HTML (RSS description, Atom type="html",
    inlineData text/html): the XML parser has decoded one level of entities,
    the HTML reader decodes the markup's own, once."""
    return html_to_text(value) if value else ""


def _atom_text(el: Optional[ET.Element]) -> str:
    """Atom text constructs say what they hold: type text (default), html or xhtml."""
    if el is None:
        return ""
    kind = el.get("type", "text")
    if kind == "xhtml":
        return block_text(el)
    if kind == "html" or kind.endswith("html"):
        return _html_text(text_of(el))
    return clean_text(text_of(el) or "")


def _qcode_value(qcode: Optional[str]) -> Optional[str]:
    return qcode.split(":", 1)[-1] if qcode else None


# --- NewsML-G2 and NITF -------------------------------------------------------

def _nitf_parts(nitf: ET.Element) -> tuple[str, str]:
    body = child(nitf, "body")
    headline = text_of(descendant(body, "hl1")) if body is not None else None
    if not headline:
        headline = text_of(child(nitf, "head", "title"))
    content = descendant(nitf, "body.content")
    return clean_text(headline or ""), block_text(content)


def _newsml_body(item: ET.Element) -> str:
    content_set = child(item, "contentSet")
    if content_set is None:
        return ""
    for content in content_set:
        kind = local(content.tag)
        if kind == "inlineXML":
            nitf = descendant(content, "nitf")
            if nitf is not None:
                return _nitf_parts(nitf)[1]
            html_body = descendant(content, "body")
            return block_text(html_body if html_body is not None else content)
        if kind == "inlineData":
            if "html" in (content.get("contenttype") or ""):
                return _html_text(content.text)
            return clean_text(content.text or "")
    return ""


def newsml_item_story(item: ET.Element, origin: Origin, default_lang: Optional[str]) -> Story:
    item_meta, content_meta = child(item, "itemMeta"), child(item, "contentMeta")
    provider = child(item_meta, "provider")
    source = None
    if provider is not None:
        source = text_of(child(provider, "name")) or _qcode_value(provider.get("qcode")) \
            or provider.get("uri")
    if not source:
        info = child(content_meta, "infoSource")
        source = text_of(child(info, "name")) if info is not None else None
    subjects, places = [], []
    for subject in children(content_meta, "subject"):
        name = text_of(child(subject, "name"))
        if subject.get("qcode"):
            subjects.append(Subject(code=subject.get("qcode"), name=name))
        if subject.get("type") == "cpnat:geoArea" and name:
            places.append(name)
    for located in children(content_meta, "located"):
        name = text_of(child(located, "name"))
        if name:
            places.append(name)
    lang_el = child(content_meta, "language")
    headline = text_of(child(content_meta, "headline"))
    body = _newsml_body(item)
    if not headline:
        nitf = descendant(item, "nitf")
        headline = _nitf_parts(nitf)[0] if nitf is not None else ""
    if not body:
        item_class = child(item_meta, "itemClass")
        raise ParseError(f"NewsML-G2 item {item.get('guid')!r} has no text content (itemClass "
                         f"{item_class.get('qcode') if item_class is not None else None})")
    return require_content(Story(
        format="newsml-g2", headline=clean_text(headline or ""), body=body, origin=origin,
        story_id=item.get("guid"), version=int_version(item.get("version")), source=source,
        section=text_of(child(child(item_meta, "service"), "name")),
        dateline=text_of(child(content_meta, "dateline")),
        published_raw=text_of(child(item_meta, "firstCreated"))
        or text_of(child(content_meta, "contentCreated"))
        or text_of(child(item_meta, "versionCreated")),
        updated_raw=text_of(child(item_meta, "versionCreated")),
        language_raw=(lang_el.get("tag") if lang_el is not None else None)
        or item.get(XML_LANG) or default_lang,
        subjects=subjects, place_labels=places))


def _nitf_story(nitf: ET.Element, origin: Origin) -> Story:
    headline, body = _nitf_parts(nitf)
    docdata = descendant(nitf, "docdata")
    doc_id = descendant(docdata, "doc-id") if docdata is not None else None
    issued = descendant(docdata, "date.issue") if docdata is not None else None
    return require_content(Story(
        format="newsml-g2", headline=headline, body=body, origin=origin,
        story_id=doc_id.get("id-string") if doc_id is not None else None,
        published_raw=issued.get("norm") if issued is not None else None,
        language_raw=nitf.get(XML_LANG) or nitf.get("lang")))


# --- RSS 2.0 and Atom -----------------------------------------------------------

def _channel_facts(channel: Optional[ET.Element]) -> tuple[Optional[str], Optional[str]]:
    """(title, language) of an RSS channel: looked up once per feed, not per item
    (a channel's children are its items, so a search per item is quadratic)."""
    return text_of(child(channel, "title")), text_of(child(channel, "language"))


def _rss_item_story(item: ET.Element, origin: Origin,
                    channel: tuple[Optional[str], Optional[str]]) -> Story:
    encoded = next((c for c in item if local(c.tag) == "encoded"), None)
    category = child(item, "category")
    return require_content(Story(
        format="rss", headline=clean_text(text_of(child(item, "title")) or ""),
        body=_html_text(text_of(encoded) or text_of(child(item, "description"))),
        origin=origin, story_id=text_of(child(item, "guid")) or text_of(child(item, "link")),
        source=text_of(child(item, "source")) or channel[0],
        url=text_of(child(item, "link")), section=text_of(category),
        published_raw=text_of(child(item, "pubDate")) or text_of(child(item, "date")),
        language_raw=channel[1]))


def _atom_link(entry: ET.Element) -> Optional[str]:
    links = children(entry, "link")
    for link in links:
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link.get("href")
    return links[0].get("href") if links else None


def _atom_entry_story(entry: ET.Element, origin: Origin, feed: Optional[ET.Element]) -> Story:
    content = child(entry, "content")
    if content is None:
        content = child(entry, "summary")
    body = _atom_text(content)
    source = text_of(child(child(entry, "source"), "title")) or (
        text_of(child(feed, "title")) if feed is not None else None)
    category = child(entry, "category")
    return require_content(Story(
        format="atom", headline=_atom_text(child(entry, "title")), body=body,
        origin=origin, story_id=text_of(child(entry, "id")), source=source,
        url=_atom_link(entry), section=category.get("term") if category is not None else None,
        published_raw=text_of(child(entry, "published")) or text_of(child(entry, "updated")),
        updated_raw=text_of(child(entry, "updated")),
        language_raw=entry.get(XML_LANG) or (feed.get(XML_LANG) if feed is not None else None)))


# --- Dispatch ----------------------------------------------------------------------

def _items(root: ET.Element) -> tuple[str, list[ET.Element]]:
    kind = local(root.tag)
    if kind == "newsItem":
        return "newsml", [root]
    if kind == "newsMessage":
        # A message's stories are its newsItems; packageItems only list them.
        return "newsml", [i for i in root.iter() if local(i.tag) == "newsItem"]
    if kind == "rss":
        return "rss", children(child(root, "channel"), "item")
    if kind == "RDF":  # RSS 1.0
        return "rss", children(root, "item")
    if kind == "feed":
        return "atom", children(root, "entry")
    if kind == "entry":
        return "atom", [root]
    if kind == "nitf" or descendant(root, "nitf") is not None:
        return "nitf", [root if kind == "nitf" else descendant(root, "nitf")]
    raise ParseError(f"unknown XML document type <{kind}> (expected NewsML-G2, NITF, RSS or Atom)")


def _too_deep(root: ET.Element) -> bool:
    level = [(root, 1)]
    while level:  # iterative: the text walkers below recurse, so depth is bounded first
        element, depth = level.pop()
        if depth > MAX_NESTING_DEPTH:
            return True
        level.extend((sub, depth + 1) for sub in element)
    return False


def parse_xml_document(payload: bytes, origin: Origin) -> Iterator[Story | tuple[int, bytes, str]]:
    try:
        root = SafeET.fromstring(payload)
    except DefusedXmlException as exc:
        raise ParseError(f"unsafe XML refused: {type(exc).__name__} ({exc})") from None
    except ET.ParseError as exc:
        raise ParseError(f"malformed XML: {exc}") from None
    if payload.count(b"<") > MAX_NESTING_DEPTH and _too_deep(root):
        raise ParseError(f"XML nested deeper than {MAX_NESTING_DEPTH} elements")
    kind, items = _items(root)
    if not items:
        raise ParseError(f"XML <{local(root.tag)}> holds no stories")
    many = len(items) > 1
    channel = _channel_facts(child(root, "channel")) if kind == "rss" else None
    for index, item in enumerate(items):
        item_origin = origin.with_item(index) if many else origin
        try:
            if kind == "newsml":
                story = newsml_item_story(item, item_origin, root.get(XML_LANG))
            elif kind == "rss":
                story = _rss_item_story(item, item_origin, channel)
            elif kind == "atom":
                story = _atom_entry_story(item, item_origin, root if root is not item else None)
            else:
                story = _nitf_story(item, item_origin)
        except ParseError as exc:
            if not many:
                raise
            yield index, ET.tostring(item, encoding="utf-8"), str(exc)
            continue
        if many:
            # Its own bytes, not the whole feed's: the size limit is per story, and
            # a story carried through the stages should not drag its feed along.
            story.raw = ET.tostring(item, encoding="utf-8")
        yield story
