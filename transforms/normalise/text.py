"""Text clean-up shared by parsing and normalisation.

`clean_text` is idempotent, so the normalise stage can apply it again to text
the parse stage already cleaned. It never decodes markup or entities: plain
text keeps every character ("<RD.AS>", "5 < 6 > 4", "AT&amp;T" as sent).
Markup is read, and its entities decoded exactly once, by `html_to_text`,
which the parsers call only for fields their format declares HTML.
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

import ftfy
import ftfy.fixes

from wirestream.transforms.compiled import CompiledKernels, ascii_rewritten

_BLOCK_TAGS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
               "blockquote", "tr", "pre", "hr", "ul", "ol", "table", "figure", "figcaption"}
_SKIP_TAGS = {"script", "style", "head", "noscript", "template"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


# Tags of HTML itself: "<p>" is markup, "<RD.AS>" or "<Shell U.K. Ltd's>" (how
# Reuters marks tickers and companies) is text.
_HTML_TAG = re.compile(
    r"<\s*/?\s*(?:p|br|div|span|a|b|i|u|em|strong|small|sub|sup|ul|ol|li|dl|dt|dd|h[1-6]|img|"
    r"figure|figcaption|blockquote|q|cite|table|thead|tbody|tr|td|th|pre|code|hr|section|article|"
    r"header|footer|aside|nav|main|iframe|script|style|noscript|html|body|head|title|meta|link|"
    r"picture|source|video|audio|time|abbr|mark|font|center)(?=[\s/>])[^>]*>", re.IGNORECASE)


def looks_like_html(text: str) -> bool:
    """For fields whose format does not say whether they hold HTML (agency
    JSON `content`, `description`, `summary`): markup only if it uses HTML's
    own tags."""
    return bool(_HTML_TAG.search(text))


def html_to_text(markup: str) -> str:
    """HTML fragment -> plain text with paragraphs separated by blank lines;
    character references decoded once, by HTML's own rules."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return clean_text("".join(parser.parts))


