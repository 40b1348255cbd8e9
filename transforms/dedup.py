"""Near-duplicate clustering of wire stories (MinHash LSH with a fact check).

What counts as a duplicate (``relate``): two stories published within the
window whose bodies share almost all word 3-shingles (estimated containment
>= ``threshold``), whose figures agree (the numbers of one are a subset of
the other's, so a trimmed or signed-off copy matches but "FED ADDS 1.5 BLN"
and "FED ADDS 2 BLN" do not) and, for short templated bodies ("Qtly div 20
cts vs 20 cts prior..."), whose headlines name the same company. A later
version of the same story (same source and story_id, higher version) or a
"CORRECTED -" reissue is an *update*: linked by ``update_of``, never hidden.

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

* batch: band buckets are grouped (GroupByKey), relations are found inside
  each bucket, then two shuffles by story give the root flags and decisions;
* streaming: stateful DoFns keyed by (band, shard) hold recent sketches,
  keyed by story collect the band answers, and keyed by registry shard
  answer "is this predecessor a root?". State expires by the event time seen
  in the data (no timers), so expiry is the same on every runner.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Optional

import apache_beam as beam
import numpy as np
from apache_beam import coders
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec

from schemas import EventRecord
from transforms.stage import METRICS_NAMESPACE

DAY = 86_400
EXPIRY_STEP = 3_600  # streaming state is swept once per hour of event time, not per story


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
    allowed_lateness_days: float = 1.0  # streaming: how late (event time) a story may arrive

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
    def retention_seconds(self) -> int:
        return int((self.window_days + self.allowed_lateness_days) * DAY)


# ---------------------------------------------------------------- sketching

_TOKEN = re.compile(r"\w+(?:[.,:/]\w+)*")
_DIGIT = re.compile(r"\d")
# Spelled-out figures are facts too ("Qtly div five cts vs five cts prior").
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

_rng = np.random.default_rng(20240531)  # fixed seed: signatures must agree on every worker
_PERM_A = _rng.integers(1, 2**63, 1024, dtype=np.uint64) | np.uint64(1)
_PERM_B = _rng.integers(0, 2**63, 1024, dtype=np.uint64)
_MIX1 = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)
_SHIFT = np.uint64(32)


@dataclass(frozen=True, slots=True)
class StorySketch:
    """What dedup keeps of a story: about 700 bytes however long the story."""

    uid: str  # unique per input record (event_id + origin), orders exact replays
    event_id: str
    time: int  # publication time (else ingestion time), epoch seconds
    signature: bytes  # num_perm uint32 MinHash values
    shingles: int  # number of distinct shingles, to turn Jaccard into containment
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
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def record_uid(record: EventRecord) -> str:
    """event_id alone is not unique (the same story read from two files);
    the origin (without ingestion time, which differs between replays) is."""
    o = record.origin
    where = f"{record.event_id}|{o.kind}|{o.path}|{o.line}|{o.item}|{o.topic}|{o.partition}|{o.offset}"
    return hashlib.sha1(where.encode()).hexdigest()[:20]


_word_hashes: dict[str, int] = {}


def _word_hash(token: str) -> int:
    # A dict lookup is 3x cheaper than crc32; the cache is reset before it grows large.
    h = _word_hashes.get(token)
    if h is None:
        if len(_word_hashes) > 500_000:
            _word_hashes.clear()
        h = _word_hashes[token] = zlib.crc32(token.encode())
    return h


def minhash(tokens: list[str], num_perm: int) -> tuple[bytes, int]:
    """MinHash of the word 3-shingles of ``tokens`` (single words if fewer than 3)."""
    h = np.fromiter(map(_word_hash, tokens), dtype=np.uint64, count=len(tokens))
    shingles = h[:-2] * _MIX1 ^ h[1:-1] * _MIX2 ^ h[2:] if len(h) >= 3 else h
    shingles = np.unique(shingles)
    if not len(shingles):
        shingles = np.zeros(1, dtype=np.uint64)
    sig = ((shingles[:, None] * _PERM_A[:num_perm] + _PERM_B[:num_perm]) >> _SHIFT).min(axis=0)
    return sig.astype("<u4").tobytes(), len(shingles)


def sketch_record(record: EventRecord, settings: DedupSettings) -> StorySketch:
    tokens = _TOKEN.findall(record.body.lower())
    signature, shingles = minhash(tokens, settings.num_perm)
    figure = [t in _NUMBER_WORDS if t.isalpha() else bool(_DIGIT.search(t)) for t in tokens]
    facts = [(zlib.crc32(f"{tokens[i - 1] if i and not figure[i - 1] else '#'} "
                         f"{tokens[i + 1] if i + 1 < len(tokens) and not figure[i + 1] else '#'}".encode()),
              zlib.crc32(t.replace(",", "").encode()))
             for i, t in enumerate(tokens) if figure[i]]
    short = len(tokens) < settings.short_body_words
    names = sorted(zlib.crc32(n.encode()) for n in _NAME.findall(record.body)) if short else []
    headline = _REISSUE_PREFIX.sub("", record.headline)
    lead = _HEADLINE_WORD.search(headline)
    story_key = f"{record.source or ''}|{record.story_id}" if record.story_id else None
    return StorySketch(
        uid=record_uid(record), event_id=record.event_id,
        time=_epoch(record.published_at or record.origin.ingested_at),
        signature=signature, shingles=shingles, facts=tuple(facts), names=tuple(names),
        tickers=tuple(sorted(set(_TICKER.findall(record.headline)))),
        headline_lead=lead.group(0).lower() if lead else "",
        short=short,
        story_key=story_key, version=record.version,
        correction=bool(_CORRECTION.match(record.headline)))


def band_keys(sketch: StorySketch, settings: DedupSettings) -> list[tuple[int, int]]:
    """(band number, bucket) pairs; band -1 holds the story key so versions meet."""
    rows = settings.rows_per_band
    sig = sketch.signature
    keys = [(b, zlib.crc32(sig[b * rows * 4:(b + 1) * rows * 4])) for b in range(settings.bands)]
    if sketch.story_key:
        keys.append((-1, zlib.crc32(sketch.story_key.encode())))
    return keys


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
    return jaccard, min(1.0, common / min(a.shingles, b.shingles))


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


def relations_in_bucket(sketches: Iterable[StorySketch], settings: DedupSettings) -> Iterator[Relation]:
    members = sorted(sketches, key=lambda s: s.order)
    for i, later in enumerate(members):
        for earlier in members[:i]:
            relation = relate(earlier, later, settings)
            if relation is not None:
                yield relation


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
    leaders = [r for r in incoming if r.kind == DUPLICATE and r.earlier_uid in roots]
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
    buckets: dict[tuple[int, int], list[StorySketch]] = defaultdict(list)
    for sketch in sketches:
        for key in band_keys(sketch, settings):
            buckets[key].append(sketch)
    incoming: dict[str, dict[str, Relation]] = defaultdict(dict)
    for members in buckets.values():
        if len(members) > 1:
            for relation in relations_in_bucket(members, settings):
                incoming[relation.later_uid][relation.earlier_uid] = relation
    roots = {s.uid for s in sketches if is_root(incoming[s.uid].values())}
    for record, sketch in zip(records, sketches):
        relations = incoming[sketch.uid].values()
        apply_decision(record, decide(record.event_id, relations, roots & incoming[sketch.uid].keys()))
    return records


# ---------------------------------------------------------------- batch path

def _relations_of_bucket(item, settings: DedupSettings):
    _, sketches = item
    sketches = list(sketches)
    if len(sketches) > 1:
        for relation in relations_in_bucket(sketches, settings):
            yield (relation.earlier_uid, relation.later_uid), relation


def _root_flags(item):
    """Per story: its own incoming relations, and its root flag sent to each
    story that duplicates it."""
    uid, tagged = item
    incoming = [rel for tag, rel in tagged if tag == "in"]
    outgoing = [rel for tag, rel in tagged if tag == "out"]
    yield uid, ("incoming", incoming)
    if is_root(incoming):
        for rel in outgoing:
            if rel.kind == DUPLICATE:
                yield rel.later_uid, ("root", rel.earlier_uid)


class _BatchClusters(beam.PTransform):
    def __init__(self, settings: DedupSettings):
        super().__init__()
        self._settings = settings

    def expand(self, records):
        s = self._settings
        sketches = records | "Sketch" >> beam.Map(sketch_record, s)
        relations = (
            sketches
            | "ToBands" >> beam.FlatMap(lambda sk: [(key, sk) for key in band_keys(sk, s)])
            | "GroupByBand" >> beam.GroupByKey()
            | "RelateInBucket" >> beam.FlatMap(_relations_of_bucket, s)
            | "GroupByPair" >> beam.GroupByKey()  # a pair meets in many bands; keep one
            | "OnePerPair" >> beam.MapTuple(lambda _, rels: next(iter(rels))))
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

@dataclass
class BandShardIndex:
    """Recent sketches of one (band, shard) key, by bucket. Expiry follows the
    latest publication time seen here, so it needs no timer."""

    buckets: dict[int, list[StorySketch]] = field(default_factory=dict)
    clock: int = 0  # latest publication time seen by this key
    swept: int = 0  # clock at the last expiry sweep

    def probe(self, bucket: int, sketch: StorySketch, settings: DedupSettings) -> tuple[list[Relation], int]:
        """Relations of ``sketch`` to earlier stories stored here; then stores it.
        Also returns how many stored *later* stories it matched (a late arrival:
        those were already decided without it)."""
        self.clock = max(self.clock, sketch.time)
        self._expire(settings)
        found, late = [], 0
        members = self.buckets.setdefault(bucket, [])
        for other in members:
            relation = relate(other, sketch, settings)
            if relation is None:
                continue
            if relation.later_uid == sketch.uid:
                found.append(relation)
            else:
                late += 1
        members.append(sketch)
        return found, late

    def _expire(self, settings: DedupSettings) -> None:
        if self.clock - self.swept < EXPIRY_STEP:  # sweep at most once per hour of event time
            return
        self.swept = self.clock
        horizon = self.clock - settings.retention_seconds
        for bucket in list(self.buckets):
            kept = [s for s in self.buckets[bucket] if s.time >= horizon]
            if kept:
                self.buckets[bucket] = kept
            else:
                del self.buckets[bucket]

    def __len__(self) -> int:
        return sum(len(v) for v in self.buckets.values())


@dataclass
class RootRegistry:
    """Root flags of recent stories, and questions waiting for a flag."""

    roots: dict[str, tuple[bool, int]] = field(default_factory=dict)  # uid -> (is_root, time)
    waiting: dict[str, list[str]] = field(default_factory=dict)  # uid -> uids asking about it
    clock: int = 0
    swept: int = 0

    def register(self, uid: str, root: bool, time: int, settings: DedupSettings) -> list[tuple[str, str, bool]]:
        self.clock = max(self.clock, time)
        self.roots[uid] = (root, time)
        answers = [(asker, uid, root) for asker in self.waiting.pop(uid, [])]
        if self.clock - self.swept >= EXPIRY_STEP:
            self.swept = self.clock
            horizon = self.clock - settings.retention_seconds
            self.roots = {k: v for k, v in self.roots.items() if v[1] >= horizon}
        return answers

    def ask(self, asker: str, uid: str) -> Optional[tuple[str, str, bool]]:
        if uid in self.roots:
            return asker, uid, self.roots[uid][0]
        self.waiting.setdefault(uid, []).append(asker)  # its registration is on the way
        return None


def _shard(text: str, shards: int) -> str:
    return str(zlib.crc32(text.encode()) % shards)


_Keyed = tuple[str, Any]  # string keys: a deterministic coder for state


class MatchInBandShard(beam.DoFn):
    """Keyed by (band, shard): finds each story's earlier matches in its bucket."""

    INDEX = ReadModifyWriteStateSpec("index", coders.PickleCoder())

    def __init__(self, settings: DedupSettings):
        self._settings = settings
        self._late = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "dedup_late_arrivals")
        self._stored = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "dedup_band_shard_sketches")

    def process(self, element, index=beam.DoFn.StateParam(INDEX)):
        _, (bucket, sketch, expected) = element
        state = index.read() or BandShardIndex()
        found, late = state.probe(bucket, sketch, self._settings)
        index.write(state)
        self._late.inc(late)
        self._stored.update(len(state))
        yield sketch.uid, ("band", (found, expected, sketch.time))


