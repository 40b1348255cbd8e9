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
from typing import Callable, Generic, Iterable, Mapping, Optional, TypeVar

import numpy as np

from wirestream.transforms.compiled import CompiledKernels, ascii_rewritten
from wirestream.transforms.normalise.text import ASCII_WHITESPACE

# A word (letters, with inner dots/apostrophes/ampersands: "U.S.", "O'Neill", "AT&T"),
# or a mark that ends a run of names: punctuation, a dash between spaces, a blank line.
# Possessive quantifiers: the same matches (nothing here ever backtracks), found sooner.
_WORD_OR_BREAK = re.compile(r"[^\W\d_]++(?:[.'’&][^\W\d_]++)*+\.?+|[,;:!?()\[\]\"“”«»—–]|\s-\s|\n\s*\n")
_POSSESSIVE = ("'s", "’s")
# A full stop after these does not end a sentence ("Mr. Putin", "Standard Oil Co. said").
_ABBREVIATIONS = frozenset({"Mr", "Mrs", "Ms", "Dr", "St", "Gen", "Sen", "Rep", "Gov", "Col", "Lt", "Jr", "Sr",
                            "No", "Co", "Corp", "Inc", "Ltd", "Bros", "Jan", "Feb", "Aug", "Sept", "Oct", "Nov",
                            "Dec", "Ft", "Mt", "Prof", "Sgt", "Capt", "Adm", "Rev", "Messrs"})
# What an item ending a sentence ("Kiev.") maps to: never a token, as tokens have no dots.
SENTENCE_END = "."

Tokens = list[Optional[str]]  # None marks a clause break

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict[K, V]):
    """key -> compute(key), computed on first sight. Words repeat, so mapping a text's
    items through ``map(memo.__getitem__, items)`` runs at C speed but for new words.
    Bounded: cleared when full, which only costs recomputing."""

    def __init__(self, compute: Callable[[K], V], size: int = 1 << 16) -> None:
        super().__init__()
        self._compute = compute
        self._size = size

    def __missing__(self, key: K) -> V:
        if len(self) >= self._size:
            self.clear()
        value = self[key] = self._compute(key)
        return value


def item_token(item: str) -> Optional[str]:
    """The token a matched item stands for: None for a mark, SENTENCE_END for a word
    whose full stop ends a sentence (the word is then item[:-1])."""
    if not item[0].isalpha():
        return None
    if item.endswith(_POSSESSIVE):
        item = item[:-2]
    if "." not in item:
        return item
    word = item.replace(".", "")
    # "Kiev." ends a sentence; "U.S." and "Mr." and initials do not.
    if item[-1] == "." and item.count(".") == 1 and len(word) > 1 and word not in _ABBREVIATIONS:
        return SENTENCE_END
    return word


# Sized for a large archive's words (Reuters-21578 has about 72,000 distinct items).
MEMO_SIZE = 1 << 17
_ITEM_TOKENS: Memo[str, Optional[str]] = Memo(item_token, MEMO_SIZE)


class _Unremembered:
    """item_token as a mapping that keeps nothing, for text read once (gazetteer names)."""

    __getitem__ = staticmethod(item_token)


# A token in lower case, for the keyword rules.
LOWER: Memo[Optional[str], Optional[str]] = Memo(lambda t: t.lower() if t is not None else None, MEMO_SIZE)


# All-ASCII text (most wire copy) is scanned for the same items by a compiled kernel, in
# half the time: the regex engine's cost per match is most of findall's. The classes of the
# ASCII characters the pattern names, as bits: a letter, a mark, what \s matches, what
# joins the parts of a word.
_LETTER, _MARK, _SPACE, _JOINER = 1, 2, 4, 8
_FULL_STOP, _DASH, _NEWLINE = ord("."), ord("-"), ord("\n")


def _ascii_classes() -> np.ndarray:
    classes = np.zeros(256, dtype=np.uint8)
    for chars, bit in ((b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", _LETTER), (b",;:!?()[]\"", _MARK),
                       (ASCII_WHITESPACE, _SPACE), (b".'&", _JOINER)):
        classes[list(chars)] |= bit
    return classes


_ASCII_CLASSES = _ascii_classes()
# Between two items in the kernel's output: a character no item holds.
_ITEM_SEPARATOR = "\0"
_KERNELS = CompiledKernels(globals())


@_KERNELS.kernel
def _ascii_items_kernel(text, out, classes):
    """_WORD_OR_BREAK's matches in ASCII ``text`` (bytes), left to right, copied to ``out``
    with a 0 between two; returns the length written."""
    size = len(text)
    i = 0
    written = 0
    while i < size:
        kind = classes[text[i]]
        end = -1
        if kind & _LETTER:  # a word: letters, then joiner + letters as long as they come, then a "."
            end = i + 1
            while end < size and classes[text[end]] & _LETTER:
                end += 1
            while end + 1 < size and classes[text[end]] & _JOINER and classes[text[end + 1]] & _LETTER:
                end += 2
                while end < size and classes[text[end]] & _LETTER:
                    end += 1
            if end < size and text[end] == _FULL_STOP:
                end += 1
        elif kind & _MARK:  # a mark
            end = i + 1
        elif kind & _SPACE:
            if i + 2 < size and text[i + 1] == _DASH and classes[text[i + 2]] & _SPACE:  # a dash between spaces
                end = i + 3
            elif text[i] == _NEWLINE:  # a blank line: to the last newline of the run of spaces
                j = i + 1
                while j < size and classes[text[j]] & _SPACE:
                    if text[j] == _NEWLINE:
                        end = j + 1
                    j += 1
        if end < 0:
            i += 1
            continue
        if written:
            out[written] = 0
            written += 1
        while i < end:
            out[written] = text[i]
            written += 1
            i += 1
    return written