# Typographic quotes to ASCII, so that copies of a story differing only in
# quote style compare equal; guillemets are language typography and stay.
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"'})
# Invisible characters that only break words apart: soft hyphen, zero-width
# space, word joiner, BOM; and control characters other than \t \n. (Zero-width
# (non-)joiners stay: Persian and Indic spelling needs them.)
_INVISIBLE = re.compile(r"[\u00ad\u200b\u2060\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# "^M": a carriage return as rendered by the terminal that typed the wire copy;
# a run of them at once, so that cleaning clean text changes nothing ("^M^M "
# lost only its last one, and cleaned again became "").
_CARET_M = re.compile(r"(?:\^M)+(?=\s|$)")
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_PARA_BREAK = re.compile(r"\n\s*\n+")
_LINE_BREAK = re.compile(r"\s*\n\s*")
# What \s (and str.split) takes for whitespace among ASCII characters.
ASCII_WHITESPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
# The ASCII characters _INVISIBLE removes, but for "\t" and "\r" (checked apart).
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def repair_mojibake(text: str) -> str:
    """UTF-8 read as Latin-1/cp1252 ("CafÃ©" -> "Café"); ftfy changes text
    only when the repair is unambiguous. ASCII text cannot be mojibake. C1
    control characters are cp1252 read as Latin-1 ("s\x92engager"): they become
    the characters meant, as an HTML parser reads them, so that plain text and
    HTML forms of one story agree."""
    if text.isascii():
        return text
    return ftfy.fixes.fix_c1_controls(ftfy.fix_encoding(text))


def _is_clean_ascii(text: str) -> bool:
    """Whether ASCII `text` is already in clean_text's output form (single
    spaces, paragraphs split by exactly one blank line, nothing to remove), so
    that clean_text would return it unchanged: parse hands normalise clean text."""
    return (text == text.strip() and "  " not in text and "\t" not in text and "\r" not in text
            and "\n " not in text and " \n" not in text and "\n\n\n" not in text
            and "^M" not in text and text.count("\n") == 2 * text.count("\n\n")
            and not _ASCII_CONTROL.search(text))


# clean_text's ASCII outputs (which it returns unchanged), by identity: normalise
# re-cleans the text parse just cleaned. A bounded run parses a batch of stories
# before it normalises them: the limit holds the three texts of each story of
# several batches.
_CLEANED: dict[int, str] = {}
_CLEANED_LIMIT = 4096


def _remember(cleaned: str) -> str:
    # Cleaning an output again returns it as is. The dict holds the string, so
    # its id cannot be reused while it is in there.
    if cleaned.isascii():
        if len(_CLEANED) >= _CLEANED_LIMIT:
            _CLEANED.clear()
        _CLEANED[id(cleaned)] = cleaned
    return cleaned


def _ascii_layout(text: str) -> str:
    """The paragraph layout below for ASCII text whose only whitespace is " ",
    "\t" and "\n": a line's words joined by one space, the lines of a paragraph
    too, paragraphs (split by blank lines) by one blank line. One pass over the
    lines instead of four regex passes over the text."""
    paragraphs: list[str] = []
    words: list[str] = []
    for line in text.split("\n"):
        if line_words := line.split():
            words += line_words
        elif words:
            paragraphs.append(" ".join(words))
            words = []
    if words:
        paragraphs.append(" ".join(words))
    return "\n\n".join(paragraphs)


_KERNELS = CompiledKernels(globals())
# Shorter ASCII texts are laid out by _ascii_layout: the kernel's call costs more than it saves.
_COMPILED_LAYOUT_MIN = 200


@_KERNELS.kernel
def _ascii_cleaned_kernel(text, out):
    """clean_text of ASCII ``text`` (bytes) holding no "^", into ``out``; returns the
    length written. As the Python path: "\r\n" and a lone "\r" read as "\n", the
    controls _INVISIBLE removes dropped, then _ascii_layout's layout, in one pass: a
    paragraph's words joined by one space, paragraphs (split by blank lines) by one
    blank line."""
    written = 0
    words = False  # a word written yet
    space = False  # whitespace since the last word
    paragraph = False  # a blank line since the last word
    line_words = False  # a word on the line being read
    n = len(text)
    for i in range(n):
        c = text[i]
        if c == 13:  # "\r": the "\n" it is followed by, or one of its own
            if i + 1 < n and text[i + 1] == 10:
                continue
            c = 10
        if c == 10:
            if not line_words and words:
                paragraph = True
            line_words = False
            space = True
        elif c == 32 or c == 9:
            space = True
        elif c < 32 or c == 127:  # the controls _INVISIBLE removes ("\t" "\n" "\r" aside)
            continue
        else:
            if words:
                if paragraph:
                    out[written] = 10
                    out[written + 1] = 10
                    written += 2
                elif space:
                    out[written] = 32
                    written += 1
            out[written] = c
            written += 1
            words = line_words = True
            space = paragraph = False
    return written


def _ascii_cleaned(text: str) -> str:
    """clean_text of ASCII text that is not clean already. The compiled path once it is
    loaded (``load_kernels``: a bounded run's workers, warmed up): a process that never
    loads it (a parse-only run's workers, whose start it would delay more than it saves)
    never imports numba for it. Both give the same text."""
    # (A "^M" may be left once a control between its two characters is gone.)
    if "^" in text or len(text) < _COMPILED_LAYOUT_MIN or not _KERNELS.compiled:
        # ASCII needs no mojibake repair, NFC nor quote mapping. Once "\r" and
        # the controls (with \x0b, \x0c, \x1c-\x1f) are gone, " \t\n" are its
        # only whitespace (\s and str.split agree on them): _ascii_layout applies.
        return _ascii_layout(_without_caret_m(_INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))))
    # Each character written is one read, or "\n\n" two newlines read.
    return ascii_rewritten(_ascii_cleaned_kernel, text, len(text))


def load_kernels() -> None:
    """Loads (or compiles) the compiled kernel now: a process that forks workers does it
    once for all of them."""
    if not _KERNELS.compiled:
        _KERNELS.compile()
    _ascii_cleaned("Warm up  the kernel " * 20)


def _without_caret_m(text: str) -> str:
    # The regex finds no "^M" many times slower than str's search does (12 us in 700 characters).
    return _CARET_M.sub("", text) if "^M" in text else text