class JoinBandAnswers(beam.DoFn):
    """Keyed by story: waits for the record and every band's answer. Roots go out
    at once; duplicates ask the registry whether their predecessors are roots."""

    PARTS = BagStateSpec("parts", coders.PickleCoder())
    DECIDED = "decided"
    REGISTER = "register"
    ASK = "ask"

    def __init__(self, settings: DedupSettings):
        self._settings = settings

    def process(self, element, parts=beam.DoFn.StateParam(PARTS)):
        uid, part = element
        parts.add(part)
        collected = list(parts.read())
        record = next((value for tag, value in collected if tag == "record"), None)
        if record is None:
            return
        bands = [value for tag, value in collected if tag == "band"]
        if not bands or len(bands) < bands[0][1]:
            return
        parts.clear()
        time = bands[0][2]
        incoming = {rel.earlier_uid: rel for found, _, _ in bands for rel in found}
        root = is_root(incoming.values())
        yield beam.pvalue.TaggedOutput(self.REGISTER, (
            _shard(uid, self._settings.registry_shards), ("register", uid, root, time)))
        if root:
            yield apply_decision(record, decide(record.event_id, incoming.values(), ()))
            return
        asked = sorted(rel.earlier_uid for rel in incoming.values() if rel.kind == DUPLICATE)
        yield beam.pvalue.TaggedOutput(self.ASK, (uid, ("pending", (record, list(incoming.values()), asked))))
        for earlier in asked:
            yield beam.pvalue.TaggedOutput(self.REGISTER, (
                _shard(earlier, self._settings.registry_shards), ("ask", uid, earlier)))


