"""Sketching a story: MinHash of its body word 3-shingles, its figures and names, and its band bucket keys."""

from __future__ import annotations

import functools
import hashlib
import re
import zlib
from typing import Iterable, NamedTuple, Optional

import numpy as np

from wirestream.schemas import EventRecord
from wirestream.transforms.compiled import CompiledKernels
from wirestream.transforms.normalise import reference_time
from wirestream.schemas.times import parse_utc_iso
from wirestream.transforms.dedup import permutations
from wirestream.transforms.dedup.settings import DedupSettings


_TOKEN = re.compile(r"\w+(?:[.,:/]\w+)*")
_DIGIT = re.compile(r"\d")
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
    "hundred thousand million billion half quarter".split())
_TICKER = re.compile(r"[<(]([A-Z][A-Z0-9]{0,6})(?:\.[A-Z]{1,3})?[>)]")
_CORRECTION = re.compile(r"^\W*(corrected|correction|refiled)\b", re.IGNORECASE)
_REISSUE_PREFIX = re.compile(r"^\W*(?:rpt|repeat|corrected|correction|refiled|update \d+)\W*",
                             re.IGNORECASE)
_HEADLINE_WORD = re.compile(r"[^\W\d_]+")
# A capitalised word not opening a sentence: a name in a templated brief
# ("NOTE: Franklin California Insured Tax-Free Income Fund").
_NAME = re.compile(r"(?<![.!?])\s([A-Z][\w'-]*)")


_PERM_A = np.array(permutations.PERM_A, dtype=np.uint64)
_PERM_B = np.array(permutations.PERM_B, dtype=np.uint64)
_MIX1 = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SHIFT = np.uint64(32)
_ROW_MIX = np.array(permutations.ROW_MIX, dtype=np.uint64)  # band rows -> bucket
_CACHE_LIMIT = 500_000  # distinct words kept by the word-code cache below


class StorySketch(NamedTuple):
    """What dedup keeps of a story: about 700 bytes however long the story.
    A tuple of primitives, so Beam encodes it without pickling."""

    uid: str  # unique per input record (event_id + origin), orders exact replays
    event_id: str
    time: int  # publication time (else ingestion time), epoch seconds
    signature: bytes  # num_perm uint32 MinHash values
    shingles: int  # number of distinct shingles, to turn Jaccard into containment; 0: no words
    facts: tuple[tuple[int, int], ...]  # (hash of the words around a figure, hash of the figure)
    names: tuple[int, ...]  # hashes of capitalised words inside sentences (short bodies only)
    tickers: tuple[str, ...]
    headline_lead: str  # first headline word, the subject of a Reuters brief
    short: bool
    story_key: Optional[str]  # source|story_id, links versions
    version: Optional[int]
    correction: bool

    @property
    def order(self) -> tuple:
        return (self.time, self.event_id, self.uid)


def story_time(record: EventRecord) -> int:
    """Publication time in epoch seconds; without one (an unreadable date), the
    record's reference time (Kafka record time, else ingest time), as normalise
    does when the source gives no time, so the story still meets its copies."""
    if record.published_at:
        return int(parse_utc_iso(record.published_at).timestamp())
    return int(reference_time(record).timestamp())


def record_uid(record: EventRecord) -> str:
    """event_id alone is not unique (the same story read from two files);
    the origin (without ingestion time, which differs between replays) is."""
    o = record.origin
    where = f"{record.event_id}|{o.kind}|{o.path}|{o.line}|{o.item}|{o.topic}|{o.partition}|{o.offset}"
    return hashlib.sha1(where.encode()).hexdigest()[:20]


class _WordCodes(dict):
    """word -> crc32 of its utf-8 (stable across processes, unlike hash()), with
    bit 32 set if the word is a figure. Computed once per word: mapping
    ``__getitem__`` over the tokens stays in C for every word seen before.
    Used for text beyond ASCII (``_ascii_tokens`` codes ASCII text the same way)."""

    FIGURE = 1 << 32

    def __missing__(self, word: str) -> int:
        figure = word in _NUMBER_WORDS if word.isalpha() else bool(_DIGIT.search(word))
        code = self[word] = zlib.crc32(word.encode()) | (self.FIGURE if figure else 0)
        return code

    def of(self, tokens: list[str]) -> np.ndarray:
        if len(self) > _CACHE_LIMIT:
            self.clear()
        return np.array(list(map(self.__getitem__, tokens)), dtype=np.uint64)


_WORD_CODES = _WordCodes()
_WORD_HASH_MASK = np.uint64(0xFFFFFFFF)

# Compiled kernels (numba): a Python loop over a story's words, or a (shingles x
# num_perm) NumPy matrix, costs several times what the whole sketch may.
_KERNELS = CompiledKernels(globals())
_jit = _KERNELS.kernel