def clean_text(text: str) -> str:
    """NFC, repaired mojibake, ASCII quotes, collapsed spaces; paragraphs kept
    as blank-line breaks."""
    if _CLEANED.get(id(text)) is text:
        return text
    if text.isascii():
        if _is_clean_ascii(text):
            return _remember(text)
        return _remember(_ascii_cleaned(text))
    text = repair_mojibake(text).replace("\r\n", "\n").replace("\r", "\n")
    text = _without_caret_m(_INVISIBLE.sub("", unicodedata.normalize("NFC", text))).translate(_QUOTES)
    # Spaces collapsed over the whole text at once (they never include "\n"); a
    # paragraph's lines are then joined by one space, whitespace around each
    # line break dropped (a paragraph holds no blank line, so no empty line).
    paragraphs = (_LINE_BREAK.sub(" ", block).strip()
                  for block in _PARA_BREAK.split(_SPACES.sub(" ", text)))
    return _remember("\n\n".join(p for p in paragraphs if p))


# Agency sign-offs and end-of-copy marks that close a wire story.
_SIGN_OFF = re.compile(
    r"(?:reuters?|ap|afp|dpa|upi|ansa|efe|xinhua|tass|more|ends?|\(end\)|#{3}|-\s*0\s*-)\W*"
    r"|\((?:reporting|additional reporting|writing|editing|compiled) by\b[^)]*\)",
    re.IGNORECASE)
# The same sign-off run into the last paragraph when the copy had no blank line before it.
# 1987 copy signs off with "Reuter" (the agency is "Reuters" in prose); the
# plural only counts as a sign-off after a finished sentence.
_TRAILING_SIGN_OFF = re.compile(
    r"(?: +(?:Reuter|REUTER|reuter)|(?<=[.!?\"')]) +(?:Reuters|REUTERS))(?:\.\.\.)?\s*$")
_RELATED = re.compile(
    r"(?:related(?: stories| coverage| articles| news)?|read more|see also|more on this)\s*:\s*(.*)",
    re.IGNORECASE)
# What _RELATED can start with: "r", "s", "m" in any case, under re.IGNORECASE's
# Unicode folding ("\u017f", long s, matches "s"); other paragraphs skip the regex.
_RELATED_FIRST = frozenset("rRsSmM\u017f")
_RELATED_SEPARATOR = re.compile(r"[;|\u2022\n]")
_BULLETS = " -*\u2022\u25aa"
_MAX_RELATED_LINE = 200  # longer lines are story text, not a list of links


def strip_boilerplate(body: str) -> tuple[str, list[str]]:
    """Clean body -> (body without trailing sign-offs and "Related:" lists,
    the headlines those lists named)."""
    paragraphs = body.split("\n\n")
    related: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        m = _RELATED.match(paragraph) if paragraph[:1] in _RELATED_FIRST else None
        tail = paragraphs[i + 1:] if m else []
        if m and all(len(p) <= _MAX_RELATED_LINE for p in tail):
            items = [m.group(1)] if m.group(1) else []
            related = [item for text in items + tail
                       for part in _RELATED_SEPARATOR.split(text)
                       if (item := part.strip(_BULLETS)) and not _SIGN_OFF.fullmatch(item)]
            paragraphs = paragraphs[:i]
            break
    while paragraphs and _SIGN_OFF.fullmatch(paragraphs[-1]):
        paragraphs.pop()
    if paragraphs:
        paragraphs[-1] = _without_trailing_sign_off(paragraphs[-1])
    return "\n\n".join(paragraphs), related


def _without_trailing_sign_off(paragraph: str) -> str:
    """_TRAILING_SIGN_OFF.sub("", paragraph). The regex tried at every space of the
    paragraph costs more than this test of the words it needs, and than a search
    from where a sign-off would start: the run of spaces before the last word."""
    if "euter" not in paragraph and "EUTER" not in paragraph:
        return paragraph
    start = paragraph.rstrip().rfind(" ")
    while start > 0 and paragraph[start - 1] == " ":
        start -= 1
    m = _TRAILING_SIGN_OFF.search(paragraph, start) if start >= 0 else None
    return paragraph[:m.start()] + paragraph[m.end():] if m else paragraph
