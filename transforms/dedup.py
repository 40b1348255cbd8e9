"""Near-duplicate clustering of wire stories (MinHash LSH with a fact check).

What counts as a duplicate (``relate``): two stories published within the
window whose bodies share almost all word 3-shingles (estimated containment
>= ``threshold``), whose figures agree (the numbers of one are a subset of
the other's, so a trimmed or signed-off copy matches but "FED ADDS 1.5 BLN"
and "FED ADDS 2 BLN" do not) and, for short templated bodies ("Qtly div 20
cts vs 20 cts prior..."), whose headlines name the same company. A later
version of the same story (same source and story_id, higher version) or a
"CORRECTED -" reissue is an *update*: linked by ``update_of``, never hidden.
A headline-only brief (empty body) is compared by its headline.

How clusters are formed (order-independent by definition): stories are
ordered by (publication time, event_id, origin). A story's *predecessors*
are the earlier stories it duplicates. A story with no predecessor (or that
is an update) is a *root* and leads its own cluster. A story with
predecessors is a duplicate of its earliest root predecessor. In the rare
chain where every predecessor is itself a duplicate, the story leads a
cluster of its own (an *orphan*), so two stories are only ever clustered when
they match each other directly and no cluster lacks its one original.
This needs only each story's direct relations and its predecessors' root
flags, so it runs without any global step:

* batch: only bucket keys, publication times and uids, packed as bytes per
  batch of stories, are grouped (by a partition of the bucket keys); most
  stories are alone in every bucket, and the few sharing one within the
  window become candidate pairs. Only candidates' sketches then meet, once
  per pair, to be related; two small shuffles by story give the root flags
  and decisions, which reach the records as a side input (only stories with
  an earlier match have one), so records themselves are never shuffled;
* streaming: stateful DoFns keyed by (band, shard) hold recent sketches,
  keyed by story collect the relations, and keyed by registry shard answer
  "is this predecessor a root?". A story is written as soon as it is decided
  and written again (``cluster_revision`` + 1) when a story that arrives later
  but was published earlier changes its decision, so the latest revisions are
  the batch clusters. State expires by the event time seen in the data (no
  timers), so expiry is the same on every runner.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, NamedTuple, Optional

import apache_beam as beam
import numpy as np
from apache_beam import coders
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from schemas import EventRecord
from transforms.stage import METRICS_NAMESPACE

DAY = 86_400
EXPIRY_STEP = 3_600  # streaming state is swept once per hour of event time, not per story
BAND_BATCH = 1_024  # batch: stories whose bucket keys travel together, packed as bytes


@dataclass(frozen=True)
class DedupSettings:
    window_days: float = 7.0  # stories further apart in publication time never cluster
    threshold: float = 0.8  # min estimated containment of body word 3-shingles
    min_jaccard: float = 0.3  # a one-paragraph brief inside a long feature is not a copy of it
    update_threshold: float = 0.5  # min containment linking a "CORRECTED -" reissue to its original
    num_perm: int = 128
    bands: int = 32  # bands * rows_per_band must not exceed num_perm
    short_body_words: int = 40  # below this the headline must name the same company/subject
    streaming: bool = False
    shards_per_band: int = 16  # streaming: keys per band, so every key sees steady traffic
    registry_shards: int = 64  # streaming: keys of the root registry
    # streaming: how far behind (publication time) a story may arrive and still correct
    # what was written; the window by default, so any arrival order within it gives the
    # batch clusters
    allowed_lateness_days: float = 7.0
    band_partitions: int = 16  # batch: keys of the bucket shuffle (parallelism, not results)
    # The bucket policy (``compared_members``): earlier members of a bucket a story is compared with.
    compare_earliest: int = 16
    compare_latest: int = 16

    def __post_init__(self):
        if self.bands < 1 or self.num_perm // self.bands < 1:
            raise ValueError("need 1 <= bands <= num_perm")

    @property
    def rows_per_band(self) -> int:
        return self.num_perm // self.bands

    @property
    def window_seconds(self) -> int:
        return int(self.window_days * DAY)

    @property
    def lateness_seconds(self) -> int:
        return int(self.allowed_lateness_days * DAY)

    @property
    def retention_seconds(self) -> int:
        return int((self.window_days + self.allowed_lateness_days) * DAY)


# ---------------------------------------------------------------- sketching

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


def _splitmix64(seed: int, count: int) -> np.ndarray:
    """``count`` 63-bit values of SplitMix64 (Steele, Lea, Flood 2014) from ``seed``:
    written out here, not drawn from NumPy's generator, whose streams NumPy does not
    promise to keep across versions. Signatures restored from a savepoint must
    match new ones after any upgrade; a test pins them."""
    mask, state, out = (1 << 64) - 1, seed, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append((z ^ (z >> 31)) >> 1)
    return np.array(out, dtype=np.uint64)


_PERM_A = _splitmix64(20240531, 1024) | np.uint64(1)  # odd multipliers of the permutations
_PERM_B = _splitmix64(20240532, 1024)
_MIX1 = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SHIFT = np.uint64(32)
_ROW_MIX = _splitmix64(20240533, 1024) | np.uint64(1)  # band rows -> bucket
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


def _epoch(iso: str) -> int:
    t = datetime.fromisoformat(iso)  # 10x faster than strptime
    return int((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp())


def record_uid(record: EventRecord) -> str:
    """event_id alone is not unique (the same story read from two files);
    the origin (without ingestion time, which differs between replays) is."""
    o = record.origin
    where = f"{record.event_id}|{o.kind}|{o.path}|{o.line}|{o.item}|{o.topic}|{o.partition}|{o.offset}"
    return hashlib.sha1(where.encode()).hexdigest()[:20]


class _WordCodes(dict):
    """word -> crc32 of its utf-8 (stable across processes, unlike hash()), with
    bit 32 set if the word is a figure. Computed once per word: mapping
    ``__getitem__`` over the tokens stays in C for every word seen before."""

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


def minhash(word_hashes: np.ndarray, num_perm: int) -> tuple[bytes, int]:
    """MinHash of the word 3-shingles of a story's word hashes (single words if fewer than 3)."""
    h = word_hashes if len(word_hashes) else np.zeros(1, dtype=np.uint64)  # no words: nothing to compare
    shingles = np.sort(h[:-2] * _MIX1 ^ h[1:-1] * _MIX2 ^ h[2:] if len(h) >= 3 else h)
    shingles = shingles[np.concatenate(([True], shingles[1:] != shingles[:-1]))]  # np.unique, 2x faster
    # One (shingles x num_perm) matrix op; the minimum is taken before the
    # shift, which is monotone, so it equals the minimum of the shifted values.
    hashed = np.multiply.outer(shingles, _PERM_A[:num_perm])
    hashed += _PERM_B[:num_perm]
    sig = hashed.min(axis=0) >> _SHIFT
    return sig.astype("<u4").tobytes(), len(shingles) if len(word_hashes) else 0


