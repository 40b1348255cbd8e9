"""Plain text as scraped from a web page: [section], headline, body paragraphs,
then optionally the page's list of related headlines."""

from __future__ import annotations

import re

from wirestream.schemas import Origin, Story
from wirestream.transforms.normalise.text import clean_text
from wirestream.transforms.parse.errors import ParseError, require_content

_BLOCKS = re.compile(r"\n[ \t]*\n+")
_SENTENCE_END = (".", "!", "?", "\"", "”", "’", "'", ":", ";", ")")
_RELATED_LABEL = re.compile(r"^(related( stories| articles| news)?|read more|see also)\s*:?\s*$", re.I)


def _is_headline_like(line: str) -> bool:
    line = line.strip()
    return 0 < len(line) <= 200 and not line.endswith(_SENTENCE_END)


# A sentence boundary inside a line: the line is prose, not a headline.
_INNER_SENTENCE_END = re.compile(r"[.!?][\"')\u201d\u2019]?\s+[A-Z\u00c0-\u024f]")
_MAX_STOPPED_HEADLINE = 150


def _is_headline_after_section(line: str, next_block: str) -> bool:
    """Under a section label, a headline may end with a full stop: some sites
    write headlines as sentences. It is then one sentence of 5 words or more
    (not a section label's length) on one line, shorter than the paragraph after it."""
    line = line.strip()
    if _is_headline_like(line):
        return True
    return (line.endswith((".", "!", "?")) and len(line) <= _MAX_STOPPED_HEADLINE
            and len(line.split()) >= 5
            and not _INNER_SENTENCE_END.search(line) and len(line) < len(next_block.strip()))


def _is_section_label(line: str) -> bool:
    # Sections are a few words ("Geopolitics", "World News"): no figures, no
    # Reuters company marks ("<OXOCO INC> YEAR LOSS" is a headline); nor a wire
    # headline in capitals ("INDIAN ROCKET LAUNCH FAILS").
    return (len(line) <= 40 and len(line.split()) <= 4 and not line.endswith(_SENTENCE_END)
            and not re.search(r"[\d<>]", line) and not (line.isupper() and " " in line.strip()))


def split_related_headlines(blocks: list[str]) -> tuple[list[str], list[str]]:
    """Trailing 'related stories' list -> (body blocks, related headlines).

    Pages list related headlines as consecutive short lines with no final
    punctuation; a body paragraph is one long line ending in punctuation. A
    single trailing line is only taken when a 'Related:' label announces it,
    since a one-line last paragraph without a full stop is common.
    """
    if len(blocks) < 2:
        return blocks, []
    lines = [ln.strip() for ln in blocks[-1].split("\n") if ln.strip()]
    labelled = len(blocks) >= 3 and _RELATED_LABEL.match(blocks[-2].strip())
    if lines and all(_is_headline_like(ln) for ln in lines) and (len(lines) >= 2 or labelled):
        rest = blocks[:-2] if labelled else blocks[:-1]
        return rest, lines
    if lines and _RELATED_LABEL.match(lines[0]):
        return blocks[:-1], [ln for ln in lines[1:] if _is_headline_like(ln)]
    return blocks, []


def parse_plain_text(text: str, origin: Origin) -> Story:
    blocks = [b.strip("\n") for b in _BLOCKS.split(text.replace("\r\n", "\n").strip()) if b.strip()]
    if not blocks:
        raise ParseError("empty text")
    section = None
    if len(blocks) >= 3 and "\n" not in blocks[0] and "\n" not in blocks[1] \
            and _is_section_label(blocks[0]) and _is_headline_after_section(blocks[1], blocks[2]):
        section, blocks = blocks[0].strip(), blocks[1:]
    headline, body_blocks = blocks[0], blocks[1:]
    if "\n" in headline or len(headline) > 300:
        # No headline line: the text is all body.
        headline, body_blocks = "", blocks
    body_blocks, related = split_related_headlines(body_blocks)
    return require_content(Story(
        format="text", headline=clean_text(headline), section=section,
        body=clean_text("\n\n".join(body_blocks)), origin=origin,
        related_headlines=[clean_text(r) for r in related]))