class AnswerRootQuestions(beam.DoFn):
    """Keyed by registry shard: stores root flags, answers who asks."""

    REGISTRY = ReadModifyWriteStateSpec("registry", coders.PickleCoder())

    def __init__(self, settings: DedupSettings):
        self._settings = settings

    def process(self, element, registry=beam.DoFn.StateParam(REGISTRY)):
        _, message = element
        state = registry.read() or RootRegistry()
        if message[0] == "register":
            _, uid, root, time = message
            answers = state.register(uid, root, time, self._settings)
        else:
            _, asker, uid = message
            answer = state.ask(asker, uid)
            answers = [answer] if answer else []
        registry.write(state)
        for asker, uid, root in answers:
            yield asker, ("answer", (uid, root))


class DecideDuplicate(beam.DoFn):
    """Keyed by story: decides once every predecessor's root flag is known."""

    PARTS = BagStateSpec("parts", coders.PickleCoder())

    def process(self, element, parts=beam.DoFn.StateParam(PARTS)):
        _, part = element
        parts.add(part)
        collected = list(parts.read())
        pending = next((value for tag, value in collected if tag == "pending"), None)
        answers = dict(value for tag, value in collected if tag == "answer")
        if pending is None:
            return
        record, incoming, asked = pending
        if any(uid not in answers for uid in asked):
            return
        parts.clear()
        roots = [uid for uid in asked if answers[uid]]
        yield apply_decision(record, decide(record.event_id, incoming, roots))


