"""Word tokens and a phrase matcher shared by every tagger.

Text and gazetteer names go through the same tokenizer, so "U.S." in a story
meets "U.S." in a gazetteer as the token "US", "Russia's" meets "Russia" and
"Guinea-Bissau" meets "Guinea Bissau". Matching is one Aho-Corasick pass over
a story's tokens per index (no big regex alternations), so its cost does not
grow with the gazetteers.
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import Generic, Iterable, Optional, TypeVar

import ahocorasick

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

# A phrase's tokens are spelt to the automaton as codes of a few characters,
# the i-th character of a code taken from the i-th of separate alphabets, so a
# match can only start at a token's first character and covers whole tokens.
# (One character per token would be shorter, but the automaton's nodes look
# their children up one by one, and the root would have one per token.)
_ALPHABET_SIZE = 64
_ALPHABETS_START = 0x100
# Code 0 is no phrase's token: every other token, and every clause break.
_OTHER_TOKEN = 0


def _spell(code: int, width: int) -> str:
    chars = []
    for position in range(width):
        code, digit = divmod(code, _ALPHABET_SIZE)
        chars.append(chr(_ALPHABETS_START + position * _ALPHABET_SIZE + digit))
    return "".join(chars)


class PhraseIndex(Generic[T]):
    """Longest-match look-up of token phrases with one Aho-Corasick automaton
    (pyahocorasick) over the token sequence, built on the first scan."""

    def __init__(self) -> None:
        self._phrases: dict[tuple[str, ...], list[T]] = {}
        self._first_tokens: set[str] = set()
        self._matcher: Optional[tuple[dict[Optional[str], str], int, str, ahocorasick.Automaton]] = None

    def add(self, phrase: tuple[str, ...], value: T) -> None:
        if not phrase:
            return
        values = self._phrases.get(phrase)
        if values is None:
            values = self._phrases[phrase] = []
            self._first_tokens.add(phrase[0])
            self._matcher = None
        values.append(value)

    def starts(self, token: str) -> bool:
        return token in self._first_tokens

    def get(self, phrase: tuple[str, ...]) -> list[T]:
        return self._phrases.get(phrase, [])

    def _build(self) -> tuple[dict[Optional[str], str], int, str, ahocorasick.Automaton]:
        codes: dict[str, int] = {}
        for phrase in self._phrases:
            for token in phrase:
                codes.setdefault(token, len(codes) + 1)
        width = 1
        while _ALPHABET_SIZE ** width <= len(codes):
            width += 1
        spelling = {token: _spell(code, width) for token, code in codes.items()}
        automaton = ahocorasick.Automaton()
        for phrase, values in self._phrases.items():
            automaton.add_word("".join(map(spelling.__getitem__, phrase)), (len(phrase), values))
        automaton.make_automaton()
        return spelling, width, _spell(_OTHER_TOKEN, width), automaton

    def scan(self, tokens: Tokens) -> Iterable[tuple[int, int, list[T]]]:
        """Every non-overlapping longest match, left to right: (start, length, values)."""
        if not self._phrases:
            return
        if self._matcher is None:
            # Built once per process; a concurrent first scan builds its own copy.
            self._matcher = self._build()
        spelling, width, other, automaton = self._matcher
        text = "".join(map(spelling.get, tokens, repeat(other)))
        # iter() reports every match, overlapping; the leftmost-longest ones are
        # picked here: iter_long misses a short match after a failed longer one
        # (pyahocorasick 2.3, checked against a brute-force scan).
        longest: dict[int, tuple[int, list[T]]] = {}
        for end, (length, values) in automaton.iter(text):
            start = (end + 1) // width - length
            if length > longest.get(start, (0,))[0]:
                longest[start] = (length, values)
        free = 0
        for start in sorted(longest):
            if start >= free:
                length, values = longest[start]
                yield start, length, values
                free = start + length