def _facts(tokens: list[str], figures: list[int]) -> tuple[tuple[int, int], ...]:
    """(hash of the non-figure words either side, hash of the figure) per figure."""
    is_figure = set(figures)
    last = len(tokens) - 1
    return tuple(
        (zlib.crc32(f"{tokens[i - 1] if i and i - 1 not in is_figure else '#'} "
                    f"{tokens[i + 1] if i < last and i + 1 not in is_figure else '#'}".encode()),
         zlib.crc32(tokens[i].replace(",", "").encode()))
        for i in figures)


def sketch_record(record: EventRecord, settings: DedupSettings) -> StorySketch:
    # A headline-only brief (empty body) is compared by its headline: sketching
    # nothing would put every such brief in the same bucket of every band.
    text = record.body if _TOKEN.search(record.body) else record.headline
    tokens = _TOKEN.findall(text.lower())
    codes = _WORD_CODES.of(tokens)
    signature, shingles = minhash(codes & _WORD_HASH_MASK, settings.num_perm)
    short = len(tokens) < settings.short_body_words
    names = tuple(sorted(zlib.crc32(n.encode()) for n in _NAME.findall(text))) if short else ()
    headline = _REISSUE_PREFIX.sub("", record.headline)
    lead = _HEADLINE_WORD.search(headline)
    story_key = f"{record.source or ''}|{record.story_id}" if record.story_id else None
    return StorySketch(
        uid=record_uid(record), event_id=record.event_id,
        time=_epoch(record.published_at or record.origin.ingested_at),
        signature=signature, shingles=shingles,
        facts=_facts(tokens, np.flatnonzero(codes >> _SHIFT).tolist()), names=names,
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


def compared_members(times: Sequence[int], position: int, settings: DedupSettings) -> tuple[list[int], int]:
    """The bucket policy: which earlier members of a bucket a story is compared with.

    ``times`` are the bucket's members in bucket order (time, uid) and ``position``
    the story's place among them. Of the earlier members within the window, the
    story meets the ``compare_earliest`` first (in a burst of one template they hold
    its original) and the ``compare_latest`` last (a re-send is close in time);
    the others are dropped and their number returned, so that a burst costs
    O(n) comparisons, not O(n^2). On Reuters-21578 no bucket holds more than 6
    stories within a window, so the cap never changes a cluster there."""
    first = bisect.bisect_left(times, times[position] - settings.window_seconds, 0, position)
    eligible = position - first
    if eligible <= settings.compare_earliest + settings.compare_latest:
        return list(range(first, position)), 0
    return (list(range(first, first + settings.compare_earliest))
            + list(range(position - settings.compare_latest, position)),
            eligible - settings.compare_earliest - settings.compare_latest)


class BucketPairs(NamedTuple):
    pairs: list[tuple[str, str]]  # (uid, uid), smaller uid first, sorted, each once
    dropped: int  # comparisons left out by the bucket policy (``compared_members``), per bucket


def candidate_pairs(entries: Iterable[tuple], settings: DedupSettings) -> BucketPairs:
    """Pairs of stories sharing a bucket, published within the window of each
    other, and compared under the bucket policy. A pair sharing several buckets
    comes out once (per call: several partitions may each name it)."""
    uids, times, keys, members = [], [], [], []
    for batch_uids, batch_times, batch_keys, batch_members in entries:
        members.append(np.frombuffer(batch_members, dtype=np.uint32).astype(np.int64) + len(uids))
        uids.extend(batch_uids)
        times.append(np.frombuffer(batch_times, dtype=np.int64))
        keys.append(np.frombuffer(batch_keys, dtype=np.uint64))
    if not keys:
        return BucketPairs([], 0)
    keys, members, times = np.concatenate(keys), np.concatenate(members), np.concatenate(times)
    _, key_of, counts = np.unique(keys, return_inverse=True, return_counts=True)
    collided = counts[key_of] > 1
    keys, members = keys[collided], members[collided]
    # Bucket order is (time, uid): the same whatever the batches or partitions.
    uid_rank = np.argsort(np.argsort(np.array(uids, dtype=object))) if len(members) else members
    order = np.lexsort((uid_rank[members], times[members], keys)) if len(members) else members
    keys, members = keys[order], members[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    pairs, dropped = set(), 0
    for bucket in np.split(members, starts[1:]):
        bucket_times = times[bucket].tolist()
        bucket = bucket.tolist()
        for position in range(1, len(bucket)):
            compared, left_out = compared_members(bucket_times, position, settings)
            dropped += left_out
            b = uids[bucket[position]]
            for earlier in compared:
                a = uids[bucket[earlier]]
                if a != b:
                    pairs.add((a, b) if a < b else (b, a))
    return BucketPairs(sorted(pairs), dropped)


# ---------------------------------------------------------------- relations

DUPLICATE = "duplicate"
UPDATE = "update"  # a later version of the same story_id
CORRECTION = "correction"  # a "CORRECTED -" reissue of an earlier story


@dataclass(frozen=True, slots=True)
class Relation:
    """``later`` duplicates or updates ``earlier`` (earlier in story order)."""

    kind: str
    earlier_uid: str
    earlier_event_id: str
    earlier_order: tuple
    later_uid: str
    similarity: float


def text_overlap(a: StorySketch, b: StorySketch) -> tuple[float, float]:
    """(estimated Jaccard, estimated containment of the smaller in the larger)."""
    sa = np.frombuffer(a.signature, dtype="<u4")
    sb = np.frombuffer(b.signature, dtype="<u4")
    jaccard = np.count_nonzero(sa == sb) / len(sa)
    common = jaccard * (a.shingles + b.shingles) / (1 + jaccard)
    return jaccard, min(1.0, common / max(1, min(a.shingles, b.shingles)))


def same_facts(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    """No figure contradicts the other copy: a copy may lose figures with their
    wording (a trimmed ending) or gain some (a sign-off, a dateline), but the
    same wording with another figure ("adds 1.5 billion" / "adds 2 billion",
    "Shr 15 cts vs 14 cts" / "Shr 12 cts vs 10 cts") is a different fact."""
    by_context_a, by_context_b = defaultdict(Counter), defaultdict(Counter)
    for context, figure in a:
        by_context_a[context][figure] += 1
    for context, figure in b:
        by_context_b[context][figure] += 1
    for context in by_context_a.keys() & by_context_b.keys():
        fa, fb = by_context_a[context], by_context_b[context]
        if fa - fb and fb - fa:
            return False
    return True


def _same_subject(a: StorySketch, b: StorySketch) -> bool:
    """Short templated bodies name their company only in the headline or in a
    note, so those names must agree (one set may extend the other)."""
    if not (a.short or b.short):
        return True
    na, nb = Counter(a.names), Counter(b.names)
    if na - nb and nb - na:
        return False
    if a.tickers and b.tickers:
        return bool(set(a.tickers) & set(b.tickers))
    return a.headline_lead == b.headline_lead


def relate(a: StorySketch, b: StorySketch, settings: DedupSettings) -> Optional[Relation]:
    """The relation between two stories, or None. Symmetric in its arguments."""
    if a.uid == b.uid or abs(a.time - b.time) > settings.window_seconds:
        return None
    earlier, later = (a, b) if a.order < b.order else (b, a)
    jaccard, containment = text_overlap(earlier, later)
    kind = None
    if (later.story_key is not None and later.story_key == earlier.story_key
            and (later.version or 0) > (earlier.version or 0)):  # no version: the first one
        kind = UPDATE
    elif later.correction and not earlier.correction and containment >= settings.update_threshold:
        kind = CORRECTION
    elif (containment >= settings.threshold and jaccard >= settings.min_jaccard
          and same_facts(earlier.facts, later.facts) and _same_subject(earlier, later)):
        kind = DUPLICATE
    if kind is None:
        return None
    return Relation(kind, earlier.uid, earlier.event_id, earlier.order, later.uid, round(containment, 4))


# ---------------------------------------------------------------- decisions

@dataclass(frozen=True, slots=True)
class ClusterDecision:
    cluster_id: str
    is_duplicate: bool = False
    duplicate_of: Optional[str] = None
    similarity: float = 1.0
    update_of: Optional[str] = None


def cluster_id_for(event_id: str) -> str:
    return hashlib.sha256(f"cluster|{event_id}".encode()).hexdigest()[:32]


def is_root(incoming: Iterable[Relation]) -> bool:
    """A story leads a cluster if it duplicates nothing earlier, or is an update."""
    kinds = {r.kind for r in incoming}
    return UPDATE in kinds or CORRECTION in kinds or DUPLICATE not in kinds


def copies_of(relations: Iterable[Relation]) -> list[Relation]:
    """The duplicate relations among ``relations``: only for these does the earlier
    story's root flag matter (a story joins its earliest *root* predecessor)."""
    return [r for r in relations if r.kind == DUPLICATE]


def decide(event_id: str, incoming: Iterable[Relation], root_predecessors: Iterable[str]) -> ClusterDecision:
    """``incoming``: the story's relations to earlier stories; ``root_predecessors``:
    uids of those earlier stories that are roots."""
    incoming = list(incoming)
    versions = [r for r in incoming if r.kind == UPDATE]
    corrected = [r for r in incoming if r.kind == CORRECTION]
    if versions or corrected:
        # The latest earlier version, else the first report the correction reissues.
        updated = max(versions, key=lambda r: r.earlier_order) if versions else \
            min(corrected, key=lambda r: r.earlier_order)
        return ClusterDecision(cluster_id_for(event_id), update_of=updated.earlier_event_id)
    roots = set(root_predecessors)
    leaders = [r for r in copies_of(incoming) if r.earlier_uid in roots]
    if not leaders:
        return ClusterDecision(cluster_id_for(event_id))
    leader = min(leaders, key=lambda r: r.earlier_order)
    return ClusterDecision(cluster_id_for(leader.earlier_event_id), True, leader.earlier_event_id,
                           leader.similarity)


def apply_decision(record: EventRecord, decision: ClusterDecision) -> EventRecord:
    record.cluster_id = decision.cluster_id
    record.is_duplicate = decision.is_duplicate
    record.duplicate_of = decision.duplicate_of
    record.similarity = decision.similarity
    record.update_of = decision.update_of
    return record


def cluster_records(records: list[EventRecord], settings: DedupSettings = DedupSettings()) -> list[EventRecord]:
    """The whole clustering in memory, with the same functions the Beam paths use."""
    sketches = [sketch_record(r, settings) for r in records]
    by_uid = {s.uid: s for s in sketches}
    incoming: dict[str, dict[str, Relation]] = defaultdict(dict)
    entries = (packed for _, packed in band_entries(sketches, settings))
    for a, b in set(candidate_pairs(entries, settings).pairs):
        relation = relate(by_uid[a], by_uid[b], settings)
        if relation is not None:
            incoming[relation.later_uid][relation.earlier_uid] = relation
    roots = {s.uid for s in sketches if is_root(incoming[s.uid].values())}
    for record, sketch in zip(records, sketches):
        relations = incoming[sketch.uid].values()
        apply_decision(record, decide(record.event_id, relations, roots & incoming[sketch.uid].keys()))
    return records


# ---------------------------------------------------------------- batch path

def _sketch_to_pairs(wire: tuple, others: dict):
    """Sends a story's sketch to each candidate pair it is in, once per pair."""
    uid = StorySketch._make(wire).uid
    for other in set(others.get(uid, ())):  # a pair sharing several buckets was named once per bucket
        yield (min(uid, other), max(uid, other)), wire


def _relate_pair(item, settings: DedupSettings):
    (uid_a, uid_b), wires = item
    sketches = {s.uid: s for s in map(StorySketch._make, wires)}  # a record given twice comes twice
    relation = relate(sketches[uid_a], sketches[uid_b], settings)
    if relation is not None:
        yield relation


def _root_flags(item):
    """Per story: its own incoming relations, and its root flag sent to each
    story that duplicates it."""
    uid, tagged = item
    incoming = [rel for tag, rel in tagged if tag == "in"]
    outgoing = [rel for tag, rel in tagged if tag == "out"]
    yield uid, ("incoming", incoming)
    if is_root(incoming):
        for rel in copies_of(outgoing):
            yield rel.later_uid, ("root", rel.earlier_uid)


class _CandidatePairs(beam.DoFn):
    """Keyed by partition of the bucket keys: the candidate pairs of its buckets."""

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._capped = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_comparisons_capped")

    def process(self, element):
        found = candidate_pairs(element[1], self._settings)
        self._capped.inc(found.dropped)
        yield from found.pairs


class _BatchClusters(beam.PTransform):
    def __init__(self, settings: DedupSettings):
        super().__init__()
        self._settings = settings

    def expand(self, records):
        s = self._settings
        # Plain tuples: Beam encodes them without pickling where they are materialised.
        sketches = records | "Sketch" >> beam.Map(lambda record: tuple(sketch_record(record, s)))
        # Only uids and bucket keys, packed per batch of stories, are shuffled by bucket.
        pairs = (sketches
                 | "BatchSketches" >> beam.BatchElements(min_batch_size=BAND_BATCH, max_batch_size=BAND_BATCH)
                 | "BandEntries" >> beam.FlatMap(
                     lambda batch: band_entries(map(StorySketch._make, batch), s, s.band_partitions))
                 | "GroupByPartition" >> beam.GroupByKey()
                 | "CandidatePairs" >> beam.ParDo(_CandidatePairs(s)))
        # The few candidates' partners, by story, are a small side input: only
        # candidates' sketches (plain tuples, not pickled) go on to meet in pairs.
        others = (pairs
                  | "PairEnds" >> beam.FlatMap(lambda pair: (pair, pair[::-1]))
                  | "GroupByCandidate" >> beam.GroupByKey())
        relations = (sketches
                     | "SketchToPairs" >> beam.FlatMap(_sketch_to_pairs, beam.pvalue.AsDict(others))
                     | "GroupByPair" >> beam.GroupByKey()
                     | "Relate" >> beam.FlatMap(_relate_pair, s))
        decisions = (
            relations
            | "BothEnds" >> beam.FlatMap(lambda rel: [(rel.later_uid, ("in", rel)),
                                                      (rel.earlier_uid, ("out", rel))])
            | "GroupByStory" >> beam.GroupByKey()
            | "RootFlags" >> beam.FlatMap(_root_flags)
            | "GroupForDecision" >> beam.GroupByKey()
            | "Decide" >> beam.FlatMapTuple(_decide_batch))
        return records | "ApplyDecisions" >> beam.Map(_apply_or_lead, beam.pvalue.AsDict(decisions))


def _decide_batch(uid, parts):
    incoming = [rel for tag, value in parts if tag == "incoming" for rel in value]
    if incoming:
        roots = [value for tag, value in parts if tag == "root"]
        yield uid, (incoming, roots)


def _apply_or_lead(record: EventRecord, decisions: dict) -> EventRecord:
    found = decisions.get(record_uid(record))
    if found is None:
        return apply_decision(record, ClusterDecision(cluster_id_for(record.event_id)))
    incoming, roots = found
    return apply_decision(record, decide(record.event_id, incoming, roots))


# ---------------------------------------------------------------- streaming path
#
# A live feed is not in publication order: a copy can arrive before the story
# it copies. Each story is decided as soon as its relations are known (so
# latency stays low) and *re-emitted* with a higher ``cluster_revision`` when
# a later arrival changes its decision. The latest revision of every record is
# exactly what the batch path gives, in any arrival order, provided no story
# arrives more than ``allowed_lateness_days`` (of publication time) behind the
# newest story its band keys have seen; a story later than that is still
# clustered with what it copies, but the later stories it matches keep their
# decision (metric ``dedup_too_late`` counts them).
#
# Decisions have two levels (see ``decide``): a story's own relations give its
# root flag, and its predecessors' root flags give its cluster. So a late
# arrival E changes (1) the stories it precedes and matches, which gain a
# relation, and (2) the stories that duplicate those, if a root flag flipped.
# Nothing further: the graph below is acyclic.
#
#   records ─> ProbeBands ─> MatchInBandShard ─> CollectRelations ─> AnswerRootQuestions
#      │                     (band, shard)       (story)    │          (registry shard)
#      │                                                    │ relations       │ root flags
#      └─> KeyByStory ───────────────────────────────> DecideCluster (story) <─┘
#
# State expires by the publication times seen in the data, never by timers:
# band shards drop sketches older than window + lateness. Per-story state is
# released once every band shard holding the story has seen it fall behind by
# the lateness: no late relation can be made for it after that. Each shard
# sends its release after any late relation it made for that story, on the same
# path, so the last release cannot overtake a correction (this needs in-order
# delivery between two keyed steps, which the local runner and Flink give;
# Dataflow does not promise it, and there such a race would drop a correction).
# DecideCluster keeps a released story until its decision is complete: a
# predecessor's root flag comes by the registry and may arrive after it.

RELEASE = ("release", None)


CLOCK_QUORUM = 8  # stories that must be ahead of a time before a key's clock reaches it


@dataclass
class EventClock:
    """A key's clock for expiry, from the publication times it has seen, so no
    timer is needed. It is the ``CLOCK_QUORUM``-th newest time, not the newest:
    one story far ahead (a date that fell back to the ingest time on a replay of
    old stories, an old feed's one new item) cannot expire the state of the
    stories around it."""

    clock: int = 0
    swept: int = 0  # clock at the last expiry sweep
    newest: list[int] = field(default_factory=list)  # min-heap of the newest CLOCK_QUORUM times

    def advance(self, time: int) -> bool:
        """Moves the clock on; True when a sweep is due (once per hour of event time,
        not per story)."""
        if len(self.newest) < CLOCK_QUORUM:
            heapq.heappush(self.newest, time)
        elif time > self.newest[0]:
            heapq.heapreplace(self.newest, time)
        if len(self.newest) == CLOCK_QUORUM:
            self.clock = max(self.clock, self.newest[0])
        if self.clock - self.swept < EXPIRY_STEP:
            return False
        self.swept = self.clock
        return True


@dataclass
class BandShardIndex(EventClock):
    """Recent sketches of one (band, shard) key, by bucket."""

    buckets: dict[int, list[StorySketch]] = field(default_factory=dict)
    stored: int = 0  # sketches in all buckets: len() is read per story, so it is kept, not counted
    held: list[tuple[int, str]] = field(default_factory=list)  # heap (time, uid) not yet released

    def probe(self, bucket: int, sketch: StorySketch, settings: DedupSettings) -> "BandAnswer":
        """Relations of ``sketch`` to the stories stored in its bucket that the bucket
        policy compares it with, as batch does (``compared_members``); then stores it."""
        if self.advance(sketch.time):
            self._expire(settings)
        on_time = sketch.time >= self.clock - settings.lateness_seconds
        found, corrections, too_late = [], [], []
        members = self.buckets.setdefault(bucket, [])  # in bucket order (time, uid)
        position = bisect.bisect_right(members, (sketch.time, sketch.uid), key=_bucket_order)
        members.insert(position, sketch)
        times = _MemberTimes(members)
        earlier, dropped = compared_members(times, position, settings)
        for other in map(members.__getitem__, earlier + self._compared_later(times, position, settings)):
            relation = relate(other, sketch, settings)
            if relation is None:
                continue
            if relation.later_uid == sketch.uid:
                found.append(relation)
            elif on_time:
                corrections.append(relation)  # ``other`` was decided without this earlier story
            else:
                too_late.append(other.uid)
        self.stored += 1
        heapq.heappush(self.held, (sketch.time, sketch.uid))
        released = []
        horizon = self.clock - settings.lateness_seconds
        while self.held and self.held[0][0] < horizon:
            released.append(heapq.heappop(self.held)[1])
        return BandAnswer(found, corrections, too_late, released, dropped)

    @staticmethod
    def _compared_later(times: "_MemberTimes", position: int, settings: DedupSettings) -> list[int]:
        """Later members whose compared members (``compared_members``) now include
        the one at ``position``: the next ``compare_latest``, and those with fewer
        than ``compare_earliest`` members in their window before it."""
        time = times[position]
        end = bisect.bisect_right(times, time + settings.window_seconds, position + 1)
        later = set(range(position + 1, min(end, position + 1 + settings.compare_latest)))
        if position >= settings.compare_earliest:
            start = bisect.bisect_right(times, times[position - settings.compare_earliest]
                                        + settings.window_seconds, position + 1, end)
        else:
            start = position + 1
        later.update(range(start, end))
        return sorted(later)

    def _expire(self, settings: DedupSettings) -> None:
        horizon = self.clock - settings.retention_seconds
        for bucket in list(self.buckets):
            kept = [s for s in self.buckets[bucket] if s.time >= horizon]
            if kept:
                self.buckets[bucket] = kept
            else:
                del self.buckets[bucket]
        self.stored = sum(len(v) for v in self.buckets.values())

    def __len__(self) -> int:
        return self.stored


class BandAnswer(NamedTuple):
    found: list[Relation]  # the probing story duplicates or updates these earlier ones
    corrections: list[Relation]  # stored later stories the probing story precedes and matches
    too_late: list[str]  # such stories left uncorrected: the probing story is beyond the lateness
    released: list[str]  # uids this key will make no more late relations for
    dropped: int = 0  # comparisons left out by the bucket policy


def _bucket_order(sketch: StorySketch) -> tuple[int, str]:
    return sketch.time, sketch.uid


class _MemberTimes(Sequence):
    """The publication times of a bucket's members, for ``bisect`` without a copy."""

    def __init__(self, members: list[StorySketch]):
        self._members = members

    def __getitem__(self, i):
        return self._members[i].time

    def __len__(self):
        return len(self._members)


@dataclass
class StoryRelations:
    """Per story: band answers until all are in, then its relations to earlier stories."""

    expected: Optional[int] = None
    answered: int = 0
    time: int = 0
    incoming: dict[str, Relation] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)
    root: Optional[bool] = None  # as last registered
    sent: int = -1  # len(incoming) last sent to DecideCluster
    uncorrected: set[str] = field(default_factory=set)  # later matches it came too late to correct
    releases: int = 0  # band shards done with the story; its state goes when all are

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.answered >= self.expected

    @property
    def released(self) -> bool:
        return self.complete and self.releases >= self.expected


@dataclass
class RootRegistry(EventClock):
    """Root flags of recent stories, and who asked about each (so that a
    flag that flips reaches them). A flag's ``seq`` (its story's number of
    relations, which only grows) orders flags that travel by different paths."""

    roots: dict[str, tuple[bool, int, int]] = field(default_factory=dict)  # uid -> (root, time, seq)
    askers: dict[str, list[str]] = field(default_factory=dict)

    def register(self, uid: str, root: bool, time: int, seq: int,
                 settings: DedupSettings) -> list[tuple[str, tuple[str, bool, int]]]:
        sweep = self.advance(time)
        before = self.roots.get(uid)
        answers = []
        if before is None or before[2] < seq:  # else an older flag overtaken by a newer one
            self.roots[uid] = (root, time, seq)
            if before is None or before[0] != root:
                answers = [(asker, (uid, root, seq)) for asker in self.askers.get(uid, ())]
        if sweep:
            horizon = self.clock - settings.retention_seconds
            expired = [k for k, v in self.roots.items() if v[1] < horizon]
            for k in expired:  # askers of a story not registered yet stay: it will register
                del self.roots[k]
                self.askers.pop(k, None)
        return answers

    def ask(self, asker: str, uid: str, time: int,
            settings: DedupSettings) -> Optional[tuple[str, tuple[str, bool, int]]]:
        if uid in self.roots:
            self.askers.setdefault(uid, []).append(asker)
            root, _, seq = self.roots[uid]
            return asker, (uid, root, seq)
        if time < self.clock - settings.retention_seconds:
            # Already forgotten (its keys' clocks lag this one's): it would
            # never register again, so answer now. It led when last known of.
            return asker, (uid, True, 0)
        self.askers.setdefault(uid, []).append(asker)  # answered when it registers
        return None


@dataclass
class ClusterMember:
    """Per story: what its decision needs, and the decision last emitted."""

    event_id: Optional[str] = None  # set once the record is here
    seq: int = -1
    incoming: list[Relation] = field(default_factory=list)
    answers: dict[str, tuple[bool, int]] = field(default_factory=dict)  # predecessor -> (root, seq)
    emitted: Optional[ClusterDecision] = None
    revision: int = -1
    release: bool = False

    def decision(self) -> Optional[ClusterDecision]:
        if self.event_id is None or self.seq < 0:
            return None
        asked = [r.earlier_uid for r in copies_of(self.incoming)]
        if any(uid not in self.answers for uid in asked):
            return None
        return decide(self.event_id, self.incoming, [uid for uid in asked if self.answers[uid][0]])


def _shard(text: str, shards: int) -> str:
    return str(zlib.crc32(text.encode()) % shards)


_Keyed = tuple[str, Any]  # string keys: a deterministic coder for state


class MatchInBandShard(beam.DoFn):
    """Keyed by (band, shard): finds each story's matches in its bucket."""

    INDEX = ReadModifyWriteStateSpec("index", coders.PickleCoder())

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._stored = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "dedup_band_shard_sketches")
        self._capped = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_comparisons_capped")

    def process(self, element, index=beam.DoFn.StateParam(INDEX)):
        _, (bucket, sketch, expected) = element
        state = index.read() or BandShardIndex()
        answer = state.probe(bucket, sketch, self._settings)
        index.write(state)
        self._stored.update(len(state))
        if answer.dropped:
            self._capped.inc(answer.dropped)
        yield sketch.uid, ("band", (answer.found, expected, sketch.time, answer.too_late))
        for relation in answer.corrections:
            yield relation.later_uid, ("late", relation)
        for uid in answer.released:
            yield uid, RELEASE


class CollectRelations(beam.DoFn):
    """Keyed by story: gathers its band answers and late relations, registers
    its root flag (again whenever it flips), asks whether its predecessors
    are roots, and sends its relations on each time they grow."""

    STATE = ReadModifyWriteStateSpec("relations", coders.PickleCoder())
    REGISTRY = "registry"

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._too_late = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_too_late")

    def process(self, element, state=beam.DoFn.StateParam(STATE)):
        uid, (tag, value) = element
        story = state.read() or StoryRelations()
        if tag == "band":
            found, expected, time, too_late = value
            story.expected, story.time = expected, time
            story.answered += 1
            story.incoming.update((r.earlier_uid, r) for r in found)
            story.uncorrected.update(too_late)
            if story.complete and story.uncorrected:  # once: every band has answered
                self._too_late.inc(len(story.uncorrected))
                story.uncorrected.clear()
        elif tag == "late":
            story.incoming[value.earlier_uid] = value
        else:
            story.releases += 1
        if story.complete and len(story.incoming) != story.sent:
            yield from self._send(uid, story)
        if story.released:
            yield uid, RELEASE
            state.clear()
        else:
            state.write(story)

    def _send(self, uid: str, story: StoryRelations):
        """Registry messages go out as (uid asked about, message)."""
        seq = len(story.incoming)
        root = is_root(story.incoming.values())
        if root != story.root:
            story.root = root
            yield beam.pvalue.TaggedOutput(self.REGISTRY, (uid, ("register", (uid, root, story.time, seq))))
        for relation in copies_of(story.incoming.values()):
            if relation.earlier_uid not in story.asked:
                story.asked.add(relation.earlier_uid)
                yield beam.pvalue.TaggedOutput(self.REGISTRY, (
                    relation.earlier_uid, ("ask", (uid, relation.earlier_uid, relation.earlier_order[0]))))
        story.sent = seq
        yield uid, ("relations", (seq, list(story.incoming.values())))


class AnswerRootQuestions(beam.DoFn):
    """Keyed by registry shard: stores root flags, answers who asks, and tells
    them again when a flag flips."""

    REGISTRY = ReadModifyWriteStateSpec("registry", coders.PickleCoder())

    def __init__(self, settings: DedupSettings):
        self._settings = settings

    def process(self, element, registry=beam.DoFn.StateParam(REGISTRY)):
        _, (tag, value) = element
        state = registry.read() or RootRegistry()
        if tag == "register":
            uid, root, time, seq = value
            answers = state.register(uid, root, time, seq, self._settings)
        else:
            asker, uid, time = value
            answer = state.ask(asker, uid, time, self._settings)
            answers = [answer] if answer else []
        registry.write(state)
        for asker, flag in answers:
            yield asker, ("answer", flag)


class DecideCluster(beam.DoFn):
    """Keyed by story: emits the record once its decision is known, and again
    (``cluster_revision`` + 1) whenever a late arrival changes the decision."""

    MEMBER = ReadModifyWriteStateSpec("member", coders.PickleCoder())
    RECORD = ReadModifyWriteStateSpec("record", coders.PickleCoder())  # written once, read per emission

    def __init__(self):
        self._corrections = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_corrections")
        # A correction that flips is_duplicate moves one story between the run's counts.
        self._unique = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "unique")
        self._duplicates = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "duplicates")

    def process(self, element, member_state=beam.DoFn.StateParam(MEMBER),
                record_state=beam.DoFn.StateParam(RECORD)):
        _, (tag, value) = element
        member = member_state.read() or ClusterMember()
        if tag == "record":
            record_state.write(value)
            member.event_id = value.event_id
        elif tag == "relations":
            seq, incoming = value
            if seq > member.seq:
                member.seq, member.incoming = seq, incoming
        elif tag == "answer":
            uid, root, seq = value
            if seq > member.answers.get(uid, (None, -1))[1]:
                member.answers[uid] = (root, seq)
        else:
            member.release = True
        decision = member.decision()
        if decision is not None and decision != member.emitted:
            yield self._emit(record_state.read(), member, decision)
        # Released, but a predecessor's flag may still be on its way (by the registry).
        if member.release and decision is not None:
            member_state.clear()
            record_state.clear()
        else:
            member_state.write(member)

    def _emit(self, record: EventRecord, member: ClusterMember, decision: ClusterDecision) -> EventRecord:
        before = member.emitted
        if before is not None:
            self._corrections.inc()
            if before.is_duplicate != decision.is_duplicate:
                self._duplicates.inc(1 if decision.is_duplicate else -1)
                self._unique.inc(-1 if decision.is_duplicate else 1)
        member.emitted, member.revision = decision, member.revision + 1
        record = apply_decision(record, decision)
        record.cluster_revision = member.revision
        return record


