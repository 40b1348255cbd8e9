"""Language of a story: the declared tag normalised, the text's language detected.

Detection uses langdetect's 55 language profiles (character 1-3-gram
frequencies from Wikipedia) but scores *every* n-gram of the text with the
same smoothed naive-Bayes model, instead of langdetect's random sampling of
n-grams in seven trials. That makes it deterministic by construction (no seed,
no dependence on process or order) and, with per-word score caching, more than
ten times cheaper, at equal or better accuracy (benchmarks/bench_normalise.py
measures both).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Optional

import numpy as np
import pycountry
from langdetect.detector import Detector
from langdetect.detector_factory import PROFILES_DIRECTORY
from langdetect.utils.ngram import NGram

from wirestream.transforms.cache import cache_path, mark_used, read_pickle, write_cached, write_pickle
from wirestream.transforms.compiled import CompiledKernels

UNDETERMINED = "und"

# langdetect profile names that are not plain ISO 639-1 codes. Its Norwegian
# profile was built from no.wikipedia.org, which is written in Bokmål.
_PROFILE_CODES = {"zh-cn": "zh", "zh-tw": "zh", "no": "nb"}

# langdetect's smoothing: each n-gram multiplies a language's probability by
# p(n-gram | language) + alpha / BASE_FREQ.
_SMOOTHING = Detector.ALPHA_DEFAULT / Detector.BASE_FREQ
# Posterior temperature: the raw naive-Bayes posterior is ~1.0 for almost any
# sentence; dividing the log-likelihoods by 3 spreads it so that the confidence
# is roughly calibrated on the Lingua sentences (>= 0.9 is right 99% of the time).
_TEMPERATURE = 3.0
# Words a word table holds before later calls start a fresh one.
_WORD_CACHE_LIMIT = 200_000
_EXCLUDED = np.float32(-1e9)
# The characters langdetect's normalisation maps every hangul syllable,
# hiragana and katakana character to.
_HANGUL, _HIRAGANA, _KATAKANA = "\uac00", "\u3042", "\u30a2"
# Scripts that only one of the profiles is written in (after langdetect's
# normalisation, every hangul syllable is _HANGUL): text wholly in one of them
# needs no statistics. Cyrillic, Arabic, Devanagari and han are shared.
_SINGLE_LANGUAGE_SCRIPTS = (
    ("\u0370", "\u03ff", "el"), ("\u1f00", "\u1fff", "el"), ("\u0590", "\u05ff", "he"),
    ("\u0980", "\u09ff", "bn"), ("\u0a00", "\u0a7f", "pa"), ("\u0a80", "\u0aff", "gu"),
    ("\u0b80", "\u0bff", "ta"), ("\u0c00", "\u0c7f", "te"), ("\u0c80", "\u0cff", "kn"),
    ("\u0d00", "\u0d7f", "ml"), ("\u0e00", "\u0e7f", "th"), (_HANGUL, _HANGUL, "ko"))
# Early stop: words are scored _CHUNK_WORDS at a time; once _PREFIX_LETTERS
# letters are read (a sentence or two), reading stops as soon as the leader's
# log-likelihood is _DECISIVE_GAP ahead of every other language (a posterior
# of 1 - 1e-15 at the temperature below, which rounds to 1.0). Against reading
# the whole text (1,000 characters), this gap changes no language on
# Reuters-21578 (one confidence: 0.9999 -> 1.0) and 2 of 6,370 six-sentence
# Lingua texts, at the same accuracy; it reads a third of a Reuters story's
# words, half of what a gap of 240 read. Smaller gaps change more decisions.
_CHUNK_WORDS = 16
_OPENING_WORDS = 3 * _CHUNK_WORDS
_PREFIX_LETTERS = 200
_DECISIVE_GAP = 120.0


@dataclass(frozen=True)
class DetectedLanguage:
    code: str  # ISO 639-1 or "und"
    confidence: float  # 0..1
    # Posterior of every language with at least 0.001, rounded; empty for "und".
    probabilities: tuple[tuple[str, float], ...] = ()
    # Letters the decision rests on (kana, hangul and han count three); 0 for "und".
    letters: int = field(default=0, compare=False)

    def probability(self, code: str) -> float:
        return dict(self.probabilities).get(code, 0.0)


class _CharClasses(dict):
    """str.translate table mapping each character to langdetect's class for it
    (punctuation and digits to space, all kana to one letter, ...), filled
    lazily so only the characters actually seen are ever computed."""

    def __missing__(self, code_point: int) -> str:
        self[code_point] = NGram.normalize(chr(code_point))
        return self[code_point]


# langdetect's class of each ASCII character is itself ASCII: ASCII text is
# mapped with bytes.translate, many times cheaper than str.translate's lookups
# (the upper half of the table is never used).
_ASCII_CLASSES = bytes(ord(NGram.normalize(chr(i))) for i in range(128)) + bytes(128)


def _letters(word: str) -> int:
    # A kana, hangul or han character carries about a syllable: count three letters.
    return len(word) * (3 if word[0] >= "\u3000" else 1)


def _build_profile_tables(profile_dir: str, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The n-grams as numbers (``_gram_key``), ascending, and the (n-grams x profiles)
    matrix of smoothed log-probabilities, a row per n-gram in that order: the compiled
    scoring of new words finds an n-gram's row by binary search."""
    index: dict[str, int] = {}
    cells: list[tuple[int, int, float]] = []
    for column, name in enumerate(names):
        with open(os.path.join(profile_dir, name), encoding="utf-8") as f:
            profile = json.load(f)
        totals = profile["n_words"]
        for gram, count in profile["freq"].items():
            if 1 <= len(gram) <= 3:
                row = index.setdefault(gram, len(index))
                cells.append((row, column, count / totals[len(gram) - 1]))
    prob = np.zeros((len(index), len(names)), dtype=np.float64)
    rows, columns, values = zip(*cells)
    prob[np.array(rows), np.array(columns)] = values
    keys = np.fromiter(map(_gram_key, index), dtype=np.int64, count=len(index))
    order = np.argsort(keys, kind="stable")
    return keys[order], np.log(prob[order] + _SMOOTHING).astype(np.float32)


