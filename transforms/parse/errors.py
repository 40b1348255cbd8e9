"""Errors and checks shared by the format parsers."""

from __future__ import annotations

from wirestream.schemas import DataError, Story


# No news format nests anywhere near this deep; deeper is an attack or garbage,
# and a data error (a dead letter), never a RecursionError.
MAX_NESTING_DEPTH = 100


class ParseError(DataError):
    """The payload (or one item of it) cannot become a story; the message is the
    dead letter's readable reason."""


def require_content(story: Story) -> Story:
    """A story needs a headline or a body; a headline-only flash (Reuters BRIEF)
    is a real story and is kept."""
    if not story.body and not story.headline:
        raise ParseError(f"empty story: no headline and no body ({story.format})")
    return story


def int_version(value) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None