# ASCII bytes: 1 for a word character (``\w``), 2 for a separator ``_TOKEN`` lets join two words.
_CHAR_CLASS = np.zeros(256, dtype=np.uint8)
_CHAR_CLASS[np.frombuffer(b"0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)] = 1
_CHAR_CLASS[np.frombuffer(b".,:/", np.uint8)] = 2


def _crc_table_entry(byte: int) -> int:
    """zlib's CRC-32 table (reflected, polynomial 0xEDB88320)."""
    for _ in range(8):
        byte = byte >> 1 ^ (0xEDB88320 if byte & 1 else 0)
    return byte


_CRC_TABLE = np.array([_crc_table_entry(b) for b in range(256)], dtype=np.int64)
# The number words' crc32s, and their bytes (zero-padded) to rule out a collision.
_NUMBER_WORD_LIST = sorted(_NUMBER_WORDS)
_NUMBER_CRCS = np.array([zlib.crc32(w.encode()) for w in _NUMBER_WORD_LIST], dtype=np.int64)
_NUMBER_BYTES = np.zeros((len(_NUMBER_WORD_LIST), max(map(len, _NUMBER_WORDS)) + 1), dtype=np.uint8)
for _i, _w in enumerate(_NUMBER_WORD_LIST):
    _NUMBER_BYTES[_i, :len(_w)] = np.frombuffer(_w.encode(), dtype=np.uint8)
_NO_BYTE = 256  # ``skip`` of ``_crc_add`` that skips nothing
_HASH_SPACE = np.frombuffer(b"# ", dtype=np.uint8)  # a figure's missing neighbour, and the gap


@_jit
def _crc_add(crc, text, start, end, skip):
    """CRC-32 register ``crc`` after text[start:end] (bytes equal to ``skip`` left out);
    zlib.crc32 of a string is its register from 0xFFFFFFFF, inverted."""
    for k in range(start, end):
        c = text[k]
        if c != skip:
            crc = _CRC_TABLE[(crc ^ c) & 0xFF] ^ (crc >> 8)
    return crc


@_jit
def _is_number_word(text, start, end, crc):
    size = end - start
    if size >= _NUMBER_BYTES.shape[1]:
        return False
    for j in range(_NUMBER_CRCS.shape[0]):
        if _NUMBER_CRCS[j] == crc and _NUMBER_BYTES[j, size] == 0:
            same = True
            for k in range(size):
                if _NUMBER_BYTES[j, k] != text[start + k]:
                    same = False
                    break
            if same:
                return True
    return False


@_jit
def _ascii_tokens(text):
    """``_TOKEN.findall`` of ASCII ``text`` (bytes) -> (starts, ends, crc32 of each
    token, whether each is a figure), as ``_WordCodes`` codes them."""
    n = text.shape[0]
    starts = np.empty(n // 2 + 1, dtype=np.int64)
    ends = np.empty(n // 2 + 1, dtype=np.int64)
    codes = np.empty(n // 2 + 1, dtype=np.uint64)
    figure = np.empty(n // 2 + 1, dtype=np.bool_)
    count = 0
    i = 0
    while i < n:
        if _CHAR_CLASS[text[i]] != 1:
            i += 1
            continue
        start = i
        digit = False
        alpha = True
        while True:
            while i < n and _CHAR_CLASS[text[i]] == 1:
                c = text[i]
                digit |= 48 <= c <= 57
                alpha &= 97 <= c <= 122 or 65 <= c <= 90
                i += 1
            if i + 1 < n and _CHAR_CLASS[text[i]] == 2 and _CHAR_CLASS[text[i + 1]] == 1:
                alpha = False  # a separator between two words: one token
                i += 1
            else:
                break
        crc = _crc_add(0xFFFFFFFF, text, start, i, _NO_BYTE) ^ 0xFFFFFFFF
        starts[count] = start
        ends[count] = i
        codes[count] = crc
        figure[count] = digit or alpha and _is_number_word(text, start, i, crc)
        count += 1
    return starts[:count], ends[:count], codes[:count], figure[:count]


@_jit
def _distinct(values):
    """The distinct values, in order of first appearance (a hash set: NumPy's
    sort is faster than numba's, but a call to it costs more than this)."""
    bits = 1
    while (1 << bits) < 2 * values.shape[0]:
        bits += 1
    used = np.zeros(1 << bits, dtype=np.bool_)
    slots = np.empty(1 << bits, dtype=np.uint64)
    out = np.empty(values.shape[0], dtype=np.uint64)
    mask = (1 << bits) - 1
    count = 0
    for i in range(values.shape[0]):
        x = values[i]
        j = np.int64((x * _MIX1) >> np.uint64(64 - bits))
        while used[j] and slots[j] != x:
            j = (j + 1) & mask
        if not used[j]:
            used[j] = True
            slots[j] = x
            out[count] = x
            count += 1
    return out[:count]


@_jit
def _min_hashes(word_hashes, perm_a, perm_b):
    """-> (per permutation the minimum of ``a * shingle + b`` (mod 2**64) over the
    distinct word 3-shingles (single words if fewer than 3), their number)."""
    h = word_hashes if word_hashes.shape[0] else np.zeros(1, dtype=np.uint64)  # no words: nothing to compare
    if h.shape[0] >= 3:
        shingles = _distinct(h[:-2] * _MIX1 ^ h[1:-1] * _MIX2 ^ h[2:])
    else:
        shingles = _distinct(h)
    # Permutation by permutation, the minimum over the shingles: a reduction the compiler
    # keeps in vector registers (shingle by shingle, a third slower: a load and store per step).
    lowest = np.empty(perm_a.shape[0], dtype=np.uint64)
    for p in range(perm_a.shape[0]):
        a, b = perm_a[p], perm_b[p]
        least = np.uint64(0xFFFFFFFFFFFFFFFF)
        for i in range(shingles.shape[0]):
            least = min(least, shingles[i] * a + b)
        lowest[p] = least
    return lowest, shingles.shape[0]


@_jit
def _ascii_sketch(text, perm_a, perm_b):
    """ASCII ``text`` (lower case bytes) -> (``_min_hashes`` of its tokens, their
    number, its facts as ``_facts`` makes them, an (n x 2) array)."""
    starts, ends, codes, figure = _ascii_tokens(text)
    lowest, distinct = _min_hashes(codes, perm_a, perm_b)
    count = starts.shape[0]
    facts = np.empty((np.count_nonzero(figure), 2), dtype=np.int64)
    f = 0
    for i in range(count):
        if not figure[i]:
            continue
        crc = 0xFFFFFFFF
        if i and not figure[i - 1]:
            crc = _crc_add(crc, text, starts[i - 1], ends[i - 1], _NO_BYTE)
        else:
            crc = _crc_add(crc, _HASH_SPACE, 0, 1, _NO_BYTE)
        crc = _crc_add(crc, _HASH_SPACE, 1, 2, _NO_BYTE)
        if i < count - 1 and not figure[i + 1]:
            crc = _crc_add(crc, text, starts[i + 1], ends[i + 1], _NO_BYTE)
        else:
            crc = _crc_add(crc, _HASH_SPACE, 0, 1, _NO_BYTE)
        facts[f, 0] = crc ^ 0xFFFFFFFF
        facts[f, 1] = _crc_add(0xFFFFFFFF, text, starts[i], ends[i], 44) ^ 0xFFFFFFFF  # 44: ","
        f += 1
    return lowest, distinct, count, facts


@functools.lru_cache(maxsize=None)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    return _PERM_A[:num_perm].copy(), _PERM_B[:num_perm].copy()


def _signature(lowest: np.ndarray) -> bytes:
    # the minimum is taken before the shift, which is monotone, so it equals
    # the minimum of the shifted values
    return (lowest >> _SHIFT).astype("<u4").tobytes()


def minhash(word_hashes: np.ndarray, num_perm: int) -> tuple[bytes, int]:
    """MinHash of the word 3-shingles of a story's word hashes (single words if fewer than 3)."""
    if not _KERNELS.compiled:
        _KERNELS.compile()
    lowest, distinct = _min_hashes(word_hashes, *_permutations(num_perm))
    return _signature(lowest), distinct if len(word_hashes) else 0


def _facts(tokens: list[str], figures: list[int]) -> tuple[tuple[int, int], ...]:
    """(hash of the non-figure words either side, hash of the figure) per figure."""
    is_figure = set(figures)
    last = len(tokens) - 1
    return tuple(
        (zlib.crc32(f"{tokens[i - 1] if i and i - 1 not in is_figure else '#'} "
                    f"{tokens[i + 1] if i < last and i + 1 not in is_figure else '#'}".encode()),
         zlib.crc32(tokens[i].replace(",", "").encode()))
        for i in figures)


def _words_sketch(text: str, num_perm: int) -> tuple[bytes, int, int, tuple[tuple[int, int], ...]]:
    """-> (signature, distinct shingles (0: no words), number of tokens, facts)."""
    low = text.lower()
    if not _KERNELS.compiled:
        _KERNELS.compile()
    if low.isascii():
        lowest, distinct, count, facts = _ascii_sketch(
            np.frombuffer(low.encode("ascii"), dtype=np.uint8), *_permutations(num_perm))
        return _signature(lowest), distinct if count else 0, count, tuple(map(tuple, facts.tolist()))
    tokens = _TOKEN.findall(low)
    codes = _WORD_CODES.of(tokens)
    signature, shingles = minhash(codes & _WORD_HASH_MASK, num_perm)
    return signature, shingles, len(tokens), _facts(tokens, np.flatnonzero(codes >> _SHIFT).tolist())


def load_kernels(settings: DedupSettings = DedupSettings()) -> None:
    """Loads (or compiles) the compiled kernels now, for both paths: a process
    that forks workers does it once for all of them."""
    _words_sketch("warm up the kernels with 3 words", settings.num_perm)
    _words_sketch("les noyaux sont prêts", settings.num_perm)


def sketch_record(record: EventRecord, settings: DedupSettings) -> StorySketch:
    # A headline-only brief (empty body) is compared by its headline: sketching
    # nothing would put every such brief in the same bucket of every band.
    text = record.body if _TOKEN.search(record.body) else record.headline
    signature, shingles, count, facts = _words_sketch(text, settings.num_perm)
    short = count < settings.short_body_words
    names = tuple(sorted(zlib.crc32(n.encode()) for n in _NAME.findall(text))) if short else ()
    headline = _REISSUE_PREFIX.sub("", record.headline)
    lead = _HEADLINE_WORD.search(headline)
    story_key = f"{record.source or ''}|{record.story_id}" if record.story_id else None
    return StorySketch(
        uid=record_uid(record), event_id=record.event_id,
        time=story_time(record),
        signature=signature, shingles=shingles,
        facts=facts, names=names,
        tickers=tuple(sorted(set(_TICKER.findall(record.headline)))),
        headline_lead=lead.group(0).lower() if lead else "",
        short=short,
        story_key=story_key, version=record.version,
        correction=bool(_CORRECTION.match(record.headline)))


def _signature_buckets(signatures: np.ndarray, settings: DedupSettings) -> np.ndarray:
    """(stories x num_perm) uint32 signatures -> (stories x bands) bucket keys
    ``band << 32 | bucket``, in one matrix op for a whole batch."""
    rows = settings.rows_per_band
    sig = signatures[:, :settings.bands * rows].astype(np.uint64)
    sig = sig.reshape(len(signatures), settings.bands, rows)
    mixed = (sig * _ROW_MIX[:rows]).sum(axis=2, dtype=np.uint64)
    return (np.arange(settings.bands, dtype=np.uint64) << _SHIFT) | (mixed >> _SHIFT)


def _version_bucket(sketch: StorySketch, settings: DedupSettings) -> Optional[int]:
    """Band ``settings.bands`` holds the story key, so that versions meet."""
    return settings.bands << 32 | zlib.crc32(sketch.story_key.encode()) if sketch.story_key else None


def band_keys(sketch: StorySketch, settings: DedupSettings) -> list[int]:
    """Bucket keys of one story: one per band of signature rows (none for a story
    without words, which would share them all with every other), and its version bucket."""
    signature = np.frombuffer(sketch.signature, dtype="<u4")[None, :]
    keys = _signature_buckets(signature, settings)[0].tolist() if sketch.shingles else []
    version = _version_bucket(sketch, settings)
    return keys if version is None else keys + [version]


def band_entries(sketches: Iterable[StorySketch], settings: DedupSettings,
                 partitions: int = 1) -> list[tuple[int, tuple]]:
    """The band bucket keys of some stories, split into ``partitions`` by key,
    as ``(partition, (uids, times, keys, members))``: ``keys`` holds uint64
    bucket keys and ``members`` the index into uids/times of the story behind
    each key, both as bytes. Only this, not the sketches, is shuffled by bucket:
    most stories are alone in every bucket."""
    sketches = list(sketches)
    uids = [s.uid for s in sketches]
    times = np.fromiter((s.time for s in sketches), dtype=np.int64, count=len(sketches))
    worded = np.array([i for i, s in enumerate(sketches) if s.shingles], dtype=np.uint32)  # as band_keys
    signatures = np.frombuffer(b"".join(sketches[i].signature for i in worded),
                               dtype="<u4").reshape(len(worded), settings.num_perm)
    versions = [(i, key) for i, s in enumerate(sketches) if (key := _version_bucket(s, settings)) is not None]
    keys = np.concatenate([_signature_buckets(signatures, settings).ravel(),
                           np.array([key for _, key in versions], dtype=np.uint64)])
    members = np.concatenate([np.repeat(worded, settings.bands),
                              np.array([i for i, _ in versions], dtype=np.uint32)])
    part = keys % np.uint64(partitions)
    packed = []
    for p in range(partitions):
        mine = part == p
        if mine.any():
            packed.append((p, (uids, times.tobytes(), keys[mine].tobytes(), members[mine].tobytes())))
    return packed