def _profile_tables(profile_dir: str, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``_build_profile_tables``, kept in the user's cache: building takes about
    0.4 s, loading a hundredth of that. The matrix (19 MB) is mapped read-only from
    its file, so the worker processes of a run share its pages."""
    parts = [metadata.version("langdetect").encode(), profile_dir.encode(), "\0".join(names).encode(),
             Path(__file__).read_bytes()]
    keys_path = cache_path("language-profiles", parts, ".keys.npy")
    matrix_path = keys_path.with_name(keys_path.name.replace(".keys.npy", ".npy"))
    try:
        keys = np.load(keys_path)
        matrix = np.asarray(np.load(matrix_path, mmap_mode="r"))
        if (keys.dtype == np.int64 and keys.ndim == 1 and matrix.shape == (len(keys), len(names))
                and matrix.dtype == np.float32):
            mark_used(keys_path)  # in use: not removed as stale
            return keys, matrix
    except (OSError, ValueError):
        pass  # missing or damaged: built anew
    keys, matrix = _build_profile_tables(profile_dir, names)
    # The matrix first: a reader that finds the keys finds their matrix.
    write_cached(matrix_path, lambda f: np.save(f, matrix))
    write_cached(keys_path, lambda f: np.save(f, keys))
    return keys, matrix


class _ProfileModel:
    """langdetect's profiles as one (n-grams x languages) matrix of log-probabilities."""

    def __init__(self, profile_dir: str = PROFILES_DIRECTORY):
        names = sorted(n for n in os.listdir(profile_dir) if not n.startswith("."))
        self.codes = [_PROFILE_CODES.get(n, n) for n in names]
        # The n-grams' numbers, ascending, and their rows of log-probabilities.
        self.gram_keys, self.log_prob = _profile_tables(profile_dir, names)
        self.char_classes = _CharClasses()
        self.word_table = _WordTable(self)
        # Korean is written in hangul and Japanese always has kana; without
        # them, han characters are Chinese (langdetect's ko profile also holds
        # han n-grams and wins some Chinese sentences). The running total starts
        # with the languages whose script is missing excluded: one read-only
        # start per (hangul seen, kana seen).
        self.script_required = [
            ([c for c, code in enumerate(self.codes) if code == language], marks)
            for language, marks in (("ko", (_HANGUL,)), ("ja", (_HIRAGANA, _KATAKANA)))]
        self.start_totals = {}
        for seen in ((False, False), (False, True), (True, False), (True, True)):
            start = np.zeros(len(names), dtype=np.float32)
            for (columns, _), present in zip(self.script_required, seen):
                if not present:
                    start[columns] = _EXCLUDED
            start.flags.writeable = False
            self.start_totals[seen] = start
        # Profile posterior @ merge -> posterior per output code (zh-cn + zh-tw -> zh).
        self.output_codes = sorted(set(self.codes))
        self.merge = np.zeros((len(names), len(self.output_codes)), dtype=np.float64)
        for column, code in enumerate(self.codes):
            self.merge[column, self.output_codes.index(code)] = 1.0
        # Whether the profile is the only one of its output code (not zh-cn, zh-tw).
        self.sole_profile = [self.codes.count(code) == 1 for code in self.codes]
        # Per profile, its output code's index: zh-cn and zh-tw share one.
        self.code_index = np.array([self.output_codes.index(code) for code in self.codes], dtype=np.int64)


def _gram_key(gram: str) -> int:
    """An n-gram of 1-3 characters as one number: 21 bits per character (its code
    point + 1, so that no character is 0), the first character lowest."""
    return sum((ord(ch) + 1) << (21 * i) for i, ch in enumerate(gram))


class _WordTable:
    """word -> row of `rows` holding its score (row 0: the words that score
    nothing, and count no letters), computed on first sight, all the new words
    of a call at once; news vocabulary repeats, so most words are hits. Rows are
    only appended (the array is replaced by a larger copy), so the ids a thread
    holds stay valid; a full table is replaced by a fresh one for later calls."""

    def __init__(self, model: _ProfileModel):
        self._model = model
        self._lock = threading.Lock()
        self.row_of: dict[str, int] = {}
        self.rows = np.zeros((4096, len(model.codes)), dtype=np.float32)
        self.letters = [0]  # per row

    def ids(self, words: list[str]) -> list[int]:
        ids = list(map(self.row_of.get, words))
        if None in ids:
            self._add([word for word, row in zip(words, ids) if row is None])
            ids = list(map(self.row_of.__getitem__, words))
        return ids

    def _add(self, words: list[str]) -> None:
        model = self._model
        words = list(dict.fromkeys(words))
        # A word in capitals scores nothing: langdetect ignores acronyms and tickers.
        read = [word for word in words if len(word) == 1 or not word.isupper()]
        new = dict.fromkeys(words, 0)  # row 0 unless scored below
        with self._lock:
            first = len(self.letters)
            if read:
                if first + len(read) > len(self.rows):
                    grown = np.zeros((max(2 * len(self.rows), first + len(read)), self.rows.shape[1]),
                                     dtype=np.float32)
                    grown[:first] = self.rows[:first]
                    self.rows = grown
                scored, letters = _score_words(model, read, self.rows, first)
                self.letters += letters
                new.update(zip(scored, range(first, first + len(scored))))
            self.row_of.update(new)
            if len(self.row_of) >= _WORD_CACHE_LIMIT and model.word_table is self:
                model.word_table = _WordTable(model)


_KERNELS = CompiledKernels(globals())


@_KERNELS.kernel
def _add_rows_kernel(total, rows, ids):
    out = total.copy()
    for i in ids:
        out += rows[i]
    return out


@_KERNELS.kernel
def _score_words_kernel(chars, gram_keys, log_prob, rows, first, letters, known):
    count = 0
    start = 0
    for word in range(len(known)):
        end = start
        while end < len(chars) and chars[end] != 32:
            end += 1
        length = end - start
        row = first + count
        rows[row] = 0
        for n in range(1, 4):
            # n-grams of the word padded with a space each side, as langdetect reads it;
            # the padding alone is no 1-gram.
            for at_first in range(-1, length + 2 - n):
                if n == 1 and (at_first < 0 or at_first >= length):
                    continue
                key = 0
                for k in range(n):
                    at = at_first + k
                    char = 32 if at < 0 or at >= length else chars[start + at]
                    key |= (np.int64(char) + 1) << (21 * k)
                i = np.searchsorted(gram_keys, key)
                if i < len(gram_keys) and gram_keys[i] == key:
                    rows[row] += log_prob[i]
                    known[word] = True
        if known[word]:
            # _letters(word), which this kernel cannot call
            letters[count] = length * (3 if chars[start] >= 0x3000 else 1)
            count += 1
        start = end + 1
    return count


def _score_words(model: _ProfileModel, words: list[str], rows: np.ndarray, first: int
                 ) -> tuple[list[str], list[int]]:
    """Scores the words that have known 1-3-grams into ``rows[first:]``, in order, each
    the sum of its n-grams' rows (1-grams, then 2-grams, then 3-grams, each in reading
    order: the order they are added in), all in one compiled call (words hold no space:
    they are joined by one). -> (the words scored, their letters)."""
    if not _KERNELS.compiled:
        _KERNELS.compile()
    chars = np.frombuffer(" ".join(words).encode("utf-32-le"), dtype=np.uint32)
    letters = np.empty(len(words), dtype=np.int64)
    known = np.zeros(len(words), dtype=np.bool_)
    count = _score_words_kernel(chars, model.gram_keys, model.log_prob, rows, first, letters, known)
    return list(itertools.compress(words, known.tolist())), letters[:count].tolist()


def _add_rows(total: np.ndarray, rows: np.ndarray, ids: list[int]) -> np.ndarray:
    """total + rows[ids[0]] + rows[ids[1]] + ..., added in that order (float32
    addition is not associative: the order fixes the result), compiled: NumPy's
    gather of the rows and its sum cost several times more."""
    if not _KERNELS.compiled:
        _KERNELS.compile()
    return _add_rows_kernel(total, rows, np.array(ids, dtype=np.intp))


_model: Optional[_ProfileModel] = None
_model_lock = threading.Lock()


def _profile_model() -> _ProfileModel:
    """Loaded once per process on first use (about 0.5 s), never pickled with a DoFn."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                _model = _ProfileModel()
    return _model


def load_kernels() -> None:
    """Loads the profiles and loads (or compiles) the compiled kernels now, for the
    totals they are given (a text's first total is a read-only start, later ones are
    not: one machine-code version each): a process that forks workers does it once
    for all of them."""
    model = _profile_model()
    table = model.word_table
    ids = table.ids(["warm", "up"])
    start = model.start_totals[False, False]
    for total in (start, start.copy()):
        _add_rows(total, table.rows, ids)
        _add_and_lead(total, table.rows, ids, model)


_ASCII_LETTER = re.compile(r"[A-Za-z]")


def _drop_latin_in_foreign_script(text: str) -> str:
    """langdetect's rule: in text mostly written in another script, Latin
    letters are URLs, names and codes, not the language of the text."""
    if text.isascii():
        return text
    latin = len(_ASCII_LETTER.findall(text))
    foreign = sum(1 for ch in text if ch >= "\u0300" and not "\u1e00" <= ch <= "\u1eff")
    return _ASCII_LETTER.sub("", text) if latin * 2 < foreign else text


def _script_language(words: list[str]) -> Optional[str]:
    """The language when every word is written in a script only one profile
    uses (Greek, Hebrew, Thai, hangul, the Indian scripts but Devanagari)."""
    first = words[0][0]
    if first < _SINGLE_LANGUAGE_SCRIPTS[0][0]:  # e.g. Latin
        return None
    for low, high, code in _SINGLE_LANGUAGE_SCRIPTS:
        if low <= first <= high:
            return code if all(low <= ch <= high for word in words for ch in word) else None
    return None


@_KERNELS.kernel
def _add_and_lead_kernel(total, rows, ids, code_index, gap):
    out = _add_rows_kernel(total, rows, ids)
    best = 0  # the first of the highest, as argmax
    for j in range(len(out)):
        if out[j] > out[best]:
            best = j
    second = np.float32(-np.inf)  # float32 throughout: the gap is the float32 difference, as in NumPy
    for j in range(len(out)):
        if code_index[j] != code_index[best] and out[j] > second:
            second = out[j]
    return out, best if out[best] - second >= gap else -1


def _add_and_lead(total: np.ndarray, rows: np.ndarray, ids: list[int], model: _ProfileModel
                  ) -> tuple[np.ndarray, Optional[int]]:
    """``_add_rows``, and the leading profile if it is then ahead of every other
    language (zh-cn and zh-tw are one) by _DECISIVE_GAP, else None: one compiled call."""
    if not _KERNELS.compiled:
        _KERNELS.compile()
    total, best = _add_and_lead_kernel(total, rows, np.array(ids, dtype=np.intp), model.code_index,
                                       _DECISIVE_GAP)
    return total, None if best < 0 else best


def detect_language(text: str, min_letters: int = 10, max_chars: int = 1000) -> DetectedLanguage:
    """The language of `text` from its first `max_chars` characters; "und"
    when fewer than `min_letters` letters are left to judge by.

    Reading stops early once one language leads decisively (see _DECISIVE_GAP),
    and text wholly in a script of one language needs no statistics."""
    model = _profile_model()
    text = text[:max_chars]
    # The substitutions change nothing without a "://" (URL_RE's is literal), an
    # "@" or a combining mark, and cost more than the rest of the preparation:
    # skipped then.
    if "://" in text:
        text = Detector.URL_RE.sub(" ", text)
    if "@" in text:
        text = Detector.MAIL_RE.sub(" ", text)
    if text.isascii():
        text = text.encode("ascii").translate(_ASCII_CLASSES).decode("ascii")
        start = model.start_totals[False, False]  # no hangul, no kana
    else:
        text = NGram.normalize_vi(text)
        text = _drop_latin_in_foreign_script(text).translate(model.char_classes)
        start = model.start_totals[tuple(any(mark in text for mark in marks)
                                         for _, marks in model.script_required)]
    words = text.split()
    if sum(map(str.isupper, words)) * 2 > len(words):
        # Text set in capitals (wire headlines, flashes): read it in lower case,
        # or the acronym rule (in word_score) would discard all of it.
        words = [word.lower() for word in words]
    if words and (code := _script_language(words)) is not None:
        letters = sum(_letters(word) for word in words if len(word) == 1 or not word.isupper())
        if letters < min_letters:
            return DetectedLanguage(UNDETERMINED, 0.0)
        return DetectedLanguage(code, 1.0, ((code, 1.0),), letters)
    table = model.word_table
    letters_of = table.letters.__getitem__
    total, pending, leader = start, [], None
    letters = read = 0
    # The words before the first judgment (about 200 letters) are looked up at once: the
    # new ones among them are then scored in one compiled call, not one per chunk.
    opening = table.ids(words[:_OPENING_WORDS])
    while read < len(words):
        chunk = opening[read:read + _CHUNK_WORDS] if read < _OPENING_WORDS else table.ids(
            words[read:read + _CHUNK_WORDS])
        read += len(chunk)
        pending += chunk
        letters += sum(map(letters_of, chunk))
        # Scores are added only when the lead is to be judged: one numpy call for
        # all the words read since, in the same order.
        if letters >= _PREFIX_LETTERS and read < len(words):
            (total, leader), pending = _add_and_lead(total, table.rows, pending, model), []
            if leader is not None:
                break
    if pending:
        total = _add_rows(total, table.rows, pending)
    if letters < min_letters:
        return DetectedLanguage(UNDETERMINED, 0.0)
    if leader is not None and model.sole_profile[leader]:
        # Every other language is e^-40 behind or more: the posterior below is
        # exactly 1.0 for the leader and under 0.001 for all the others.
        code = model.codes[leader]
        return DetectedLanguage(code, 1.0, ((code, 1.0),), letters)
    posterior = np.exp((total - total.max()) / _TEMPERATURE)
    by_code = (posterior / posterior.sum()) @ model.merge
    # Only the languages kept are ranked: a stable sort by descending probability
    # of the ascending indices, as a stable argsort of all of them would rank them.
    kept = np.flatnonzero(by_code >= 0.001).tolist()
    ranked = [(model.output_codes[i], round(p, 4)) for i, p in
              sorted(zip(kept, by_code[kept].tolist()), key=lambda pair: -pair[1])]
    return DetectedLanguage(ranked[0][0], ranked[0][1], tuple(ranked), letters)


# Codes ISO 639 retired or that agencies still send.
_LEGACY_CODES = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}
_TAG_SPLIT = re.compile(r"[-_]")


@lru_cache(maxsize=4096)
def normalise_language_tag(tag: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """A declared language tag (``en``, ``EN``, ``en-US``, ``en_GB``, ``eng``,
    ``English``, ``nb-NO``, ``zh-Hans``) -> (ISO 639-1 code, region or script).
    (None, None) when the tag is empty or names no known language."""
    if not tag or not tag.strip():
        return None, None
    primary, *subtags = _TAG_SPLIT.split(tag.strip())
    if len(primary) > 3:  # a language name, e.g. "English" or "Norwegian Bokmål"
        primary, subtags = tag.strip(), []
    primary = primary.lower()
    code = _LEGACY_CODES.get(primary, primary)
    codes = _iso_639_codes()
    code = codes.looked_up.get(code) if len(code) != 2 or not code.isalpha() else code if code in codes.alpha_2 else None
    if code is None:
        return None, None
    # BCP 47 case conventions: scripts in title case (Hans), regions in capitals (US).
    region = "-".join(s.title() if len(s) == 4 else s.upper() for s in subtags if s) or None
    return code, region


@dataclass(frozen=True)
class _Iso639Codes:
    """pycountry's ISO 639 answers, as ``normalise_language_tag`` asks them:
    ``looked_up``: what ``pycountry.languages.lookup(value)`` finds, by value in lower
    case, as its alpha-2 code (None: the language it finds has none); ``alpha_2``: the codes."""

    looked_up: dict[str, Optional[str]]
    alpha_2: frozenset[str]


def _build_iso_639_codes() -> _Iso639Codes:
    languages = pycountry.languages
    len(languages)  # loads them: their indexes are there only then
    looked_up: dict[str, Optional[str]] = {}
    # In lookup's order: its indexes field by field, then the other fields language by language;
    # the first match is what it returns.
    for index in languages.indices.values():
        for value, language in index.items():
            looked_up.setdefault(value, getattr(language, "alpha_2", None))
    for language in languages:
        for name in languages.no_index:
            value = language._fields.get(name)
            if value is not None:
                looked_up.setdefault(value.lower(), getattr(language, "alpha_2", None))
    return _Iso639Codes(looked_up, frozenset(languages.indices["alpha_2"]))


@lru_cache(maxsize=1)
def _iso_639_codes() -> _Iso639Codes:
    """Loading pycountry's languages (8,000 of them, from JSON) took a worker 70 ms; this
    table of its answers, cached like the gazetteer (named by pycountry's version and
    this code), a few."""
    path = cache_path("iso639", [metadata.version("pycountry").encode(), Path(__file__).read_bytes()], ".pickle")
    codes = read_pickle(path, _Iso639Codes)
    if codes is None:
        codes = _build_iso_639_codes()
        write_pickle(path, codes)
    return codes


# Close relatives that text statistics tell apart least reliably; when the
# declared and detected languages are in one group the publisher is trusted.
_CLOSE_RELATIVES = [
    {"da", "nb", "nn", "no", "sv"}, {"bs", "hr", "sr", "sl"}, {"cs", "sk"}, {"ca", "es", "gl"},
    {"bg", "mk"}, {"ru", "uk", "be"}, {"id", "ms"}, {"hi", "ur", "ne", "mr"}, {"af", "nl"},
]


def close_relatives(a: str, b: str) -> bool:
    return any(a in group and b in group for group in _CLOSE_RELATIVES)


def choose_language(declared: Optional[str], detected: DetectedLanguage,
                    override_confidence: float, override_min_letters: int = 0
                    ) -> tuple[str, float, list[str]]:
    """The record's language, detection's confidence in it, and quality notes.

    Rule: the declared language wins, unless detection disagrees with a
    confidence of at least `override_confidence` on at least
    `override_min_letters` letters and the two are not close relatives;
    without a declared language, the detected one (possibly "und")."""
    if declared is None or detected.code == declared:
        return detected.code, detected.confidence, []
    if detected.code == UNDETERMINED:
        return declared, 0.0, []
    note = (f"language: declared {declared!r} but the text reads as {detected.code!r} "
            f"(confidence {detected.confidence:.2f})")
    if (detected.confidence >= override_confidence and detected.letters >= override_min_letters
            and not close_relatives(declared, detected.code)):
        return detected.code, detected.confidence, [note + "; detected language used"]
    return declared, detected.probability(declared), [note + "; declared language kept"]