class _StreamingClusters(beam.PTransform):
    def __init__(self, settings: DedupSettings):
        super().__init__()
        self._settings = settings

    def expand(self, records):
        s = self._settings

        def probes(record):
            sketch = sketch_record(record, s)
            keys = band_keys(sketch, s)
            for key in keys:
                yield f"{key >> 32}:{key % s.shards_per_band}", (key, sketch, len(keys))
            if not keys:  # no words and no story_id: nothing can match it, nothing to wait for
                yield beam.pvalue.TaggedOutput("unbanded", (sketch.uid, ("band", ([], 0, sketch.time, []))))

        probed = records | "ProbeBands" >> beam.FlatMap(probes).with_output_types(_Keyed).with_outputs(
            "unbanded", main="probes")
        band_answers = (probed.probes
                        | "MatchInBandShard" >> beam.ParDo(MatchInBandShard(s)).with_input_types(_Keyed))
        relations = ((band_answers, probed.unbanded)
                     | "MergeBandAnswers" >> beam.Flatten().with_output_types(_Keyed)
                     | "CollectRelations" >> beam.ParDo(CollectRelations(s)).with_input_types(_Keyed)
                     .with_outputs(CollectRelations.REGISTRY, main="relations"))
        answers = (relations[CollectRelations.REGISTRY]
                   | "KeyByRegistryShard" >> beam.MapTuple(
                       lambda uid, message: (_shard(uid, s.registry_shards), message)).with_output_types(_Keyed)
                   | "AnswerRootQuestions" >> beam.ParDo(AnswerRootQuestions(s)).with_input_types(_Keyed))
        keyed_records = records | "KeyByStory" >> beam.Map(lambda r: (record_uid(r), ("record", r)))
        return ((keyed_records, relations.relations, answers)
                | "MergeForDecision" >> beam.Flatten().with_output_types(_Keyed)
                | "DecideCluster" >> beam.ParDo(DecideCluster()).with_input_types(_Keyed))


class NearDuplicateClusters(beam.PTransform):
    """records -> the same records with cluster_id, is_duplicate, duplicate_of,
    similarity and update_of set. Never drops a record. Streaming may emit a
    record again with a higher ``cluster_revision`` (see the streaming path)."""

    def __init__(self, settings: DedupSettings = DedupSettings()):
        super().__init__()
        self._settings = settings

    def expand(self, records):
        if self._settings.streaming:
            return records | "Streaming" >> _StreamingClusters(self._settings)
        return records | "Batch" >> _BatchClusters(self._settings)
