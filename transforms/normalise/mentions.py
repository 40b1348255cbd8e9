"""Dates the story mentions relative to its publication ("on Sunday",
"yesterday", "earlier this month", "last week", "three days ago"),
resolved to calendar dates in the source's zone.

Wire convention: a bare weekday names the most recent such day (today
included), since news reports what happened; it names the coming one after
"next" or "this", or when the clause speaks of the future ("will meet on
Friday"); "last Monday" is never today.
Periods resolve to their first day, with the period in `granularity`.
English only for now.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from wirestream.transforms.normalise.text import ASCII_WHITESPACE

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10}

_WEEKDAY = "|".join(WEEKDAYS)
_MENTION = re.compile(
    rf"\b(?:(?P<wd_mod>on|last|next|this|since|until|by|from|late on|early on)\s+)?"
    rf"(?P<weekday>{_WEEKDAY})\b"
    r"|\b(?P<day_word>today|yesterday|tomorrow|tonight)\b"
    r"|\b(?P<period_mod>last|this|next|earlier this|later this|early this|late last)\s+"
    r"(?P<period>week|month|year)\b"
    rf"|\b(?P<count>\d{{1,2}}|{'|'.join(_NUMBERS)})\s+(?P<unit>day|week|month|year)s?\s+ago\b")
# Matching lower-cased text is three times faster than re.IGNORECASE.
_MENTION_ANY_CASE = re.compile(_MENTION.pattern, re.IGNORECASE)
# Every mention ends in a word holding one of these ("monday", "days ago", ...),
# once; _MENTION is tried only just around them (_mentions).
_ANCHORS = ("day", "week", "month", "year", "tomorrow", "tonight")
# When no whitespace run this long (cleaned text has none) comes near an
# anchor, a mention starts at most _BACK characters before its anchor
# ("earlier this" + spaces + "wednes"), and trying _MENTION at a position reads
# at most _AHEAD characters past it ("three" + spaces + "months" + spaces +
# "ago" and the word boundary after).
_LONG_SPACE = re.compile(r"\s\s{19}")
# What \s matches among ASCII characters, each made a space: in ASCII text a run as long
# as _LONG_SPACE's is then found by a substring search, many times faster than the regex.
_ASCII_SPACES = bytes.maketrans(ASCII_WHITESPACE, b" " * len(ASCII_WHITESPACE))
_LONG_ASCII_SPACE = b" " * 20
_BACK, _AHEAD = 40, 64
# A future marker earlier in the same clause turns a bare weekday forward.
_FUTURE = re.compile(r"\b(?:will|shall|won't|'ll|is due|are due|due to|is scheduled|are scheduled|"
                     r"scheduled|is expected to|are expected to|plans? to|set to|to be held)\b")
_CLAUSE_START = re.compile(r"[.;!?]\s")
_LOOKBACK = 80  # characters of context searched for a future marker


def _months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _weekday(groups: dict[str, str], text: str, start: int, today: date) -> date:
    target = WEEKDAYS.index(groups["weekday"])
    modifier = groups.get("wd_mod", "")
    back = (today.weekday() - target) % 7
    if modifier == "last":
        return today - timedelta(days=back or 7)
    context = text[max(0, start - _LOOKBACK):start].lower()
    context = _CLAUSE_START.split(context)[-1]
    ahead = (target - today.weekday()) % 7
    if modifier == "this":
        return today + timedelta(days=ahead)
    if modifier == "next" or (modifier != "since" and _FUTURE.search(context)):
        return today + timedelta(days=ahead or 7)
    return today - timedelta(days=back)


def _period(modifier: str, period: str, today: date) -> date:
    step = {"last": -1, "late last": -1, "next": 1}.get(modifier, 0)
    if period == "week":
        return today - timedelta(days=today.weekday()) + timedelta(weeks=step)
    if period == "month":
        return _months_before(today, -step)
    return date(today.year + step, 1, 1)


def _ago(count: str, unit: str, today: date) -> date:
    n = int(count) if count.isdigit() else _NUMBERS[count]
    if unit == "day":
        return today - timedelta(days=n)
    if unit == "week":
        return today - timedelta(weeks=n)
    if unit == "month":
        return _months_before(today, n)
    return date(today.year - n, 1, 1)


def _has_long_space(text: str) -> bool:
    """Whether _LONG_SPACE is in ``text``."""
    if text.isascii():
        return _LONG_ASCII_SPACE in text.encode("ascii").translate(_ASCII_SPACES)
    return _LONG_SPACE.search(text) is not None


def _mentions(lowered: str) -> list[re.Match]:
    """list(_MENTION.finditer(lowered)), searching only near the anchors: the
    regex tried at every character of a story costs more than all the rest."""
    anchors = []
    for word in _ANCHORS:
        at = lowered.find(word)
        while at >= 0:
            anchors.append(at)
            at = lowered.find(word, at + 1)
    anchors.sort()
    found: list[re.Match] = []
    done = 0  # where finditer would search on from
    # One search of the whole text instead of one per anchor: cleaned text has no long space.
    long_space = bool(anchors) and _has_long_space(lowered)
    for at in anchors:
        if at < done:
            continue
        if long_space and _LONG_SPACE.search(lowered, max(0, at - _BACK - 19), at + _AHEAD + 20):
            return list(_MENTION.finditer(lowered))  # the bounds below do not hold
        # No match starts between `done` and the window, for it would hold an
        # earlier anchor; within the window, the end bound changes no attempt
        # that starts at or before the anchor, and only such a match is taken.
        m = _MENTION.search(lowered, max(done, at - _BACK), at + _AHEAD)
        if m is not None and m.start() <= at:
            found.append(m)
            done = m.end()
    return found


def dates_mentioned(text: str, today: date) -> list[dict[str, str]]:
    """Relative date references in `text` -> [{text, date, granularity}] in
    order of first appearance, one entry per distinct (text, date)."""
    found: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    lowered = text.lower()
    # A few characters change length in lower case (e.g. "İ"); positions must match.
    matches = (_mentions(lowered) if len(lowered) == len(text)
               else (m for m in _MENTION_ANY_CASE.finditer(text)))
    for m in matches:
        groups = {name: value.lower() for name, value in m.groupdict().items() if value}
        granularity = "day"
        if "weekday" in groups:
            resolved = _weekday(groups, text, m.start(), today)
        elif "day_word" in groups:
            resolved = today + timedelta(days={"yesterday": -1, "tomorrow": 1}.get(
                groups["day_word"], 0))
        elif "period" in groups:
            granularity = groups["period"]
            resolved = _period(groups["period_mod"], granularity, today)
        else:
            unit = groups["unit"]
            resolved = _ago(groups["count"], unit, today)
            granularity = "day" if unit in ("day", "week") else unit
        key = (text[m.start():m.end()], resolved.isoformat())
        if key not in seen:
            seen.add(key)
            found.append({"text": key[0], "date": key[1], "granularity": granularity})
    return found