def _items(text: str) -> list[str]:
    """_WORD_OR_BREAK.findall(text)."""
    if not text.isascii():
        return _WORD_OR_BREAK.findall(text)
    if not _KERNELS.compiled:
        _KERNELS.compile()
    # Items and separators never outgrow twice the text.
    items = ascii_rewritten(_ascii_items_kernel, text, 2 * len(text), _ASCII_CLASSES)
    return items.split(_ITEM_SEPARATOR) if items else []


def load_kernels() -> None:
    """Loads (or compiles) the compiled kernel now: a process that forks workers does it
    once for all of them."""
    _items("Warm up.")


def tokenize(text: str, item_tokens: Mapping[str, Optional[str]] = _ITEM_TOKENS,
             word_form: Callable[[str], str] = str) -> Tokens:
    """Words with dots and possessive 's removed; None between clauses and sentences.
    ``item_tokens`` maps a matched item to its token (``item_token``, then ``word_form``);
    the words that end a sentence get their break after the look-ups."""
    items = _items(text)
    tokens = list(map(item_tokens.__getitem__, items))
    at = 0
    for inserted in range(tokens.count(SENTENCE_END)):
        at = tokens.index(SENTENCE_END, at)
        tokens[at:at + 1] = (word_form(items[at - inserted][:-1]), None)
        at += 2
    tokens.append(None)
    return tokens


def name_key(name: str) -> tuple[str, ...]:
    """The token tuple a gazetteer name is filed under."""
    return tuple(t for t in tokenize(name, _Unremembered()) if t)


_ASCII_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_ASCII_LOWER = bytes(range(ord("a"), ord("z") + 1))


def is_shouted(text: str) -> bool:
    """All-capitals text (Reuters headlines and datelines): capitalisation tells nothing there.
    Judged on the opening, which is enough and keeps long bodies cheap."""
    sample = text[:200]
    if sample.isascii():  # the same counts, in C: A-Z are ASCII's only upper-case letters
        raw = sample.encode("ascii")
        upper, lower = len(raw) - len(raw.translate(None, _ASCII_UPPER)), len(raw) - len(raw.translate(None, _ASCII_LOWER))
    else:
        upper, lower = sum(map(str.isupper, sample)), sum(map(str.islower, sample))
    return upper >= 4 and upper >= 9 * lower


T = TypeVar("T")


class PhraseIndex(Generic[T]):
    """Longest-match look-up of token phrases, keyed by first token."""

    def __init__(self) -> None:
        self._phrases: dict[tuple[str, ...], list[T]] = {}
        # first token -> (values of the one-token phrase or None,
        #                 (second tokens of longer phrases, their lengths longest first) or None)
        self._first: dict[str, tuple[Optional[list[T]], Optional[tuple[set[str], tuple[int, ...]]]]] = {}

    def add(self, phrase: tuple[str, ...], value: T) -> None:
        if not phrase:
            return
        values = self._phrases.get(phrase)
        if values is None:
            values = self._phrases[phrase] = []
            single, longer = self._first.get(phrase[0], (None, None))
            if len(phrase) == 1:
                single = values
            else:
                seconds, lengths = longer or (set(), ())
                seconds.add(phrase[1])
                longer = seconds, tuple(sorted({*lengths, len(phrase)}, reverse=True))
            self._first[phrase[0]] = single, longer
        values.append(value)

    def starts(self, token: Optional[str]) -> bool:
        return token in self._first

    def first_tokens(self) -> Iterable[str]:
        return self._first.keys()

    def get(self, phrase: tuple[str, ...]) -> list[T]:
        return self._phrases.get(phrase, [])

    def scan(self, tokens: Tokens, starts: Optional[Iterable[int]] = None,
             fold: Optional[Callable[[Optional[str]], Optional[str]]] = None) -> list[tuple[int, int, list[T]]]:
        """Every non-overlapping longest match, left to right: (start, length, values).
        ``starts``: ascending positions that hold every phrase start (others are not
        looked at), when the caller knows them; ``fold`` maps each token first (to lower case)."""
        first_of, phrases = self._first, self._phrases
        if starts is None:
            # The C-speed filter (no Python code per token) leaves only the few
            # tokens that can start a phrase.
            starts = compress(count(), map(first_of.__contains__, tokens if fold is None else map(fold, tokens)))
        found = []
        free = 0
        last = len(tokens) - 1
        for i in starts:
            if i < free:
                continue
            first = tokens[i] if fold is None else fold(tokens[i])
            entry = first_of.get(first)
            if entry is None:
                continue
            single, longer = entry
            match = None
            # Longer phrases only when the next token can continue one ("the" rarely does).
            if longer is not None and i < last and (tokens[i + 1] if fold is None else fold(tokens[i + 1])) in longer[0]:
                for n in longer[1]:
                    span = tokens[i:i + n]
                    values = phrases.get(tuple(span) if fold is None else tuple(map(fold, span)))
                    if values is not None:
                        match = i, n, values
                        break
            if match is None and single is not None:
                match = i, 1, single
            if match is not None:
                found.append(match)
                free = i + match[1]
        return found
