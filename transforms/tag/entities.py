"""People and organisations: the gazetteers first, then a conservative fallback.

An unknown person is read only after a title ("Treasury Secretary James
Baker"); an unknown organisation only when its name ends with a designator
("Standard Oil Co") or starts with one ("Bank of Tokyo"). Within a story a
surname alone ("Baker said") is the person already named in full.
"""

from __future__ import annotations

from typing import Iterable, Optional

from wirestream.transforms.tag.gazetteer import Gazetteer
from wirestream.transforms.tag.geo import Mention
from wirestream.transforms.tag.text import MEMO_SIZE, Memo, Tokens

_CONNECTORS = frozenset({"of", "and", "for", "de", "du", "des", "der", "la", "el"})
# Capitalised only because they open a sentence.
_OPENERS = frozenset({"The", "A", "An", "In", "On", "At", "But", "And", "For", "With", "By", "From", "Under",
                      "After", "Before", "Its", "His", "Her", "Their", "This", "That", "If", "As", "While"})
_MAX_PERSON_WORDS = 3


def _is_capitalised(token: Optional[str]) -> bool:
    return token is not None and token[:1].isupper()


# A dictionary look-up per token rather than a call: capitalised[token].
_CAPITALISED: Memo[Optional[str], bool] = Memo(_is_capitalised, MEMO_SIZE)


def _titled_people(tokens: Tokens, starts: list[int], gaz: Gazetteer, covered: set[int]
                   ) -> Iterable[tuple[int, str]]:
    """Runs of two or three capitalised words right after a title word."""
    n = len(tokens)
    capitalised = _CAPITALISED
    for start, length, _ in gaz.person_titles.scan(tokens, starts):
        j = start + length
        run = []
        while j < n and len(run) < _MAX_PERSON_WORDS and capitalised[tokens[j]] and j not in covered \
                and not gaz.person_titles.starts(tokens[j]):
            run.append(tokens[j])
            j += 1
        if len(run) >= 2 and not (j < n and capitalised[tokens[j]]):
            yield start + length, " ".join(run)


def _designated_organisations(tokens: Tokens, designator_at: list[int], gaz: Gazetteer, covered: set[int]
                              ) -> Iterable[tuple[int, str]]:
    """Capitalised runs ending or starting with an organisation designator (at the
    positions ``designator_at``), legal suffixes dropped."""
    n = len(tokens)
    end = 0
    # Only a run that holds a designator can name an organisation, so start from those.
    designators = gaz.org_designators
    capitalised = _CAPITALISED
    for d in designator_at:
        if d < end or d in covered:
            continue
        i = d
        while i > end and i - 1 not in covered and (capitalised[tokens[i - 1]] or (
                i - 2 >= end and tokens[i - 1] in _CONNECTORS and capitalised[tokens[i - 2]]
                and tokens[i - 2] not in gaz.legal_suffixes
                and (tokens[i - 1] == "and" or tokens[i - 2] in designators))):
            i -= 1
        j, run = i, []
        while j < n and j not in covered:
            token = tokens[j]
            if capitalised[token]:
                run.append(token)
            elif token in _CONNECTORS and run and (run[-1] in designators or token == "and") \
                    and run[-1] not in gaz.legal_suffixes and capitalised[tokens[j + 1] if j + 1 < n else None]:
                # "Bank of Japan", "Securities and Exchange Commission", but not "Standard Oil Co and BP"
                run.append(token)
            else:
                break
            j += 1
        end = j
        while run and (run[0] in _OPENERS or run[0] in _CONNECTORS):
            run.pop(0)
        if len(run) >= 2 and (run[-1] in gaz.org_trailing or (run[0] in gaz.org_leading and run[1] == "of")):
            while len(run) > 1 and run[-1] in gaz.legal_suffixes:
                run.pop()
            yield i, " ".join(run)


def people_and_organisations(segments: Iterable[tuple[Tokens, list[int], list[int], list[Mention], bool]],
                             gaz: Gazetteer) -> tuple[list[str], list[str], list[set[int]]]:
    """segments: (tokens, the positions where a title may start, those of designators,
    gazetteer mentions in them, shouted). Names in order of first
    mention, and per segment the token positions taken by people found after a title
    (so "Secretary James Baker" is not also read as a place)."""
    people: dict[str, None] = {}
    organisations: dict[str, None] = {}
    titled_spans: list[set[int]] = []
    for tokens, title_starts, designator_starts, mentions, shouted in segments:
        titled_spans.append(set())
        found: list[tuple[int, str, str]] = []  # (position, kind, name)
        covered: set[int] = set()
        for mention in mentions:
            entry = mention.candidates[0]
            if entry.kind in ("person", "organisation"):
                found.append((mention.start, entry.kind, entry.name))
                covered.update(range(mention.start, mention.start + mention.length))
        if not shouted:  # capitals tell nothing in an all-capitals headline
            for start, name in _titled_people(tokens, title_starts, gaz, covered):
                found.append((start, "person", name))
                titled_spans[-1].update(range(start, start + name.count(" ") + 1))
            found.extend((start, "organisation", name)
                         for start, name in _designated_organisations(tokens, designator_starts, gaz, covered))
        for _, kind, name in sorted(found):
            (people if kind == "person" else organisations).setdefault(name)
    # "Baker" after "James Baker" is the same person.
    full_names = [p for p in people if " " in p]
    merged = [p for p in people if not any(f != p and f.endswith(" " + p) for f in full_names)]
    return merged, list(organisations), titled_spans