class _StreamingClusters(beam.PTransform):
    def __init__(self, settings: DedupSettings):
        super().__init__()
        self._settings = settings

    def expand(self, records):
        s = self._settings

        def probes(record):
            sketch = sketch_record(record, s)
            keys = band_keys(sketch, s)
            for band, bucket in keys:
                yield f"{band}:{bucket % s.shards_per_band}", (bucket, sketch, len(keys))

        band_answers = (records
                        | "ProbeBands" >> beam.FlatMap(probes)
                        | "MatchInBandShard" >> beam.ParDo(MatchInBandShard(s)).with_input_types(_Keyed))
        keyed_records = records | "KeyByStory" >> beam.Map(lambda r: (record_uid(r), ("record", r)))
        joined = ((keyed_records, band_answers)
                  | "MergeAnswers" >> beam.Flatten()
                  | "JoinBandAnswers" >> beam.ParDo(JoinBandAnswers(s)).with_input_types(_Keyed).with_outputs(
                      JoinBandAnswers.REGISTER, JoinBandAnswers.ASK, main="roots"))
        answers = (joined[JoinBandAnswers.REGISTER]
                   | "AnswerRootQuestions" >> beam.ParDo(AnswerRootQuestions(s)).with_input_types(_Keyed))
        duplicates = ((joined[JoinBandAnswers.ASK], answers)
                      | "MergeRootAnswers" >> beam.Flatten()
                      | "DecideDuplicate" >> beam.ParDo(DecideDuplicate()).with_input_types(_Keyed))
        return (joined.roots, duplicates) | "AllRecords" >> beam.Flatten()


class NearDuplicateClusters(beam.PTransform):
    """records -> the same records with cluster_id, is_duplicate, duplicate_of,
    similarity and update_of set. Never drops a record."""

    def __init__(self, settings: DedupSettings = DedupSettings()):
        super().__init__()
        self._settings = settings

    def expand(self, records):
        if self._settings.streaming:
            return records | "Streaming" >> _StreamingClusters(self._settings)
        return records | "Batch" >> _BatchClusters(self._settings)
