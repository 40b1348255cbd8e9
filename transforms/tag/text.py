"""Word tokens and a phrase matcher shared by every tagger.

Text and gazetteer names go through the same tokenizer, so "U.S." in a story
meets "U.S." in a gazetteer as the token "US", "Russia's" meets "Russia" and
"Guinea-Bissau" meets "Guinea Bissau". Matching is dictionary look-ups on
token tuples (no big regex alternations), which keeps a story well under a
millisecond however large the gazetteers grow.
"""

from __future__ import annotations

import re
from itertools import compress, count
from typing import Generic, Iterable, Optional, TypeVar

# A word (letters, with inner dots/apostrophes/ampersands: "U.S.", "O'Neill", "AT&T"),
# or a mark that ends a run of names: punctuation, a dash between spaces, a blank line.
_WORD_OR_BREAK = re.compile(r"[^\W\d_]+(?:[.'’&][^\W\d_]+)*\.?|[,;:!?()\[\]\"“”«»—–]|\s-\s|\n\s*\n")
_POSSESSIVE = ("'s", "’s")
# A full stop after these does not end a sentence ("Mr. Putin", "Standard Oil Co. said").
_ABBREVIATIONS = frozenset({"Mr", "Mrs", "Ms", "Dr", "St", "Gen", "Sen", "Rep", "Gov", "Col", "Lt", "Jr", "Sr",
                            "No", "Co", "Corp", "Inc", "Ltd", "Bros", "Jan", "Feb", "Aug", "Sept", "Oct", "Nov",
                            "Dec", "Ft", "Mt", "Prof", "Sgt", "Capt", "Adm", "Rev", "Messrs"})

Tokens = list[Optional[str]]  # None marks a clause break


def tokenize(text: str) -> Tokens:
    """Words with dots and possessive 's removed; None between clauses and sentences."""
    tokens: Tokens = []
    append = tokens.append
    for item in _WORD_OR_BREAK.findall(text):
        if not item[0].isalpha():
            append(None)
            continue
        if item.endswith(_POSSESSIVE):
            item = item[:-2]
        if "." not in item:
            append(item)
            continue
        word = item.replace(".", "")
        append(word)
        # "Kiev." ends a sentence; "U.S." and "Mr." and initials do not.
        if item[-1] == "." and item.count(".") == 1 and len(word) > 1 and word not in _ABBREVIATIONS:
            append(None)
    append(None)
    return tokens


def name_key(name: str) -> tuple[str, ...]:
    """The token tuple a gazetteer name is filed under."""
    return tuple(t for t in tokenize(name) if t)


def is_shouted(text: str) -> bool:
    """All-capitals text (Reuters headlines and datelines): capitalisation tells nothing there.
    Judged on the opening, which is enough and keeps long bodies cheap."""
    sample = text[:200]
    upper = sum(map(str.isupper, sample))
    return upper >= 4 and upper >= 9 * sum(map(str.islower, sample))


T = TypeVar("T")


class PhraseIndex(Generic[T]):
    """Longest-match look-up of token phrases, keyed by first token."""

    def __init__(self) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], list[T]]]] = {}
        self._phrases: dict[tuple[str, ...], list[T]] = {}

    def add(self, phrase: tuple[str, ...], value: T) -> None:
        if not phrase:
            return
        values = self._phrases.get(phrase)
        if values is None:
            values = self._phrases[phrase] = []
            entries = self._by_first.setdefault(phrase[0], [])
            entries.append((phrase, values))
            entries.sort(key=lambda e: -len(e[0]))
        values.append(value)

    def starts(self, token: str) -> bool:
        return token in self._by_first

    def match(self, tokens: Tokens, i: int) -> tuple[int, list[T]]:
        """(length, values) of the longest phrase starting at tokens[i], else (0, [])."""
        for phrase, values in self._by_first.get(tokens[i], ()):
            n = len(phrase)
            if n == 1 or tuple(tokens[i:i + n]) == phrase:
                return n, values
        return 0, []

    def get(self, phrase: tuple[str, ...]) -> list[T]:
        return self._phrases.get(phrase, [])

    def scan(self, tokens: Tokens) -> Iterable[tuple[int, int, list[T]]]:
        """Every non-overlapping longest match, left to right: (start, length, values)."""
        by_first = self._by_first
        free = 0
        # The C-speed filter (no Python code per token) leaves only the few
        # tokens that can start a phrase.
        for i in compress(count(), map(by_first.__contains__, tokens)):
            if i < free:
                continue
            length, values = self.match(tokens, i)
            if length:
                yield i, length, values
                free = i + length
